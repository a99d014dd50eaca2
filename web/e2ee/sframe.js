// SFrame (RFC 9605) with the AES-GCM cipher suites, on WebCrypto. Used by the media worker for
// audio/video frames and by the key manager for application messages (chat, names, reactions).
// No DOM: runs in a window, a worker and in node (tests/unit).

export const AES_128_GCM_SHA256_128 = 0x0004;
export const AES_256_GCM_SHA512_128 = 0x0005;

/** @type {Record<number, {hash: string, nk: number}>} */
const SUITES = {
  [AES_128_GCM_SHA256_128]: { hash: 'SHA-256', nk: 16 },
  [AES_256_GCM_SHA512_128]: { hash: 'SHA-512', nk: 32 },
};
const NN = 12;
const NT = 16;
const enc = new TextEncoder();

/**
 * @typedef {object} SFrameKey
 * @property {bigint} kid
 * @property {CryptoKey} key    AES-GCM key (sframe_key)
 * @property {Uint8Array} salt  sframe_salt
 */

/**
 * Smallest big-endian encoding of `v` (at least one byte).
 * @param {bigint} v
 * @returns {number[]}
 */
function minBytes(v) {
  /** @type {number[]} */
  const out = [];
  do {
    out.unshift(Number(v & 0xffn));
    v >>= 8n;
  } while (v > 0n);
  return out;
}

/**
 * Encode an SFrame header (RFC 9605 §4.3).
 * @param {bigint} kid
 * @param {bigint} ctr
 * @returns {Uint8Array}
 */
export function encodeHeader(kid, ctr) {
  let config = 0;
  /** @type {number[]} */
  const tail = [];
  if (kid < 8n) {
    config |= Number(kid) << 4;
  } else {
    const b = minBytes(kid);
    config |= 0x80 | ((b.length - 1) << 4);
    tail.push(...b);
  }
  if (ctr < 8n) {
    config |= Number(ctr);
  } else {
    const b = minBytes(ctr);
    config |= 0x08 | (b.length - 1);
    tail.push(...b);
  }
  return Uint8Array.from([config, ...tail]);
}

/**
 * Decode an SFrame header at `offset`; null if the buffer is too short.
 * @param {Uint8Array} buf
 * @param {number} [offset]
 * @returns {{kid: bigint, ctr: bigint, length: number} | null}
 */
export function decodeHeader(buf, offset = 0) {
  if (buf.length <= offset) return null;
  const c = buf[offset];
  let i = offset + 1;
  /** @param {number} n */
  const read = (n) => {
    if (i + n > buf.length) return null;
    let v = 0n;
    for (let j = 0; j < n; j++) v = (v << 8n) | BigInt(buf[i + j]);
    i += n;
    return v;
  };
  const kid = c & 0x80 ? read(((c >> 4) & 7) + 1) : BigInt((c >> 4) & 7);
  if (kid === null) return null;
  const ctr = c & 0x08 ? read((c & 7) + 1) : BigInt(c & 7);
  if (ctr === null) return null;
  return { kid, ctr, length: i - offset };
}

/**
 * @param {bigint} v
 * @param {number} n
 * @returns {Uint8Array<ArrayBuffer>}
 */
function bigEndian(v, n) {
  const out = new Uint8Array(n);
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/**
 * @param {Uint8Array[]} parts
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) {
    out.set(p, i);
    i += p.length;
  }
  return out;
}

/**
 * HKDF (RFC 5869) with an empty salt, as SFrame's derivations use it.
 * @param {Uint8Array} ikm
 * @param {Uint8Array} info
 * @param {number} length bytes
 * @param {string} [hash]
 * @returns {Promise<Uint8Array>}
 */
export async function hkdf(ikm, info, length, hash = 'SHA-256') {
  const base = await crypto.subtle.importKey('raw', /** @type {BufferSource} */ (ikm), 'HKDF', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits(
    { name: 'HKDF', hash, salt: new Uint8Array(0), info: /** @type {BufferSource} */ (info) },
    base,
    length * 8,
  );
  return new Uint8Array(bits);
}

/**
 * sframe_key and sframe_salt for a base key (RFC 9605 §4.4.2). `raw` is returned for tests.
 * @param {Uint8Array} baseKey
 * @param {bigint} kid
 * @param {number} [suite]
 * @returns {Promise<SFrameKey & {raw: Uint8Array}>}
 */
export async function deriveKeySalt(baseKey, kid, suite = AES_128_GCM_SHA256_128) {
  const s = SUITES[suite];
  if (!s) throw new Error(`unsupported SFrame cipher suite ${suite}`);
  const tail = concat(bigEndian(kid, 8), bigEndian(BigInt(suite), 2));
  const raw = await hkdf(baseKey, concat(enc.encode('SFrame 1.0 Secret key '), tail), s.nk, s.hash);
  const salt = await hkdf(baseKey, concat(enc.encode('SFrame 1.0 Secret salt '), tail), NN, s.hash);
  const key = await crypto.subtle.importKey('raw', /** @type {BufferSource} */ (raw), 'AES-GCM', false, ['encrypt', 'decrypt']);
  return { kid, key, salt, raw };
}

/**
 * @param {Uint8Array} salt
 * @param {bigint} ctr
 */
function nonce(salt, ctr) {
  const n = bigEndian(ctr, NN);
  for (let i = 0; i < NN; i++) n[i] ^= salt[i];
  return n;
}

/**
 * SFrame encrypt (RFC 9605 §4.4.3): header || AEAD(ciphertext || tag).
 * @param {SFrameKey} k
 * @param {bigint} ctr
 * @param {Uint8Array} metadata authenticated, not sent
 * @param {Uint8Array} plaintext
 * @returns {Promise<Uint8Array>}
 */
export async function encrypt(k, ctr, metadata, plaintext) {
  const header = encodeHeader(k.kid, ctr);
  const ct = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv: nonce(k.salt, ctr), additionalData: concat(header, metadata), tagLength: NT * 8 },
    k.key,
    /** @type {BufferSource} */ (plaintext),
  );
  return concat(header, new Uint8Array(ct));
}

/**
 * SFrame decrypt of a ciphertext whose header was already parsed (so the caller could pick the
 * key by KID). Throws if authentication fails.
 * @param {SFrameKey} k
 * @param {{ctr: bigint, length: number}} header
 * @param {Uint8Array} metadata
 * @param {Uint8Array} sframe header || ciphertext
 * @returns {Promise<Uint8Array>}
 */
export async function decrypt(k, header, metadata, sframe) {
  const pt = await crypto.subtle.decrypt(
    {
      name: 'AES-GCM',
      iv: nonce(k.salt, header.ctr),
      additionalData: concat(sframe.subarray(0, header.length), metadata),
      tagLength: NT * 8,
    },
    k.key,
    /** @type {BufferSource} */ (sframe.subarray(header.length)),
  );
  return new Uint8Array(pt);
}

/**
 * The next key of a sender's chain: a joiner given generation n cannot compute n-1.
 * @param {Uint8Array} raw
 * @returns {Promise<Uint8Array>}
 */
export function ratchet(raw) {
  return hkdf(raw, enc.encode('conclave ratchet'), raw.length);
}

// ---- Media frames ----
// A KID is `base * 256 + generation`: `base` is random per fresh key, `generation` counts
// ratchet steps (one per join), so a receiver that holds generation g derives any later one.

export const GENERATIONS = 256;

/**
 * Bytes of a frame left in the clear for the SFU and the receiver's depacketizer: for VP8 the
 * frame tag (3 bytes; 10 for keyframes, with the start code and dimensions), none for audio.
 * @param {'audio'|'video'} kind
 * @param {Uint8Array} data
 */
export function clearBytes(kind, data) {
  if (kind !== 'video' || data.length === 0) return 0;
  const keyframe = (data[0] & 0x01) === 0;
  return Math.min(data.length, keyframe ? 10 : 3);
}
