// The key manager: who is in the meeting (cryptographically), each sender's media key, and the
// encrypted application messages (names, chat, reactions, hands). No DOM: the same code runs in
// the page and in the node tests (tests/unit). Design and threat model: docs/e2ee.md.
//
// Everything travels as `relay` blobs through the server, which routes them by participant id and
// never parses them. Messages (`t`):
// - `hello` {id, pub, init, mac, key?}: an ephemeral P-256 ECDH public key, authenticated with an HMAC
//   keyed from the room secret, so the server (which never has the secret) cannot insert a key.
//   `init` asks the receiver to answer with its own hello, which carries its `key` for us.
// - `key` {iv, ct}: the sender's current media key (and its name and hand state), AES-GCM
//   encrypted with the pairwise key (ECDH + HKDF, salted with the room secret).
// - `app` {d}: an SFrame ciphertext (under a key derived from the sender's media key) of a JSON
//   application message, broadcast to everyone.
// Joins ratchet every sender's key forward (no message to the others; the joiner gets the new
// generation only). Leaves make every remaining sender draw a fresh key and send it to each
// remaining member.

import { hkdf, deriveKeySalt, encrypt, decrypt, decodeHeader, ratchet, concat, GENERATIONS } from './sframe.js';

const te = new TextEncoder();
const td = new TextDecoder();
const KEY_BYTES = 16;
/** App messages kept while waiting for their key (they may overtake it during a rotation). */
const MAX_PENDING_APP = 64;
/** A receiver derives at most this many ratchet steps at once. */
const MAX_RATCHET_STEPS = GENERATIONS;
/** Older generations kept after a ratchet, for frames still in flight. */
const KEEP_GENERATIONS = 4;

/** @param {Uint8Array} b */
export function b64(b) {
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

/** @param {string} s */
export function unb64(s) {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

/** A new room secret: 128 random bits, URL-safe base64 without padding (22 characters). */
export function generateSecret() {
  return b64(crypto.getRandomValues(new Uint8Array(16))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** @param {string} s */
export function validSecret(s) {
  return /^[A-Za-z0-9_-]{16,128}$/.test(s);
}

/**
 * Keys derived from the room secret, bound to the room name.
 * @param {string} secret
 * @param {string} room
 */
export async function roomKeys(secret, room) {
  const ikm = te.encode(secret);
  const authRaw = await hkdf(ikm, te.encode(`conclave auth|${room}`), 32);
  const pairSalt = await hkdf(ikm, te.encode(`conclave pair|${room}`), 32);
  const auth = await crypto.subtle.importKey('raw', /** @type {BufferSource} */ (authRaw), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
  return { auth, pairSalt };
}

/**
 * The 24-digit safety code over everyone's public key: the same on every screen when everyone
 * sees the same members with the same keys.
 * @param {{id: string, pub: Uint8Array}[]} members including oneself
 */
export async function safetyCode(members) {
  const sorted = [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const parts = sorted.map((m) => concat(te.encode(`${m.id}\n`), m.pub, te.encode('\n')));
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', concat(te.encode('conclave safety v1\n'), ...parts)));
  const groups = [];
  for (let i = 0; i < 12; i += 2) groups.push(String(((digest[i] << 8) | digest[i + 1]) % 10000).padStart(4, '0'));
  return groups.join(' ');
}

/** @param {Uint8Array} raw */
async function appKeyRaw(raw) {
  return hkdf(raw, te.encode('conclave app'), KEY_BYTES);
}

/**
 * @typedef {object} Member
 * @property {string} id
 * @property {Uint8Array} pub
 * @property {CryptoKey} pairKey
 * @property {string|null} name
 * @property {boolean} hand
 * @property {Set<number>} kids
 * @property {number|null} sentKid  our sender key last sent to them
 */

/**
 * @typedef {object} RecvKey
 * @property {string} owner
 * @property {Uint8Array} raw
 * @property {import('./sframe.js').SFrameKey|null} app
 * @property {bigint} maxCtr highest application-message counter seen (anti-replay)
 */

/**
 * @typedef {(type: string, detail: any) => void} Emit
 * Events: `sendKey` {kid, raw}, `recvKey` {kid, raw, owner}, `dropKeys` {owner, kids},
 * `member` {id, name, hand}, `left` {id}, `app` {from, msg}, `safety` {code, members},
 * `unverified` {id}, `other` {from, msg} (relay messages for another layer, e.g. knocks).
 */

export class KeyManager {
  /**
   * @param {object} opts
   * @param {string} opts.room
   * @param {string} opts.secret
   * @param {string} opts.selfId
   * @param {string} opts.name
   * @param {(to: string|null, data: string) => void} opts.send  relay (null: everyone else)
   * @param {Emit} [opts.emit]
   */
  constructor(opts) {
    this.room = opts.room;
    this.secret = opts.secret;
    this.selfId = opts.selfId;
    this.name = opts.name;
    this.hand = false;
    this.sendRelay = opts.send;
    this.emit = opts.emit ?? (() => {});
    /** @type {Map<string, Member>} */
    this.members = new Map();
    /** @type {Map<number, RecvKey>} */
    this.keys = new Map();
    /** @type {{kid: number, raw: Uint8Array, app: import('./sframe.js').SFrameKey, appCtr: bigint} | null} */
    this.send = null;
    /** @type {{from: string, data: string}[]} */
    this.pendingApp = [];
    /** @type {Promise<unknown>} */
    this.queue = Promise.resolve();
    this.rotationQueued = false;
    this.stopped = false;
    /** Counters for tests and the rotation benchmark. */
    this.stats = { relaysSent: 0, rotations: 0, ratchets: 0, lastSafety: '' };
    /** @type {Awaited<ReturnType<typeof roomKeys>>|null} */
    this.rk = null;
    /** @type {CryptoKeyPair|null} */
    this.ecdh = null;
    this.pub = new Uint8Array(0);
  }

  /** Generate our keys and announce ourselves. */
  start() {
    return this.enqueue(async () => {
      this.rk = await roomKeys(this.secret, this.room);
      this.ecdh = /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']));
      this.pub = new Uint8Array(await crypto.subtle.exportKey('raw', this.ecdh.publicKey));
      await this.freshSendKey();
      this.out(null, await this.hello(true));
      await this.announceSafety();
    });
  }

  /** Ask everyone for their keys again (after a reconnection, relays may have been lost). */
  rehello() {
    return this.enqueue(async () => this.out(null, await this.hello(true)));
  }

  stop() {
    this.stopped = true;
  }

  /**
   * A relay blob arrived from `from`.
   * @param {string} from
   * @param {string} data
   */
  receive(from, data) {
    return this.enqueue(() => this.handle(from, data));
  }

  /**
   * The server says this participant left: forget its keys, and rotate ours so it cannot decrypt
   * what we send from now on.
   * @param {string} id
   */
  left(id) {
    return this.enqueue(async () => {
      const m = this.members.get(id);
      if (!m) return;
      this.members.delete(id);
      for (const kid of m.kids) this.keys.delete(kid);
      this.emit('dropKeys', { owner: id, kids: [...m.kids] });
      this.emit('left', { id });
      await this.announceSafety();
      if (!this.rotationQueued) {
        this.rotationQueued = true;
        // Queued behind what is already waiting, so leaves that arrive together rotate once.
        this.enqueue(async () => {
          this.rotationQueued = false;
          await this.rotate();
        });
      }
    });
  }

  /**
   * Send an application message (chat, reaction, hand) encrypted to everyone in the meeting.
   * @param {Record<string, unknown>} msg
   */
  sendApp(msg) {
    return this.enqueue(async () => {
      if (!this.send) return;
      const s = this.send;
      const ctr = s.appCtr++;
      const ct = await encrypt(s.app, ctr, te.encode(`conclave app|${this.room}|${this.selfId}`), te.encode(JSON.stringify(msg)));
      this.out(null, JSON.stringify({ t: 'app', d: b64(ct) }));
    });
  }

  /** @param {boolean} up */
  setHand(up) {
    this.hand = up;
    return this.sendApp({ k: 'hand', up });
  }

  /** Verified members (not oneself). */
  memberIds() {
    return [...this.members.keys()];
  }

  // ---- internals ----

  /**
   * Run `fn` after everything queued before it: inbound messages are handled strictly in order.
   * @template T
   * @param {() => Promise<T>} fn
   * @returns {Promise<T|undefined>}
   */
  enqueue(fn) {
    const next = this.queue.then(() => (this.stopped ? undefined : fn()));
    this.queue = next.catch((e) => console.error('conclave e2ee:', e));
    return next;
  }

  /**
   * @param {string|null} to
   * @param {string} data
   */
  out(to, data) {
    this.stats.relaysSent++;
    this.sendRelay(to, data);
  }

  /** @param {string} id @param {Uint8Array} pub */
  helloBytes(id, pub) {
    return concat(te.encode(`conclave hello|${this.room}|${id}|`), pub);
  }

  /** @param {boolean} init */
  async hello(init) {
    const rk = /** @type {NonNullable<typeof this.rk>} */ (this.rk);
    const mac = new Uint8Array(await crypto.subtle.sign('HMAC', rk.auth, /** @type {BufferSource} */ (this.helloBytes(this.selfId, this.pub))));
    return JSON.stringify({ t: 'hello', id: this.selfId, pub: b64(this.pub), init, mac: b64(mac) });
  }

  async freshSendKey() {
    // KID = base * 256 + generation, base a random 32-bit value (see sframe.js).
    const base = crypto.getRandomValues(new Uint32Array(1))[0];
    await this.setSendKey(base * GENERATIONS, crypto.getRandomValues(new Uint8Array(KEY_BYTES)));
  }

  /** @param {number} kid @param {Uint8Array} raw */
  async setSendKey(kid, raw) {
    const app = await deriveKeySalt(await appKeyRaw(raw), BigInt(kid));
    this.send = { kid, raw, app, appCtr: 0n };
    this.emit('sendKey', { kid, raw });
  }

  /** Someone joined: step our key forward so the joiner cannot decrypt what came before. */
  async ratchetSendKey() {
    const s = /** @type {NonNullable<typeof this.send>} */ (this.send);
    if ((s.kid % GENERATIONS) + 1 >= GENERATIONS) {
      await this.rotate();
      return;
    }
    this.stats.ratchets++;
    await this.setSendKey(s.kid + 1, await ratchet(s.raw));
  }

  /** A fresh sender key for the current members, each sent its copy. */
  async rotate() {
    this.stats.rotations++;
    await this.freshSendKey();
    await Promise.all([...this.members.values()].map((m) => this.sendKeyTo(m)));
  }

  /** @param {Member} m */
  async sendKeyTo(m) {
    this.out(m.id, JSON.stringify(await this.keyEnvelope(m)));
  }

  /**
   * Our current sender key, name and hand state, encrypted for one member.
   * @param {Member} m
   */
  async keyEnvelope(m) {
    const s = /** @type {NonNullable<typeof this.send>} */ (this.send);
    const body = te.encode(JSON.stringify({ kid: s.kid, key: b64(s.raw), name: this.name, hand: this.hand }));
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const aad = te.encode(`conclave key|${this.room}|${this.selfId}|${m.id}`);
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad }, m.pairKey, /** @type {BufferSource} */ (body)));
    m.sentKid = s.kid;
    return { t: 'key', iv: b64(iv), ct: b64(ct) };
  }

  /** @param {Uint8Array} theirPub @param {string} theirId */
  async pairKey(theirPub, theirId) {
    const rk = /** @type {NonNullable<typeof this.rk>} */ (this.rk);
    const ecdh = /** @type {CryptoKeyPair} */ (this.ecdh);
    const pub = await crypto.subtle.importKey('raw', /** @type {BufferSource} */ (theirPub), { name: 'ECDH', namedCurve: 'P-256' }, false, []);
    const shared = new Uint8Array(await crypto.subtle.deriveBits({ name: 'ECDH', public: pub }, ecdh.privateKey, 256));
    const [a, b] = [this.selfId, theirId].sort();
    const ikm = concat(rk.pairSalt, shared);
    const raw = await hkdf(ikm, te.encode(`conclave pair|${a}|${b}`), KEY_BYTES);
    return crypto.subtle.importKey('raw', /** @type {BufferSource} */ (raw), 'AES-GCM', false, ['encrypt', 'decrypt']);
  }

  async announceSafety() {
    const all = [{ id: this.selfId, pub: this.pub }, ...[...this.members.values()].map((m) => ({ id: m.id, pub: m.pub }))];
    const code = await safetyCode(all);
    this.stats.lastSafety = code;
    this.emit('safety', { code, members: all.length });
  }

  /** @param {string} from @param {string} data */
  async handle(from, data) {
    /** @type {any} */
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    switch (msg.t) {
      case 'hello':
        return this.onHello(from, msg);
      case 'key':
        return this.onKey(from, msg);
      case 'app':
        return this.onApp(from, String(msg.d ?? ''), true);
      default:
        this.emit('other', { from, msg });
    }
  }

  /** @param {string} from @param {any} msg */
  async onHello(from, msg) {
    const rk = /** @type {NonNullable<typeof this.rk>} */ (this.rk);
    if (msg.id !== from || typeof msg.pub !== 'string' || typeof msg.mac !== 'string') return;
    let pub;
    let ok = false;
    try {
      pub = unb64(msg.pub);
      ok = await crypto.subtle.verify('HMAC', rk.auth, /** @type {BufferSource} */ (unb64(msg.mac)), /** @type {BufferSource} */ (this.helloBytes(from, pub)));
    } catch {
      ok = false;
    }
    if (!ok || !pub) {
      this.emit('unverified', { id: from });
      // Answer with our (public) hello, never a key: a client with the wrong secret learns at
      // once that it cannot verify anyone, and can say so.
      if (msg.init) this.out(from, await this.hello(false));
      return;
    }
    const known = this.members.get(from);
    const samePub = known && b64(known.pub) === b64(pub);
    if (!samePub) {
      /** @type {Member} */
      const m = { id: from, pub, pairKey: await this.pairKey(pub, from), name: known?.name ?? null, hand: false, kids: known?.kids ?? new Set(), sentKid: null };
      this.members.set(from, m);
      await this.announceSafety();
    }
    const m = /** @type {Member} */ (this.members.get(from));
    if (msg.init) {
      // A newcomer (or someone back from a reconnection): they must not read what came before.
      if (!samePub) await this.ratchetSendKey();
      // One message: our hello with our key for them attached.
      const reply = JSON.parse(await this.hello(false));
      reply.key = await this.keyEnvelope(m);
      this.out(from, JSON.stringify(reply));
    } else if (m.sentKid !== this.send?.kid) {
      await this.sendKeyTo(m);
    }
    if (msg.key && typeof msg.key === 'object') await this.onKey(from, msg.key);
  }

  /** @param {string} from @param {any} msg */
  async onKey(from, msg) {
    const m = this.members.get(from);
    if (!m || typeof msg.iv !== 'string' || typeof msg.ct !== 'string') return;
    /** @type {any} */
    let body;
    try {
      const aad = te.encode(`conclave key|${this.room}|${from}|${this.selfId}`);
      const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: /** @type {BufferSource} */ (unb64(msg.iv)), additionalData: aad }, m.pairKey, /** @type {BufferSource} */ (unb64(msg.ct)));
      body = JSON.parse(td.decode(pt));
    } catch {
      return;
    }
    const kid = body.kid;
    if (!Number.isSafeInteger(kid) || kid < 0 || typeof body.key !== 'string') return;
    const raw = unb64(body.key);
    if (raw.length !== KEY_BYTES) return;
    const other = this.keys.get(kid);
    if (other && other.owner !== from) return; // a KID is one sender's
    this.keys.set(kid, { owner: from, raw, app: null, maxCtr: -1n });
    m.kids.add(kid);
    const name = typeof body.name === 'string' ? body.name.slice(0, 64) : null;
    const hand = body.hand === true;
    if (name !== m.name || hand !== m.hand) {
      m.name = name;
      m.hand = hand;
      this.emit('member', { id: from, name, hand });
    }
    this.emit('recvKey', { kid, raw, owner: from });
    await this.retryPendingApp();
  }

  /**
   * The receive key for `kid` from `owner`, derived by ratcheting a known earlier generation.
   * @param {number} kid
   * @param {string} owner
   * @returns {Promise<RecvKey|null>}
   */
  async recvKey(kid, owner) {
    const have = this.keys.get(kid);
    if (have) return have.owner === owner ? have : null;
    const base = kid - (kid % GENERATIONS);
    let best = -1;
    for (const [k, v] of this.keys) if (v.owner === owner && k >= base && k < kid && k > best) best = k;
    if (best < 0 || kid - best > MAX_RATCHET_STEPS) return null;
    let raw = /** @type {RecvKey} */ (this.keys.get(best)).raw;
    for (let k = best + 1; k <= kid; k++) {
      raw = await ratchet(raw);
      if (!this.keys.has(k)) this.keys.set(k, { owner, raw, app: null, maxCtr: -1n });
      this.members.get(owner)?.kids.add(k);
    }
    for (let k = base; k < kid - KEEP_GENERATIONS; k++) {
      this.keys.delete(k);
      this.members.get(owner)?.kids.delete(k);
    }
    return /** @type {RecvKey} */ (this.keys.get(kid));
  }

  /**
   * @param {string} from
   * @param {string} d
   * @param {boolean} mayWait keep it if its key has not arrived yet
   */
  async onApp(from, d, mayWait) {
    let sframe;
    try {
      sframe = unb64(d);
    } catch {
      return true;
    }
    const h = decodeHeader(sframe);
    if (!h || h.kid > BigInt(Number.MAX_SAFE_INTEGER)) return true;
    const k = await this.recvKey(Number(h.kid), from);
    if (!k) {
      if (mayWait && this.members.has(from)) {
        this.pendingApp.push({ from, data: d });
        if (this.pendingApp.length > MAX_PENDING_APP) this.pendingApp.shift();
      }
      return false;
    }
    if (h.ctr <= k.maxCtr) return true; // replayed
    k.app ??= await deriveKeySalt(await appKeyRaw(k.raw), h.kid);
    let msg;
    try {
      const pt = await decrypt(k.app, h, te.encode(`conclave app|${this.room}|${from}`), sframe);
      msg = JSON.parse(td.decode(pt));
    } catch {
      return true;
    }
    k.maxCtr = h.ctr;
    const m = this.members.get(from);
    if (m && msg?.k === 'hand') m.hand = msg.up === true;
    this.emit('app', { from, msg });
    return true;
  }

  async retryPendingApp() {
    const pending = this.pendingApp;
    this.pendingApp = [];
    for (const p of pending) {
      const done = await this.onApp(p.from, p.data, false);
      if (!done) this.pendingApp.push(p);
    }
  }
}
