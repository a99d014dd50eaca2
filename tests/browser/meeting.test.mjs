// Three participants meet through the real server: everyone sees and hears the two others; a
// camera turned off shows as off; a participant who leaves disappears from the others' grids.
//
// Run from tests/browser: `npm test` (server binary from $CONCLAVE_BIN, default
// ../../target/debug/conclave). `CONCLAVE_SCREENSHOT=1` also writes docs/screenshot-meeting.png.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  startServer, openBrowser, poll, sleep, randomRoom, randomSecret, remoteTiles, inboundAudio, repoRoot,
} from './harness.mjs';

/** @typedef {Awaited<ReturnType<typeof openBrowser>>} Session */

/**
 * Wait until the page shows `n` remote tiles whose videos play (frames rising over ~1 s).
 * @param {Session} s
 * @param {number} n
 * @param {string} who
 */
async function waitForPlayingTiles(s, n, who) {
  return poll(
    async () => {
      const a = await remoteTiles(s.page);
      if (a.length !== n || a.some((t) => t.width === 0)) return false;
      await sleep(1000);
      const b = await remoteTiles(s.page);
      if (b.length !== n) return false;
      const ok = b.every((t) => {
        const before = a.find((x) => x.id === t.id);
        return before && t.width > 0 && t.frames > before.frames;
      });
      return ok ? b : false;
    },
    { timeout: 30000, interval: 500, what: `${who}: ${n} remote tiles with playing video` },
  );
}

/**
 * Wait until inbound audio from each of `ids` has packets rising and non-zero level/energy.
 * @param {Session} s
 * @param {string[]} ids
 * @param {string} who
 */
async function waitForAudio(s, ids, who) {
  return poll(
    async () => {
      const a = await inboundAudio(s.page);
      await sleep(1000);
      const b = await inboundAudio(s.page);
      const ok = ids.every((id) => {
        const x = a[id];
        const y = b[id];
        return x && y && y.packetsReceived > x.packetsReceived && (y.audioLevel > 0 || y.totalAudioEnergy > 0);
      });
      return ok ? b : false;
    },
    { timeout: 30000, interval: 500, what: `${who}: audio from ${ids.join(', ')}` },
  );
}

test('three participants see and hear each other; camera off; leave', { timeout: 240000 }, async () => {
  const server = await startServer();
  /** @type {Session[]} */
  const sessions = [];
  try {
    const room = randomRoom();
    const secret = randomSecret();
    const names = ['Alice', 'Bob', 'Carol'];
    const opened = await Promise.all(names.map(() => openBrowser(server.url)));
    sessions.push(...opened);
    await Promise.all(
      opened.map((s, i) => s.page.goto(`${server.url}/${room}?name=${names[i]}&autojoin=1#${secret}`)),
    );
    const [alice, bob, carol] = opened;

    // Everyone is in and knows their id.
    /** @type {string[]} */
    const ids = [];
    for (const [i, s] of opened.entries()) {
      await poll(() => s.page.evaluate(() => document.body.dataset.state === 'joined'), {
        what: `${names[i]} joined`,
      });
      ids.push(await s.page.evaluate(() => /** @type {any} */ (window).conclave.participantId));
    }
    assert.equal(new Set(ids).size, 3, 'three distinct participant ids');

    // Video: each page plays the two others.
    for (const [i, s] of opened.entries()) {
      const tiles = await waitForPlayingTiles(s, 2, names[i]);
      const others = ids.filter((_, j) => j !== i).sort();
      assert.deepEqual(tiles.map((t) => t.id).sort(), others, `${names[i]} sees the two others`);
      const tileNames = tiles.map((t) => t.name).sort();
      assert.deepEqual(tileNames, names.filter((_, j) => j !== i).sort());
      console.log(`${names[i]} video:`, tiles.map((t) => `${t.name} ${t.width}x${t.height} frames=${t.frames}`).join('; '));
    }

    // Audio: each page receives audio with energy from both others.
    for (const [i, s] of opened.entries()) {
      const others = ids.filter((_, j) => j !== i);
      const audio = await waitForAudio(s, others, names[i]);
      console.log(`${names[i]} audio:`, JSON.stringify(audio));
    }

    if (process.env.CONCLAVE_SCREENSHOT === '1') {
      await sleep(1000);
      await bob.page.screenshot({ path: path.join(repoRoot, 'docs/screenshot-meeting.png') });
    }

    // Alice turns her camera off: Bob and Carol see it.
    await alice.page.getByRole('button', { name: 'Turn camera off' }).click();
    for (const [who, s] of /** @type {const} */ ([['Bob', bob], ['Carol', carol]])) {
      await poll(
        () => s.page.evaluate((id) => document.querySelector(`[data-participant="${id}"]`)?.getAttribute('data-video') === 'off', ids[0]),
        { what: `${who} sees Alice's camera off` },
      );
    }
    assert.equal(
      await alice.page.evaluate(() => document.querySelector('[data-local]')?.getAttribute('data-video')),
      'off',
    );

    // Carol leaves: Alice and Bob have one remote tile left (Bob's / Alice's).
    await carol.page.getByRole('button', { name: 'Leave meeting' }).click();
    await poll(() => carol.page.evaluate(() => document.body.dataset.state === 'left'), { what: 'Carol left' });
    assert.ok(await carol.page.getByText('You left the meeting').isVisible());
    for (const [who, s, other] of /** @type {const} */ ([['Alice', alice, ids[1]], ['Bob', bob, ids[0]]])) {
      const tiles = await poll(
        async () => {
          const t = await remoteTiles(s.page);
          return t.length === 1 ? t : false;
        },
        { what: `${who} has one remote tile after Carol left` },
      );
      assert.equal(tiles[0].id, other);
    }

    // Privacy: no page made a request to another origin.
    for (const [i, s] of opened.entries()) {
      assert.deepEqual(s.foreign, [], `${names[i]} made third-party requests`);
      assert.deepEqual(s.errors.filter((e) => !/favicon/.test(e)), [], `${names[i]} page errors`);
    }
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await server.stop();
  }
});
