// Shared helpers for the browser end-to-end tests: start the Conclave server, launch Debian's
// Chromium through playwright-core (never a downloaded browser), poll for conditions.

import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import https from 'node:https';
import dgram from 'node:dgram';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../..');
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

export const BASE_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
];
export const FAKE_UI = '--use-fake-ui-for-media-stream';

export { sleep };

/**
 * `CONCLAVE_NO_MEDIA=1`: the server carries no media (dev-mock-server.mjs); tests skip their
 * audio/video assertions and check only what the pages show.
 */
export const NO_MEDIA = process.env.CONCLAVE_NO_MEDIA === '1';

/** @returns {Promise<number>} a free TCP port on 127.0.0.1 */
export function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
  });
}

/** @returns {Promise<number>} a free UDP port on 127.0.0.1 */
export function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.on('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function randomRoom(prefix = 'e2e') {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

/** A meeting secret for the URL fragment (`/<room>#<secret>`), as the landing page makes one. */
export function randomSecret() {
  return randomBytes(16).toString('base64url');
}

/**
 * Poll `fn` until it returns a truthy value (returned), or throw after `timeout` ms with the last
 * value / error in the message.
 * @template T
 * @param {() => Promise<T> | T} fn
 * @param {{timeout?: number, interval?: number, what?: string}} [opts]
 * @returns {Promise<T>}
 */
export async function poll(fn, { timeout = 30000, interval = 250, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last: ${detail}`);
    }
    await sleep(interval);
  }
}

/**
 * Start the Conclave server on free loopback ports; resolves when /healthz answers 200.
 * Its output goes to a log file, not the console.
 * @param {{bin?: string, args?: string[], env?: Record<string, string>}} [opts] another server binary
 *   (the end-to-end encryption proof runs a tap build), extra command-line arguments and
 *   environment (e.g. `--adhoc-rooms hosts`, `CONCLAVE_JWT_SECRET`)
 */
export async function startServer({ bin: binOpt, args: extraArgs = /** @type {string[]} */ ([]), env = {} } = {}) {
  const bin = path.resolve(here, binOpt ?? process.env.CONCLAVE_BIN ?? '../../target/debug/conclave');
  const port = await freeTcpPort();
  const udp = await freeUdpPort();
  const logDir = path.join(here, 'logs');
  mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, `server-${Date.now()}-${port}.log`);
  const log = createWriteStream(logFile);
  const args = ['--listen', `127.0.0.1:${port}`, '--udp', `127.0.0.1:${udp}`, ...extraArgs];
  // Stored data (persistent rooms) in a fresh temporary directory, never in the working tree.
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'conclave-e2e-'));
  const proc = spawn(bin, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { RUST_LOG: 'info', CONCLAVE_DATA_DIR: dataDir, ...process.env, ...env },
  });
  proc.stdout.pipe(log);
  proc.stderr.pipe(log);
  let exited = /** @type {null | string} */ (null);
  proc.on('exit', (code, sig) => {
    exited = `exited with ${code ?? sig}`;
  });
  proc.on('error', (e) => {
    exited = `failed to start ${bin}: ${e.message}`;
  });
  // With `--tls-self-signed` the server speaks HTTPS with a certificate nobody vouches for.
  const tls = extraArgs.includes('--tls-self-signed');
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const deadline = Date.now() + 30000;
  for (;;) {
    if (exited) throw new Error(`server ${exited} (log: ${logFile})`);
    const status = tls ? await httpsStatus(`${url}/healthz`) : (await fetch(`${url}/healthz`).catch(() => null))?.status;
    if (status === 200) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`server did not answer ${url}/healthz within 30 s (log: ${logFile})`);
    }
    await sleep(200);
  }
  return {
    url,
    udp,
    pid: proc.pid,
    logFile,
    /** Send a signal (e.g. `SIGTERM` to make the server drain). @param {NodeJS.Signals} sig */
    signal(sig) {
      proc.kill(sig);
    },
    /** Whether the process has exited. */
    exited() {
      return proc.exitCode !== null || proc.signalCode !== null;
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        rmSync(dataDir, { recursive: true, force: true });
        return;
      }
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(t);
      log.end();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Status of a GET over HTTPS without certificate verification (self-signed test servers only).
 * @param {string} url
 * @returns {Promise<number|null>}
 */
function httpsStatus(url) {
  return new Promise((resolve) => {
    https
      .get(url, { rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? null);
      })
      .on('error', () => resolve(null));
  });
}

/**
 * Launch one Chromium (one process per participant) and open a page.
 * Records every request whose origin is not `origin` in `foreign` (privacy rule: none allowed).
 * @param {string} origin
 * @param {{fakeUi?: boolean, extraArgs?: string[]}} [opts]
 */
export async function openBrowser(origin, { fakeUi = true, extraArgs = [] } = {}) {
  const args = [...BASE_ARGS, ...(fakeUi ? [FAKE_UI] : []), ...extraArgs];
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  /** @type {string[]} */
  const foreign = [];
  /** @type {string[]} */
  const errors = [];
  page.on('request', (req) => {
    const u = req.url();
    if (u.startsWith('data:') || u.startsWith('blob:')) return;
    const o = new URL(u);
    const same = `${o.protocol}//${o.host}` === origin || (o.host === new URL(origin).host && o.protocol === 'ws:');
    if (!same) foreign.push(u);
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  return {
    browser,
    page,
    foreign,
    errors,
    async close() {
      await browser.close().catch(() => {});
    },
  };
}

/**
 * State of the remote tiles as a user would see them.
 * @param {import('playwright-core').Page} page
 */
export function remoteTiles(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('[data-participant]:not([data-local])')].map((tile) => {
      const el = /** @type {HTMLElement} */ (tile);
      const v = el.querySelector('video');
      return {
        id: el.dataset.participant ?? '',
        name: el.querySelector('.name')?.textContent ?? '',
        video: el.dataset.video,
        audio: el.dataset.audio,
        width: v?.videoWidth ?? 0,
        height: v?.videoHeight ?? 0,
        frames: v ? v.getVideoPlaybackQuality().totalVideoFrames : 0,
        paused: v ? v.paused : true,
      };
    }),
  );
}

/**
 * Inbound audio stats per remote participant id (via `window.conclave.pc` and the last
 * `subscriptions` message's mids).
 * @param {import('playwright-core').Page} page
 * @returns {Promise<Record<string, {packetsReceived: number, audioLevel: number, totalAudioEnergy: number}>>}
 */
export function inboundAudio(page) {
  return page.evaluate(async () => {
    const c = /** @type {any} */ (window).conclave;
    const pc = /** @type {RTCPeerConnection|null} */ (c.pc);
    /** @type {Record<string, {packetsReceived: number, audioLevel: number, totalAudioEnergy: number}>} */
    const out = {};
    if (!pc) return out;
    const subs = c.connection?.media.lastSubs?.subscriptions ?? [];
    /** @type {Map<string, string>} */
    const byMid = new Map(subs.filter((/** @type {any} */ s) => s.kind === 'audio').map((/** @type {any} */ s) => [s.mid, s.participant_id]));
    // Fallback when inbound-rtp has no `mid`: match the receiver track id.
    /** @type {Map<string, string>} */
    const byTrack = new Map();
    for (const t of pc.getTransceivers()) {
      const pid = t.mid !== null ? byMid.get(t.mid) : undefined;
      if (pid) byTrack.set(t.receiver.track.id, pid);
    }
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
      const pid = byMid.get(s.mid) ?? byTrack.get(s.trackIdentifier);
      if (!pid) return;
      out[pid] = {
        packetsReceived: s.packetsReceived ?? 0,
        audioLevel: s.audioLevel ?? 0,
        totalAudioEnergy: s.totalAudioEnergy ?? 0,
      };
    });
    return out;
  });
}

/**
 * Wait until `document.body.dataset.state` is `state`.
 * @param {import('playwright-core').Page} page
 * @param {string} state
 * @param {string} who
 * @param {number} [timeout]
 */
export function waitState(page, state, who, timeout = 30000) {
  return poll(() => page.evaluate((s) => document.body.dataset.state === s, state), {
    timeout,
    what: `${who}: state ${state}`,
  });
}

/**
 * The participant id of the page's own connection, once known.
 * @param {import('playwright-core').Page} page
 * @param {string} who
 * @returns {Promise<string>}
 */
export function participantId(page, who) {
  return poll(() => page.evaluate(() => /** @type {any} */ (window).conclave.participantId), {
    what: `${who}: participant id`,
  });
}

/**
 * Video of participant `id` on `page` is playing (frames rising over ~1 s).
 * @param {import('playwright-core').Page} page
 * @param {string} id
 */
export async function playing(page, id) {
  const a = (await remoteTiles(page)).find((t) => t.id === id);
  await sleep(1000);
  const b = (await remoteTiles(page)).find((t) => t.id === id);
  return !!a && !!b && b.width > 0 && b.frames > a.frames && b.video === 'on';
}

/**
 * Record the `type` of every signaling message the page receives (and the frames it sends).
 * @param {import('playwright-core').Page} page
 */
export function recordSignaling(page) {
  /** @type {{received: string[], sent: any[]}} */
  const log = { received: [], sent: [] };
  page.on('websocket', (ws) => {
    ws.on('framereceived', (f) => {
      try {
        log.received.push(JSON.parse(String(f.payload)).type);
      } catch {
        log.received.push('<non-json>');
      }
    });
    ws.on('framesent', (f) => {
      try {
        log.sent.push(JSON.parse(String(f.payload)));
      } catch {
        /* ignore */
      }
    });
  });
  return log;
}
