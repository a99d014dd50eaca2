// Moderator actions seen from both sides: mute and stop camera (the target's own controls follow,
// and they can turn them on again), lock (a newcomer gets the locked screen), make moderator,
// remove, end the meeting for everyone. The moderator's controls name people by the names that
// arrived end-to-end encrypted (the server only has placeholders). Also: a `?jwt=` link is removed
// from the address bar at once and its token goes into `join`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, openBrowser, poll, sleep, randomRoom, randomSecret, remoteTiles, waitState, participantId, recordSignaling,
  inboundAudio, NO_MEDIA,
} from './harness.mjs';

/**
 * Whether audio packets from `id` keep arriving on `page` (compared over ~1.5 s).
 * @param {import('playwright-core').Page} page
 * @param {string} id
 */
async function audioFlowing(page, id) {
  const a = (await inboundAudio(page))[id]?.packetsReceived ?? 0;
  await sleep(1500);
  const b = (await inboundAudio(page))[id]?.packetsReceived ?? 0;
  return b > a;
}

/** @typedef {Awaited<ReturnType<typeof openBrowser>>} Session */

/**
 * Open the people panel (moderator actions live there).
 * @param {import('playwright-core').Page} page
 */
async function openPeople(page) {
  if ((await page.locator('#people').isHidden())) await page.getByRole('button', { name: 'Show participants' }).click();
}

/**
 * @param {import('playwright-core').Page} page
 * @param {string} reason
 * @param {string} text
 * @param {string} who
 */
async function waitOut(page, reason, text, who) {
  await poll(
    () => page.evaluate((r) => document.body.dataset.state === 'left' && document.body.dataset.reason === r, reason),
    { what: `${who}: out with reason ${reason}` },
  );
  assert.ok(await page.getByText(text).isVisible(), `${who} sees "${text}"`);
}

test('moderator actions: mute, stop camera, lock, promote, remove, end meeting', { timeout: 240000 }, async () => {
  const server = await startServer();
  /** @type {Session[]} */
  const sessions = [];
  try {
    const room = randomRoom('mod');
    const secret = randomSecret();
    const url = (/** @type {string} */ name) => `${server.url}/${room}?name=${name}&autojoin=1#${secret}`;
    const alice = await openBrowser(server.url);
    sessions.push(alice);
    await alice.page.goto(url('Alice'));
    await waitState(alice.page, 'joined', 'Alice');
    const bob = await openBrowser(server.url);
    sessions.push(bob);
    await bob.page.goto(url('Bob'));
    await waitState(bob.page, 'joined', 'Bob');
    const bobId = await participantId(bob.page, 'Bob');
    const bobTileOnAlice = alice.page.locator(`[data-participant="${bobId}"]`);
    await poll(() => bobTileOnAlice.count(), { what: "Alice has Bob's tile" });

    if (!NO_MEDIA) await poll(() => audioFlowing(alice.page, bobId), { what: "Alice receives Bob's audio" });

    // Mute Bob: his microphone button shows muted, Alice sees his mic off; he unmutes himself.
    await openPeople(alice.page);
    // The people list and the moderator's buttons use Bob's decrypted name.
    const muteBob = alice.page.locator(`button[data-action="mute"][data-target="${bobId}"]`);
    await poll(async () => (await muteBob.getAttribute('aria-label')) === 'Mute Bob', { what: "Alice's mute button names Bob" });
    assert.equal(await alice.page.locator(`[data-participant-item="${bobId}"] .person-name`).textContent(), 'Bob');
    await alice.page.locator(`button[data-action="mute"][data-target="${bobId}"]`).click();
    await poll(() => bob.page.getByText('A moderator muted you').isVisible(), { what: 'Bob told he was muted' });
    await poll(async () => (await bob.page.locator('#mic-btn').getAttribute('aria-pressed')) === 'false', { what: "Bob's mic button off" });
    assert.equal(await bob.page.evaluate(() => /** @type {any} */ (window).conclave.connection.media.audioTrack?.enabled), false, "Bob's track disabled");
    await poll(async () => (await bobTileOnAlice.getAttribute('data-audio')) === 'off', { what: "Alice sees Bob's mic off" });
    // The server forwards nothing of his microphone while he is muted.
    if (!NO_MEDIA) await poll(async () => !(await audioFlowing(alice.page, bobId)), { what: "Bob's audio no longer reaches Alice" });
    await bob.page.getByRole('button', { name: 'Unmute microphone' }).click();
    await poll(async () => (await bobTileOnAlice.getAttribute('data-audio')) === 'on', { what: 'Bob unmuted himself' });
    if (!NO_MEDIA) await poll(() => audioFlowing(alice.page, bobId), { what: "Bob's audio reaches Alice again" });

    // Stop Bob's camera.
    await alice.page.locator(`button[data-action="stop-video"][data-target="${bobId}"]`).click();
    await poll(() => bob.page.getByText('A moderator turned your camera off').isVisible(), { what: 'Bob told his camera was stopped' });
    await poll(async () => (await bobTileOnAlice.getAttribute('data-video')) === 'off', { what: "Alice sees Bob's camera off" });
    assert.equal(await bob.page.locator('[data-local]').getAttribute('data-video'), 'off');

    // Lock: a newcomer gets the locked screen and does not retry.
    await alice.page.locator('[data-action="lock"]').click();
    await poll(() => bob.page.locator('[data-indicator="locked"]').isVisible(), { what: 'Bob sees the locked indicator' });
    const carol = await openBrowser(server.url);
    sessions.push(carol);
    await carol.page.goto(url('Carol'));
    await waitOut(carol.page, 'room_locked', 'This meeting is locked. Ask a moderator to unlock it.', 'Carol');
    await carol.close();
    await alice.page.locator('[data-action="lock"]').click();
    await poll(() => bob.page.locator('[data-indicator="locked"]').isHidden(), { what: 'unlocked' });

    // Make Bob a moderator: he gets the moderator bar, his tile a badge on Alice's page.
    await alice.page.locator(`button[data-action="set-moderator"][data-target="${bobId}"]`).click();
    await poll(() => bob.page.locator('#mod-bar').isVisible(), { what: 'Bob sees the moderator bar' });
    await poll(async () => (await bobTileOnAlice.getAttribute('data-moderator')) === '', { what: "Bob's tile shows moderator" });
    await alice.page.locator(`button[data-action="set-moderator"][data-target="${bobId}"]`).click();
    await poll(() => bob.page.locator('#mod-bar').isHidden(), { what: 'Bob no longer moderator' });

    // Remove Bob (with confirmation).
    await alice.page.locator(`button[data-action="remove"][data-target="${bobId}"]`).click();
    await alice.page.locator('#confirm-ok').click();
    await waitOut(bob.page, 'removed', 'A moderator removed you from the meeting.', 'Bob');
    await poll(async () => (await remoteTiles(alice.page)).length === 0, { what: "Bob's tile gone on Alice's page" });

    // Dora joins with a ?jwt= link: it leaves the address bar at once and goes into join.
    const dora = await openBrowser(server.url);
    sessions.push(dora);
    const doraSignaling = recordSignaling(dora.page);
    const token = 'eyJhbGciOiJIUzI1NiJ9.eyJyb29tIjoibm9wZSJ9.c2lnbmF0dXJl';
    await dora.page.goto(`${server.url}/${room}?name=Dora&autojoin=1&jwt=${token}#${secret}`);
    await poll(() => doraSignaling.sent.some((m) => m.type === 'join'), { what: 'Dora sent join' });
    const addr = await dora.page.evaluate(() => location.href);
    assert.ok(!addr.includes('jwt') && !addr.includes(token), `token removed from the address bar: ${addr}`);
    assert.ok(addr.endsWith(`autojoin=1#${secret}`), `other parameters and fragment kept: ${addr}`);
    assert.equal(doraSignaling.sent.find((m) => m.type === 'join')?.token, token);
    // A token the server cannot verify is refused with invalid_token.
    await waitOut(dora.page, 'invalid_token', 'Your sign-in link is not valid here', 'Dora');

    // Erin joins normally; Alice ends the meeting for everyone.
    const erin = await openBrowser(server.url);
    sessions.push(erin);
    await erin.page.goto(url('Erin'));
    await waitState(erin.page, 'joined', 'Erin');
    await alice.page.locator('[data-action="end-meeting"]').click();
    await alice.page.locator('#confirm-ok').click();
    await waitOut(erin.page, 'meeting_ended', 'The meeting was ended by a moderator.', 'Erin');
    await waitOut(alice.page, 'meeting_ended', 'The meeting was ended by a moderator.', 'Alice');
    for (const s of sessions) assert.deepEqual(s.foreign, []);
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await server.stop();
  }
});
