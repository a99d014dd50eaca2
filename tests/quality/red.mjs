// Redundant audio (RED) on a lossy network, measured: two headless Chromium participants behind
// the impairment relay (random loss each way, default 10%), 20 s once video plays; prints for
// each receiver the audio packets lost and the share of played samples that were concealed
// (all, and audible: without comfort noise during the sender's silences). Run it once per server
// build to compare (CONCLAVE_BIN), e.g. with and without RED.
//
//   node tests/quality/red.mjs                 # RED_LOSS=10% RED_SECONDS=20

import { startMeeting, waitForVideo, sleep } from './lib.mjs';

/** @param {import('playwright-core').Page} page */
const read = (page) => page.evaluate(async () => {
  const c = /** @type {any} */ (window).conclave;
  const st = await /** @type {RTCPeerConnection} */ (c.pc).getStats();
  /** @type {any} */
  let a = null;
  st.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'audio' && s.packetsReceived > 0) a = s;
  });
  const w = await c.e2ee?.stats();
  return { a, red: w?.redReceived ?? 0 };
});

const loss = process.env.RED_LOSS ?? '10%';
const seconds = Number(process.env.RED_SECONDS ?? 20);
const m = await startMeeting({ names: ['Alice', 'Bob'], uplink: `loss=${loss}`, downlink: `loss=${loss}`, seed: 3 });
try {
  await waitForVideo(m.sessions, 1);
  await sleep(3000);
  const before = await Promise.all(m.sessions.map((s) => read(s.page)));
  await sleep(seconds * 1000);
  const after = await Promise.all(m.sessions.map((s) => read(s.page)));
  after.forEach((y, i) => {
    const x = before[i];
    const played = y.a.totalSamplesReceived - x.a.totalSamplesReceived;
    const lost = y.a.packetsLost - x.a.packetsLost;
    const sent = y.a.packetsReceived - x.a.packetsReceived + lost;
    const concealed = y.a.concealedSamples - x.a.concealedSamples;
    const audible = concealed - (y.a.silentConcealedSamples - x.a.silentConcealedSamples);
    console.log(`receiver ${i}: lost ${lost}/${sent} audio packets, concealed ${(100 * concealed / played).toFixed(1)} % ` +
      `(audible ${(100 * audible / played).toFixed(1)} %), RED frames ${y.red - x.red}`);
  });
} finally {
  await m.stop();
}
