// A browser that cannot encrypt (no encoded transforms) in an end-to-end encrypted meeting: kept
// out until a moderator allows participants who cannot encrypt; then everyone sees it, media goes
// in pass-through mode while it is present, and encryption comes back when it leaves.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openBrowser, poll, randomRoom, randomSecret, remoteTiles, waitState, participantId, playing, sleep } from './harness.mjs';

/** @param {import('playwright-core').Page} page */
const workerStats = (page) => page.evaluate(() => /** @type {any} */ (window).conclave.e2ee?.stats());

/**
 * Frames decrypted by the media worker keep rising (encryption is back on).
 * @param {import('playwright-core').Page} page
 */
async function decrypting(page) {
  const a = await workerStats(page);
  await sleep(1000);
  const b = await workerStats(page);
  return !b.plain && b.decrypted > a.decrypted && b.encrypted > a.encrypted;
}

test('a browser that cannot encrypt joins only once a moderator allows it, and everyone sees it', { timeout: 300000 }, async () => {
  const server = await startServer();
  /** @type {Awaited<ReturnType<typeof openBrowser>>[]} */
  const sessions = [];
  try {
    const room = randomRoom('plain');
    const secret = randomSecret();
    const alice = await openBrowser(server.url);
    sessions.push(alice);
    await alice.page.goto(`${server.url}/${room}?name=Alice&autojoin=1#${secret}`);
    await waitState(alice.page, 'joined', 'Alice');
    const aliceId = await participantId(alice.page, 'Alice');
    await poll(() => alice.page.isVisible('#mod-bar [data-action="e2ee"]'), { what: "Alice's moderator toggle" });
    assert.equal(await alice.page.getAttribute('#mod-bar [data-action="e2ee"]', 'aria-pressed'), 'false');

    // The old browser: told on the pre-join page, refused by the server with a specific screen.
    const olga = await openBrowser(server.url);
    sessions.push(olga);
    await olga.page.addInitScript(() => {
      delete (/** @type {any} */ (window)).RTCRtpScriptTransform;
      delete (/** @type {any} */ (RTCRtpSender.prototype)).createEncodedStreams;
    });
    await olga.page.goto(`${server.url}/${room}?name=Olga&autojoin=1#${secret}`);
    await waitState(olga.page, 'prejoin', 'Olga');
    assert.match((await olga.page.textContent('#e2ee-note')) ?? '', /only if a moderator/);
    assert.equal(await olga.page.isDisabled('#join-btn'), false);
    await olga.page.click('#join-btn');
    await poll(() => olga.page.evaluate(() => document.body.dataset.reason === 'e2ee_required'), { what: 'Olga refused: e2ee_required' });
    await waitState(olga.page, 'left', 'Olga');
    assert.match((await olga.page.textContent('#left-detail')) ?? '', /your browser cannot encrypt\. Ask a moderator to allow participants who cannot encrypt/);
    assert.equal((await olga.page.textContent('#rejoin-btn'))?.trim(), 'Try again');

    // Alice allows it; her page says so.
    await alice.page.click('#mod-bar [data-action="e2ee"]');
    await poll(async () => (await alice.page.getAttribute('#mod-bar [data-action="e2ee"]', 'aria-pressed')) === 'true', { what: 'toggle pressed' });
    await poll(() => alice.page.isVisible('#e2ee-policy'), { what: "Alice's not-required banner" });
    assert.match((await alice.page.innerText('#e2ee-policy')) ?? '', /End-to-end encryption is not required in this meeting/);
    assert.ok(await alice.page.isVisible('[data-indicator="e2ee-off"]'));

    // Olga tries again and gets in, with the permanent notice.
    await olga.page.click('#rejoin-btn');
    await waitState(olga.page, 'joined', 'Olga', 45000);
    const olgaId = await participantId(olga.page, 'Olga');
    assert.ok(await olga.page.isVisible('#e2ee-plain'));
    assert.match((await olga.page.innerText('#e2ee-plain')), /Your connection to this meeting is not end-to-end encrypted/);
    assert.equal(await olga.page.getAttribute('#e2ee-btn', 'data-e2ee'), 'off');

    // Alice's page: the warning state naming Olga, and Olga's tile and list entry marked.
    await poll(async () => (await alice.page.getAttribute('#e2ee-btn', 'data-e2ee')) === 'off', { what: "Alice's indicator warns" });
    assert.match((await alice.page.textContent('#e2ee-label')) ?? '', /Not end-to-end encrypted: Olga cannot encrypt/);
    const olgaTile = alice.page.locator(`#grid [data-participant="${olgaId}"]`);
    await poll(async () => (await olgaTile.getAttribute('data-e2ee')) === 'off', { what: "Olga's tile marked" });
    assert.ok(await olgaTile.locator('.e2ee-off-badge').isVisible());
    assert.equal(await alice.page.getAttribute(`#people-list [data-participant-item="${olgaId}"]`, 'data-e2ee'), 'off');

    // Both see each other's video; each sees the other's name.
    await poll(() => playing(alice.page, olgaId), { timeout: 60000, what: "Alice plays Olga's video" });
    await poll(() => playing(olga.page, aliceId), { timeout: 60000, what: "Olga plays Alice's video" });
    await poll(async () => (await remoteTiles(olga.page)).find((t) => t.id === aliceId)?.name === 'Alice', { what: "Olga sees Alice's name" });
    assert.equal((await remoteTiles(alice.page)).find((t) => t.id === olgaId)?.name, 'Olga');
    const s = await workerStats(alice.page);
    assert.equal(s.plain, true);
    assert.ok(s.plainSent > 0 && s.plainReceived > 0, JSON.stringify(s));

    // A third, encrypting participant arrives while Olga is here: sees both.
    const bob = await openBrowser(server.url);
    sessions.push(bob);
    await bob.page.goto(`${server.url}/${room}?name=Bob&autojoin=1#${secret}`);
    await waitState(bob.page, 'joined', 'Bob');
    const bobId = await participantId(bob.page, 'Bob');
    await poll(async () => (await bob.page.getAttribute('#e2ee-btn', 'data-e2ee')) === 'off', { what: "Bob's indicator warns" });
    await poll(() => playing(bob.page, olgaId), { timeout: 60000, what: "Bob plays Olga's video" });
    await poll(() => playing(bob.page, aliceId), { timeout: 60000, what: "Bob plays Alice's video" });
    await poll(() => playing(olga.page, bobId), { timeout: 60000, what: "Olga plays Bob's video" });

    // Olga leaves: Alice and Bob encrypt again and still see each other.
    await olga.page.click('#leave-btn');
    await poll(async () => (await alice.page.getAttribute('#e2ee-btn', 'data-e2ee')) === null, { what: "Alice's indicator back to encrypted" });
    assert.equal((await alice.page.textContent('#e2ee-label'))?.trim(), 'End-to-end encrypted');
    await poll(() => decrypting(alice.page), { timeout: 45000, what: 'Alice encrypts and decrypts again' });
    await poll(() => decrypting(bob.page), { timeout: 45000, what: 'Bob encrypts and decrypts again' });
    await poll(() => playing(alice.page, bobId), { timeout: 60000, what: "Alice plays Bob's video (encrypted)" });
    await poll(() => playing(bob.page, aliceId), { timeout: 60000, what: "Bob plays Alice's video (encrypted)" });
    for (const x of sessions) assert.deepEqual(x.foreign, []);
  } finally {
    await Promise.all(sessions.map((x) => x.close()));
    await server.stop();
  }
});
