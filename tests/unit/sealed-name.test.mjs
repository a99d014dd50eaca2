// Sealed names (a lobby knock's name encrypted with the room secret): round trip, bound to the
// secret and the room, tamper-evident, within the server's size limit, and no name in the clear.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sealName, openSealedName, MAX_SEALED_NAME } from '../../web/e2ee/sealed-name.js';
import { generateSecret } from '../../web/e2ee/keys.js';

test('a sealed name opens with the same secret and room only', async () => {
  const secret = generateSecret();
  const sealed = await sealName(secret, 'board', 'Zoë Ångström');
  assert.match(sealed, /^[A-Za-z0-9_-]+$/, 'base64url');
  // Checked on the decoded bytes: a short string turns up in random base64 text by chance.
  assert.ok(!Buffer.from(sealed, 'base64url').includes(Buffer.from('Zoë Ångström')), 'no name in the clear');
  assert.equal(await openSealedName(secret, 'board', sealed), 'Zoë Ångström');
  assert.equal(await openSealedName(generateSecret(), 'board', sealed), null, 'another secret');
  assert.equal(await openSealedName(secret, 'other-room', sealed), null, 'another room');
  // A fresh IV each time: the same name never looks the same twice.
  assert.notEqual(await sealName(secret, 'board', 'Zoë Ångström'), sealed);
});

test('tampered, truncated or malformed sealed names are refused', async () => {
  const secret = generateSecret();
  const sealed = await sealName(secret, 'r', 'Alice');
  const flip = sealed.slice(0, 20) + (sealed[20] === 'A' ? 'B' : 'A') + sealed.slice(21);
  assert.equal(await openSealedName(secret, 'r', flip), null);
  assert.equal(await openSealedName(secret, 'r', sealed.slice(0, 30)), null);
  assert.equal(await openSealedName(secret, 'r', ''), null);
  assert.equal(await openSealedName(secret, 'r', 'not base64url!'), null);
  assert.equal(await openSealedName(secret, 'r', 'A'.repeat(MAX_SEALED_NAME + 1)), null);
  assert.equal(await openSealedName(secret, 'r', /** @type {any} */ (null)), null);
});

test('the longest name fits the server limit', async () => {
  const secret = generateSecret();
  // 64 four-byte characters: the most a display name can take in UTF-8.
  const name = '𝕏'.repeat(64);
  const sealed = await sealName(secret, 'r', name);
  assert.ok(sealed.length <= MAX_SEALED_NAME, `${sealed.length} characters`);
  assert.equal(await openSealedName(secret, 'r', sealed), name);
  // Longer names are cut to 64 characters before sealing.
  assert.equal(await openSealedName(secret, 'r', await sealName(secret, 'r', 'x'.repeat(100))), 'x'.repeat(64));
});
