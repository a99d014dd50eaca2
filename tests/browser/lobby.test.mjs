// Lobby: the first participant of a new ad-hoc room is its moderator and turns the lobby on; a
// joiner waits on the lobby screen while the moderator sees the knock; admitted, the joiner gets
// into the meeting and both see each other's video. Another joiner is denied: they see the
// declined message and never got anything about the meeting (no tile, no participant list, no
// signaling message but `lobby_waiting` and `closed`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, openBrowser, poll, randomRoom, remoteTiles, waitState, participantId, playing, recordSignaling, NO_MEDIA,
} from './harness.mjs';

/** @typedef {Awaited<ReturnType<typeof openBrowser>>} Session */

/**
 * The knock with `name` in the moderator's lobby panel, once shown: its knock id.
 * @param {import('playwright-core').Page} page
 * @param {string} name
 * @returns {Promise<string>}
 */
function knockOf(page, name) {
  return poll(
    () =>
      page.evaluate((n) => {
        const items = [...document.querySelectorAll('#knocks:not([hidden]) [data-knock-item]')];
        const li = /** @type {HTMLElement|undefined} */ (items.find((el) => el.querySelector('.knock-name')?.textContent === n));
        return li?.dataset.knockItem ?? null;
      }, name),
    { what: `knock from ${name} shown to the moderator` },
  );
}

/**
 * Flags set by the page as soon as it ever shows a remote tile or a participant-list entry.
 * @param {import('playwright-core').Page} page
 */
async function watchMeetingLeaks(page) {
  await page.addInitScript(() => {
    const w = /** @type {any} */ (window);
    w.__leak = { remoteTile: false, peopleItem: false };
    new MutationObserver(() => {
      if (document.querySelector('[data-participant]:not([data-local])')) w.__leak.remoteTile = true;
      if (document.querySelector('#people-list li')) w.__leak.peopleItem = true;
    }).observe(document, { childList: true, subtree: true });
  });
}

test('lobby: moderator admits one joiner and denies another', { timeout: 240000 }, async () => {
  const server = await startServer();
  /** @type {Session[]} */
  const sessions = [];
  try {
    const room = randomRoom('lobby');
    const url = (/** @type {string} */ name) => `${server.url}/${room}?name=${name}&autojoin=1`;

    // Alice opens the new room: she is its moderator.
    const alice = await openBrowser(server.url);
    sessions.push(alice);
    await alice.page.goto(url('Alice'));
    await waitState(alice.page, 'joined', 'Alice');
    await poll(() => alice.page.locator('#mod-bar').isVisible(), { what: 'Alice sees the moderator bar' });
    const aliceId = await participantId(alice.page, 'Alice');

    // She turns the lobby on.
    const lobbyBtn = alice.page.locator('[data-action="lobby"]');
    assert.equal(await lobbyBtn.getAttribute('aria-pressed'), 'false');
    await lobbyBtn.click();
    await poll(async () => (await lobbyBtn.getAttribute('aria-pressed')) === 'true', { what: 'lobby on (button)' });
    await poll(() => alice.page.locator('[data-indicator="lobby"]').isVisible(), { what: 'lobby indicator' });

    // Bob knocks and waits.
    const bob = await openBrowser(server.url);
    sessions.push(bob);
    await bob.page.goto(url('Bob'));
    await waitState(bob.page, 'lobby', 'Bob');
    assert.ok(await bob.page.getByText('Waiting for a moderator to let you in').isVisible());
    assert.equal((await remoteTiles(bob.page)).length, 0, 'Bob sees no tile while waiting');
    const bobKnock = await knockOf(alice.page, 'Bob');
    console.log(`Alice sees Bob's knock ${bobKnock}`);

    // Alice admits him: both in the meeting, each playing the other's video.
    await alice.page.locator(`button[data-action="admit"][data-knock="${bobKnock}"]`).click();
    await waitState(bob.page, 'joined', 'Bob');
    const bobId = await participantId(bob.page, 'Bob');
    await poll(() => alice.page.locator('#knocks').isHidden(), { what: 'knock gone after admit' });
    if (!NO_MEDIA) {
      await poll(() => playing(bob.page, aliceId), { what: "Bob plays Alice's video", timeout: 40000 });
      await poll(() => playing(alice.page, bobId), { what: "Alice plays Bob's video", timeout: 40000 });
    }
    const bobTiles = await remoteTiles(bob.page);
    console.log('Bob sees:', bobTiles.map((t) => `${t.name} ${t.width}x${t.height} frames=${t.frames}`).join('; '));
    assert.deepEqual(bobTiles.map((t) => t.name), ['Alice']);
    assert.equal(await bob.page.locator('#mod-bar').isVisible(), false, 'Bob is no moderator');
    assert.equal(
      await bob.page.locator(`[data-participant="${aliceId}"]`).getAttribute('data-moderator'),
      '',
      "Alice's tile shows her as moderator for Bob",
    );

    // Carol knocks; Alice denies.
    const carol = await openBrowser(server.url);
    sessions.push(carol);
    await watchMeetingLeaks(carol.page);
    const carolSignaling = recordSignaling(carol.page);
    await carol.page.goto(url('Carol'));
    await waitState(carol.page, 'lobby', 'Carol');
    const carolKnock = await knockOf(alice.page, 'Carol');
    await alice.page.locator(`button[data-action="deny"][data-knock="${carolKnock}"]`).click();
    await waitState(carol.page, 'left', 'Carol');
    assert.equal(await carol.page.evaluate(() => document.body.dataset.reason), 'denied');
    assert.ok(await carol.page.getByText('A moderator declined your request to join.').isVisible());
    await poll(() => alice.page.locator('#knocks').isHidden(), { what: 'knock gone after deny' });
    const leak = await carol.page.evaluate(() => /** @type {any} */ (window).__leak);
    assert.deepEqual(leak, { remoteTile: false, peopleItem: false }, 'Carol never saw a remote tile or the participant list');
    console.log('Carol received:', carolSignaling.received.join(', '));
    assert.deepEqual(carolSignaling.received, ['lobby_waiting', 'closed'], 'Carol got nothing about the meeting');
    // She stays out: no reconnection.
    await poll(async () => (await carol.page.evaluate(() => document.body.dataset.state)) === 'left', { what: 'Carol still out' });
    assert.equal((await remoteTiles(alice.page)).length, 1, 'Alice sees only Bob');

    for (const [i, s] of sessions.entries()) {
      assert.deepEqual(s.foreign, [], `session ${i} made third-party requests`);
    }
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await server.stop();
  }
});
