// Large meetings, measured: real browsers in a room full of simulated participants
// (crates/conclave-load: real signaling and WebRTC, synthetic media).
//
// - meeting12 and meeting50: 2 headless Chromium participants + 10 or 48 simulated publishers,
//   everyone publishing.
// - webinar200: 1 Chromium presenter, 1 Chromium listener without camera or microphone, and 200
//   simulated listeners.
//
// Simulated participants act like people in a meeting (`--view mixed --turn 10s`): three in four
// show the first page of a 16-tile grid, one in four the speaker view, each sends `view` for it
// as the web client does and gets only those videos; they talk one at a time, 10 s each, in join
// order (the others send Opus DTX silence), and stop sending video nobody receives
// (`publish_layers`). LARGE_VIEW=none LARGE_TURN=0 gives the old load: everyone receives
// everyone up to last-N and everyone talks all the time. Their video is a real VP8 clip
// (320x180, ~140 kbit/s, 30 frames/s) that the browsers decode, so every tile on a browser's
// page can play (they join as participants who cannot encrypt, which the first browser, the
// moderator, allows; the browsers then send and receive without end-to-end encryption); LARGE_VIDEO=synthetic sends undecodable VP8-shaped packets at LARGE_VIDEO_KBPS.
//
// For each browser: frame rate of the tiles that play (simulated video is not a decodable VP8
// bitstream, so only browsers' tiles can play), the other browser's tile (shown on the page?
// frames per second, height, PLIs the page sent for it), PLIs sent for all tiles, inbound video
// tracks receiving packets, downlink bit rate (getStats transport bytesReceived), and its uplink:
// per simulcast layer whether it is active, frames encoded per second, height, the encoder's
// quality limitation, and the send-side estimate (availableOutgoingBitrate). CPU over the same
// window, each as % of one core, from /proc/<pid>/stat: the server, the load generator, each
// Chromium (all its processes), and the whole machine (/proc/stat); server RSS; and the load
// generator's own summary (loss, latency).
//
//   cargo build --release -p conclave-server -p conclave-load
//   node tests/quality/large.mjs             # writes tests/quality/results/large.json
//   node tests/quality/report.mjs            # then docs/quality.md
//
// Environment: LARGE_LOADS=meeting12,meeting50,webinar200, LARGE_SECONDS=20 (measurement window),
// LARGE_VIDEO_KBPS=150 (simulated publishers' video rate), LARGE_VIEW=mixed, LARGE_TURN=10s,
// CONCLAVE_BIN / CONCLAVE_LOAD_BIN (default target/release/…), LARGE_OUT.

import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  startServer, openBrowser, poll, sleep, randomSecret, remoteTiles, readStats, live, procUsage, median, repoRoot,
} from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SERVER = path.resolve(repoRoot, process.env.CONCLAVE_BIN ?? 'target/release/conclave');
const LOAD = path.resolve(repoRoot, process.env.CONCLAVE_LOAD_BIN ?? 'target/release/conclave-load');
const SECONDS = Number(process.env.LARGE_SECONDS ?? 20);
const VIDEO_KBPS = Number(process.env.LARGE_VIDEO_KBPS ?? 150);
const VIEW = process.env.LARGE_VIEW ?? 'mixed';
const TURN = process.env.LARGE_TURN ?? '10s';
/** `clip`: simulated publishers send a real VP8 clip the browsers decode; `synthetic`: not decodable. */
const VIDEO = process.env.LARGE_VIDEO ?? 'clip';
const HZ = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** Parent of every process: pid -> ppid. */
function parents() {
  /** @type {Map<number, number>} */
  const out = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      out.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * CPU seconds (user + system) of a process and all its descendants, per pid (so processes that
 * come and go in between are counted from their start).
 * @param {number} root
 */
function treeCpu(root) {
  const pp = parents();
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of pp) {
      if (tree.has(ppid) && !tree.has(pid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  /** @type {Map<number, number>} */
  const out = new Map();
  for (const pid of tree) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(pid, (Number(f[11]) + Number(f[12])) / HZ);
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * CPU seconds used between two `treeCpu` readings.
 * @param {Map<number, number>} a
 * @param {Map<number, number>} b
 */
function cpuBetween(a, b) {
  let s = 0;
  for (const [pid, v] of b) s += v - (a.get(pid) ?? 0);
  return s;
}

/** Busy and total CPU seconds of the whole machine (/proc/stat). */
function machineCpu() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((x, y) => x + y, 0);
  const idle = f[3] + (f[4] ?? 0);
  return { busy: (total - idle) / HZ, total: total / HZ };
}

/** Chromium processes started by this process. */
function chromiumChildren() {
  const out = new Set();
  for (const [pid, ppid] of parents()) {
    if (ppid !== process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim().startsWith('chrom')) out.add(pid);
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * What a page shows of the other browser, and what it sends: the other's tile, PLIs sent,
 * per-layer uplink, the send-side estimate.
 * @param {import('playwright-core').Page} page
 * @param {string} other the other browser's display name
 */
function probe(page, other) {
  return page.evaluate(async (otherName) => {
    const c = /** @type {any} */ (window).conclave;
    const pc = /** @type {RTCPeerConnection|null} */ (c?.pc);
    const tiles = [...document.querySelectorAll('[data-participant]:not([data-local])')];
    const tile = /** @type {HTMLElement|undefined} */ (tiles.find((t) => t.querySelector('.name')?.textContent === otherName));
    const v = tile?.querySelector('video');
    const otherId = tile?.dataset.participant ?? null;
    const subs = c?.connection?.media.lastSubs?.subscriptions ?? [];
    const otherMid = subs.find((/** @type {any} */ s) => s.participant_id === otherId && s.kind === 'video' && !s.screen)?.mid ?? null;
    const shown = tiles
      .filter((t) => !(/** @type {HTMLElement} */ (t).hidden))
      .map((t) => ({
        id: /** @type {HTMLElement} */ (t).dataset.participant ?? '',
        frames: t.querySelector('video')?.getVideoPlaybackQuality().totalVideoFrames ?? 0,
      }));
    const out = {
      at: Date.now(),
      shown,
      other: {
        shown: !!tile && !tile.hidden,
        subscribed: otherMid !== null,
        frames: v ? v.getVideoPlaybackQuality().totalVideoFrames : 0,
        height: v?.videoHeight ?? 0,
        drawnHeight: tile ? Math.round(tile.getBoundingClientRect().height * devicePixelRatio) : 0,
        plis: 0,
        framesDecoded: 0,
        framesDropped: 0,
        freezes: 0,
        packetsLost: 0,
        packetsReceived: 0,
      },
      plisSent: 0,
      /** @type {Record<string, any>} */
      layers: {},
      availableOutgoingBitrate: null,
      activeEncodings: /** @type {boolean[]} */ ([]),
    };
    if (!pc) return out;
    const cam = pc.getTransceivers().find((t) => t.sender.track?.kind === 'video' && (t.sender.getParameters().encodings?.length ?? 0) > 1);
    out.activeEncodings = (cam?.sender.getParameters().encodings ?? []).map((e) => e.active);
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.plisSent += s.pliCount ?? 0;
        if (otherMid && s.mid === otherMid) {
          Object.assign(out.other, {
            plis: s.pliCount ?? 0,
            framesDecoded: s.framesDecoded ?? 0,
            framesDropped: s.framesDropped ?? 0,
            freezes: s.freezeCount ?? 0,
            packetsLost: s.packetsLost ?? 0,
            packetsReceived: s.packetsReceived ?? 0,
          });
        }
      }
      if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) {
        out.layers[s.rid] = {
          framesEncoded: s.framesEncoded ?? 0,
          frameHeight: s.frameHeight ?? 0,
          bytesSent: s.bytesSent ?? 0,
          pliCount: s.pliCount ?? 0,
          qualityLimitationReason: s.qualityLimitationReason ?? null,
          active: s.active ?? null,
        };
      }
      if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate !== undefined) {
        out.availableOutgoingBitrate = s.availableOutgoingBitrate;
      }
    });
    return out;
  }, other);
}

/**
 * The change between two probes of one page.
 * @param {any} a
 * @param {any} b
 */
function probeSummary(a, b) {
  const secs = (b.at - a.at) / 1000;
  const d = (/** @type {string} */ k) => b.other[k] - a.other[k];
  /** @type {Record<string, any>} */
  const layers = {};
  for (const [rid, lb] of Object.entries(b.layers)) {
    const la = a.layers[rid] ?? lb;
    layers[rid] = {
      active: lb.active,
      fps: (lb.framesEncoded - la.framesEncoded) / secs,
      height: lb.frameHeight,
      kbps: ((lb.bytesSent - la.bytesSent) * 8) / secs / 1000,
      plisReceived: lb.pliCount - la.pliCount,
      limitation: lb.qualityLimitationReason,
    };
  }
  const shownFps = b.shown.map((/** @type {any} */ t) => {
    const x = a.shown.find((/** @type {any} */ y) => y.id === t.id);
    return x ? (t.frames - x.frames) / secs : 0;
  });
  return {
    visible: {
      tiles: shownFps.length,
      fpsMedian: median(shownFps),
      fpsMin: shownFps.length ? Math.min(...shownFps) : null,
      atLeast20: shownFps.filter((x) => x >= 19.5).length,
      playing: shownFps.filter((x) => x >= 1).length,
    },
    other: {
      shown: b.other.shown,
      subscribed: b.other.subscribed,
      fps: d('frames') / secs,
      decodedFps: d('framesDecoded') / secs,
      height: b.other.height,
      drawnHeight: b.other.drawnHeight,
      plisPerMin: (d('plis') / secs) * 60,
      framesDropped: d('framesDropped'),
      freezes: d('freezes'),
      lossPct: d('packetsReceived') + d('packetsLost') > 0 ? (100 * d('packetsLost')) / (d('packetsReceived') + d('packetsLost')) : 0,
    },
    plisSentPerMin: ((b.plisSent - a.plisSent) / secs) * 60,
    uplink: { activeEncodings: b.activeEncodings, availableOutgoingKbps: b.availableOutgoingBitrate && b.availableOutgoingBitrate / 1000, layers },
  };
}

/** The load generator's room (its first room is `load-0`). */
const ROOM = 'load-0';

const LOADS = [
  {
    id: 'meeting12',
    browsers: [{ name: 'Alice', camera: true }, { name: 'Bob', camera: true }],
    publishers: 10,
    subscribers: 0,
  },
  {
    id: 'meeting50',
    browsers: [{ name: 'Alice', camera: true }, { name: 'Bob', camera: true }],
    publishers: 48,
    subscribers: 0,
  },
  {
    id: 'webinar200',
    browsers: [{ name: 'Presenter', camera: true }, { name: 'Listener', camera: false }],
    publishers: 0,
    subscribers: 200,
  },
];

/**
 * Codes and messages of the `error` messages the page receives.
 * @param {import('playwright-core').Page} page
 */
function signalingErrors(page) {
  /** @type {string[]} */
  const out = [];
  /** @type {{at: number, active: boolean[]}[]} */
  const publishLayers = [];
  page.on('websocket', (ws) =>
    ws.on('framereceived', (f) => {
      try {
        const m = JSON.parse(String(f.payload));
        if (m.type === 'error') out.push(`${m.code}: ${m.message}`);
        if (m.type === 'publish_layers') publishLayers.push({ at: Date.now(), active: m.active });
      } catch {
        /* not JSON */
      }
    }),
  );
  page.on('console', (m) => {
    if (m.type() === 'warning' && m.text().startsWith('conclave:')) out.push(m.text());
  });
  return Object.assign(out, { publishLayers });
}

/**
 * @param {typeof LOADS[number]} load
 */
async function runLoad(load) {
  const server = await startServer({ bin: SERVER });
  const secret = randomSecret();
  /** @type {Awaited<ReturnType<typeof openBrowser>>[]} */
  const sessions = [];
  const jsonDir = mkdtempSync(path.join(os.tmpdir(), 'conclave-large-'));
  const jsonFile = path.join(jsonDir, 'load.json');
  let loadProc = null;
  /** @type {ReturnType<typeof signalingErrors>[]} */
  const errorsOf = [];
  /** @type {number[]} each browser's main process */
  const browserPids = [];
  try {
    for (const b of load.browsers) {
      const known = chromiumChildren();
      const s = await openBrowser(server.url, b.camera ? {} : { fakeUi: false, extraArgs: ['--deny-permission-prompts'] });
      sessions.push(s);
      browserPids.push([...chromiumChildren()].find((p) => !known.has(p)) ?? 0);
      errorsOf.push(signalingErrors(s.page));
      await s.page.goto(`${server.url}/${ROOM}?name=${b.name}&autojoin=1#${secret}`);
      await poll(() => s.page.evaluate(() => document.body.dataset.state === 'joined'), { what: `${b.name} joined` });
      if (sessions.length === 1 && VIDEO === 'clip') {
        // Simulated participants cannot encrypt: the first browser, the room's moderator, allows
        // them ("Allow participants who cannot encrypt"), and the browsers then pass their
        // frames through as they are, so the clip is decoded and shown.
        await s.page.evaluate(() => /** @type {any} */ (window).conclave.connection.setE2ee(false));
      }
    }
    // The generator measures for long enough to cover the browsers' window.
    const args = [
      '--url', new URL(server.url).host, '--publishers', String(load.publishers), '--subscribers', String(load.subscribers),
      '--video-kbps', String(VIDEO_KBPS), '--ramp', '5', '--settle', '8s', '--duration', `${SECONDS + 10}s`,
      '--server-pid', String(server.pid), '--json', jsonFile, '--label', load.id,
      '--view', VIEW, '--turn', TURN, ...(VIDEO === 'clip' ? ['--video-clip', '--plain'] : []),
    ];
    loadProc = spawn(LOAD, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let loadErr = '';
    loadProc.stderr.on('data', (d) => (loadErr = (loadErr + d).slice(-4000)));
    const loadDone = new Promise((r) => loadProc?.once('exit', r));
    const total = load.browsers.length + load.publishers + load.subscribers;
    // Everyone is in once the browsers list all the others.
    await poll(async () => (await remoteTiles(sessions[0].page)).length >= total - 1, {
      timeout: 120000, interval: 1000, what: `${total - 1} remote participants`,
    });
    // The generator's own window starts once all its participants are connected (and settled).
    await poll(() => loadErr.includes('measuring') || loadProc?.exitCode !== null, {
      timeout: 180000, interval: 500, what: 'simulated participants connected',
    });
    await sleep(2000);
    const others = load.browsers.map((_, i) => load.browsers[1 - i]?.name ?? '');
    const t0 = Date.now();
    const u0 = procUsage(/** @type {number} */ (server.pid));
    const cpu0 = {
      machine: machineCpu(),
      load: treeCpu(/** @type {number} */ (loadProc.pid)),
      browsers: browserPids.map((p) => treeCpu(p)),
    };
    const before = await Promise.all(sessions.map((s, i) => Promise.all([readStats(s.page), remoteTiles(s.page), probe(s.page, others[i])])));
    await sleep(SECONDS * 1000);
    const after = await Promise.all(sessions.map((s, i) => Promise.all([readStats(s.page), remoteTiles(s.page), probe(s.page, others[i])])));
    const u1 = procUsage(/** @type {number} */ (server.pid));
    const secs = (Date.now() - t0) / 1000;
    const cpu1 = {
      machine: machineCpu(),
      load: treeCpu(/** @type {number} */ (loadProc.pid)),
      browsers: browserPids.map((p) => treeCpu(p)),
    };
    const pct = (/** @type {number} */ x) => (x / secs) * 100;
    const browsers = load.browsers.map((b, i) => {
      const [[sa, ta, pa], [sb, tb, pb]] = [before[i], after[i]];
      const tileFps = tb.map((t) => {
        const a = ta.find((x) => x.id === t.id);
        return a ? (t.frames - a.frames) / secs : 0;
      });
      const playing = tileFps.filter((x) => x >= 1);
      const va = live(sa.video);
      const vb = live(sb.video);
      return {
        name: b.name,
        tiles: tb.length,
        tilesPlaying: playing.length,
        tileFps: median(playing),
        inboundVideo: Object.keys(vb).filter((k) => !va[k] || vb[k].packetsReceived > va[k].packetsReceived).length,
        downlinkKbps: ((sb.bytesReceived - sa.bytesReceived) * 8) / secs / 1000,
        cpuPct: pct(cpuBetween(cpu0.browsers[i], cpu1.browsers[i])),
        ...probeSummary(pa, pb),
      };
    });
    const negotiation = await Promise.all(sessions.map((s) => s.page.evaluate(() => {
      const c = /** @type {any} */ (window).conclave;
      const subs = c.connection?.media.lastSubs;
      return {
        signalingState: c.pc?.signalingState ?? null,
        videoSlots: subs?.slots?.video ?? 0,
        videoSubscriptions: (subs?.subscriptions ?? []).filter((/** @type {any} */ x) => x.kind === 'video').length,
      };
    })));
    browsers.forEach((b, i) =>
      Object.assign(b, negotiation[i], {
        errors: [...new Set(errorsOf[i])],
        // What the server asked of this browser's camera, last five times (seconds before the window's end).
        publishLayers: errorsOf[i].publishLayers.slice(-5).map((x) => ({ ago: (Date.now() - x.at) / 1000, active: x.active })),
      }),
    );
    const cpuPct = ((u1.cpuSeconds - u0.cpuSeconds) / secs) * 100;
    const cpu = {
      serverPct: cpuPct,
      generatorPct: pct(cpuBetween(cpu0.load, cpu1.load)),
      browsersPct: browsers.map((b) => b.cpuPct),
      machineBusyPct: ((cpu1.machine.busy - cpu0.machine.busy) / (cpu1.machine.total - cpu0.machine.total)) * 100 * os.cpus().length,
      cores: os.cpus().length,
    };
    console.error(`${load.id}: CPU % of a core ${JSON.stringify(cpu)}, server ${u1.rssMiB.toFixed(0)} MiB; ${JSON.stringify(browsers, null, 1)}`);
    await Promise.race([loadDone, sleep(90000)]);
    let summary = null;
    try {
      summary = JSON.parse(readFileSync(jsonFile, 'utf8'));
    } catch {
      console.error(`${load.id}: no load generator summary; its last output:\n${loadErr}`);
    }
    return {
      id: load.id,
      participants: total,
      publishers: load.publishers + load.browsers.filter((b) => b.camera).length,
      server: { cpuPct, rssMiB: u1.rssMiB, seconds: secs },
      cpu,
      browsers,
      load: summary && {
        connected: summary.connected,
        forwardedMbitPerS: summary.forwarded?.mbit_per_s,
        forwardedPacketsPerS: summary.forwarded?.packets_per_s,
        lossPct: summary.forwarded?.loss_pct,
        latencyMs: summary.latency,
        serverCpuPct: summary.server?.cpu_pct,
        serverRssPeakMiB: summary.server?.rss_peak_mib,
        generatorCpuPct: summary.generator?.cpu_pct,
        udpRcvbufErrors: summary.udp_rcvbuf_errors,
        verifiedLossPct: summary.verified?.loss_pct,
        errors: summary.errors?.length ?? 0,
      },
    };
  } finally {
    if (loadProc && loadProc.exitCode === null) loadProc.kill('SIGTERM');
    await Promise.all(sessions.map((s) => s.close()));
    await server.stop();
  }
}

async function main() {
  const wanted = process.env.LARGE_LOADS?.split(',');
  const loads = LOADS.filter((l) => !wanted || wanted.includes(l.id));
  const out = process.env.LARGE_OUT ?? path.join(here, 'results', 'large.json');
  const results = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? '' },
    server: path.relative(repoRoot, SERVER),
    videoKbps: VIDEO_KBPS,
    video: VIDEO,
    view: VIEW,
    turn: TURN,
    seconds: SECONDS,
    runs: /** @type {any[]} */ ([]),
  };
  for (const load of loads) {
    results.runs.push(await runLoad(load));
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(results, null, 1));
  }
  console.error(`results: ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
