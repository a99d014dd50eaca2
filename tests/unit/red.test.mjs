// Redundant audio under end-to-end encryption: blocks encrypted one by one behind clear RED
// headers, so the server's primary block alone decrypts for a receiver without RED.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRed, buildRed, MAX_BLOCK } from '../../web/e2ee/red.js';
import { deriveKeySalt, encrypt, decrypt, decodeHeader } from '../../web/e2ee/sframe.js';

test('RED payloads split and join again', () => {
  // Chrome's first packet after a pause: the primary alone.
  assert.deepEqual(parseRed(Uint8Array.from([111, 1, 2])), [{ pt: 111, offset: 0, data: Uint8Array.from([1, 2]) }]);
  const red = Uint8Array.from([0x80 | 111, 960 >> 6, (960 & 0x3f) << 2, 2, 111, 9, 9, 1, 2, 3]);
  const blocks = /** @type {import('../../web/e2ee/red.js').RedBlock[]} */ (parseRed(red));
  assert.deepEqual(blocks.map((b) => [b.pt, b.offset, [...b.data]]), [[111, 960, [9, 9]], [111, 0, [1, 2, 3]]]);
  assert.deepEqual(buildRed(blocks), red);
  // Malformed: headers or blocks past the end.
  assert.equal(parseRed(new Uint8Array(0)), null);
  assert.equal(parseRed(Uint8Array.from([0x80 | 111, 0, 0])), null);
  assert.equal(parseRed(Uint8Array.from([0x80 | 111, 0, 0, 9, 111, 1])), null);
  // A redundant block too long for its header is left out, the primary never.
  const long = buildRed([{ pt: 111, offset: 960, data: new Uint8Array(MAX_BLOCK + 1) }, { pt: 111, offset: 0, data: Uint8Array.from([5]) }]);
  assert.deepEqual(long, Uint8Array.from([111, 5]));
});

test('encrypted block by block, the primary decrypts on its own', async () => {
  const key = await deriveKeySalt(new Uint8Array(16).fill(7), 3n);
  const plain = [{ pt: 111, offset: 960, data: Uint8Array.from([4, 4, 4]) }, { pt: 111, offset: 0, data: Uint8Array.from([5, 6, 7, 8]) }];
  let ctr = 10n;
  const sealed = await Promise.all(plain.map(async (b) => ({ ...b, data: await encrypt(key, ctr++, new Uint8Array(0), b.data) })));
  const wire = buildRed(sealed);
  // What the server reads: the headers; it forwards the primary block alone to a receiver
  // without RED, which decrypts it as a whole frame.
  const blocks = /** @type {import('../../web/e2ee/red.js').RedBlock[]} */ (parseRed(wire));
  assert.equal(blocks.length, 2);
  const primary = blocks[1].data;
  const h = /** @type {NonNullable<ReturnType<typeof decodeHeader>>} */ (decodeHeader(primary));
  assert.deepEqual(await decrypt(key, h, new Uint8Array(0), primary), plain[1].data);
  const r = blocks[0].data;
  const hr = /** @type {NonNullable<ReturnType<typeof decodeHeader>>} */ (decodeHeader(r));
  assert.deepEqual(await decrypt(key, hr, new Uint8Array(0), r), plain[0].data);
});
