// Lobby: the first participant of a new ad-hoc room is its moderator and turns the lobby on; a
// joiner waits on the lobby screen while the moderator sees the knock; admitted, the joiner gets
// into the meeting and both see each other's video. Another joiner is denied: they see the
// declined message and never got anything about the meeting (no tile, no participant list, no
// signaling message but `lobby_waiting` and `closed`).
//
// With end-to-end encryption: a joiner with the invite link (the secret) knocks under the
// placeholder name, with the real name sealed with the secret; the moderator sees the real name.
// A joiner with the bare room link knocks with the name in clear (marked as not verified), and
// once admitted gets the meeting key from the moderator's client without a second prompt.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, openBrowser, poll, randomRoom, randomSecret, remoteTiles, waitState, participantId, playing, recordSignaling, NO_MEDIA,
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
 * Sets `window.__keyRequestShown` as soon as the page ever shows a key request prompt.
 * @param {import('playwright-core').Page} page
 */
async function watchKeyRequests(page) {
  await page.addInitScript(() => {
    const w = /** @type {any} */ (window);
    w.__keyRequestShown = false;
    new MutationObserver(() => {
      if (document.querySelector('.key-request')) w.__keyRequestShown = true;
    }).observe(document, { childList: true, subtree: true });
  });
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
    const secret = randomSecret();
    const url = (/** @type {string} */ name) => `${server.url}/${room}?name=${name}&autojoin=1#${secret}`;
    const bareUrl = (/** @type {string} */ name) => `${server.url}/${room}?name=${name}&autojoin=1`;

    // Alice opens the new room: she is its moderator.
    const alice = await openBrowser(server.url);
    sessions.push(alice);
    await watchKeyRequests(alice.page);
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

    // Bob (with the invite link) knocks and waits; his name reaches Alice sealed.
    const bob = await openBrowser(server.url);
    sessions.push(bob);
    const bobSignaling = recordSignaling(bob.page);
    await bob.page.goto(url('Bob'));
    await waitState(bob.page, 'lobby', 'Bob');
    assert.ok(await bob.page.getByText('Waiting for a moderator to let you in').isVisible());
    assert.equal((await remoteTiles(bob.page)).length, 0, 'Bob sees no tile while waiting');
    const bobJoin = bobSignaling.sent.find((m) => m.type === 'join');
    assert.equal(bobJoin?.name, '-', 'the server gets the placeholder name');
    // Checked on the decoded bytes: a short name turns up in random base64 text by chance.
    assert.ok(typeof bobJoin?.sealed_name === 'string' && !Buffer.from(bobJoin.sealed_name, 'base64url').includes(Buffer.from('Bob')), 'and the name sealed');
    const bobKnock = await knockOf(alice.page, 'Bob');
    assert.equal(await alice.page.locator(`[data-knock-item="${bobKnock}"]`).getAttribute('data-knock-kind'), 'sealed');
    console.log(`Alice sees Bob's knock ${bobKnock} (sealed name decrypted)`);

    // Alice admits him: both in the meeting, each playing the other's video.
    await alice.page.locator(`button[data-action="admit"][data-knock="${bobKnock}"]`).click();
    await waitState(bob.page, 'joined', 'Bob');
    const bobId = await participantId(bob.page, 'Bob');
    await poll(() => alice.page.locator('#knocks').isHidden(), { what: 'knock gone after admit' });
    if (!NO_MEDIA) {
      await poll(() => playing(bob.page, aliceId), { what: "Bob plays Alice's video", timeout: 40000 });
      await poll(() => playing(alice.page, bobId), { what: "Alice plays Bob's video", timeout: 40000 });
    }
    // Alice's name reaches Bob end-to-end encrypted.
    const bobTiles = await poll(async () => {
      const t = await remoteTiles(bob.page);
      return t.length === 1 && t[0].name === 'Alice' ? t : false;
    }, { what: "Bob sees Alice's name" });
    console.log('Bob sees:', bobTiles.map((t) => `${t.name} ${t.width}x${t.height} frames=${t.frames}`).join('; '));
    assert.equal(await bob.page.locator('#mod-bar').isVisible(), false, 'Bob is no moderator');
    assert.equal(
      await bob.page.locator(`[data-participant="${aliceId}"]`).getAttribute('data-moderator'),
      '',
      "Alice's tile shows her as moderator for Bob",
    );

    // Carol (bare link: no meeting key, her name in clear) knocks; Alice denies.
    const carol = await openBrowser(server.url);
    sessions.push(carol);
    await watchMeetingLeaks(carol.page);
    const carolSignaling = recordSignaling(carol.page);
    await carol.page.goto(bareUrl('Carol'));
    await waitState(carol.page, 'lobby', 'Carol');
    const carolKnock = await knockOf(alice.page, 'Carol');
    assert.equal(await alice.page.locator(`[data-knock-item="${carolKnock}"]`).getAttribute('data-knock-kind'), 'clear');
    assert.match(await alice.page.locator(`[data-knock-item="${carolKnock}"]`).innerText(), /not verified/);
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
    await carol.close();

    // Dan (bare link) knocks; Alice admits him from the lobby. His client then asks for the
    // meeting key, and Alice's client hands it over without asking her again.
    const dan = await openBrowser(server.url);
    sessions.push(dan);
    await dan.page.goto(bareUrl('Dan'));
    await waitState(dan.page, 'lobby', 'Dan');
    const danKnock = await knockOf(alice.page, 'Dan');
    await alice.page.locator(`button[data-action="admit"][data-knock="${danKnock}"]`).click();
    await waitState(dan.page, 'joined', 'Dan');
    const danId = await participantId(dan.page, 'Dan');
    await poll(() => dan.page.evaluate((s) => location.hash === `#${s}`, secret), { what: 'Dan got the meeting key' });
    await poll(() => dan.page.evaluate(() => document.getElementById('e2ee-btn')?.dataset.status === 'ok'), { what: "Dan's encryption ok" });
    await poll(async () => (await remoteTiles(dan.page)).find((t) => t.id === aliceId)?.name === 'Alice', { what: "Dan sees Alice's name" });
    await poll(async () => (await remoteTiles(bob.page)).find((t) => t.id === danId)?.name === 'Dan', { what: "Bob sees Dan's name" });
    if (!NO_MEDIA) await poll(() => playing(dan.page, aliceId), { what: "Dan plays Alice's video", timeout: 40000 });
    assert.equal(await alice.page.evaluate(() => /** @type {any} */ (window).__keyRequestShown), false, 'Alice was not asked again');
    const codes = await poll(async () => {
      const c = await Promise.all([alice, bob, dan].map((s) => s.page.evaluate(() => document.getElementById('safety-code')?.textContent ?? '')));
      return /^\d{4}/.test(c[0]) && new Set(c).size === 1 ? c : false;
    }, { what: 'the same safety code for Alice, Bob and Dan' });
    console.log(`Dan got the key without a prompt; safety code ${codes[0]}`);

    for (const [i, s] of sessions.entries()) {
      assert.deepEqual(s.foreign, [], `session ${i} made third-party requests`);
    }
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await server.stop();
  }
});
