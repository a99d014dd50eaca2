// Redundant audio (RFC 2198 RED): browsers that offer it send and receive Opus wrapped in RED,
// end-to-end encrypted; a receiver that does not offer RED still hears everyone (the server
// forwards it the primary Opus block alone), and is heard by those with RED. Chromium's getStats names the codec of RED audio
// `audio/opus`; the encryption worker, which sees each frame's type, counts the RED frames.
//
// Run from tests/browser: `node --test audio-red.test.mjs` (server binary from $CONCLAVE_BIN).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, openBrowser, poll, randomRoom, randomSecret, participantId, waitState, NO_MEDIA,
} from './harness.mjs';

/**
 * Inbound audio from participant `id` on `page`: packets, samples, concealment and energy.
 * @param {import('playwright-core').Page} page
 * @param {string} id
 */
function inbound(page, id) {
  return page.evaluate(async (pid) => {
    const c = /** @type {any} */ (window).conclave;
    const pc = /** @type {RTCPeerConnection|null} */ (c.pc);
    if (!pc) return null;
    const subs = c.connection?.media.lastSubs?.subscriptions ?? [];
    const mids = new Set(subs.filter((/** @type {any} */ s) => s.kind === 'audio' && s.participant_id === pid).map((/** @type {any} */ s) => s.mid));
    const stats = await pc.getStats();
    /** @type {any} */
    let found = null;
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio' && mids.has(s.mid)) found = s;
    });
    if (!found) return null;
    return {
      packetsReceived: found.packetsReceived ?? 0,
      totalSamplesReceived: found.totalSamplesReceived ?? 0,
      concealedSamples: found.concealedSamples ?? 0,
      totalAudioEnergy: found.totalAudioEnergy ?? 0,
      silentConcealedSamples: found.silentConcealedSamples ?? 0,
    };
  }, id);
}

/** Offers without RED, as a browser that does not support it would send. */
function withoutRed() {
  const strip = (/** @type {string} */ sdp) => {
    const pts = [...sdp.matchAll(/^a=rtpmap:(\d+) red\/48000/gm)].map((m) => m[1]);
    let out = sdp;
    for (const pt of pts) {
      out = out.replace(new RegExp(`^a=(rtpmap|fmtp):${pt} .*\\r\\n`, 'gm'), '');
      out = out.replace(/^(m=audio \S+ \S+)(( \d+)+)\r\n/gm, (_l, head, list) =>
        `${head}${list.split(' ').filter((/** @type {string} */ p) => p && p !== pt).map((/** @type {string} */ p) => ` ${p}`).join('')}\r\n`);
    }
    return out;
  };
  const orig = RTCPeerConnection.prototype.setLocalDescription;
  RTCPeerConnection.prototype.setLocalDescription = function (desc) {
    if (desc && desc.sdp) return orig.call(this, { type: desc.type, sdp: strip(desc.sdp) });
    return orig.call(this).then(() => undefined);
  };
  const createOffer = RTCPeerConnection.prototype.createOffer;
  RTCPeerConnection.prototype.createOffer = async function (...args) {
    const o = await createOffer.apply(this, /** @type {any} */ (args));
    return { type: o.type, sdp: strip(o.sdp ?? '') };
  };
}

test('RED audio between browsers, end to end encrypted; a receiver without RED hears too', { timeout: 180000 }, async () => {
  const server = await startServer();
  /** @type {Awaited<ReturnType<typeof openBrowser>>[]} */
  const sessions = [];
  try {
    const room = randomRoom('red');
    const secret = randomSecret();
    const [alice, bob, carol] = await Promise.all([openBrowser(server.url), openBrowser(server.url), openBrowser(server.url)]);
    sessions.push(alice, bob, carol);
    await carol.page.addInitScript(withoutRed);
    for (const [s, name] of /** @type {const} */ ([[alice, 'Alice'], [bob, 'Bob'], [carol, 'Carol']])) {
      await s.page.goto(`${server.url}/${room}?name=${name}&autojoin=1#${secret}`);
      await waitState(s.page, 'joined', name);
    }
    if (NO_MEDIA) return;
    const aliceId = await participantId(alice.page, 'Alice');
    /** @param {import('playwright-core').Page} page */
    const worker = (page) => page.evaluate(() => /** @type {any} */ (window).conclave.e2ee.stats());
    const receivers = /** @type {const} */ ([[bob, 'Bob', true], [carol, 'Carol', false]]);
    const snapshot = () => Promise.all(receivers.map(async ([s]) => ({ a: await inbound(s.page, aliceId), w: await worker(s.page) })));
    // Heard: samples played with some energy (the fake microphone beeps).
    await poll(async () => (await snapshot()).every((x) => x.a && x.a.totalAudioEnergy > 0), { what: "Bob and Carol hear Alice", timeout: 60000 });
    // The server withholds redundancy while a receiver's downlink estimate cannot carry it
    // next to the videos, which can be the case for the first seconds of a call.
    const before = await snapshot();
    const after = await poll(async () => {
      const now = await snapshot();
      return now.every((x, i) => x.a && x.a.packetsReceived >= (before[i].a?.packetsReceived ?? 0) + 100) &&
        now[0].w.redReceived >= before[0].w.redReceived + 50 ? now : false;
    }, { what: "a hundred more of Alice's audio packets at Bob and Carol, Bob's with redundancy", timeout: 60000 });
    receivers.forEach(([, who, red], i) => {
      const [x, y] = [/** @type {any} */ (before[i]), /** @type {any} */ (after[i])];
      // Concealment that is heard: not the comfort noise played while the sender is silent.
      const audible = (y.a.concealedSamples - y.a.silentConcealedSamples) - (x.a.concealedSamples - x.a.silentConcealedSamples);
      const concealed = audible / (y.a.totalSamplesReceived - x.a.totalSamplesReceived);
      console.log(`${who} hears Alice: ${y.a.packetsReceived - x.a.packetsReceived} packets, ` +
        `${y.w.redReceived - x.w.redReceived} RED frames decrypted, concealed ${(concealed * 100).toFixed(1)} % ` +
        `(with silence ${((y.a.concealedSamples - x.a.concealedSamples) / (y.a.totalSamplesReceived - x.a.totalSamplesReceived) * 100).toFixed(1)} %), ` +
        `energy ${(y.a.totalAudioEnergy - x.a.totalAudioEnergy).toFixed(3)}`);
      assert.equal(y.w.redReceived > x.w.redReceived, red, `${who} receives RED: ${red}`);
      assert.equal(y.w.failed, x.w.failed, `every frame decrypts at ${who}`);
      assert.ok(concealed < 0.2, `little audible concealment at ${who}: ${concealed}`);
    });
    assert.ok((await worker(alice.page)).redSent > 0, 'Alice sends RED');
    // The other way: Carol sends plain Opus, which Bob (who negotiated RED) plays too.
    const carolId = await participantId(carol.page, 'Carol');
    const fromCarol = await poll(async () => {
      const a = await inbound(bob.page, carolId);
      return a && a.totalSamplesReceived > 48000 ? a : false;
    }, { what: "Bob plays Carol's audio" });
    const w = await worker(bob.page);
    await poll(async () => {
      const a = await inbound(bob.page, carolId);
      return a && a.packetsReceived > fromCarol.packetsReceived + 50 ? a : false;
    }, { what: "more of Carol's audio at Bob" });
    assert.equal((await worker(bob.page)).failed, w.failed, "Carol's frames decrypt at Bob");
    for (const s of sessions) assert.deepEqual(s.errors.filter((e) => !/favicon/.test(e)), []);
  } finally {
    for (const s of sessions) await s.close();
    await server.stop();
  }
});
