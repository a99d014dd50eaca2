// SFrame against the test vectors of RFC 9605 Appendix C (C.1 headers, C.3 AES-GCM suites).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeHeader, decodeHeader, deriveKeySalt, encrypt, decrypt, clearBytes, ratchet,
  AES_128_GCM_SHA256_128, AES_256_GCM_SHA512_128,
} from '../../web/e2ee/sframe.js';

const hex = (/** @type {string} */ s) => Uint8Array.from(s.replace(/\s+/g, '').match(/../g) ?? [], (b) => parseInt(b, 16));
const toHex = (/** @type {Uint8Array} */ b) => Buffer.from(b).toString('hex');

// A selection of RFC 9605 C.1, covering every header form and the 1..8-byte lengths.
const HEADERS = [
  ['0000000000000000', '0000000000000000', '00'],
  ['0000000000000000', '0000000000000001', '01'],
  ['0000000000000000', '00000000000000ff', '08ff'],
  ['0000000000000000', '0000000000000100', '090100'],
  ['0000000000000000', 'ffffffffffffffff', '0fffffffffffffffff'],
  ['0000000000000001', '0000000000000000', '10'],
  ['0000000000000001', '0000000000010000', '1a010000'],
  ['00000000000000ff', '0000000000000000', '80ff'],
  ['00000000000000ff', '00000000000000ff', '88ffff'],
  ['0000000000000100', '0000000000000100', '9901000100'],
  ['0000000000010000', '0000000000ffffff', 'aa010000ffffff'],
  ['00000000ffffffff', '0000000001000000', 'bbffffffff01000000'],
  ['0000000100000000', '00000000000000ff', 'c80100000000ff'],
  ['0000ffffffffffff', '0000010000000000', 'ddffffffffffff010000000000'],
  ['0100000000000000', '0100000000000000', 'ff01000000000000000100000000000000'],
  ['ffffffffffffffff', 'ffffffffffffffff', 'ffffffffffffffffffffffffffffffffff'],
];

test('SFrame header encoding and decoding (RFC 9605 C.1)', () => {
  for (const [kid, ctr, header] of HEADERS) {
    const k = BigInt(`0x${kid}`);
    const c = BigInt(`0x${ctr}`);
    assert.equal(toHex(encodeHeader(k, c)), header, `encode kid=${kid} ctr=${ctr}`);
    const d = decodeHeader(hex(header));
    assert.deepEqual(d, { kid: k, ctr: c, length: header.length / 2 });
  }
  assert.equal(decodeHeader(hex('bbffffffff0100')), null, 'truncated header');
  assert.equal(decodeHeader(new Uint8Array(0)), null);
});

const VECTORS = [
  {
    suite: AES_128_GCM_SHA256_128,
    key: 'd34f547f4ca4f9a7447006fe7fcbf768',
    salt: '75234edefe07819026751816',
    ct: '9901234567b7412c2513a1b66dbb48841bbaf17f598751176ad847681a69c6d0b091c07018ce4adb34eb',
  },
  {
    suite: AES_256_GCM_SHA512_128,
    key: 'd3e27b0d4a5ae9e55df01a70e6d4d28d969b246e2936f4b7a5d9b494da6b9633',
    salt: '84991c167b8cd23c93708ec7',
    ct: '990123456794f509d36e9beacb0e261d99c7d1e972f1fed787d4049f17ca21353c1cc24d56ceabced279',
  },
];

test('SFrame encryption and decryption (RFC 9605 C.3, AES-GCM suites)', async () => {
  const kid = 0x123n;
  const ctr = 0x4567n;
  const baseKey = hex('000102030405060708090a0b0c0d0e0f');
  const metadata = hex('4945544620534672616d65205747');
  const pt = hex('64726166742d696574662d736672616d652d656e63');
  for (const v of VECTORS) {
    const k = await deriveKeySalt(baseKey, kid, v.suite);
    assert.equal(toHex(k.raw), v.key, `sframe_key, suite ${v.suite}`);
    assert.equal(toHex(k.salt), v.salt, `sframe_salt, suite ${v.suite}`);
    const ct = await encrypt(k, ctr, metadata, pt);
    assert.equal(toHex(ct), v.ct, `ciphertext, suite ${v.suite}`);
    const h = decodeHeader(ct);
    assert.ok(h);
    assert.equal(h.kid, kid);
    assert.equal(toHex(await decrypt(k, h, metadata, ct)), toHex(pt));
    // Any change to the ciphertext, header or metadata is refused.
    const bad = ct.slice();
    bad[bad.length - 1] ^= 1;
    await assert.rejects(decrypt(k, h, metadata, bad));
    await assert.rejects(decrypt(k, h, hex('00'), ct));
  }
});

test('clear bytes: VP8 frame tag (10 for keyframes, 3 otherwise), nothing for audio', () => {
  assert.equal(clearBytes('video', hex('1002009d012a8002e001')), 10); // P=0: keyframe
  assert.equal(clearBytes('video', hex('1102009d012a')), 3);
  assert.equal(clearBytes('video', hex('10')), 1);
  assert.equal(clearBytes('audio', hex('fc0102')), 0);
});

test('ratchet: deterministic, one-way step', async () => {
  const k0 = hex('000102030405060708090a0b0c0d0e0f');
  const k1 = await ratchet(k0);
  assert.equal(k1.length, 16);
  assert.equal(toHex(await ratchet(k0)), toHex(k1));
  assert.notEqual(toHex(k1), toHex(k0));
});
