// Media encryption worker: every outgoing audio/video frame is SFrame-encrypted with this
// participant's sender key, every incoming frame decrypted with its sender's key (found by KID).
// Attached with RTCRtpScriptTransform (`rtctransform` events) or, where only that exists, with
// streams from createEncodedStreams posted here. Keys arrive from the page (keys.js) as raw
// bytes; frames without a usable key are never passed on in the clear.
//
// Pass-through mode (`{type: 'mode', plain: true}`), only while a participant who cannot encrypt
// is in the meeting (a moderator allowed it, everyone is shown it; docs/e2ee.md): outgoing frames
// are sent as they are, and an incoming frame is decrypted when it is SFrame under a key we hold
// (frames still in flight from before the switch) and otherwise passed on as it is. Back in the
// default mode (`plain: false`) everything is encrypted again and plain frames are dropped.
//
// Redundant audio (RED) frames are encrypted block by block behind clear block headers (red.js).

import { deriveKeySalt, encrypt, decrypt, decodeHeader, ratchet, clearBytes, concat, GENERATIONS } from './sframe.js';
import { parseRed, buildRed } from './red.js';

/** Incoming frames held while their key is on its way (a rotation or a join), per receiver. */
const MAX_PENDING = 90;
const MAX_RATCHET_STEPS = GENERATIONS;
/** Older generations kept after a ratchet, for frames still in flight. */
const KEEP_GENERATIONS = 4;

/** @typedef {import('./sframe.js').SFrameKey} SFrameKey */
/** @typedef {{data: ArrayBuffer, type?: string, getMetadata?: () => {mimeType?: string}}} EncodedFrame */

/** @type {{kid: number, key: SFrameKey, ctr: bigint} | null} */
let sender = null;
/** @type {Map<number, {raw: Uint8Array, owner: string, key: Promise<SFrameKey>}>} */
const keys = new Map();
/** @type {Set<Receiver>} */
const receivers = new Set();
/** Pass-through mode (see the header). */
let plain = false;

const stats = {
  sendKid: /** @type {number|null} */ (null),
  encrypted: 0,
  decrypted: 0,
  /** Frames sent or received as they are (pass-through mode). */
  plainSent: 0,
  plainReceived: 0,
  plain: false,
  failed: 0,
  noKey: 0,
  /** Audio frames sent and received wrapped in RED (each also carries the previous one). */
  redSent: 0,
  redReceived: 0,
  /** Frames decrypted per KID. */
  byKid: /** @type {Record<string, number>} */ ({}),
};

/**
 * @param {number} kid
 * @param {Uint8Array} raw
 * @param {string} owner
 */
function addKey(kid, raw, owner) {
  const existing = keys.get(kid);
  if (existing && existing.owner !== owner) return;
  keys.set(kid, { raw, owner, key: deriveKeySalt(raw, BigInt(kid)) });
}

/**
 * The key for `kid`, ratcheting forward from an earlier generation of the same chain if needed.
 * @param {number} kid
 * @returns {Promise<SFrameKey|null>}
 */
async function keyFor(kid) {
  const have = keys.get(kid);
  if (have) return have.key;
  const base = kid - (kid % GENERATIONS);
  let best = -1;
  for (const k of keys.keys()) if (k >= base && k < kid && k > best) best = k;
  if (best < 0 || kid - best > MAX_RATCHET_STEPS) return null;
  const from = /** @type {{raw: Uint8Array, owner: string}} */ (keys.get(best));
  let raw = from.raw;
  for (let k = best + 1; k <= kid; k++) {
    raw = await ratchet(raw);
    if (!keys.has(k)) addKey(k, raw, from.owner);
  }
  for (let k = base; k < kid - KEEP_GENERATIONS; k++) keys.delete(k);
  return /** @type {NonNullable<ReturnType<typeof keys.get>>} */ (keys.get(kid)).key;
}

/**
 * @param {'audio'|'video'} kind
 * @returns {Transformer<EncodedFrame, EncodedFrame>}
 */
function encryptor(kind) {
  return {
    async transform(frame, controller) {
      if (plain) {
        stats.plainSent++;
        controller.enqueue(frame);
        return;
      }
      const s = sender;
      if (!s) return; // no key yet: send nothing rather than plaintext
      const data = new Uint8Array(frame.data);
      const red = isRed(frame);
      if (red && data.length === 0) {
        // Chrome sends an empty RED frame now and then: nothing to hide.
        controller.enqueue(frame);
        return;
      }
      const blocks = red ? parseRed(data) : null;
      if (blocks) {
        for (const b of blocks) b.data = await encrypt(s.key, s.ctr++, new Uint8Array(0), b.data);
        frame.data = buildRed(blocks).buffer;
        stats.encrypted++;
        stats.redSent++;
        controller.enqueue(frame);
        return;
      }
      const n = clearBytes(kind, data);
      const ctr = s.ctr++;
      const clear = data.subarray(0, n);
      const sframe = await encrypt(s.key, ctr, clear, data.subarray(n));
      frame.data = concat(clear, sframe).buffer;
      stats.encrypted++;
      controller.enqueue(frame);
    },
  };
}

/** One receiving transceiver: decrypts in order, holding frames whose key has not arrived. */
class Receiver {
  /** @param {'audio'|'video'} kind */
  constructor(kind) {
    this.kind = kind;
    /** @type {EncodedFrame[]} */
    this.pending = [];
    /** @type {TransformStreamDefaultController<EncodedFrame>|null} */
    this.controller = null;
    /** @type {Promise<void>} */
    this.chain = Promise.resolve();
  }

  /** @returns {Transformer<EncodedFrame, EncodedFrame>} */
  transformer() {
    return {
      transform: (frame, controller) => {
        this.controller = controller;
        this.pending.push(frame);
        if (this.pending.length > MAX_PENDING) this.pending.shift();
        return this.run();
      },
    };
  }

  run() {
    this.chain = this.chain.then(() => this.flush()).catch(() => {});
    return this.chain;
  }

  async flush() {
    while (this.pending.length) {
      const frame = this.pending[0];
      const r = await this.decrypt(frame);
      if (r === 'wait') return;
      this.pending.shift();
      if (r === 'ok') this.controller?.enqueue(frame);
    }
  }

  /**
   * @param {EncodedFrame} frame
   * @returns {Promise<'ok'|'drop'|'wait'>}
   */
  async decrypt(frame) {
    const data = new Uint8Array(frame.data);
    const red = this.kind === 'audio' && isRed(frame);
    if (red && data.length === 0) return 'ok';
    const blocks = red ? parseRed(data) : null;
    const r = blocks ? await this.decryptRed(frame, blocks) : 'drop';
    if (r !== 'drop') return r;
    // Not RED, or a RED frame its sender encrypted whole.
    const whole = await this.open(frame, data, clearBytes(this.kind, data));
    return whole === 'pass' ? 'ok' : whole;
  }

  /**
   * A RED frame encrypted block by block: the primary block decides, as a whole frame would; a
   * redundant block that does not decrypt is left out.
   * @param {EncodedFrame} frame
   * @param {import('./red.js').RedBlock[]} blocks
   * @returns {Promise<'ok'|'drop'|'wait'>}
   */
  async decryptRed(frame, blocks) {
    const primary = /** @type {import('./red.js').RedBlock} */ (blocks.pop());
    const held = { data: new ArrayBuffer(0) };
    const r = await this.open(held, primary.data, 0, false);
    if (r === 'pass') return 'ok';
    if (r !== 'ok') return r;
    const out = [];
    for (const b of blocks) {
      const k = await this.openBlock(b.data);
      if (k) out.push({ ...b, data: k });
    }
    out.push({ ...primary, data: new Uint8Array(held.data) });
    frame.data = buildRed(out).buffer;
    stats.redReceived++;
    return 'ok';
  }

  /**
   * A redundant block: decrypted if a key we hold opens it, else null.
   * @param {Uint8Array} data
   */
  async openBlock(data) {
    const h = decodeHeader(data);
    if (!h || h.kid > BigInt(Number.MAX_SAFE_INTEGER)) return null;
    const key = await (keys.get(Number(h.kid))?.key ?? null);
    if (!key) return null;
    return decrypt(key, h, new Uint8Array(0), data).catch(() => null);
  }

  /**
   * Decrypt `data` (the frame's bytes, its first `n` in the clear) into `frame`.
   * @param {{data: ArrayBuffer}} frame
   * @param {Uint8Array} data
   * @param {number} n
   * @param {boolean} [count] count a failure (false: the caller tries another way)
   * @returns {Promise<'ok'|'pass'|'drop'|'wait'>}
   */
  async open(frame, data, n, count = true) {
    const h = decodeHeader(data, n);
    // Pass-through mode: whatever is not SFrame under a key we hold is a plain frame. AES-GCM's
    // tag makes a plain frame that merely looks like an SFrame header fail, and pass as it is.
    const passOn = () => {
      stats.plainReceived++;
      return /** @type {const} */ ('pass');
    };
    if (!h || h.kid > BigInt(Number.MAX_SAFE_INTEGER)) {
      if (plain) return passOn();
      if (count) stats.failed++;
      return 'drop';
    }
    const kid = Number(h.kid);
    // No ratcheting on what may be a plain frame's bytes: only keys we hold as they are.
    const key = plain ? await (keys.get(kid)?.key ?? null) : await keyFor(kid);
    if (!key) {
      if (plain) return passOn();
      stats.noKey++;
      return 'wait';
    }
    try {
      const pt = await decrypt(key, h, data.subarray(0, n), data.subarray(n));
      frame.data = concat(data.subarray(0, n), pt).buffer;
    } catch {
      if (plain) return passOn();
      if (count) stats.failed++;
      return 'drop';
    }
    stats.decrypted++;
    stats.byKid[kid] = (stats.byKid[kid] ?? 0) + 1;
    return 'ok';
  }
}

/**
 * The frame is Opus wrapped in RED.
 * @param {EncodedFrame} frame
 */
function isRed(frame) {
  return frame.getMetadata?.().mimeType === 'audio/red';
}

/**
 * @param {ReadableStream<EncodedFrame>} readable
 * @param {WritableStream<EncodedFrame>} writable
 * @param {{op: 'encrypt'|'decrypt', kind: 'audio'|'video'}} options
 */
function attach(readable, writable, options) {
  let t;
  if (options.op === 'encrypt') {
    t = encryptor(options.kind);
  } else {
    const r = new Receiver(options.kind);
    receivers.add(r);
    t = r.transformer();
  }
  readable
    .pipeThrough(new TransformStream(t))
    .pipeTo(writable)
    .catch(() => {});
}

/** @type {any} */ (self).onrtctransform = (/** @type {any} */ ev) => {
  const t = ev.transformer;
  attach(t.readable, t.writable, t.options);
};

self.onmessage = async (ev) => {
  const m = ev.data;
  switch (m?.type) {
    case 'streams':
      attach(m.readable, m.writable, m.options);
      break;
    case 'sendKey':
      sender = { kid: m.kid, key: await deriveKeySalt(m.raw, BigInt(m.kid)), ctr: 0n };
      stats.sendKid = m.kid;
      break;
    case 'recvKey':
      addKey(m.kid, m.raw, m.owner);
      for (const r of receivers) r.run();
      break;
    case 'dropKeys':
      for (const kid of m.kids) keys.delete(kid);
      for (const [kid, k] of keys) if (k.owner === m.owner) keys.delete(kid);
      break;
    case 'mode':
      plain = m.plain === true;
      stats.plain = plain;
      // Frames held for a key that may never come: pass-through mode lets them go on.
      for (const r of receivers) r.run();
      break;
    case 'stats':
      self.postMessage({ type: 'stats', id: m.id, stats: { ...stats, byKid: { ...stats.byKid } } });
      break;
  }
};
