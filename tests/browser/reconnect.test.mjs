// Reconnection and camera toggling: a dropped signaling connection comes back with the same
// participant id (resume token) and media flows again; a camera turned off and on again shows
// video again on the other side.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openBrowser, poll, sleep, randomRoom, randomSecret, remoteTiles } from './harness.mjs';

/**
 * Video of participant `id` on `page` is playing (frames rising over ~1 s).
 * @param {import('playwright-core').Page} page
 * @param {string} id
 */
async function playing(page, id) {
  const a = (await remoteTiles(page)).find((t) => t.id === id);
  await sleep(1000);
  const b = (await remoteTiles(page)).find((t) => t.id === id);
  return !!a && !!b && b.width > 0 && b.frames > a.frames && b.video === 'on';
}

test('reconnect with resume; camera off and on again', { timeout: 180000 }, async () => {
  const server = await startServer();
  /** @type {Awaited<ReturnType<typeof openBrowser>>[]} */
  const sessions = [];
  try {
    const room = randomRoom('rc');
    const secret = randomSecret();
    for (const name of ['Alice', 'Bob']) {
      const s = await openBrowser(server.url);
      sessions.push(s);
      await s.page.goto(`${server.url}/${room}?name=${name}&autojoin=1#${secret}`);
    }
    const [alice, bob] = sessions;
    const id = (/** @type {typeof alice} */ s) =>
      poll(() => s.page.evaluate(() => /** @type {any} */ (window).conclave.participantId), { what: 'participant id' });
    const aliceId = await id(alice);
    const bobId = await id(bob);
    await poll(() => playing(bob.page, aliceId), { what: "Bob plays Alice's video" });
    await poll(() => playing(alice.page, bobId), { what: "Alice plays Bob's video" });

    // Drop Alice's signaling connection: she shows "reconnecting", comes back as the same participant.
    await alice.page.evaluate(() => /** @type {any} */ (window).conclave.connection.ws.close());
    await poll(() => alice.page.evaluate(() => document.body.dataset.state === 'joined'), { what: 'Alice rejoined' });
    assert.equal(await alice.page.evaluate(() => /** @type {any} */ (window).conclave.participantId), aliceId);
    await poll(() => playing(bob.page, aliceId), { what: "Bob plays Alice's video after her reconnect" });
    await poll(() => playing(alice.page, bobId), { what: "Alice plays Bob's video after her reconnect" });
    assert.equal((await remoteTiles(bob.page)).length, 1);

    // Camera off, then on again.
    await alice.page.getByRole('button', { name: 'Turn camera off' }).click();
    await poll(
      async () => (await remoteTiles(bob.page)).find((t) => t.id === aliceId)?.video === 'off',
      { what: "Bob sees Alice's camera off" },
    );
    await alice.page.getByRole('button', { name: 'Turn camera on' }).click();
    await poll(() => playing(bob.page, aliceId), { what: "Bob plays Alice's video after camera on" });
    for (const s of sessions) assert.deepEqual(s.foreign, []);
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await server.stop();
  }
});
