// Meeting quality on bad networks, measured: for every scenario (an impairment of the
// participants' network) and every server mode (extra server arguments), start the server, the
// impairment relay (conclave-netsim) in front of its UDP port and three headless Chromium
// participants sending their 1280x720 fake camera, let the call run, and record what each
// receiver's getStats() says about each remote video and audio stream, once a second.
//
//   node tests/quality/run.mjs                 # everything: writes tests/quality/results/quality.json
//   node tests/quality/report.mjs              # then docs/quality.md tables and docs/quality-*.svg
//
// Environment: QUALITY_SCENARIOS=clean,loss5 (a subset), QUALITY_MODES=auto, QUALITY_SECONDS=45
// (call length once everyone plays), QUALITY_PARTICIPANTS=3, QUALITY_OUT (results file),
// CONCLAVE_BIN, CONCLAVE_NETSIM_BIN (default target/debug/…).

import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  startMeeting, readStats, live, waitForVideo, sleep, serverSupports, videoSummary, audioSummary,
  mean, median, SERVER_BIN, repoRoot,
} from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * Impairments per direction in conclave-netsim's SPEC form. `changes`: times (s since the relay
 * started) where the cap changes, for the adaptation figures.
 * @type {{id: string, title: string, uplink: string, downlink: string, changes?: number[], until?: number}[]}
 */
export const SCENARIOS = [
  { id: 'clean', title: 'Clean network', uplink: '', downlink: '' },
  { id: 'loss5', title: '5% random loss, each way', uplink: 'loss=5%', downlink: 'loss=5%' },
  {
    id: 'bursty20',
    title: '20% bursty loss, each way (Gilbert–Elliott p=0.1, r=0.3, 80% lost in the bad state)',
    uplink: 'ge=0.1/0.3/0.8',
    downlink: 'ge=0.1/0.3/0.8',
  },
  {
    id: 'rtt150',
    title: '150 ms RTT: 75 ms ± 15 ms jitter each way, no reordering',
    uplink: 'delay=75ms,jitter=15ms',
    downlink: 'delay=75ms,jitter=15ms',
  },
  { id: 'cap500', title: 'Downlink capped at 500 kbit/s (drop-tail, 200 ms queue)', uplink: '', downlink: 'rate=500k' },
  {
    id: 'capstep',
    title: 'Downlink 3 Mbit/s, 300 kbit/s from 30 s, 3 Mbit/s again from 50 s',
    uplink: '',
    downlink: 'rate=3M,schedule=30s:300k/50s:3M',
    changes: [30, 50],
    until: 80,
  },
];

/** Server modes: extra server arguments. A mode whose flags the server lacks is skipped. */
export const MODES = [
  { id: 'auto', args: /** @type {string[]} */ ([]) },
  { id: 'highest', args: ['--layer-selection', 'highest'] },
];

const pick = (/** @type {string|undefined} */ env, /** @type {{id: string}[]} */ all) =>
  env ? all.filter((x) => env.split(',').includes(x.id)) : all;

/**
 * One call: returns per-stream summaries, the per-second timeline and adaptation figures.
 * @param {typeof SCENARIOS[number]} sc
 * @param {typeof MODES[number]} mode
 * @param {{participants: number, seconds: number}} o
 */
async function runOne(sc, mode, { participants, seconds }) {
  const names = ['Alice', 'Bob', 'Carol', 'Dan', 'Erin'].slice(0, participants);
  const meeting = await startMeeting({ names, serverArgs: mode.args, uplink: sc.uplink, downlink: sc.downlink, seed: 1 });
  /** @type {{t: number, receivers: Record<string, any>[]}[]} */
  const timeline = [];
  let relayStats = null;
  let serverCounters = null;
  let playingAt = null;
  try {
    try {
      await waitForVideo(meeting.sessions, participants - 1);
    } catch (e) {
      // Still measure: a scenario where video never starts is a result too.
      console.error(`  ${sc.id}/${mode.id}: ${e instanceof Error ? e.message : e}`);
    }
    playingAt = meeting.t();
    const end = Math.max(playingAt + seconds, sc.until ?? 0);
    if (sc.changes && playingAt > sc.changes[0] - 5) {
      console.error(`  ${sc.id}/${mode.id}: video started only at ${playingAt.toFixed(0)} s, close to the first cap change`);
    }
    while (meeting.t() < end) {
      const tick = Date.now();
      const readings = await Promise.all(meeting.sessions.map((s) => readStats(s.page).catch(() => null)));
      timeline.push({ t: meeting.t(), receivers: readings.map((r) => (r ? { video: live(r.video), audio: live(r.audio), bytesReceived: r.bytesReceived } : {})) });
      await sleep(Math.max(0, 1000 - (Date.now() - tick)));
    }
  } finally {
    ({ relayStats, serverCounters } = await meeting.stop());
  }
  return { playingAt, timeline, relayStats, serverCounters };
}

/**
 * Summaries over the measurement window (from 3 s after everyone played to the end).
 * @param {Awaited<ReturnType<typeof runOne>>} run
 */
function summarise(run) {
  const { timeline } = run;
  const start = timeline.find((x) => x.t >= (run.playingAt ?? 0) + 3) ?? timeline[0];
  const last = timeline[timeline.length - 1];
  const secs = last.t - start.t;
  const video = [];
  const audio = [];
  for (let r = 0; r < last.receivers.length; r++) {
    const a = start.receivers[r] ?? {};
    const b = last.receivers[r] ?? {};
    for (const [mid, s] of Object.entries(b.video ?? {})) {
      const first = a.video?.[mid] ?? {};
      video.push({ receiver: r, mid, ...videoSummary(first, s, secs), height: medianHeight(timeline, r, mid, start.t) });
    }
    for (const [mid, s] of Object.entries(b.audio ?? {})) {
      audio.push({ receiver: r, mid, ...audioSummary(a.audio?.[mid] ?? {}, s) });
    }
    const kbps = ((b.bytesReceived ?? 0) - (a.bytesReceived ?? 0)) * 8 / secs / 1000;
    video.filter((v) => v.receiver === r).forEach((v) => (v.receiverKbps = kbps));
  }
  const num = (/** @type {(number|null)[]} */ xs) => /** @type {number[]} */ (xs.filter((x) => x !== null && Number.isFinite(x)));
  const aggregate = {
    streams: video.length,
    fps: mean(video.map((v) => v.fps)),
    height: median(num(video.map((v) => v.height))),
    freezesPerMin: mean(video.map((v) => (v.freezes * 60) / secs)),
    freezeSecondsPerMin: mean(video.map((v) => (v.freezeSeconds * 60) / secs)),
    jitterBufferMs: mean(num(video.map((v) => v.jitterBufferMs))),
    lossPct: mean(video.map((v) => v.lossPct)),
    nacksPerMin: mean(video.map((v) => (v.nacks * 60) / secs)),
    plisPerMin: mean(video.map((v) => (v.plis * 60) / secs)),
    firsPerMin: mean(video.map((v) => (v.firs * 60) / secs)),
    keyframesPerMin: mean(video.map((v) => (v.keyframes * 60) / secs)),
    framesDroppedPerMin: mean(video.map((v) => (v.framesDropped * 60) / secs)),
    retransmittedPerMin: mean(video.map((v) => (v.retransmitted * 60) / secs)),
    receiverKbps: mean([...new Set(video.map((v) => v.receiver))].map((r) => video.find((v) => v.receiver === r)?.receiverKbps ?? 0)),
    audioConcealedPct: mean(num(audio.map((a) => a.concealedPct))),
    seconds: secs,
  };
  return { video, audio, aggregate };
}

/**
 * @param {{t: number, receivers: any[]}[]} timeline
 * @param {number} r
 * @param {string} mid
 * @param {number} from
 */
function medianHeight(timeline, r, mid, from) {
  return median(timeline.filter((x) => x.t >= from).map((x) => x.receivers[r]?.video?.[mid]?.frameHeight ?? 0));
}

/**
 * Per-second frame rate and height for every receiver stream: [{t, fps, height}] by `r/mid`.
 * @param {{t: number, receivers: any[]}[]} timeline
 */
export function series(timeline) {
  /** @type {Record<string, {t: number, fps: number, height: number, freezes: number}[]>} */
  const out = {};
  for (let i = 1; i < timeline.length; i++) {
    const [p, c] = [timeline[i - 1], timeline[i]];
    c.receivers.forEach((rec, r) => {
      for (const [mid, s] of Object.entries(rec.video ?? {})) {
        const prev = p.receivers[r]?.video?.[mid];
        if (!prev) continue;
        (out[`${r}/${mid}`] ??= []).push({
          t: c.t,
          fps: (s.framesDecoded - prev.framesDecoded) / (c.t - p.t),
          height: s.frameHeight,
          freezes: s.freezeCount,
        });
      }
    });
  }
  return out;
}

/** Frames per second below which video counts as not playing. */
const PLAYING_FPS = 10;
/** Consecutive seconds a condition must hold to count as reached. */
const HOLD = 3;

/**
 * Adaptation to cap changes, per receiver stream: seconds after the cap drops until video plays
 * again steadily (≥ PLAYING_FPS, no new freeze, for HOLD s), and after the cap is lifted until it
 * is back at its height before the drop (for HOLD s). null: never within the phase.
 * @param {ReturnType<typeof series>} s
 * @param {number[]} changes
 */
export function adaptation(s, [down, up]) {
  return Object.entries(s).map(([stream, pts]) => {
    const before = pts.filter((x) => x.t >= down - 10 && x.t < down);
    const preHeight = median(before.map((x) => x.height)) ?? 0;
    const firstHolding = (/** @type {number} */ from, /** @type {number} */ to, /** @type {(x: any, prev: any) => boolean} */ ok) => {
      const phase = pts.filter((x) => x.t >= from && x.t < to);
      for (let i = 1; i + HOLD <= phase.length; i++) {
        if (phase.slice(i, i + HOLD).every((x, k) => ok(x, phase[i + k - 1]))) return phase[i].t - from;
      }
      return null;
    };
    const during = pts.filter((x) => x.t >= down + 5 && x.t < up);
    return {
      stream,
      preHeight,
      preFps: median(before.map((x) => x.fps)),
      duringHeight: median(during.map((x) => x.height)),
      duringFps: median(during.map((x) => x.fps)),
      settleSeconds: firstHolding(down, up, (x, prev) => x.fps >= PLAYING_FPS && x.freezes === prev.freezes),
      recoverSeconds: firstHolding(up, Infinity, (x) => x.fps >= PLAYING_FPS && x.height >= preHeight),
    };
  });
}

async function main() {
  const scenarios = pick(process.env.QUALITY_SCENARIOS, SCENARIOS);
  const participants = Number(process.env.QUALITY_PARTICIPANTS ?? 3);
  const seconds = Number(process.env.QUALITY_SECONDS ?? 45);
  const out = process.env.QUALITY_OUT ?? path.join(here, 'results', 'quality.json');
  /** @type {string[]} */
  const notes = [];
  const modes = pick(process.env.QUALITY_MODES, MODES).filter((m) => {
    if (serverSupports(m.args)) return true;
    const note = `mode "${m.id}" skipped: this server has no ${m.args.filter((a) => a.startsWith('--')).join(' ')}`;
    console.error(note);
    notes.push(note);
    return false;
  });
  const results = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? '', memGiB: Math.round(os.totalmem() / 2 ** 30) },
    server: path.relative(repoRoot, SERVER_BIN),
    participants,
    seconds,
    notes,
    runs: /** @type {any[]} */ ([]),
  };
  for (const sc of scenarios) {
    for (const mode of modes) {
      console.error(`${sc.id} / ${mode.id} …`);
      const run = await runOne(sc, mode, { participants, seconds });
      const summary = summarise(run);
      const s = series(run.timeline);
      const a = summary.aggregate;
      if (run.serverCounters) console.error(`  server: ${JSON.stringify(run.serverCounters)}`);
      for (const ad of (sc.changes ? adaptation(s, sc.changes) : [])) {
        console.error(`  ${ad.stream}: settle ${ad.settleSeconds} s, recover ${ad.recoverSeconds} s, during ${ad.duringHeight}p ${ad.duringFps?.toFixed(1)} fps`);
      }
      console.error(
        `  ${a.fps?.toFixed(1)} fps, ${a.height}p, ${a.freezesPerMin?.toFixed(1)} freezes/min, ` +
          `jitter buffer ${a.jitterBufferMs?.toFixed(0)} ms, audio concealed ${a.audioConcealedPct?.toFixed(1)}%; ` +
          `per min: NACK ${a.nacksPerMin?.toFixed(0)}, RTX received ${a.retransmittedPerMin?.toFixed(0)}, ` +
          `PLI ${a.plisPerMin?.toFixed(1)}, FIR ${a.firsPerMin?.toFixed(1)}, keyframes ${a.keyframesPerMin?.toFixed(1)}, ` +
          `frames dropped ${a.framesDroppedPerMin?.toFixed(1)}`,
      );
      results.runs.push({
        scenario: sc.id,
        title: sc.title,
        mode: mode.id,
        serverArgs: mode.args,
        uplink: sc.uplink,
        downlink: sc.downlink,
        changes: sc.changes ?? null,
        playingAt: run.playingAt,
        relay: run.relayStats,
        server: run.serverCounters,
        ...summary,
        series: s,
        adaptation: sc.changes ? adaptation(s, sc.changes) : null,
      });
      mkdirSync(path.dirname(out), { recursive: true });
      writeFileSync(out, JSON.stringify(results, null, 1));
    }
  }
  console.error(`results: ${out}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
