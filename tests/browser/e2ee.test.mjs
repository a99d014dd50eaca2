// End-to-end encryption, as users and as the server see it. Runs a tap build of the server
// (`cargo build -p conclave-server --features tap`, copied to target/debug/conclave-tap; override
// with CONCLAVE_TAP_BIN) that records every signaling frame it receives and the RTP payloads it
// forwards.
//
// 1. Three participants with the meeting secret see and hear each other, their names arrive
//    (encrypted), the safety codes match; chat, a raised hand and a reaction arrive.
// 2. One leaves: the others' key ids change (fresh keys) and they still decode each other.
// 3. A fourth with a wrong secret decodes no frame and is told it can't decrypt.
// 4. The server's view: no name or chat text in anything it received on signaling; video payloads
//    are the VP8 header bytes then an SFrame ciphertext under a participant's key id; audio
//    payloads decrypt as SFrame with the participants' keys (so they are not plain Opus); in
//    redundant audio (RED) only the block headers are clear, every block is such a ciphertext.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startServer, openBrowser, poll, sleep, randomRoom, randomSecret, remoteTiles, inboundAudio,
} from './harness.mjs';
import { decodeHeader, deriveKeySalt, decrypt, ratchet, GENERATIONS } from '../../web/e2ee/sframe.js';
import { parseRed } from '../../web/e2ee/red.js';

/** @typedef {Awaited<ReturnType<typeof openBrowser>>} Session */

const NAMES = ['Alice Quennevoort', 'Bob Zwirnemann', 'Carol Ystradgynlais'];
const WRONG = 'Mallory Wrongkey';
const CHAT = 'the eagle lands at seventeen hundred';

/**
 * Join through the pre-join page (no `?name=`: a query string would reach the server).
 * @param {Session} s @param {string} url @param {string} name
 */
async function join(s, url, name) {
  await s.page.goto(url);
  await poll(() => s.page.evaluate(() => document.body.dataset.state === 'prejoin'), { what: 'pre-join page' });
  // Wait for camera and microphone, as a person would see the preview before joining.
  await poll(() => s.page.evaluate(() => {
    const v = /** @type {HTMLVideoElement|null} */ (document.getElementById('preview'));
    return !!v && v.videoWidth > 0 && !(/** @type {HTMLSelectElement} */ (document.getElementById('mic-select'))).disabled;
  }), { what: 'camera preview' });
  await s.page.fill('#name-input', name);
  await s.page.click('#join-btn');
  await poll(() => s.page.evaluate(() => document.body.dataset.state === 'joined'), { what: `${name} joined` });
  return /** @type {string} */ (await s.page.evaluate(() => /** @type {any} */ (window).conclave.participantId));
}

/** @param {Session} s @param {number} n @param {string} who */
async function playingTiles(s, n, who) {
  return poll(async () => {
    const a = await remoteTiles(s.page);
    if (a.length !== n || a.some((t) => t.width === 0)) return false;
    await sleep(1000);
    const b = await remoteTiles(s.page);
    const ok = b.length === n && b.every((t) => t.frames > (a.find((x) => x.id === t.id)?.frames ?? Infinity));
    return ok ? b : false;
  }, { timeout: 45000, interval: 500, what: `${who}: ${n} remote tiles playing` }).catch(async (e) => {
    const detail = JSON.stringify({ tiles: await remoteTiles(s.page), e2ee: await e2eeStats(s) });
    throw new Error(`${e.message}; state: ${detail}`);
  });
}

/** @param {Session} s */
const e2eeStats = (s) => s.page.evaluate(() => /** @type {any} */ (window).conclave.e2ee.stats());
/** @param {Session} s */
const safety = (s) => s.page.evaluate(() => document.getElementById('safety-code')?.textContent ?? '');
/** @param {Session} s */
const status = (s) => s.page.evaluate(() => document.getElementById('e2ee-btn')?.dataset.status ?? '');

/**
 * Every key a page holds (its own and the others'), so the test can check what the server saw.
 * @param {Session} s
 * @returns {Promise<[number, string][]>}
 */
function keysOf(s) {
  return s.page.evaluate(() => {
    const km = /** @type {any} */ (window).conclave.e2ee.km;
    const hex = (/** @type {Uint8Array} */ b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    /** @type {[number, string][]} */
    const out = [[km.send.kid, hex(km.send.raw)]];
    for (const [kid, k] of km.keys) out.push([kid, hex(k.raw)]);
    return out;
  });
}

test('end-to-end encryption: meeting, rotation, wrong secret, and what the server sees', { timeout: 420000 }, async () => {
  const tapDir = mkdtempSync(path.join(os.tmpdir(), 'conclave-tap-'));
  const server = await startServer({
    bin: process.env.CONCLAVE_TAP_BIN ?? '../../target/debug/conclave-tap',
    env: { CONCLAVE_TAP_DIR: tapDir },
  });
  /** @type {Session[]} */
  const sessions = [];
  /** @type {Map<number, string>} every key seen in any page, by KID */
  const keys = new Map();
  const collectKeys = async (/** @type {Session[]} */ ss) => {
    for (const s of ss) for (const [kid, raw] of await keysOf(s)) keys.set(kid, raw);
  };
  try {
    const room = randomRoom('e2ee');
    const secret = randomSecret();
    const url = `${server.url}/${room}#${secret}`;
    const [alice, bob, carol] = await Promise.all(NAMES.map(() => openBrowser(server.url)));
    sessions.push(alice, bob, carol);
    const ids = [];
    for (const [i, s] of [alice, bob, carol].entries()) ids.push(await join(s, url, NAMES[i]));

    // 1. Everyone sees and hears the two others, under their real names.
    for (const [i, s] of [alice, bob, carol].entries()) {
      const tiles = await playingTiles(s, 2, NAMES[i]);
      assert.deepEqual(tiles.map((t) => t.name).sort(), NAMES.filter((_, j) => j !== i).sort());
      const others = ids.filter((_, j) => j !== i);
      await poll(async () => {
        const a = await inboundAudio(s.page);
        await sleep(1000);
        const b = await inboundAudio(s.page);
        return others.every((id) => b[id] && a[id] && b[id].packetsReceived > a[id].packetsReceived && b[id].totalAudioEnergy > 0);
      }, { timeout: 30000, what: `${NAMES[i]} hears the others` });
    }
    const codes = await poll(async () => {
      const c = await Promise.all([alice, bob, carol].map(safety));
      return c.every((x) => /^\d{4}( \d{4}){5}$/.test(x)) && new Set(c).size === 1 ? c : false;
    }, { what: 'the same safety code on all three screens' });
    console.log('safety code on all three:', codes[0]);
    for (const s of [alice, bob, carol]) assert.equal(await status(s), 'ok');
    const statsBefore = await Promise.all([alice, bob, carol].map(e2eeStats));
    for (const [i, st] of statsBefore.entries()) {
      assert.ok(st.encrypted > 0 && st.decrypted > 0, `${NAMES[i]} encrypts and decrypts: ${JSON.stringify(st)}`);
    }

    // Chat: Alice writes; Bob and Carol see it with her name and an unread count.
    await alice.page.click('#chat-btn');
    await alice.page.fill('#chat-input', CHAT);
    await alice.page.press('#chat-input', 'Enter');
    for (const s of [bob, carol]) {
      await poll(() => s.page.evaluate((text) => [...document.querySelectorAll('#chat-log li')].some((li) => li.textContent?.includes(text)), CHAT), { what: 'chat arrives' });
      assert.equal(await s.page.textContent('#chat-log li .who'), NAMES[0]);
      assert.equal(await s.page.textContent('#chat-unread'), '1');
    }
    // Bob raises his hand: it shows in Alice's queue and on his tile there.
    await bob.page.click('#hand-btn');
    await poll(() => alice.page.evaluate((name) => document.getElementById('hands-list')?.textContent?.includes(name), NAMES[1]), { what: "Bob's hand in Alice's queue" });
    assert.ok(await alice.page.evaluate((id) => document.querySelector(`[data-participant="${id}"]`)?.hasAttribute('data-hand'), ids[1]));
    // Carol reacts: the emoji shows on Carol's tile at Alice's.
    await carol.page.click('button.react[data-emoji="👍"]');
    await poll(() => alice.page.evaluate((id) => !!document.querySelector(`[data-participant="${id}"] .reaction`), ids[2]), { interval: 100, what: "Carol's reaction on her tile" });

    // 2. Carol leaves: Alice and Bob draw fresh keys, and still decode each other.
    await collectKeys([alice, bob, carol]);
    const base = (/** @type {number} */ kid) => Math.floor(kid / GENERATIONS);
    const [kidA, kidB] = [statsBefore[0].sendKid, statsBefore[1].sendKid];
    await carol.page.click('#leave-btn');
    await poll(() => carol.page.evaluate(() => document.body.dataset.state === 'left'), { what: 'Carol left' });
    await carol.close();
    const [newA, newB] = await poll(async () => {
      const [a, b] = await Promise.all([alice, bob].map(e2eeStats));
      return base(a.sendKid) !== base(kidA) && base(b.sendKid) !== base(kidB) ? [a.sendKid, b.sendKid] : false;
    }, { what: 'fresh sender keys after Carol left' });
    await poll(async () => {
      const [a1, b1] = await Promise.all([alice, bob].map(e2eeStats));
      await sleep(1000);
      const [a2, b2] = await Promise.all([alice, bob].map(e2eeStats));
      return (a2.byKid[newB] ?? 0) > (a1.byKid[newB] ?? 0) && (b2.byKid[newA] ?? 0) > (b1.byKid[newA] ?? 0);
    }, { what: 'frames under the new keys decrypted' });
    await playingTiles(alice, 1, 'Alice after Carol left');
    await playingTiles(bob, 1, 'Bob after Carol left');
    console.log(`key ids: Alice ${kidA} -> ${newA}, Bob ${kidB} -> ${newB}`);
    await collectKeys([alice, bob]);

    // 3. A fourth participant with a wrong secret: told it can't decrypt; decodes nothing.
    const mallory = await openBrowser(server.url);
    sessions.push(mallory);
    const malloryId = await join(mallory, `${server.url}/${room}#${randomSecret()}`, WRONG);
    await poll(async () => (await status(mallory)) === 'cant_decrypt', { what: 'Mallory sees she cannot decrypt' });
    assert.match(await mallory.page.textContent('#e2ee-alert') ?? '', /Can't decrypt this meeting/);
    assert.ok(await mallory.page.isVisible('#e2ee-alert'));
    await poll(async () => (await remoteTiles(mallory.page)).length === 2, { what: 'Mallory has two tiles' });
    await sleep(5000); // media has had time to flow to her
    const ms = await e2eeStats(mallory);
    assert.equal(ms.decrypted, 0, `Mallory decrypted nothing: ${JSON.stringify(ms)}`);
    for (const t of await remoteTiles(mallory.page)) {
      assert.equal(t.frames, 0, 'Mallory decodes no video frame');
      assert.ok(!NAMES.includes(t.name), 'and learns no name');
    }
    for (const s of [alice, bob]) {
      await poll(() => s.page.evaluate((id) => document.querySelector(`[data-participant="${id}"] .name`)?.textContent === 'Unverified participant', malloryId), { what: 'Mallory shown as unverified' });
    }
    // Alice still plays Bob's video with Mallory present.
    await poll(async () => {
      const a = (await remoteTiles(alice.page)).find((t) => t.id === ids[1]);
      await sleep(1000);
      const b = (await remoteTiles(alice.page)).find((t) => t.id === ids[1]);
      return a && b && b.frames > a.frames;
    }, { what: "Alice still plays Bob's video" });
    for (const [i, s] of [alice, bob].entries()) assert.deepEqual(s.foreign, [], `${NAMES[i]} made third-party requests`);
    await collectKeys([alice, bob, mallory]); // Mallory's own (useless) key is forwarded too
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
    await server.stop();
  }

  // 4. What the server saw.
  const signaling = readFileSync(path.join(tapDir, 'signaling.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(signaling.length > 20, 'the tap recorded signaling');
  for (const secretText of [...NAMES, WRONG, CHAT, ...NAMES.map((n) => n.split(' ')[1])]) {
    const hit = signaling.find((frame) => frame.toLowerCase().includes(secretText.toLowerCase()));
    assert.equal(hit, undefined, `"${secretText}" reached the server in the clear`);
  }
  const joins = signaling.map((f) => JSON.parse(f)).filter((m) => m.type === 'join');
  assert.equal(joins.length, 4);
  for (const j of joins) assert.equal(j.name, '-', 'joins carry the placeholder name');

  const media = readFileSync(path.join(tapDir, 'media.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const bases = new Set([...keys.keys()].map((k) => Math.floor(k / GENERATIONS)));
  let frames = 0;
  let keyframes = 0;
  /** @type {number[]} */
  const hist = new Array(256).fill(0);
  for (const { kind, payload } of media) {
    const p = Buffer.from(payload, 'hex');
    if (kind !== 'video') continue;
    const d = vp8Descriptor(p);
    if (d.start) {
      // First packet of a frame: the VP8 frame tag in the clear (10 bytes for keyframes), then
      // an SFrame header naming a participant's key.
      const keyframe = (p[d.length] & 1) === 0;
      const clear = keyframe ? 10 : 3;
      const h = decodeHeader(p, d.length + clear);
      assert.ok(h, 'an SFrame header follows the clear bytes');
      assert.ok(bases.has(Math.floor(Number(h.kid) / GENERATIONS)), `KID ${h.kid} is a participant's key`);
      frames++;
      if (keyframe) keyframes++;
      for (const b of p.subarray(d.length + clear + h.length)) hist[b]++;
    } else {
      for (const b of p.subarray(d.length)) hist[b]++;
    }
  }
  assert.ok(frames > 100, `video frame starts seen: ${frames}`);
  assert.ok(keyframes > 0, 'the SFU still sees keyframes');
  const total = hist.reduce((a, b) => a + b, 0);
  const chi = hist.reduce((a, n) => a + (n - total / 256) ** 2 / (total / 256), 0);
  assert.ok(chi < 400, `video payload bytes look uniformly random (chi-square ${chi.toFixed(0)} over ${total} bytes)`);

  // Audio: every payload is an SFrame ciphertext; those under keys the pages held decrypt.
  // Redundant audio: the server reads the RED block headers; each block is a ciphertext. (Chrome
  // sends an empty RED frame now and then: it stays empty.)
  const red = media.filter((m) => m.kind === 'red' && m.payload.length > 0).map((m) => parseRed(Buffer.from(m.payload, 'hex')));
  assert.ok(red.every((blocks) => blocks !== null), 'RED block headers are readable');
  const audio = [
    ...media.filter((m) => m.kind === 'audio').map((m) => Buffer.from(m.payload, 'hex')),
    ...red.flatMap((blocks) => (blocks ?? []).filter((b) => b.data.length > 0).map((b) => Buffer.from(b.data))),
  ];
  assert.ok(audio.length > 100, `audio payloads seen: ${audio.length}`);
  let decrypted = 0;
  /** @type {Map<number, Promise<import('../../web/e2ee/sframe.js').SFrameKey | null>>} */
  const cache = new Map();
  const keyFor = (/** @type {number} */ kid) => {
    if (!cache.has(kid)) {
      cache.set(kid, (async () => {
        const start = kid - (kid % GENERATIONS);
        let best = -1;
        for (const k of keys.keys()) if (k >= start && k <= kid && k > best) best = k;
        if (best < 0) return null;
        let raw = Uint8Array.from(Buffer.from(/** @type {string} */ (keys.get(best)), 'hex'));
        for (let k = best; k < kid; k++) raw = await ratchet(raw);
        return deriveKeySalt(raw, BigInt(kid));
      })());
    }
    return /** @type {Promise<any>} */ (cache.get(kid));
  };
  for (const p of audio) {
    const h = decodeHeader(p);
    assert.ok(h && bases.has(Math.floor(Number(h.kid) / GENERATIONS)), 'audio starts with an SFrame header');
    const k = await keyFor(Number(h.kid));
    if (!k) continue;
    const pt = await decrypt(k, h, new Uint8Array(0), p).catch(() => null);
    if (pt) decrypted++;
  }
  console.log(`server view: ${signaling.length} signaling frames, ${frames} video frames (${keyframes} keyframes), ` +
    `chi-square ${chi.toFixed(0)}, ${decrypted}/${audio.length} audio payloads and RED blocks (from ${red.length} RED payloads) decrypted with the participants' keys`);
  assert.ok(decrypted > audio.length / 2, 'audio payloads are SFrame ciphertexts under the meeting keys');
  // What the server saw is kept only when an assertion above failed, to look at.
  rmSync(tapDir, { recursive: true, force: true });
});

/**
 * VP8 RTP payload descriptor (RFC 7741): its length and whether the packet starts a frame.
 * @param {Uint8Array} p
 */
function vp8Descriptor(p) {
  const b0 = p[0];
  let i = 1;
  if (b0 & 0x80) {
    const x = p[i++];
    if (x & 0x80) i += p[i] & 0x80 ? 2 : 1;
    if (x & 0x40) i++;
    if (x & 0x30) i++;
  }
  return { length: i, start: (b0 & 0x10) !== 0 && (b0 & 0x07) === 0 };
}
