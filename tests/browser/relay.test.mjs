// Participants who can only use TURN still meet: the server runs its built-in TURN server and
// tells browsers (in `welcome`) to use relayed candidates only (`--ice-transport-policy relay`).
// This machine cannot block UDP for one browser alone, so relay-only ICE is the stand-in for a
// firewall that lets nothing but the TURN port through: no host candidate is ever tried.
// The second case hands out only the TURN-over-TCP URL, as for a network that blocks all UDP.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openBrowser, poll, sleep, randomRoom, randomSecret, remoteTiles, freeTcpPort } from './harness.mjs';

/** @typedef {Awaited<ReturnType<typeof openBrowser>>} Session */

/**
 * The local candidate of the selected ICE pair: type and, for relayed ones, the TURN transport.
 * @param {Session} s
 */
function selectedLocalCandidate(s) {
  return s.page.evaluate(async () => {
    const pc = /** @type {RTCPeerConnection} */ (/** @type {any} */ (window).conclave.pc);
    const stats = await pc.getStats();
    /** @type {any} */
    let pair = null;
    stats.forEach((r) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
    });
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    return { type: local?.candidateType, relayProtocol: local?.relayProtocol ?? null };
  });
}

/**
 * @param {string} label
 * @param {(turn: string) => string[]} urls extra server arguments naming the TURN URLs
 * @param {string|null} protocol the TURN transport the browsers must end up on, if forced
 */
async function relayedMeeting(label, urls, protocol) {
  const turnPort = await freeTcpPort();
  const turn = `127.0.0.1:${turnPort}`;
  const server = await startServer({
    args: ['--turn-listen', turn, '--ice-transport-policy', 'relay', ...urls(turn)],
  });
  /** @type {Session[]} */
  const sessions = [];
  try {
    const room = randomRoom('relay');
    const secret = randomSecret();
    const names = ['Alice', 'Bob'];
    sessions.push(...(await Promise.all(names.map(() => openBrowser(server.url)))));
    await Promise.all(
      sessions.map((s, i) => s.page.goto(`${server.url}/${room}?name=${names[i]}&autojoin=1#${secret}`)),
    );
    for (const [i, s] of sessions.entries()) {
      // Video from the other participant decodes: frames rising.
      const tiles = await poll(
        async () => {
          const a = await remoteTiles(s.page);
          if (a.length !== 1 || a[0].width === 0) return false;
          await sleep(1000);
          const b = await remoteTiles(s.page);
          return b.length === 1 && b[0].frames > a[0].frames ? b : false;
        },
        { timeout: 45000, interval: 500, what: `${label}: ${names[i]} plays the other's video` },
      );
      const local = await selectedLocalCandidate(s);
      console.log(`${label}: ${names[i]} video ${tiles[0].width}x${tiles[0].height} frames=${tiles[0].frames}, local candidate ${JSON.stringify(local)}`);
      assert.equal(local?.type, 'relay', `${names[i]} sends through TURN`);
      if (protocol) assert.equal(local?.relayProtocol, protocol, `${names[i]} reaches TURN over ${protocol}`);
      // No request to anything but the server's own origin (TURN is not an HTTP request, and
      // its address came from the server).
      assert.deepEqual(s.foreign, []);
    }
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await server.stop();
  }
}

test('relay-only browsers meet through the built-in TURN server', { timeout: 180000 }, async () => {
  await relayedMeeting('TURN UDP+TCP', () => [], null);
});

test('relay-only browsers meet through TURN over TCP', { timeout: 180000 }, async () => {
  await relayedMeeting('TURN TCP', (turn) => ['--turn-url', `turn:${turn}?transport=tcp`], 'tcp');
});
