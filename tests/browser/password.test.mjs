// Password: the moderator sets a room password from the meeting page; a joiner is asked for it on
// the pre-join page (with the password field focused), is told when it is wrong, and gets in with
// the right one and sees the moderator's video. The password never appears in the address bar.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, openBrowser, poll, randomRoom, randomSecret, waitState, participantId, playing, recordSignaling, NO_MEDIA,
} from './harness.mjs';

/** @typedef {Awaited<ReturnType<typeof openBrowser>>} Session */

const PASSWORD = 'tuesday-board-42';

test('password: wrong one refused, right one accepted', { timeout: 180000 }, async () => {
  const server = await startServer();
  /** @type {Session[]} */
  const sessions = [];
  try {
    const room = randomRoom('pw');
    const secret = randomSecret();
    const alice = await openBrowser(server.url);
    sessions.push(alice);
    await alice.page.goto(`${server.url}/${room}?name=Alice&autojoin=1#${secret}`);
    await waitState(alice.page, 'joined', 'Alice');
    const aliceId = await participantId(alice.page, 'Alice');

    // Alice sets a password through the moderator bar's dialog.
    await alice.page.locator('[data-action="password"]').click();
    const dialog = alice.page.locator('#password-dialog');
    await poll(() => dialog.isVisible(), { what: 'password dialog open' });
    await alice.page.locator('#room-password-input').fill(PASSWORD);
    await alice.page.locator('#password-set').click();
    await poll(() => dialog.isHidden(), { what: 'password dialog closed' });
    await poll(() => alice.page.locator('[data-indicator="password"]').isVisible(), { what: 'password indicator' });

    // Bob (autojoin) is sent back to the pre-join page to type the password.
    const bob = await openBrowser(server.url);
    sessions.push(bob);
    const bobSignaling = recordSignaling(bob.page);
    await bob.page.goto(`${server.url}/${room}?name=Bob&autojoin=1#${secret}`);
    await poll(
      () => bob.page.evaluate(() => document.body.dataset.state === 'prejoin' && document.body.dataset.reason === 'password_required'),
      { what: 'Bob asked for the password' },
    );
    assert.ok(await bob.page.getByText('This meeting needs a password.').isVisible());
    await poll(() => bob.page.evaluate(() => document.activeElement?.id === 'password-input'), { what: 'password field focused' });
    assert.equal(await bob.page.locator('#name-input').inputValue(), 'Bob', 'name kept');

    // A wrong password.
    await bob.page.locator('#password-input').fill('not-the-password');
    await bob.page.getByRole('button', { name: 'Join meeting' }).click();
    await poll(
      () => bob.page.evaluate(() => document.body.dataset.state === 'prejoin' && document.body.dataset.reason === 'wrong_password'),
      { what: 'Bob told the password is wrong' },
    );
    assert.ok(await bob.page.getByText('That password is wrong.').isVisible());
    await poll(() => bob.page.evaluate(() => document.activeElement?.id === 'password-input'), { what: 'password field focused again' });

    // The right one.
    await bob.page.locator('#password-input').fill(PASSWORD);
    await bob.page.getByRole('button', { name: 'Join meeting' }).click();
    await waitState(bob.page, 'joined', 'Bob');
    assert.equal(await bob.page.evaluate(() => document.body.dataset.reason), undefined);
    if (!NO_MEDIA) {
      await poll(() => playing(bob.page, aliceId), { what: "Bob plays Alice's video", timeout: 40000 });
    }
    assert.ok((await bob.page.locator('[data-indicator="password"]').isVisible()), 'Bob sees the password indicator');

    const joins = bobSignaling.sent.filter((m) => m.type === 'join').map((m) => m.password ?? null);
    console.log('Bob join attempts (password sent):', JSON.stringify(joins.map((p) => (p === null ? null : p === PASSWORD ? 'right' : 'wrong'))));
    assert.deepEqual(joins, [null, 'not-the-password', PASSWORD]);
    assert.ok(!bob.page.url().includes(PASSWORD), 'password never in the URL');
    for (const s of sessions) assert.deepEqual(s.foreign, []);
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await server.stop();
  }
});
