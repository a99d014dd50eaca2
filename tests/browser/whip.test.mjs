// WHIP and WHEP with an independent WebRTC implementation (aiortc, Python): refused while the
// meeting requires end-to-end encryption; once a moderator allows participants who cannot
// encrypt, an aiortc publisher appears in the browser as a participant marked not encrypted whose
// video plays, and an aiortc viewer decodes the browser's media.
//
// Needs the Python environment `.ci/run` makes (tests/.venv with aiortc); skipped without it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startServer, openBrowser, poll, randomRoom, randomSecret, remoteTiles, waitState, playing } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const PYTHON = process.env.CONCLAVE_PYTHON ?? path.resolve(here, '../.venv/bin/python');
const SECRET = 'browser-whip-test-secret-of-32-characters-or-more';

/**
 * An HS256 join token for `room`.
 * @param {string} room
 * @param {string} [name]
 */
function token(room, name) {
  const b64 = (/** @type {object} */ o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const claims = { room, exp: Math.floor(Date.now() / 1000) + 600, ...(name ? { context: { user: { name } } } : {}) };
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

/**
 * Run the aiortc client; its JSON lines arrive in `events`.
 * @param {'publish' | 'publish-h264' | 'watch'} mode
 * @param {string} url
 * @param {string} bearer
 */
function aiortc(mode, url, bearer) {
  const proc = spawn(PYTHON, [path.join(here, 'whip_client.py'), mode, url, bearer], { stdio: ['pipe', 'pipe', 'pipe'] });
  /** @type {any[]} */
  const events = [];
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  readline.createInterface({ input: proc.stdout }).on('line', (l) => {
    try {
      events.push(JSON.parse(l));
    } catch {
      /* not ours */
    }
  });
  const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  return {
    events,
    exited,
    /** @param {string} name */
    event: (name) => poll(() => events.find((e) => e.event === name || e.event === 'refused') ?? (proc.exitCode !== null ? { event: 'exited', stderr } : null), { timeout: 60000, what: `aiortc ${mode}: ${name}` }),
    async stop() {
      proc.stdin.end();
      await exited;
    },
  };
}

test('aiortc publishes into a meeting over WHIP and watches it over WHEP', { timeout: 300000, skip: !existsSync(PYTHON) && 'no Python environment with aiortc (run .ci/run)' }, async () => {
  const server = await startServer({ env: { CONCLAVE_JWT_SECRET: SECRET } });
  /** @type {Awaited<ReturnType<typeof openBrowser>>[]} */
  const sessions = [];
  /** @type {ReturnType<typeof aiortc>[]} */
  const clients = [];
  try {
    const room = randomRoom('whip');
    const alice = await openBrowser(server.url);
    sessions.push(alice);
    await alice.page.goto(`${server.url}/${room}?name=Alice&autojoin=1#${randomSecret()}`);
    await waitState(alice.page, 'joined', 'Alice');

    // The meeting requires end-to-end encryption: the publisher is refused, and told why.
    const early = aiortc('publish', `${server.url}/whip/${room}`, token(room));
    clients.push(early);
    const refused = await early.event('created');
    assert.equal(refused.event, 'refused');
    assert.equal(refused.status, 403);
    assert.equal(refused.problem.code, 'e2ee_required');

    // Alice, the moderator, allows participants who cannot encrypt.
    await poll(() => alice.page.isVisible('#mod-bar [data-action="e2ee"]'), { what: "Alice's moderator toggle" });
    await alice.page.click('#mod-bar [data-action="e2ee"]');
    await poll(async () => (await alice.page.getAttribute('#mod-bar [data-action="e2ee"]', 'aria-pressed')) === 'true', { what: 'toggle pressed' });

    const publisher = aiortc('publish', `${server.url}/whip/${room}`, token(room, 'Lecture feed'));
    clients.push(publisher);
    const created = await publisher.event('created');
    assert.equal(created.event, 'created', JSON.stringify(created));
    assert.match(created.location, new RegExp(`/whip/${room}/`));
    assert.equal((await publisher.event('connected')).event, 'connected');

    // Alice sees it as a participant: its name, its video playing, marked not encrypted.
    const tile = await poll(async () => (await remoteTiles(alice.page)).find((t) => t.name === 'Lecture feed'), { what: 'the WHIP tile' });
    await poll(() => playing(alice.page, tile.id), { timeout: 60000, what: "Alice plays the WHIP publisher's video" });
    const tileEl = alice.page.locator(`#grid [data-participant="${tile.id}"]`);
    assert.equal(await tileEl.getAttribute('data-e2ee'), 'off');
    assert.ok(await tileEl.locator('.e2ee-off-badge').isVisible());
    await poll(async () => (await alice.page.getAttribute('#e2ee-btn', 'data-e2ee')) === 'off', { what: "Alice's indicator warns" });
    assert.match((await alice.page.textContent('#e2ee-label')) ?? '', /Lecture feed cannot encrypt/);

    // An encoder that sends only H.264 (as OBS Studio does) plays in the browser too.
    const h264 = aiortc('publish-h264', `${server.url}/whip/${room}`, token(room, 'H264 feed'));
    clients.push(h264);
    const h264Created = await h264.event('created');
    assert.equal(h264Created.event, 'created');
    assert.ok(h264Created.codecs.includes('H264') && !h264Created.codecs.includes('VP8'), JSON.stringify(h264Created.codecs));
    const h264Tile = await poll(async () => (await remoteTiles(alice.page)).find((t) => t.name === 'H264 feed'), { what: 'the H.264 tile' });
    await poll(() => playing(alice.page, h264Tile.id), { timeout: 60000, what: "Alice plays the H.264 publisher's video" });
    await h264.stop();

    // A WHEP viewer decodes the room's first audio and video tracks: Alice's, sent in the clear
    // while participants who cannot encrypt are present.
    const viewer = aiortc('watch', `${server.url}/whep/${room}`, token(room));
    clients.push(viewer);
    assert.equal((await viewer.event('created')).event, 'created');
    await poll(() => viewer.events.find((e) => e.event === 'frames' && e.video >= 30 && e.audio >= 30), { timeout: 60000, what: 'the viewer decodes video and audio' });
    const viewerTile = await poll(async () => (await remoteTiles(alice.page)).find((t) => t.name === 'Viewer'), { what: 'the WHEP viewer listed' });

    // Ending the sessions (DELETE) removes both participants from Alice's page.
    await viewer.stop();
    await publisher.stop();
    assert.ok(viewer.events.some((e) => e.event === 'deleted' && e.status === 200));
    assert.ok(publisher.events.some((e) => e.event === 'deleted' && e.status === 200));
    await poll(async () => !(await remoteTiles(alice.page)).some((t) => t.id === tile.id || t.id === viewerTile.id), { what: 'tiles gone' });
    assert.deepEqual(alice.foreign, []);
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    await Promise.all(sessions.map((x) => x.close()));
    await server.stop();
  }
});
