// Screen sharing: one participant shares, the others receive it as a separate video (a screen
// share, not the camera) at full resolution; a second sharer is refused while the first shares;
// a moderator stops the share and everyone sees it end.
//
// The shared "screen" is a canvas stream (headless Chromium has no screen to capture); it goes
// through the same Connection API the share button uses.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, openBrowser, poll, sleep, randomRoom, randomSecret, participantId,
} from './harness.mjs';

/**
 * Start sharing a 1280x720 canvas that changes every frame.
 * @param {import('playwright-core').Page} page
 */
function shareCanvas(page) {
  return page.evaluate(async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 1280;
    canvas.height = 720;
    const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
    let n = 0;
    setInterval(() => {
      ctx.fillStyle = `hsl(${(n += 7) % 360} 60% 50%)`;
      ctx.fillRect(0, 0, 1280, 720);
      ctx.fillStyle = '#fff';
      ctx.font = '64px sans-serif';
      ctx.fillText(`slide ${n}`, 100, 200);
    }, 66);
    const track = canvas.captureStream(15).getVideoTracks()[0];
    track.contentHint = 'detail';
    await /** @type {any} */ (window).conclave.connection.startScreenShare(track);
  });
}

/**
 * What this page receives of `owner`'s screen share: frames decoded and size.
 * @param {import('playwright-core').Page} page
 * @param {string} owner
 */
function screenStats(page, owner) {
  return page.evaluate(async (owner) => {
    const c = /** @type {any} */ (window).conclave;
    const sub = (c.connection?.media.lastSubs?.subscriptions ?? []).find(
      (/** @type {any} */ s) => s.participant_id === owner && s.screen,
    );
    if (!sub || !c.pc) return null;
    let out = null;
    (await c.pc.getStats()).forEach((/** @type {any} */ s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video' && s.mid === sub.mid) {
        out = { frames: s.framesDecoded ?? 0, height: s.frameHeight ?? 0, width: s.frameWidth ?? 0 };
      }
    });
    return out;
  }, owner);
}

/**
 * Wait until `page` decodes `owner`'s screen share with frames rising.
 * @param {import('playwright-core').Page} page
 * @param {string} owner
 * @param {string} who
 */
function waitForScreen(page, owner, who) {
  return poll(
    async () => {
      const a = await screenStats(page, owner);
      await sleep(1000);
      const b = await screenStats(page, owner);
      return a && b && b.frames > a.frames && b.height > 0 ? b : false;
    },
    { timeout: 30000, interval: 500, what: `${who}: decoding the screen share` },
  );
}

/**
 * Whether this page's participant list says `owner` is sharing (participant_updated.screen).
 * @param {import('playwright-core').Page} page
 * @param {string} owner
 */
function sharingSeen(page, owner) {
  return page.evaluate((owner) => {
    const c = /** @type {any} */ (window).conclave.connection;
    return c?.sharing?.has(owner) ?? false;
  }, owner);
}

test('a screen share reaches everyone; one at a time; a moderator stops it', async () => {
  const server = await startServer();
  const room = randomRoom('screen');
  const secret = randomSecret();
  const [mod, alice, bob] = await Promise.all([1, 2, 3].map(() => openBrowser(server.url)));
  try {
    // The first to join moderates an ad-hoc room.
    await mod.page.goto(`${server.url}/${room}?name=Mod&autojoin=1#${secret}`);
    const modId = await participantId(mod.page, 'Mod');
    await alice.page.goto(`${server.url}/${room}?name=Alice&autojoin=1#${secret}`);
    const aliceId = await participantId(alice.page, 'Alice');
    await bob.page.goto(`${server.url}/${room}?name=Bob&autojoin=1#${secret}`);
    await participantId(bob.page, 'Bob');

    await shareCanvas(alice.page);
    const atBob = await waitForScreen(bob.page, aliceId, 'Bob');
    const atMod = await waitForScreen(mod.page, aliceId, 'Mod');
    console.log(`# screen at Bob ${atBob.width}x${atBob.height}, at Mod ${atMod.width}x${atMod.height}`);
    // Full resolution: a screen share is not sent in reduced layers.
    assert.equal(atBob.height, 720);
    await poll(() => sharingSeen(bob.page, aliceId), { what: 'Bob sees Alice sharing' });

    // Bob tries to share too: refused, Alice's share goes on.
    const errors = bob.page.evaluate(
      () =>
        new Promise((resolve) => {
          /** @type {any} */ (window).conclave.connection.addEventListener('server_error', (/** @type {any} */ e) =>
            resolve(e.detail.code),
          );
        }),
    );
    await shareCanvas(bob.page);
    assert.equal(await errors, 'screen_share_busy');
    await waitForScreen(mod.page, aliceId, 'Mod, after Bob was refused');

    // The moderator stops Alice's share.
    await mod.page.evaluate(
      (id) => /** @type {any} */ (window).conclave.connection.send({ type: 'stop_screen_share', participant_id: id }),
      aliceId,
    );
    await poll(async () => !(await sharingSeen(bob.page, aliceId)), { what: 'Bob sees the share end' });
    await poll(
      () => alice.page.evaluate(() => /** @type {any} */ (window).conclave.connection.media.screenTrack === null),
      { what: 'Alice is no longer sharing' },
    );
    assert.ok(modId);
  } finally {
    await Promise.all([mod, alice, bob].map((s) => s.close()));
    await server.stop();
  }
});
