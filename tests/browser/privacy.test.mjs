// Privacy: two participants load the page, join and stay about a minute in a meeting. Every request
// either page makes (page, context, workers, WebSockets, resource timing) must go to the server's own
// origin (data: and blob: URLs allowed); WebRTC must use no STUN/TURN server and only the server's
// loopback candidate. The page's response carries the security headers (CSP with script-src 'self',
// Referrer-Policy no-referrer, nosniff, Permissions-Policy).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, openBrowser, poll, sleep, randomRoom, randomSecret, waitState, participantId, playing, NO_MEDIA,
} from './harness.mjs';

/** @typedef {Awaited<ReturnType<typeof openBrowser>>} Session */

const MEETING_MS = Number(process.env.CONCLAVE_PRIVACY_MS ?? 60000);

/**
 * Record every request of a session's context and page, from before the first navigation.
 * @param {Session} s
 * @param {string} origin
 */
function recordRequests(s, origin) {
  const host = new URL(origin).host;
  /** @type {{all: string[], foreign: string[]}} */
  const rec = { all: [], foreign: [] };
  const note = (/** @type {string} */ how, /** @type {string} */ u) => {
    rec.all.push(`${how} ${u}`);
    if (u.startsWith('data:') || u.startsWith('blob:')) return;
    let ok = false;
    try {
      const x = new URL(u);
      ok = (x.protocol === 'http:' || x.protocol === 'ws:') && x.host === host;
    } catch {
      ok = false;
    }
    if (!ok) rec.foreign.push(`${how} ${u}`);
  };
  const context = s.page.context();
  context.on('request', (r) => note('context', r.url()));
  s.page.on('request', (r) => note('page', r.url()));
  s.page.on('websocket', (ws) => note('websocket', ws.url()));
  s.page.on('worker', (w) => note('worker', w.url()));
  context.on('serviceworker', (w) => note('serviceworker', w.url()));
  s.page.on('popup', (p) => note('popup', p.url()));
  return rec;
}

/**
 * What the page's own Resource Timing saw, and its WebRTC ICE setup.
 * @param {import('playwright-core').Page} page
 */
function pageView(page) {
  return page.evaluate(async () => {
    const resources = performance.getEntriesByType('resource').map((e) => e.name);
    const pc = /** @type {RTCPeerConnection|null} */ (/** @type {any} */ (window).conclave.pc);
    /** @type {{type: string, candidateType: string, address: string, protocol: string, url?: string}[]} */
    const candidates = [];
    let iceServers = -1;
    if (pc) {
      iceServers = (pc.getConfiguration().iceServers ?? []).length;
      const stats = await pc.getStats();
      stats.forEach((st) => {
        if (st.type === 'local-candidate' || st.type === 'remote-candidate') {
          candidates.push({ type: st.type, candidateType: st.candidateType, address: st.address ?? st.ip ?? '', protocol: st.protocol, url: st.url });
        }
      });
    }
    return { resources, iceServers, candidates };
  });
}

test('privacy: no third-party request during a one-minute meeting; security headers', { timeout: 240000 }, async () => {
  const server = await startServer();
  /** @type {Session[]} */
  const sessions = [];
  try {
    const room = randomRoom('priv');
    const secret = randomSecret();
    const names = ['Alice', 'Bob'];
    /** @type {ReturnType<typeof recordRequests>[]} */
    const recs = [];
    for (const name of names) {
      const s = await openBrowser(server.url);
      sessions.push(s);
      recs.push(recordRequests(s, server.url));
      void name;
    }

    // Page load: the room page's security headers.
    const res = await sessions[0].page.goto(`${server.url}/${room}?name=Alice&autojoin=1#${secret}`);
    assert.ok(res, 'navigation response');
    const h = res.headers();
    console.log('room page headers:', JSON.stringify({
      csp: h['content-security-policy'], referrer: h['referrer-policy'], nosniff: h['x-content-type-options'], permissions: h['permissions-policy'],
    }));
    const csp = h['content-security-policy'] ?? '';
    assert.match(csp, /(^|;)\s*script-src 'self'\s*(;|$)/, "CSP script-src 'self' only");
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:|\*/, 'CSP has no inline, eval, or other origins');
    assert.equal(h['referrer-policy'], 'no-referrer');
    assert.equal(h['x-content-type-options'], 'nosniff');
    assert.ok(h['permissions-policy'], 'Permissions-Policy present');
    for (const p of ['/', '/assets/app.js']) {
      const r = await fetch(`${server.url}${p}`);
      assert.match(r.headers.get('content-security-policy') ?? '', /script-src 'self'/, `CSP on ${p}`);
      assert.equal(r.headers.get('referrer-policy'), 'no-referrer', `Referrer-Policy on ${p}`);
    }

    await sessions[1].page.goto(`${server.url}/${room}?name=Bob&autojoin=1#${secret}`);
    const ids = [];
    for (const [i, s] of sessions.entries()) {
      await waitState(s.page, 'joined', names[i]);
      ids.push(await participantId(s.page, names[i]));
    }
    if (!NO_MEDIA) {
      await poll(() => playing(sessions[0].page, ids[1]), { what: "Alice plays Bob's video", timeout: 40000 });
      await poll(() => playing(sessions[1].page, ids[0]), { what: "Bob plays Alice's video", timeout: 40000 });
    }

    // About a minute in the meeting, checking along the way.
    const until = Date.now() + MEETING_MS;
    while (Date.now() < until) {
      await sleep(Math.min(10000, Math.max(0, until - Date.now())));
      for (const [i, r] of recs.entries()) assert.deepEqual(r.foreign, [], `${names[i]}: third-party requests`);
      for (const s of sessions) assert.equal(await s.page.evaluate(() => document.body.dataset.state), 'joined');
    }
    if (!NO_MEDIA) {
      await poll(() => playing(sessions[0].page, ids[1]), { what: "Alice still plays Bob's video" });
      await poll(() => playing(sessions[1].page, ids[0]), { what: "Bob still plays Alice's video" });
    }

    for (const [i, s] of sessions.entries()) {
      const view = await pageView(s.page);
      const foreignRes = view.resources.filter((u) => !u.startsWith(server.url) && !u.startsWith('data:') && !u.startsWith('blob:'));
      assert.deepEqual(foreignRes, [], `${names[i]}: resource timing shows other origins`);
      assert.equal(view.iceServers, 0, `${names[i]}: no STUN/TURN server configured`);
      const relayOrSrflx = view.candidates.filter((c) => c.candidateType === 'srflx' || c.candidateType === 'relay' || c.url);
      assert.deepEqual(relayOrSrflx, [], `${names[i]}: no server-reflexive or relay candidates`);
      if (!NO_MEDIA) {
        const remote = view.candidates.filter((c) => c.type === 'remote-candidate');
        assert.ok(remote.length > 0, `${names[i]}: has a remote candidate`);
        for (const c of remote) assert.equal(c.address, '127.0.0.1', `${names[i]}: remote candidate is the server`);
      }
      const kinds = new Set(recs[i].all.map((x) => x.split(' ')[0]));
      console.log(`${names[i]}: ${recs[i].all.length} requests recorded (${[...kinds].join(', ')}), ` +
        `${view.resources.length} resource entries, ${view.candidates.length} ICE candidates, 0 foreign`);
      assert.deepEqual(recs[i].foreign, [], `${names[i]}: third-party requests`);
      assert.deepEqual(s.foreign, [], `${names[i]}: third-party requests (harness)`);
    }

    // The landing and pre-join pages link to the privacy page on the same origin.
    const p = sessions[0].page;
    await p.goto(`${server.url}/${room}?name=Alice#${secret}`);
    await waitState(p, 'prejoin', 'Alice (pre-join)');
    assert.equal(await p.locator('#prejoin a[href="/privacy"]').count(), 1, 'privacy link on the pre-join page');
    assert.equal(await p.locator('#landing a[href="/privacy"]').count(), 1, 'privacy link on the landing page');
    // The privacy page itself: served by the server, same headers, nothing from elsewhere.
    await p.locator('#prejoin a[href="/privacy"]').click();
    await poll(async () => new URL(p.url()).pathname === '/privacy', { what: 'privacy page opened' });
    const pr = await fetch(`${server.url}/privacy`);
    assert.equal(pr.status, 200, '/privacy answers 200');
    assert.match(pr.headers.get('content-security-policy') ?? '', /script-src 'self'/, 'CSP on /privacy');
    await p.waitForLoadState('load');
    assert.ok((await p.locator('body').innerText()).length > 200, 'privacy page has content');
    assert.deepEqual(recs[0].foreign, []);
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await server.stop();
  }
});
