// Large meetings, measured: real browsers in a room full of simulated participants
// (crates/conclave-load: real signaling and WebRTC, synthetic media).
//
// - meeting12 and meeting50: 2 headless Chromium participants + 10 or 48 simulated publishers,
//   everyone publishing.
// - webinar200: 1 Chromium presenter, 1 Chromium listener without camera or microphone, and 200
//   simulated listeners.
//
// For each browser: frame rate of the tiles that play (simulated video is not a decodable VP8
// bitstream, so only browsers' tiles can play), inbound video tracks receiving packets, downlink
// bit rate (getStats transport bytesReceived); for the server: CPU (from /proc/<pid>/stat, as % of
// one core) and RSS over the same window; and the load generator's own summary (loss, latency).
//
//   cargo build --release -p conclave-server -p conclave-load
//   node tests/quality/large.mjs             # writes tests/quality/results/large.json
//   node tests/quality/report.mjs            # then docs/quality.md
//
// Environment: LARGE_LOADS=meeting12,meeting50,webinar200, LARGE_SECONDS=20 (measurement window),
// LARGE_VIDEO_KBPS=150 (simulated publishers' video rate), CONCLAVE_BIN / CONCLAVE_LOAD_BIN
// (default target/release/…), LARGE_OUT.

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
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
  page.on('websocket', (ws) =>
    ws.on('framereceived', (f) => {
      try {
        const m = JSON.parse(String(f.payload));
        if (m.type === 'error') out.push(`${m.code}: ${m.message}`);
      } catch {
        /* not JSON */
      }
    }),
  );
  return out;
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
  /** @type {string[][]} */
  const errorsOf = [];
  try {
    for (const b of load.browsers) {
      const s = await openBrowser(server.url, b.camera ? {} : { fakeUi: false, extraArgs: ['--deny-permission-prompts'] });
      sessions.push(s);
      errorsOf.push(signalingErrors(s.page));
      await s.page.goto(`${server.url}/${ROOM}?name=${b.name}&autojoin=1#${secret}`);
      await poll(() => s.page.evaluate(() => document.body.dataset.state === 'joined'), { what: `${b.name} joined` });
    }
    // The generator measures for long enough to cover the browsers' window.
    const args = [
      '--url', new URL(server.url).host, '--publishers', String(load.publishers), '--subscribers', String(load.subscribers),
      '--video-kbps', String(VIDEO_KBPS), '--ramp', '20', '--settle', '8s', '--duration', `${SECONDS + 10}s`,
      '--server-pid', String(server.pid), '--json', jsonFile, '--label', load.id,
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
    await sleep(8000);
    const t0 = Date.now();
    const u0 = procUsage(/** @type {number} */ (server.pid));
    const before = await Promise.all(sessions.map((s) => Promise.all([readStats(s.page), remoteTiles(s.page)])));
    await sleep(SECONDS * 1000);
    const after = await Promise.all(sessions.map((s) => Promise.all([readStats(s.page), remoteTiles(s.page)])));
    const u1 = procUsage(/** @type {number} */ (server.pid));
    const secs = (Date.now() - t0) / 1000;
    const browsers = load.browsers.map((b, i) => {
      const [[sa, ta], [sb, tb]] = [before[i], after[i]];
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
      };
    });
    const negotiation = await Promise.all(sessions.map((s) => s.page.evaluate(() => {
      const c = /** @type {any} */ (window).conclave;
      const subs = c.connection?.lastSubs;
      return {
        signalingState: c.pc?.signalingState ?? null,
        videoSlots: subs?.slots?.video ?? 0,
        videoSubscriptions: (subs?.subscriptions ?? []).filter((/** @type {any} */ x) => x.kind === 'video').length,
      };
    })));
    browsers.forEach((b, i) => Object.assign(b, negotiation[i], { errors: [...new Set(errorsOf[i])] }));
    const cpuPct = ((u1.cpuSeconds - u0.cpuSeconds) / secs) * 100;
    console.error(`${load.id}: server ${cpuPct.toFixed(0)}% CPU, ${u1.rssMiB.toFixed(0)} MiB; ${JSON.stringify(browsers)}`);
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
      browsers,
      load: summary && {
        connected: summary.connected,
        forwardedMbitPerS: summary.forwarded?.mbit_per_s,
        forwardedPacketsPerS: summary.forwarded?.packets_per_s,
        lossPct: summary.forwarded?.loss_pct,
        latencyMs: summary.latency,
        serverCpuPct: summary.server?.cpu_pct,
        serverRssPeakMiB: summary.server?.rss_peak_mib,
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
