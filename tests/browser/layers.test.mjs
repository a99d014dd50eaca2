// Simulcast layers follow the drawn tile size: Alice sees Bob large on the speaker view's stage
// and receives his high layer; when her window shrinks to a small grid, the server switches her
// to a lower layer; when it grows again, back up. Also: someone becomes the active speaker (the
// fake microphone beeps) and their tile says so. And the camera sends the layers the server asks
// for (`publish_layers`), also after negotiations that follow the request.
//
// Run from tests/browser: `node --test layers.test.mjs` (server binary from $CONCLAVE_BIN).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, openBrowser, poll, randomRoom, randomSecret, participantId, waitState, recordSignaling, NO_MEDIA,
} from './harness.mjs';

/**
 * Height of the video frames decoded from participant `id`'s camera on `page` (0 if none yet).
 * @param {import('playwright-core').Page} page
 * @param {string} id
 * @returns {Promise<number>}
 */
function inboundFrameHeight(page, id) {
  return page.evaluate(async (pid) => {
    const c = /** @type {any} */ (window).conclave;
    const pc = /** @type {RTCPeerConnection|null} */ (c.pc);
    if (!pc) return 0;
    const subs = c.connection?.media.lastSubs?.subscriptions ?? [];
    const mids = new Set(subs.filter((/** @type {any} */ s) => s.kind === 'video' && s.participant_id === pid).map((/** @type {any} */ s) => s.mid));
    const tracks = new Set(pc.getTransceivers().filter((t) => t.mid !== null && mids.has(t.mid)).map((t) => t.receiver.track.id));
    let h = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video' && (mids.has(s.mid) || tracks.has(s.trackIdentifier))) {
        h = Math.max(h, s.frameHeight ?? 0);
      }
    });
    return h;
  }, id);
}

/**
 * Poll until Bob's frames at Alice satisfy `ok`; returns the height seen.
 * @param {import('playwright-core').Page} page
 * @param {string} id
 * @param {(h: number) => boolean} ok
 * @param {string} what
 */
function waitHeight(page, id, ok, what, timeout = 30000) {
  return poll(
    async () => {
      const h = await inboundFrameHeight(page, id);
      return ok(h) ? h : false;
    },
    { timeout, interval: 500, what },
  );
}

/**
 * @param {import('playwright-core').Page} page
 * @param {'grid'|'speaker'} mode
 */
async function setLayout(page, mode) {
  const now = await page.getAttribute('#grid', 'data-layout');
  if (now !== mode) await page.click('[data-action="layout"]');
  await poll(async () => (await page.getAttribute('#grid', 'data-layout')) === mode, { what: `layout ${mode}` });
}

test('the received layer follows the tile size; the active speaker is marked', { timeout: 180000 }, async () => {
  const server = await startServer();
  /** @type {Awaited<ReturnType<typeof openBrowser>>[]} */
  const sessions = [];
  try {
    const room = randomRoom('layers');
    const secret = randomSecret();
    const [alice, bob] = await Promise.all([openBrowser(server.url), openBrowser(server.url)]);
    sessions.push(alice, bob);
    const signaling = recordSignaling(alice.page);
    await alice.page.setViewportSize({ width: 1600, height: 1000 });
    await alice.page.goto(`${server.url}/${room}?name=Alice&autojoin=1#${secret}`);
    await waitState(alice.page, 'joined', 'Alice');
    await bob.page.goto(`${server.url}/${room}?name=Bob&autojoin=1#${secret}`);
    await waitState(bob.page, 'joined', 'Bob');
    const bobId = await participantId(bob.page, 'Bob');

    // Speaker view: Bob (the only other participant) is on the stage, drawn large.
    await setLayout(alice.page, 'speaker');
    await poll(
      () => alice.page.evaluate((id) => document.querySelector(`[data-participant="${id}"]`)?.hasAttribute('data-stage'), bobId),
      { what: "Bob's tile on Alice's stage" },
    );
    const bigView = await poll(
      () => {
        const views = signaling.sent.filter((m) => m.type === 'view');
        const last = views[views.length - 1];
        const bob = last?.tiles.find((/** @type {any} */ t) => t.participant_id === bobId);
        return bob && bob.height > 540 ? bob.height : false;
      },
      { what: "Alice's view: Bob's tile taller than 540 device pixels" },
    );
    if (NO_MEDIA) return;
    const big = await waitHeight(alice.page, bobId, (h) => h > 360, "Bob's high layer at Alice (frame height > 360)");

    // A small window and the grid: Bob's tile is a thumbnail, so a low layer is enough.
    await setLayout(alice.page, 'grid');
    await alice.page.setViewportSize({ width: 480, height: 400 });
    const small = await waitHeight(alice.page, bobId, (h) => h > 0 && h <= 270 && h < big, "Bob's low layer at Alice (frame height <= 270)");

    // Large again: back up (once the server's downlink estimate, measured on the low layer, has
    // grown back, hence the longer wait).
    await alice.page.setViewportSize({ width: 1600, height: 1000 });
    await setLayout(alice.page, 'speaker');
    const again = await waitHeight(alice.page, bobId, (h) => h > small && h > 360, "Bob's high layer at Alice again", 60000);
    console.log(`Bob at Alice: view height ${bigView}, frame heights ${big} -> ${small} -> ${again}`);

    // The fake microphones beep: someone becomes the active speaker, and their tile is marked.
    await poll(() => alice.page.evaluate(() => !!document.querySelector('[data-participant][data-speaking]')), {
      what: 'a tile with data-speaking at Alice',
    });
    assert.deepEqual(alice.errors.filter((e) => !/favicon/.test(e)), []);
  } finally {
    for (const s of sessions) await s.close();
    await server.stop();
  }
});

test('grid pages: own tile on page 1, speaker brought to page 1, other pages hidden and not in the view', { timeout: 60000 }, async () => {
  const server = await startServer();
  const s = await openBrowser(server.url);
  try {
    await s.page.goto(`${server.url}/`);
    // The page's own layout module, on 21 tiles without media (one local, twenty remote).
    const r = await s.page.evaluate(async () => {
      const { Grid } = await import('/assets/grid.js');
      const { Tile } = await import('/assets/tiles.js');
      const el = document.createElement('section');
      el.className = 'grid';
      el.style.cssText = 'position: fixed; inset: 0; background: #000';
      document.body.append(el);
      /** @type {{participant_id: string, height: number}[][]} */
      const views = [];
      const grid = new Grid(el, { onView: (v) => views.push(v) });
      grid.add(new Tile('me', 'Me', true));
      for (let i = 0; i < 20; i++) grid.add(new Tile(`p${i}`, `P ${i}`, false));
      const settle = () => new Promise((res) => setTimeout(res, 800));
      const snapshot = () => ({
        tiles: el.querySelectorAll('[data-participant]').length,
        shown: [...el.querySelectorAll('[data-participant]:not([hidden])')].map((t) => /** @type {HTMLElement} */ (t).dataset.participant),
        pages: el.dataset.pages,
        view: views[views.length - 1],
      });
      await settle();
      const first = snapshot();
      grid.setSpeaker('p18');
      await settle();
      const speaking = { ...snapshot(), marked: el.querySelector('[data-speaking]')?.getAttribute('data-participant') };
      grid.turnPage(1);
      await settle();
      const second = { ...snapshot(), page: el.dataset.page };
      return { first, speaking, second };
    });
    const { first, speaking, second } = r;
    assert.equal(first.tiles, 21, 'every tile stays in the DOM');
    assert.equal(first.pages, '2');
    assert.equal(first.shown.length, 16);
    assert.ok(first.shown.includes('me'), 'own tile on page 1');
    assert.deepEqual(first.view.map((t) => t.participant_id), first.shown.filter((id) => id !== 'me'));
    assert.ok(first.view.every((t) => t.height > 0 && t.height % 10 === 0), JSON.stringify(first.view));
    assert.ok(!first.view.some((t) => t.participant_id === 'p18'), 'tiles on page 2 are not in the view');
    // The active speaker comes to page 1 (and first in the view); one tile goes to page 2.
    assert.equal(speaking.marked, 'p18');
    assert.ok(speaking.shown.includes('p18'));
    assert.equal(speaking.shown.length, 16);
    assert.equal(speaking.view[0].participant_id, 'p18');
    assert.equal(second.page, '2');
    assert.equal(second.shown.length, 5);
    assert.ok(!second.shown.includes('me') && !second.shown.includes('p18'));
    assert.deepEqual(second.view.map((t) => t.participant_id).sort(), [...second.shown].sort());
    assert.deepEqual(s.errors, []);
  } finally {
    await s.close();
    await server.stop();
  }
});

test('the camera sends the layers the server asks for, also after later negotiations', { timeout: 120000 }, async () => {
  const server = await startServer();
  const room = randomRoom('layers');
  const secret = randomSecret();
  /** @type {Awaited<ReturnType<typeof openBrowser>>[]} */
  const sessions = [];
  try {
    /** @type {boolean[][]} what the server asked of Alice's camera */
    const asked = [];
    for (const name of ['Alice', 'Bob', 'Carol']) {
      const s = await openBrowser(server.url);
      sessions.push(s);
      if (name === 'Alice') {
        s.page.on('websocket', (ws) =>
          ws.on('framereceived', (f) => {
            const m = JSON.parse(String(f.payload));
            if (m.type === 'publish_layers') asked.push(m.active);
          }),
        );
      }
      await s.page.goto(`${server.url}/${room}?name=${name}&autojoin=1#${secret}`);
      await waitState(s.page, 'joined');
    }
    // Carol's arrival renegotiated everyone's receive slots after the server's first request.
    // Three tiles of a 1280x720 grid need at most the middle layer: the top one is turned off.
    const sending = () =>
      sessions[0].page.evaluate(() => {
        const pc = /** @type {RTCPeerConnection} */ (/** @type {any} */ (window).conclave.pc);
        const tx = pc.getTransceivers().find((t) => (t.sender.getParameters().encodings?.length ?? 0) > 1);
        return (tx?.sender.getParameters().encodings ?? []).map((e) => e.active);
      });
    await poll(
      async () => {
        const last = asked[asked.length - 1];
        return !!last && last.includes(false) && JSON.stringify(await sending()) === JSON.stringify(last);
      },
      { timeout: 30000, interval: 500, what: "Alice's camera sending the layers last asked for" },
    );
    assert.deepEqual(sessions[0].errors.filter((e) => !/favicon/.test(e)), []);
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await server.stop();
  }
});
