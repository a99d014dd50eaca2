// Key manager state transitions: authenticated hellos, pairwise key delivery, names, safety code,
// ratchet on join, rotation on leave, encrypted application messages, and what a wrong secret or
// the server itself cannot do.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Net } from './net.mjs';
import { roomKeys, safetyCode, generateSecret, validSecret, unb64 } from '../../web/e2ee/keys.js';
import { GENERATIONS } from '../../web/e2ee/sframe.js';

const base = (/** @type {number} */ kid) => Math.floor(kid / GENERATIONS);

test('secrets and room keys', async () => {
  const s = generateSecret();
  assert.ok(validSecret(s), s);
  assert.equal(s.length, 22);
  assert.notEqual(generateSecret(), s);
  assert.ok(!validSecret('short'));
  assert.ok(!validSecret('has spaces in it, sixteen+'));
  // Bound to the room: the same secret gives other keys in another room.
  const a = await roomKeys(s, 'a');
  const b = await roomKeys(s, 'b');
  assert.notDeepEqual(a.pairSalt, b.pairSalt);
  // Safety code: order-independent, changes with any key.
  const m = [{ id: 'x', pub: new Uint8Array([1]) }, { id: 'y', pub: new Uint8Array([2]) }];
  const c1 = await safetyCode(m);
  assert.match(c1, /^\d{4}( \d{4}){5}$/);
  assert.equal(await safetyCode([...m].reverse()), c1);
  assert.notEqual(await safetyCode([m[0], { id: 'y', pub: new Uint8Array([3]) }]), c1);
});

test('three members exchange keys and names; safety codes match; app messages decrypt', async () => {
  const net = new Net();
  // Long, unusual names: a short one like "Bob" turns up in random base64 now and then.
  const a = await net.join('pa', { name: 'Alice Quennevoort' });
  const b = await net.join('pb', { name: 'Bob Zwirnemann' });
  const c = await net.join('pc', { name: 'Carol Ystradgynlais' });
  for (const [km, others] of /** @type {const} */ ([[a, ['pb', 'pc']], [b, ['pa', 'pc']], [c, ['pa', 'pb']]])) {
    assert.deepEqual(km.memberIds().sort(), others);
    for (const o of others) {
      const sender = /** @type {any} */ (net.members.get(o));
      assert.ok(await km.recvKey(sender.send.kid, o), `${km.selfId} has ${o}'s current key`);
    }
  }
  assert.equal(a.stats.lastSafety, b.stats.lastSafety);
  assert.equal(b.stats.lastSafety, c.stats.lastSafety);
  const names = Object.fromEntries(net.eventsOf('pa', 'member').map((m) => [m.id, m.name]));
  assert.deepEqual(names, { pb: 'Bob Zwirnemann', pc: 'Carol Ystradgynlais' });

  await b.sendApp({ k: 'chat', text: 'hello from Bob Zwirnemann' });
  await net.settle();
  for (const id of ['pa', 'pc']) {
    assert.deepEqual(net.eventsOf(id, 'app').map((e) => [e.from, e.msg.text]), [['pb', 'hello from Bob Zwirnemann']]);
  }
  // Nothing on the wire carries a name or the chat text in the clear.
  for (const blob of net.wire) {
    for (const secret of ['Alice Quennevoort', 'Bob Zwirnemann', 'Carol Ystradgynlais', 'hello from Bob']) {
      assert.ok(!blob.includes(secret), blob);
    }
  }
});

test('a join ratchets every sender key; the joiner cannot decrypt the earlier generation', async () => {
  const net = new Net();
  const a = await net.join('pa');
  const b = await net.join('pb');
  const kidBefore = /** @type {any} */ (a.send).kid;
  await a.sendApp({ k: 'chat', text: 'before D' });
  await net.settle();
  const d = await net.join('pd');
  const kidAfter = /** @type {any} */ (a.send).kid;
  assert.equal(kidAfter, kidBefore + 1, 'same key chain, next generation');
  assert.ok(d.keys.has(kidAfter));
  assert.ok(!d.keys.has(kidBefore), 'the joiner was given only the new generation');
  assert.equal(await d.recvKey(kidBefore, 'pa'), null, 'and cannot derive the old one');
  // Those already present derive the new generation themselves: no message needed.
  assert.ok(await b.recvKey(kidAfter, 'pa'));
  await a.sendApp({ k: 'chat', text: 'after D' });
  await net.settle();
  assert.deepEqual(net.eventsOf('pd', 'app').map((e) => e.msg.text), ['after D']);
  assert.deepEqual(net.eventsOf('pb', 'app').map((e) => e.msg.text), ['before D', 'after D']);
});

test('a leave rotates every remaining sender to a fresh key the leaver never gets', async () => {
  const net = new Net();
  const a = await net.join('pa');
  const b = await net.join('pb');
  const c = await net.join('pc');
  const safetyBefore = a.stats.lastSafety;
  const kids = { a: /** @type {any} */ (a.send).kid, b: /** @type {any} */ (b.send).kid };
  const sentBefore = net.sent;
  await net.leave('pc');
  const ka = /** @type {any} */ (a.send).kid;
  const kb = /** @type {any} */ (b.send).kid;
  assert.notEqual(base(ka), base(kids.a), 'fresh key, not a ratchet step');
  assert.notEqual(base(kb), base(kids.b));
  assert.ok(b.keys.has(ka) && a.keys.has(kb));
  assert.ok(!c.keys.has(ka) && !c.keys.has(kb), 'the leaver has neither new key');
  assert.equal(net.sent - sentBefore, 2, 'one key message per remaining pair direction');
  assert.notEqual(a.stats.lastSafety, safetyBefore, 'safety code changes with membership');
  assert.equal(a.stats.lastSafety, b.stats.lastSafety);
  assert.deepEqual(a.memberIds(), ['pb']);
  // Keys of the leaver are dropped.
  assert.ok(net.eventsOf('pa', 'dropKeys').some((e) => e.owner === 'pc'));
});

test('a wrong secret is refused by everyone and gets no key', async () => {
  const net = new Net();
  const a = await net.join('pa');
  const b = await net.join('pb');
  const x = await net.join('px', { secret: 'not-the-meeting-secret' });
  assert.deepEqual(a.memberIds(), ['pb']);
  assert.deepEqual(x.memberIds(), []);
  assert.equal(x.keys.size, 0);
  assert.ok(net.eventsOf('pa', 'unverified').some((e) => e.id === 'px'));
  assert.ok(net.eventsOf('px', 'unverified').length >= 2, 'the wrong-secret client sees it cannot verify anyone');
  assert.notEqual(x.stats.lastSafety, a.stats.lastSafety);
  assert.equal(a.stats.lastSafety, b.stats.lastSafety);
});

test('the server cannot insert a key, re-attribute a hello, or replay an app message', async () => {
  const net = new Net();
  const a = await net.join('pa');
  const b = await net.join('pb');
  // A hello relayed as coming from someone else than the id it names is ignored.
  const helloA = await a.hello(true);
  await b.receive('pz', helloA);
  // A hello with the server's own key and a made-up MAC is refused.
  const forged = JSON.parse(helloA);
  forged.id = 'pz';
  forged.pub = Buffer.from(unb64(forged.pub)).toString('base64');
  await b.receive('pz', JSON.stringify(forged));
  await net.settle();
  assert.deepEqual(b.memberIds(), ['pa']);
  // A replayed application message is delivered once.
  let captured = '';
  net.tamper = (from, to, data) => {
    if (JSON.parse(data).t === 'app') captured = data;
    return data;
  };
  await a.sendApp({ k: 'chat', text: 'once' });
  await net.settle();
  await b.receive('pa', captured);
  await net.settle();
  assert.deepEqual(net.eventsOf('pb', 'app').map((e) => e.msg.text), ['once']);
  // The same message re-attributed to another sender does not decrypt.
  await b.receive('pq', captured);
  await net.settle();
  assert.equal(net.eventsOf('pb', 'app').length, 1);
});
