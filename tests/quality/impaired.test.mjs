// Media still flows on a bad network: two participants behind the impairment relay
// (conclave-netsim, 5% random loss each way) keep decoding each other's video and receiving audio.
// The short form of the quality benchmark (run.mjs); it asserts only that media flows.
//
// Run from tests/browser: `node --test ../quality/impaired.test.mjs` (needs target/debug/conclave
// and target/debug/conclave-netsim).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startMeeting, readStats, live, waitForVideo, sleep } from './lib.mjs';

test('video and audio keep flowing through 5% loss each way', { timeout: 180000 }, async () => {
  const meeting = await startMeeting({ names: ['Alice', 'Bob'], uplink: 'loss=5%', downlink: 'loss=5%', seed: 7 });
  let stats;
  try {
    await waitForVideo(meeting.sessions, 1);
    const before = await Promise.all(meeting.sessions.map((s) => readStats(s.page)));
    await sleep(10000);
    const after = await Promise.all(meeting.sessions.map((s) => readStats(s.page)));
    meeting.sessions.forEach((_, i) => {
      const [a, b] = [live(before[i].video), live(after[i].video)];
      const rising = Object.keys(b).filter((k) => a[k] && b[k].framesDecoded > a[k].framesDecoded);
      assert.equal(rising.length, 1, `participant ${i} decodes the other's video`);
      const [x, y] = [live(before[i].audio), live(after[i].audio)];
      const audio = Object.keys(y).filter((k) => x[k] && y[k].totalSamplesReceived > x[k].totalSamplesReceived);
      assert.equal(audio.length, 1, `participant ${i} receives the other's audio`);
    });
  } finally {
    stats = (await meeting.stop()).relayStats;
  }
  // The media crossed the impaired network: the relay carried it and dropped some both ways.
  assert.ok(stats && stats.uplink.packets_out > 1000 && stats.downlink.packets_out > 1000, JSON.stringify(stats));
  assert.ok(stats.uplink.dropped_loss > 0 && stats.downlink.dropped_loss > 0, JSON.stringify(stats));
});
