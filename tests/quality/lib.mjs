// Shared parts of the quality harness: the impairment relay (conclave-netsim), a meeting of
// headless Chromium participants behind it, and what receivers report through getStats().
//
// Browser helpers and playwright-core come from tests/browser (its node_modules).

import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  startServer, openBrowser, poll, sleep, randomRoom, randomSecret, remoteTiles, freeUdpPort, repoRoot,
} from '../browser/harness.mjs';

export { startServer, openBrowser, poll, sleep, randomRoom, randomSecret, remoteTiles, freeUdpPort, repoRoot };

export const SERVER_BIN = path.resolve(repoRoot, process.env.CONCLAVE_BIN ?? 'target/debug/conclave');
export const NETSIM_BIN = path.resolve(repoRoot, process.env.CONCLAVE_NETSIM_BIN ?? 'target/debug/conclave-netsim');

/**
 * Whether the server binary knows every `--flag` in `args` (from `--help`).
 * @param {string[]} args
 */
export function serverSupports(args) {
  const help = execFileSync(SERVER_BIN, ['--help'], { encoding: 'utf8' });
  return args.filter((a) => a.startsWith('--')).every((a) => help.includes(a.split('=')[0]));
}

/**
 * Start conclave-netsim in front of the server's UDP port. Its schedule counts from now.
 * @param {{listen: number, upstream: number, uplink?: string, downlink?: string, seed?: number}} o
 */
export async function startRelay({ listen, upstream, uplink = '', downlink = '', seed = 1 }) {
  const args = [
    '--listen', `127.0.0.1:${listen}`, '--upstream', `127.0.0.1:${upstream}`,
    '--uplink', uplink, '--downlink', downlink, '--seed', String(seed), '--stats',
  ];
  const proc = spawn(NETSIM_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const started = Date.now();
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (err += d));
  await poll(() => err.includes('conclave-netsim:') || proc.exitCode !== null, { timeout: 10000, what: 'relay start' });
  if (proc.exitCode !== null) throw new Error(`conclave-netsim exited: ${err}`);
  return {
    started,
    /** Stop it; resolves to its packet counts per direction. */
    async stop() {
      if (proc.exitCode === null) {
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await gone;
      }
      try {
        return JSON.parse(out.trim().split('\n').pop() ?? '');
      } catch {
        return null;
      }
    },
  };
}

/**
 * A meeting: server (with `serverArgs`) announcing a relay with the given impairments, and
 * `names.length` Chromium participants joined through it.
 * @param {{names: string[], serverArgs?: string[], uplink?: string, downlink?: string, seed?: number}} o
 */
export async function startMeeting({ names, serverArgs = [], uplink = '', downlink = '', seed = 1 }) {
  const relayPort = await freeUdpPort();
  const server = await startServer({
    bin: SERVER_BIN,
    // Metrics: the server's own counters (keyframe requests, NACKs) are read at the end.
    args: ['--announce', `127.0.0.1:${relayPort}`, '--metrics', ...serverArgs],
  });
  const relay = await startRelay({ listen: relayPort, upstream: server.udp, uplink, downlink, seed });
  /** @type {Awaited<ReturnType<typeof openBrowser>>[]} */
  const sessions = [];
  const room = randomRoom('quality');
  const secret = randomSecret();
  try {
    // One at a time: launching several Chromiums at once on two cores delays them all.
    for (const name of names) {
      const s = await openBrowser(server.url);
      sessions.push(s);
      await behindNat(s.page);
      await s.page.goto(`${server.url}/${room}?name=${name}&autojoin=1#${secret}`);
    }
  } catch (e) {
    await Promise.all(sessions.map((s) => s.close()));
    await relay.stop();
    await server.stop();
    throw e;
  }
  return {
    server,
    relay,
    sessions,
    room,
    /** Seconds since the relay started (its schedule's clock). */
    t: () => (Date.now() - relay.started) / 1000,
    async stop() {
      const serverCounters = await serverMetrics(server.url);
      await Promise.all(sessions.map((s) => s.close()));
      const relayStats = await relay.stop();
      await server.stop();
      return { relayStats, serverCounters };
    },
  };
}

/**
 * The server's media counters (summed over workers) from its Prometheus metrics; null if unavailable.
 * @param {string} url
 */
export async function serverMetrics(url) {
  const text = await fetch(`${url}/metrics`).then((r) => (r.ok ? r.text() : '')).catch(() => '');
  /** @type {Record<string, number>} */
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^conclave_(keyframe_requests_received|keyframe_requests_sent|nacks_received|nacks_sent|packets_lost|packets_forwarded)_total\{[^}]*\} (\S+)$/.exec(line);
    if (m) out[m[1]] = (out[m[1]] ?? 0) + Number(m[2]);
  }
  return Object.keys(out).length ? out : null;
}

/**
 * Make the page's own addresses unreachable for the server, as behind a NAT: its offers reach the
 * server without candidates, so the server learns the page's address only from the checks the page
 * sends, through the relay. Without this the server's own checks would reach the page's loopback
 * host candidates directly and the media would bypass the relay.
 * @param {import('playwright-core').Page} page
 */
export async function behindNat(page) {
  await page.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => {
      if (typeof m === 'string' && m.includes('"offer"')) {
        const msg = JSON.parse(m);
        if (msg.type === 'offer') {
          msg.sdp = msg.sdp.split('\r\n').filter((/** @type {string} */ l) => !l.startsWith('a=candidate:')).join('\r\n');
          m = JSON.stringify(msg);
        }
      }
      server.send(m);
    });
  });
}

/**
 * One getStats() reading of a page: per remote video and audio stream (by mid) the counters the
 * report uses, and the transport's bytes received.
 * @param {import('playwright-core').Page} page
 */
export function readStats(page) {
  return page.evaluate(async () => {
    const c = /** @type {any} */ (window).conclave;
    const pc = /** @type {RTCPeerConnection|null} */ (c?.pc);
    /** @type {{video: Record<string, any>, audio: Record<string, any>, bytesReceived: number, at: number}} */
    const out = { video: {}, audio: {}, bytesReceived: 0, at: Date.now() };
    if (!pc) return out;
    const subs = c.connection?.media.lastSubs?.subscriptions ?? [];
    /** @type {Map<string, string>} */
    const byMid = new Map(subs.map((/** @type {any} */ s) => [s.mid, s.participant_id]));
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === 'transport') out.bytesReceived += s.bytesReceived ?? 0;
      if (s.type !== 'inbound-rtp') return;
      const key = s.mid ?? s.trackIdentifier;
      const common = {
        participant: byMid.get(s.mid) ?? null,
        packetsReceived: s.packetsReceived ?? 0,
        packetsLost: s.packetsLost ?? 0,
        bytesReceived: s.bytesReceived ?? 0,
      };
      if (s.kind === 'video') {
        out.video[key] = {
          ...common,
          framesDecoded: s.framesDecoded ?? 0,
          framesPerSecond: s.framesPerSecond ?? 0,
          frameHeight: s.frameHeight ?? 0,
          freezeCount: s.freezeCount ?? 0,
          totalFreezesDuration: s.totalFreezesDuration ?? 0,
          jitterBufferDelay: s.jitterBufferDelay ?? 0,
          jitterBufferEmittedCount: s.jitterBufferEmittedCount ?? 0,
          nackCount: s.nackCount ?? 0,
          pliCount: s.pliCount ?? 0,
          firCount: s.firCount ?? 0,
          framesReceived: s.framesReceived ?? 0,
          framesDropped: s.framesDropped ?? 0,
          keyFramesDecoded: s.keyFramesDecoded ?? 0,
          retransmittedPacketsReceived: s.retransmittedPacketsReceived ?? 0,
        };
      } else if (s.kind === 'audio') {
        out.audio[key] = {
          ...common,
          concealedSamples: s.concealedSamples ?? 0,
          totalSamplesReceived: s.totalSamplesReceived ?? 0,
        };
      }
    });
    return out;
  });
}

/**
 * A stream is live when it has received packets (unused receive slots never do).
 * @param {Record<string, any>} streams
 */
export function live(streams) {
  return Object.fromEntries(Object.entries(streams).filter(([, s]) => s.packetsReceived > 0));
}

/**
 * Wait until every page decodes video from `n` remote participants (frames rising).
 * @param {{page: import('playwright-core').Page}[]} sessions
 * @param {number} n
 * @param {number} [timeout]
 */
export async function waitForVideo(sessions, n, timeout = 90000) {
  await Promise.all(
    sessions.map((s, i) =>
      poll(
        async () => {
          const a = live((await readStats(s.page)).video);
          await sleep(1000);
          const b = live((await readStats(s.page)).video);
          const rising = Object.keys(b).filter((k) => a[k] && b[k].framesDecoded > a[k].framesDecoded);
          return rising.length >= n;
        },
        { timeout, interval: 500, what: `participant ${i}: video decoding from ${n} others` },
      ),
    ),
  );
}

/**
 * What one receiver saw of one remote stream between two readings.
 * @param {any} a first reading of the stream
 * @param {any} b last reading
 * @param {number} secs seconds between them
 */
export function videoSummary(a, b, secs) {
  const d = (/** @type {string} */ k) => (b[k] ?? 0) - (a[k] ?? 0);
  const received = d('packetsReceived');
  const lost = d('packetsLost');
  const emitted = d('jitterBufferEmittedCount');
  return {
    fps: d('framesDecoded') / secs,
    framesDecoded: d('framesDecoded'),
    freezes: d('freezeCount'),
    freezeSeconds: d('totalFreezesDuration'),
    jitterBufferMs: emitted > 0 ? (d('jitterBufferDelay') / emitted) * 1000 : null,
    lossPct: received + lost > 0 ? (100 * lost) / (received + lost) : 0,
    nacks: d('nackCount'),
    plis: d('pliCount'),
    firs: d('firCount'),
    framesDropped: d('framesDropped'),
    keyframes: d('keyFramesDecoded'),
    retransmitted: d('retransmittedPacketsReceived'),
    kbps: (d('bytesReceived') * 8) / secs / 1000,
  };
}

/**
 * @param {any} a
 * @param {any} b
 */
export function audioSummary(a, b) {
  const total = (b.totalSamplesReceived ?? 0) - (a.totalSamplesReceived ?? 0);
  const concealed = (b.concealedSamples ?? 0) - (a.concealedSamples ?? 0);
  return { concealedPct: total > 0 ? (100 * concealed) / total : null, samples: total };
}

/** @param {number[]} xs */
export function median(xs) {
  if (xs.length === 0) return null;
  const s = [...xs].sort((x, y) => x - y);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** @param {number[]} xs */
export function mean(xs) {
  return xs.length ? xs.reduce((x, y) => x + y, 0) / xs.length : null;
}

/**
 * CPU seconds (user + system, all threads) and resident memory of a process, from /proc.
 * @param {number} pid
 */
export function procUsage(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the command: state is field 3, utime 14, stime 15 (1-based in proc(5)), so 11 and 12 here.
  const ticks = Number(fields[11]) + Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return { cpuSeconds: ticks / hz, rssMiB: rssKb / 1024 };
}
