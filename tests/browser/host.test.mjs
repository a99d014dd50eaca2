// Hosts only: with `--adhoc-rooms hosts`, a guest who opens a room before any host sees "the
// meeting has not started yet" and the page keeps trying by itself; a host arrives with a signed
// join token in the link (`?jwt=`, HS256), which leaves the address bar at once, makes them a
// moderator, and opens the room; the guest then gets in without doing anything. The host's name
// from the token is the one the server has: someone who cannot decrypt the meeting's names sees
// it, while the guest's name (end-to-end encrypted only) stays hidden from them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import {
  startServer, openBrowser, poll, randomRoom, randomSecret, remoteTiles, waitState, participantId, playing, NO_MEDIA,
} from './harness.mjs';

/** @typedef {Awaited<ReturnType<typeof openBrowser>>} Session */

/**
 * An HS256 JWT with Jitsi-style claims.
 * @param {string} secret
 * @param {object} claims
 */
function signJwt(secret, claims) {
  const b64 = (/** @type {object} */ o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

test('hosts only: a guest waits, then joins by itself once a host with a token opens the room', { timeout: 180000 }, async () => {
  const secret = randomBytes(24).toString('hex');
  const server = await startServer({ args: ['--adhoc-rooms', 'hosts'], env: { CONCLAVE_JWT_SECRET: secret } });
  /** @type {Session[]} */
  const sessions = [];
  try {
    const room = randomRoom('host');
    const invite = randomSecret();
    const guest = await openBrowser(server.url);
    sessions.push(guest);
    await guest.page.goto(`${server.url}/${room}?name=Guest&autojoin=1#${invite}`);
    await poll(
      () => guest.page.evaluate(() => document.body.dataset.state === 'left' && document.body.dataset.reason === 'host_required'),
      { what: 'guest told to wait for a host' },
    );
    assert.ok(await guest.page.getByText('The meeting has not started yet.').isVisible());

    const now = Math.floor(Date.now() / 1000);
    const token = signJwt(secret, {
      aud: 'conclave', iss: 'e2e', sub: 'localhost', room, nbf: now - 10, exp: now + 600,
      context: { user: { name: 'Hedda Host', moderator: true } },
    });
    const host = await openBrowser(server.url);
    sessions.push(host);
    await host.page.goto(`${server.url}/${room}?name=Host&autojoin=1&jwt=${token}#${invite}`);
    await waitState(host.page, 'joined', 'Host');
    assert.ok(!(await host.page.evaluate(() => location.href)).includes('jwt'), 'token removed from the address bar');
    await poll(() => host.page.locator('#mod-bar').isVisible(), { what: 'host is a moderator' });
    const hostId = await participantId(host.page, 'Host');

    // The guest's page retries every 5 s on its own.
    await waitState(guest.page, 'joined', 'Guest', 40000);
    assert.equal(await guest.page.evaluate(() => document.body.dataset.reason), undefined);
    assert.equal(await guest.page.locator('#mod-bar').isVisible(), false, 'guest is no moderator');
    if (!NO_MEDIA) await poll(() => playing(guest.page, hostId), { what: "guest plays the host's video", timeout: 40000 });
    // The guest holds the meeting key: the host's tile shows the name the host typed, which
    // arrived end-to-end encrypted and replaces the token's.
    const guestId = await participantId(guest.page, 'Guest');
    await poll(async () => (await remoteTiles(guest.page)).find((t) => t.id === hostId)?.name === 'Host', { what: "guest sees the host's encrypted name" });

    // Someone with the bare room link (no meeting key, so no encrypted names) sees the host by
    // the token's name, and the guest only as joining.
    const outsider = await openBrowser(server.url);
    sessions.push(outsider);
    await outsider.page.goto(`${server.url}/${room}?name=Otto&autojoin=1`);
    await waitState(outsider.page, 'joined', 'Otto');
    await poll(async () => {
      const tiles = await remoteTiles(outsider.page);
      return tiles.find((t) => t.id === hostId)?.name === 'Hedda Host' && tiles.find((t) => t.id === guestId)?.name === 'Encrypted name';
    }, { what: "the outsider sees the token's name and no other" });
    for (const s of sessions) assert.deepEqual(s.foreign, []);
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await server.stop();
  }
});
