// Joining an end-to-end encrypted meeting without the secret, and with a browser that cannot
// encrypt: someone with a bare room link knocks, a member admits them and their client receives
// the meeting key end to end; a browser without encoded transforms is told that it can join only
// if a moderator allows it (the rest is in e2ee-off.test.mjs).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openBrowser, poll, sleep, randomRoom, randomSecret, remoteTiles } from './harness.mjs';

/** @param {import('playwright-core').Page} page */
const safety = (page) => page.evaluate(() => document.getElementById('safety-code')?.textContent ?? '');

test('a bare link knocks; a member admits; the knocker gets the key and the media', { timeout: 180000 }, async () => {
  const server = await startServer();
  /** @type {Awaited<ReturnType<typeof openBrowser>>[]} */
  const sessions = [];
  try {
    const room = randomRoom('knock');
    const secret = randomSecret();
    const alice = await openBrowser(server.url);
    sessions.push(alice);
    await alice.page.goto(`${server.url}/${room}?name=Alice&autojoin=1#${secret}`);
    await poll(() => alice.page.evaluate(() => document.body.dataset.state === 'joined'), { what: 'Alice joined' });

    const kim = await openBrowser(server.url);
    sessions.push(kim);
    await kim.page.goto(`${server.url}/${room}?name=Kim&autojoin=1`);
    await poll(() => kim.page.evaluate(() => document.getElementById('e2ee-btn')?.dataset.status === 'knocking'), { what: 'Kim knocks' });
    assert.match(await kim.page.textContent('#e2ee-alert') ?? '', /no meeting key/);

    const prompt = alice.page.locator('.key-request');
    await poll(() => prompt.isVisible(), { what: 'Alice sees the knock' });
    assert.match(await prompt.innerText(), /Kim/);
    await prompt.getByRole('button', { name: 'Admit' }).click();

    // Kim now holds the secret (in her address bar, for the invite link) and is a member.
    await poll(() => kim.page.evaluate((s) => location.hash === `#${s}`, secret), { what: 'Kim got the secret' });
    await poll(async () => {
      const [a, k] = [await safety(alice.page), await safety(kim.page)];
      return /^\d{4}/.test(a) && a === k;
    }, { what: 'matching safety codes' });
    await poll(async () => {
      const a = await remoteTiles(kim.page);
      await sleep(1000);
      const b = await remoteTiles(kim.page);
      return b.length === 1 && b[0].name === 'Alice' && b[0].frames > (a[0]?.frames ?? Infinity);
    }, { timeout: 45000, what: "Kim plays Alice's video" });
    assert.equal(await kim.page.isVisible('#e2ee-alert'), false);
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await server.stop();
  }
});

test('a browser without encoded transforms is told it can join only if a moderator allows it', { timeout: 90000 }, async () => {
  const server = await startServer();
  const s = await openBrowser(server.url);
  try {
    await s.page.addInitScript(() => {
      // What an old browser looks like to the client.
      delete (/** @type {any} */ (window)).RTCRtpScriptTransform;
      delete (/** @type {any} */ (RTCRtpSender.prototype)).createEncodedStreams;
    });
    await s.page.goto(`${server.url}/${randomRoom('old')}?name=Olga&autojoin=1#${randomSecret()}`);
    await poll(() => s.page.evaluate(() => document.body.dataset.state === 'prejoin'), { what: 'stays on the pre-join page' });
    assert.match(await s.page.textContent('#e2ee-note') ?? '', /can't encrypt audio and video end to end/);
    assert.match(await s.page.textContent('#e2ee-note') ?? '', /only if a moderator/);
  } finally {
    await s.close();
    await server.stop();
  }
});
