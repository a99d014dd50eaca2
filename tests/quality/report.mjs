// Renders the quality results (run.mjs, large.mjs) into docs/quality.md (between its
// `<!-- quality:… -->` markers) and two charts, docs/quality-scenarios.svg and
// docs/quality-adaptation.svg. Plain SVG written by hand: no plotting dependency.
//
//   node tests/quality/report.mjs [results/quality.json] [results/large.json]

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const docs = path.resolve(here, '../../docs');
const qualityFile = process.argv[2] ?? path.join(here, 'results', 'quality.json');
const largeFile = process.argv[3] ?? path.join(here, 'results', 'large.json');

/** @param {number|null|undefined} x @param {number} [d] */
const f = (x, d = 1) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d));
/** @param {number[]} xs */
const med = (xs) => {
  const s = xs.filter((x) => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
/** @param {string} s */
const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

const COLORS = ['#2b6cb0', '#dd6b20', '#38a169', '#805ad5'];

/** A round axis maximum with four round steps at or above `v`. @param {number} v */
function niceMax(v) {
  const raw = v / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  return step * 4;
}

/** @param {any} q */
function qualityMarkdown(q) {
  const lines = [];
  lines.push(`Measured ${q.date.slice(0, 10)} on ${q.machine.cpus} cores (${q.machine.cpuModel}), ${q.participants} participants, ` +
    `${q.seconds} s calls once everyone played (longer for the cap schedule); server binary \`${q.server}\`.`);
  for (const n of q.notes) lines.push('', `Note: ${n}.`);
  lines.push('', '| scenario | mode | video fps | height (median) | freezes /min | frozen s /min | jitter buffer ms | video loss % | NACK /min | PLI /min | downlink kbit/s | audio concealed % |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of q.runs) {
    const a = r.aggregate;
    lines.push(`| ${r.scenario} | ${r.mode} | ${f(a.fps)} | ${f(a.height, 0)} | ${f(a.freezesPerMin)} | ${f(a.freezeSecondsPerMin)} | ${f(a.jitterBufferMs, 0)} | ${f(a.lossPct)} | ${f(a.nacksPerMin, 0)} | ${f(a.plisPerMin)} | ${f(a.receiverKbps, 0)} | ${f(a.audioConcealedPct)} |`);
  }
  lines.push('', 'Scenarios:', '');
  const seen = new Set();
  for (const r of q.runs) {
    if (seen.has(r.scenario)) continue;
    seen.add(r.scenario);
    lines.push(`- **${r.scenario}**: ${r.title} (relay: uplink \`${r.uplink || 'none'}\`, downlink \`${r.downlink || 'none'}\`).`);
  }
  const adapt = q.runs.filter((/** @type {any} */ r) => r.adaptation);
  if (adapt.length) {
    lines.push('', 'Adaptation to the cap schedule, per receiver stream (median / worst over streams; "never": not within the phase):', '');
    lines.push('| mode | height before | last decoded height at 300 kbit/s | fps at 300 kbit/s | settle s | recover s |');
    lines.push('|---|---|---|---|---|---|');
    for (const r of adapt) {
      const xs = r.adaptation;
      const sec = (/** @type {string} */ k) => {
        const v = xs.map((/** @type {any} */ x) => x[k]);
        const never = v.filter((/** @type {any} */ x) => x === null).length;
        const got = v.filter((/** @type {any} */ x) => x !== null);
        const worst = never ? 'never' : f(Math.max(...got), 0);
        return `${got.length ? f(med(got), 0) : 'never'} / ${worst}`;
      };
      lines.push(`| ${r.mode} | ${f(med(xs.map((/** @type {any} */ x) => x.preHeight)), 0)} | ${f(med(xs.map((/** @type {any} */ x) => x.duringHeight)), 0)} | ${f(med(xs.map((/** @type {any} */ x) => x.duringFps)))} | ${sec('settleSeconds')} | ${sec('recoverSeconds')} |`);
    }
  }
  lines.push('', 'What the relay did (packets, all participants):', '');
  lines.push('| scenario | mode | uplink in | uplink dropped (loss / queue) | downlink in | downlink dropped (loss / queue) |');
  lines.push('|---|---|---|---|---|---|');
  for (const r of q.runs) {
    const u = r.relay?.uplink;
    const d = r.relay?.downlink;
    if (!u || !d) continue;
    lines.push(`| ${r.scenario} | ${r.mode} | ${u.packets_in} | ${u.dropped_loss} / ${u.dropped_queue} | ${d.packets_in} | ${d.dropped_loss} / ${d.dropped_queue} |`);
  }
  if (q.runs.some((/** @type {any} */ r) => r.aggregate.keyframesPerMin !== undefined)) {
    lines.push('', 'Repair and keyframes: per receiver stream and minute (mean), what its browser counted; then the server\'s own counts over the whole call:', '');
    lines.push('| scenario | mode | retransmissions received | keyframes decoded | frames dropped | server: NACKs to publishers / from receivers | server: keyframe requests from receivers / to publishers |');
    lines.push('|---|---|---|---|---|---|---|');
    for (const r of q.runs) {
      const a = r.aggregate;
      const s = r.server;
      const pair = (/** @type {string} */ x, /** @type {string} */ y) => (s ? `${s[x] ?? 0} / ${s[y] ?? 0}` : '–');
      lines.push(`| ${r.scenario} | ${r.mode} | ${f(a.retransmittedPerMin, 0)} | ${f(a.keyframesPerMin)} | ${f(a.framesDroppedPerMin)} | ${pair('nacks_sent', 'nacks_received')} | ${pair('keyframe_requests_received', 'keyframe_requests_sent')} |`);
    }
  }
  return lines.join('\n');
}

/** Grouped bars: video fps and frozen seconds per minute, per scenario and mode. @param {any} q */
function scenariosSvg(q) {
  const scenarios = [...new Set(q.runs.map((/** @type {any} */ r) => r.scenario))];
  const modes = [...new Set(q.runs.map((/** @type {any} */ r) => r.mode))];
  const W = 760;
  const panelH = 220;
  const left = 60;
  const top = 40;
  const plotW = W - left - 20;
  const panels = [
    { key: 'fps', title: 'Received video frames per second (mean over streams)', max: 30 },
    { key: 'freezeSecondsPerMin', title: 'Frozen seconds per minute (mean over streams)', max: 0 },
  ];
  const out = [];
  const H = top + panels.length * (panelH + 60) + 20;
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="15">Conclave meeting quality by network scenario</text>`);
  modes.forEach((m, i) => {
    out.push(`<rect x="${W - 200 + i * 90}" y="28" width="12" height="12" fill="${COLORS[i]}"/><text x="${W - 184 + i * 90}" y="38">${esc(m)}</text>`);
  });
  panels.forEach((p, pi) => {
    const y0 = top + pi * (panelH + 60) + 20;
    const vals = q.runs.map((/** @type {any} */ r) => r.aggregate[p.key] ?? 0);
    const max = niceMax(Math.max(p.max, ...vals, 1) * 1.05);
    out.push(`<text x="${left}" y="${y0 - 6}" font-size="13">${esc(p.title)}</text>`);
    for (let k = 0; k <= 4; k++) {
      const v = (max * k) / 4;
      const y = y0 + panelH - (panelH * k) / 4;
      out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y}" y2="${y}" stroke="#ddd"/><text x="${left - 6}" y="${y + 4}" text-anchor="end">${v.toFixed(max > 10 ? 0 : 1)}</text>`);
    }
    const groupW = plotW / scenarios.length;
    const barW = Math.min(30, (groupW - 16) / modes.length);
    scenarios.forEach((s, si) => {
      const gx = left + si * groupW + (groupW - barW * modes.length) / 2;
      modes.forEach((m, mi) => {
        const r = q.runs.find((/** @type {any} */ x) => x.scenario === s && x.mode === m);
        if (!r) return;
        const v = r.aggregate[p.key] ?? 0;
        const h = (panelH * v) / max;
        out.push(`<rect x="${gx + mi * barW}" y="${y0 + panelH - h}" width="${barW - 2}" height="${h}" fill="${COLORS[mi]}"/>`);
        out.push(`<text x="${gx + mi * barW + barW / 2 - 1}" y="${y0 + panelH - h - 3}" text-anchor="middle" font-size="10">${v.toFixed(1)}</text>`);
      });
      out.push(`<text x="${left + si * groupW + groupW / 2}" y="${y0 + panelH + 16}" text-anchor="middle">${esc(String(s))}</text>`);
    });
  });
  out.push('</svg>');
  return out.join('\n');
}

/** Median frame height and fps over time in the cap schedule scenario, per mode. @param {any} q */
function adaptationSvg(q) {
  const runs = q.runs.filter((/** @type {any} */ r) => r.adaptation);
  if (!runs.length) return null;
  const W = 760;
  const panelH = 180;
  const left = 60;
  const top = 50;
  const plotW = W - left - 20;
  const all = runs.flatMap((/** @type {any} */ r) => Object.values(r.series).flat());
  const tMax = Math.max(...all.map((/** @type {any} */ p) => p.t));
  const panels = [
    { key: 'height', title: 'Height of the last decoded frame (median over streams)', max: niceMax(Math.max(720, ...all.map((/** @type {any} */ p) => p.height))) },
    { key: 'fps', title: 'Received frames per second (median over streams)', max: 40 },
  ];
  const H = top + panels.length * (panelH + 50) + 20;
  const x = (/** @type {number} */ t) => left + (plotW * t) / tMax;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="15">Downlink 3 Mbit/s → 300 kbit/s → 3 Mbit/s (shaded)</text>`);
  runs.forEach((/** @type {any} */ r, i) => {
    out.push(`<rect x="${W - 200 + i * 90}" y="30" width="12" height="12" fill="${COLORS[i]}"/><text x="${W - 184 + i * 90}" y="40">${esc(r.mode)}</text>`);
  });
  const [down, up] = runs[0].changes;
  panels.forEach((p, pi) => {
    const y0 = top + pi * (panelH + 50) + 10;
    const y = (/** @type {number} */ v) => y0 + panelH - (panelH * v) / p.max;
    out.push(`<text x="${left}" y="${y0 - 6}" font-size="13">${esc(p.title)}</text>`);
    out.push(`<rect x="${x(down)}" y="${y0}" width="${x(up) - x(down)}" height="${panelH}" fill="#fde8e8"/>`);
    for (let k = 0; k <= 4; k++) {
      const v = (p.max * k) / 4;
      out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(0)}</text>`);
    }
    for (let t = 0; t <= tMax; t += 10) {
      out.push(`<text x="${x(t)}" y="${y0 + panelH + 14}" text-anchor="middle">${t} s</text>`);
    }
    runs.forEach((/** @type {any} */ r, i) => {
      /** @type {Map<number, number[]>} */
      const bySecond = new Map();
      for (const pts of Object.values(r.series)) {
        for (const pt of /** @type {any[]} */ (pts)) {
          const s = Math.round(pt.t);
          bySecond.set(s, [...(bySecond.get(s) ?? []), pt[p.key]]);
        }
      }
      const pts = [...bySecond.entries()].sort((a, b) => a[0] - b[0]).map(([t, v]) => `${x(t).toFixed(1)},${y(med(v) ?? 0).toFixed(1)}`);
      out.push(`<polyline fill="none" stroke="${COLORS[i]}" stroke-width="2" points="${pts.join(' ')}"/>`);
    });
  });
  out.push('</svg>');
  return out.join('\n');
}

/** @param {any} l */
function largeMarkdown(l) {
  const how = l.view
    ? ` Simulated participants: \`--view ${l.view} --turn ${l.turn}\`, video ${l.video === 'clip' ? 'the VP8 clip' : `synthetic at ${l.videoKbps} kbit/s`}.`
    : '';
  const lines = [`Measured ${l.date.slice(0, 10)} on ${l.machine.cpus} cores; server binary \`${l.server}\`.${how}`, ''];
  lines.push('Per browser: tiles on its page (visible) and how many play at ≥ 20 frames/s; the other browser\'s tile; PLIs the page sent for all its tiles; its camera\'s simulcast layers as sent (active layers, frames/s and height of each); downlink; Chromium\'s CPU (all its processes).', '');
  lines.push('| load | participants | browser | visible tiles ≥ 20 fps / playing / shown | visible fps (median / min) | other browser\'s tile fps, height | PLIs sent /min | uplink layers (fps@height) | send estimate kbit/s | downlink kbit/s | inbound video | Chromium CPU % |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of l.runs) {
    for (const b of r.browsers) {
      const v = b.visible;
      const vis = v ? `${v.atLeast20} / ${v.playing} / ${v.tiles}` : `– / ${b.tilesPlaying} / ${b.tiles}`;
      const vfps = v ? `${f(v.fpsMedian)} / ${f(v.fpsMin)}` : f(b.tileFps);
      const o = b.other;
      const other = o ? (o.shown ? `${f(o.fps)}, ${o.height}p` : 'not shown') : '–';
      const layers = b.uplink
        ? Object.entries(b.uplink.layers)
            .sort(([x], [y]) => 'lmh'.indexOf(x) - 'lmh'.indexOf(y))
            .map(([rid, x]) => (/** @type {any} */ (x).fps >= 0.5 ? `${rid} ${f(/** @type {any} */ (x).fps, 0)}@${/** @type {any} */ (x).height}` : `${rid} off`))
            .join(', ') || '–'
        : '–';
      lines.push(`| ${r.id} | ${r.participants} | ${b.name} | ${vis} | ${vfps} | ${other} | ${f(b.plisSentPerMin, 0)} | ${layers} | ${f(b.uplink?.availableOutgoingKbps, 0)} | ${f(b.downlinkKbps, 0)} | ${b.inboundVideo} | ${f(b.cpuPct, 0)} |`);
    }
  }
  lines.push('', 'Who uses the CPU over the browsers\' window (% of one core; the machine has ' + l.machine.cpus + ', so ' + l.machine.cpus * 100 + '% is all of it; "machine" includes other work on it):', '');
  lines.push('| load | server | load generator | Chromium (each) | machine busy | server RSS MiB |');
  lines.push('|---|---|---|---|---|---|');
  for (const r of l.runs) {
    const c = r.cpu;
    if (!c) {
      lines.push(`| ${r.id} | ${f(r.server.cpuPct, 0)} | – | – | – | ${f(r.server.rssMiB, 0)} |`);
      continue;
    }
    lines.push(`| ${r.id} | ${f(c.serverPct, 0)} | ${f(c.generatorPct, 0)} | ${c.browsersPct.map((/** @type {number} */ x) => f(x, 0)).join(' / ')} | ${f(c.machineBusyPct, 0)} | ${f(r.server.rssMiB, 0)} |`);
  }
  lines.push('', 'The load generator over its own window (forwarded to simulated participants; latency only from its verifying receivers):', '');
  lines.push('| load | connected | forwarded Mbit/s | forwarded packets/s | loss % | latency p50 / p95 ms | server CPU % (generator window) | generator CPU % |');
  lines.push('|---|---|---|---|---|---|---|---|');
  for (const r of l.runs) {
    const g = r.load;
    if (!g) continue;
    const lat = g.latencyMs?.samples ? `${f(g.latencyMs.p50_us / 1000, 0)} / ${f(g.latencyMs.p95_us / 1000, 0)}` : '–';
    lines.push(`| ${r.id} | ${g.connected} | ${f(g.forwardedMbitPerS)} | ${f(g.forwardedPacketsPerS, 0)} | ${f(g.lossPct)} | ${lat} | ${f(g.serverCpuPct, 0)} | ${f(g.generatorCpuPct, 0)} |`);
  }
  const errors = l.runs.flatMap((/** @type {any} */ r) => r.browsers.flatMap((/** @type {any} */ b) => (b.errors ?? []).map((/** @type {string} */ e) => `${r.id} ${b.name}: \`${e}\``)));
  if (errors.length) lines.push('', 'Errors the browsers received:', '', ...errors.map((e) => `- ${e}`));
  return lines.join('\n');
}

/**
 * Replace the text between `<!-- quality:NAME:begin -->` and `<!-- quality:NAME:end -->`.
 * @param {string} doc @param {string} name @param {string} body
 */
function splice(doc, name, body) {
  const b = `<!-- quality:${name}:begin -->`;
  const e = `<!-- quality:${name}:end -->`;
  const i = doc.indexOf(b);
  const j = doc.indexOf(e);
  if (i < 0 || j < i) throw new Error(`docs/quality.md lacks the ${b} … ${e} markers`);
  return `${doc.slice(0, i + b.length)}\n${body}\n${doc.slice(j)}`;
}

const mdPath = path.join(docs, 'quality.md');
let md = readFileSync(mdPath, 'utf8');
if (existsSync(qualityFile)) {
  const q = JSON.parse(readFileSync(qualityFile, 'utf8'));
  md = splice(md, 'scenarios', qualityMarkdown(q));
  writeFileSync(path.join(docs, 'quality-scenarios.svg'), scenariosSvg(q));
  const a = adaptationSvg(q);
  if (a) writeFileSync(path.join(docs, 'quality-adaptation.svg'), a);
}
if (existsSync(largeFile)) {
  md = splice(md, 'large', largeMarkdown(JSON.parse(readFileSync(largeFile, 'utf8'))));
}
writeFileSync(mdPath, md);
console.error(`wrote ${mdPath}`);
