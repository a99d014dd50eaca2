// End-to-end encryption for one meeting in the page: wires the connection (relay messages,
// membership, transceivers) to the key manager (keys.js) and the media worker (worker.js), and
// handles knocking (joining with a link that has no secret). No DOM: the UI listens to events.
//
// Events (CustomEvent detail):
// - `member` {id, name, hand}    a verified participant's name / hand state
// - `app` {from, msg}            a decrypted application message (chat, reaction, hand, ...)
// - `safety` {code, members}     the safety code changed
// - `status` {status}            see E2eeStatus
// - `unverified` {id}            someone whose hello does not verify with our secret
// - `secret` {secret}            we now hold the meeting secret (created it, or were admitted)
// - `knock` {id, name}           someone without the secret asks to be let in
// - `knock_done` {id, by, admitted}  a knock was answered (by us or another member)

import { KeyManager, generateSecret, b64, unb64 } from './keys.js';
import { hkdf } from './sframe.js';

/** What an end-to-end encrypted client tells the server its name is. */
export const NAME_PLACEHOLDER = '-';

/**
 * `ok`: keys verified with everyone (or alone); `waiting`: exchanging keys; `cant_decrypt`:
 * others answered but none could be verified (wrong secret); `knocking`: asking to be let in;
 * `denied`: a member declined.
 * @typedef {'ok'|'waiting'|'cant_decrypt'|'knocking'|'denied'} E2eeStatus
 */

/** @returns {'script'|'streams'|null} which encoded-transform API this browser has */
export function transformSupport() {
  if (typeof RTCRtpScriptTransform !== 'undefined') return 'script';
  if (typeof RTCRtpSender !== 'undefined' && 'createEncodedStreams' in RTCRtpSender.prototype) return 'streams';
  return null;
}

const te = new TextEncoder();
const td = new TextDecoder();

export class E2eeSession extends EventTarget {
  /**
   * @param {{room: string, secret: string|null, name: string}} opts
   */
  constructor(opts) {
    super();
    this.room = opts.room;
    this.secret = opts.secret;
    this.name = opts.name;
    this.api = transformSupport();
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'conclave-e2ee' });
    /** @type {KeyManager|null} */
    this.km = null;
    /** @type {import('../protocol.js').Connection|null} */
    this.conn = null;
    /** @type {Map<string, string>} */
    this.names = new Map();
    /** Participants whose hello could not be verified. */
    /** @type {Set<string>} */
    this.unverified = new Set();
    /** @type {E2eeStatus} */
    this.status = 'waiting';
    this.safety = '';
    /** Knocks waiting for an answer: id → their public key and (unverified) name. */
    /** @type {Map<string, {pub: Uint8Array, name: string}>} */
    this.knocks = new Map();
    /** Our own knock key pair, while knocking. */
    /** @type {CryptoKeyPair|null} */
    this.knockKeys = null;
    /** Media in pass-through mode (see setPlain). */
    this.plain = false;
    this.statsSeq = 0;
    /** @type {Map<number, (s: any) => void>} */
    this.statsWaiters = new Map();
    this.worker.onmessage = (ev) => {
      if (ev.data?.type === 'stats') {
        this.statsWaiters.get(ev.data.id)?.(ev.data.stats);
        this.statsWaiters.delete(ev.data.id);
      }
    };
  }

  /** @returns {import('../protocol.js').Transforms} */
  transforms() {
    const worker = this.worker;
    /**
     * @param {RTCRtpSender|RTCRtpReceiver} end
     * @param {{op: 'encrypt'|'decrypt', kind: 'audio'|'video'}} options
     */
    const attach = (end, options) => {
      if (this.api === 'script') {
        end.transform = new RTCRtpScriptTransform(worker, options);
      } else {
        const s = /** @type {any} */ (end).createEncodedStreams();
        worker.postMessage({ type: 'streams', readable: s.readable, writable: s.writable, options }, [s.readable, s.writable]);
      }
    };
    return {
      sender: (sender, kind) => attach(sender, { op: 'encrypt', kind }),
      receiver: (receiver, kind) => attach(receiver, { op: 'decrypt', kind }),
      pcConfig: this.api === 'streams' ? { encodedInsertableStreams: true } : {},
    };
  }

  /** @param {import('../protocol.js').Connection} conn */
  attach(conn) {
    this.conn = conn;
    conn.addEventListener('welcome', (ev) => {
      const { msg, resumed } = /** @type {CustomEvent} */ (ev).detail;
      this.onWelcome(msg, resumed).catch((e) => console.error('conclave e2ee:', e));
    });
    conn.addEventListener('participant_left', (ev) => {
      const { id } = /** @type {CustomEvent} */ (ev).detail;
      this.unverified.delete(id);
      this.names.delete(id);
      if (this.knocks.delete(id)) this.emit('knock_done', { id, by: null, admitted: false });
      this.km?.left(id);
      this.updateStatus();
    });
    conn.addEventListener('relay', (ev) => {
      const { from, data } = /** @type {CustomEvent} */ (ev).detail;
      if (this.km) this.km.receive(from, data);
      else this.onKnockReply(from, data).catch((e) => console.error('conclave e2ee:', e));
    });
  }

  /**
   * @param {import('../protocol.js').WelcomeMsg} msg
   * @param {boolean} resumed
   */
  async onWelcome(msg, resumed) {
    const id = msg.participant_id;
    if (this.km && this.km.selfId === id) {
      const present = new Set(msg.participants.map((p) => p.id));
      for (const m of this.km.memberIds()) if (!present.has(m)) this.km.left(m);
      if (resumed) this.km.rehello();
      return;
    }
    this.km?.stop();
    this.km = null;
    if (!this.secret) {
      if (msg.participants.length === 0) {
        // First one here with a bare link: this meeting's secret is ours to make.
        this.secret = generateSecret();
        this.emit('secret', { secret: this.secret });
      } else {
        await this.knock();
        return;
      }
    }
    this.startKeys(id);
  }

  /** @param {string} selfId */
  startKeys(selfId) {
    const conn = /** @type {import('../protocol.js').Connection} */ (this.conn);
    const km = new KeyManager({
      room: this.room,
      secret: /** @type {string} */ (this.secret),
      selfId,
      name: this.name,
      send: (to, data) => {
        conn.sendRelay(to, data);
      },
      emit: (type, detail) => this.onKeyEvent(type, detail),
    });
    this.km = km;
    this.setStatus('waiting');
    km.start().then(() => this.updateStatus());
  }

  /**
   * @param {string} type
   * @param {any} d
   */
  onKeyEvent(type, d) {
    switch (type) {
      case 'sendKey':
        this.worker.postMessage({ type: 'sendKey', kid: d.kid, raw: d.raw });
        break;
      case 'recvKey':
        this.worker.postMessage({ type: 'recvKey', kid: d.kid, raw: d.raw, owner: d.owner });
        break;
      case 'dropKeys':
        this.worker.postMessage({ type: 'dropKeys', kids: d.kids, owner: d.owner });
        break;
      case 'member':
        if (d.name) this.names.set(d.id, d.name);
        this.unverified.delete(d.id);
        this.emit('member', d);
        this.updateStatus();
        break;
      case 'app':
        this.onApp(d.from, d.msg);
        break;
      case 'safety':
        this.safety = d.code;
        this.emit('safety', d);
        break;
      case 'unverified':
        this.unverified.add(d.id);
        this.emit('unverified', d);
        this.updateStatus();
        break;
      case 'other':
        if (d.msg?.t === 'knock' && typeof d.msg.pub === 'string') {
          const name = typeof d.msg.name === 'string' ? d.msg.name.slice(0, 64) : 'Someone';
          this.knocks.set(d.from, { pub: unb64(d.msg.pub), name });
          this.emit('knock', { id: d.from, name });
        }
        break;
    }
  }

  /** @param {string} from @param {any} msg */
  onApp(from, msg) {
    if ((msg?.k === 'admitted' || msg?.k === 'denied') && typeof msg.id === 'string') {
      if (this.knocks.delete(msg.id)) this.emit('knock_done', { id: msg.id, by: from, admitted: msg.k === 'admitted' });
      return;
    }
    this.emit('app', { from, msg });
  }

  updateStatus() {
    if (!this.km || this.status === 'knocking' || this.status === 'denied') return;
    // Others answered but none could prove it holds our secret: ours is the wrong one.
    const wrong = this.km.memberIds().length === 0 && this.unverified.size > 0;
    this.setStatus(wrong ? 'cant_decrypt' : 'ok');
  }

  /** @param {E2eeStatus} s */
  setStatus(s) {
    if (this.status === s) return;
    this.status = s;
    this.emit('status', { status: s });
  }

  /**
   * @param {string} type
   * @param {object} detail
   */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // ---- application messages ----

  /** @param {string} text */
  sendChat(text) {
    return this.km?.sendApp({ k: 'chat', text });
  }

  /** @param {string} emoji */
  react(emoji) {
    return this.km?.sendApp({ k: 'react', emoji });
  }

  /** @param {boolean} up */
  setHand(up) {
    return this.km?.setHand(up);
  }

  /** @param {string} id */
  nameOf(id) {
    return this.names.get(id) ?? null;
  }

  // ---- knocking ----

  async knock() {
    this.setStatus('knocking');
    this.knockKeys = /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']));
    const pub = new Uint8Array(await crypto.subtle.exportKey('raw', this.knockKeys.publicKey));
    // Without the secret nothing can be encrypted for the members yet: the name in a knock is
    // readable by the server (docs/e2ee.md).
    this.conn?.sendRelay(null, JSON.stringify({ t: 'knock', pub: b64(pub), name: this.name }));
  }

  /**
   * Shared key between a knocker and the member answering it.
   * @param {CryptoKey} priv
   * @param {Uint8Array} theirPub
   * @param {string} knocker
   */
  async knockKey(priv, theirPub, knocker) {
    const pub = await crypto.subtle.importKey('raw', /** @type {BufferSource} */ (theirPub), { name: 'ECDH', namedCurve: 'P-256' }, false, []);
    const shared = new Uint8Array(await crypto.subtle.deriveBits({ name: 'ECDH', public: pub }, priv, 256));
    const raw = await hkdf(shared, te.encode(`conclave knock|${this.room}|${knocker}`), 16);
    return crypto.subtle.importKey('raw', /** @type {BufferSource} */ (raw), 'AES-GCM', false, ['encrypt', 'decrypt']);
  }

  /**
   * Let a knocker in: hand it the meeting secret, encrypted to its knock key.
   * @param {string} id
   */
  async admit(id) {
    const k = this.knocks.get(id);
    if (!k || !this.secret || !this.km) return;
    this.knocks.delete(id);
    const mine = /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']));
    const key = await this.knockKey(mine.privateKey, k.pub, id);
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: te.encode(`conclave admit|${this.room}|${id}`) }, key, te.encode(this.secret)));
    const pub = new Uint8Array(await crypto.subtle.exportKey('raw', mine.publicKey));
    this.conn?.sendRelay(id, JSON.stringify({ t: 'admit', pub: b64(pub), iv: b64(iv), ct: b64(ct) }));
    await this.km.sendApp({ k: 'admitted', id });
    this.emit('knock_done', { id, by: this.km.selfId, admitted: true });
  }

  /** @param {string} id */
  async deny(id) {
    if (!this.knocks.delete(id) || !this.km) return;
    this.conn?.sendRelay(id, JSON.stringify({ t: 'deny' }));
    await this.km.sendApp({ k: 'denied', id });
    this.emit('knock_done', { id, by: this.km.selfId, admitted: false });
  }

  /**
   * While knocking: a member's answer.
   * @param {string} from
   * @param {string} data
   */
  async onKnockReply(from, data) {
    if (this.status !== 'knocking' || !this.knockKeys || !this.conn?.participantId) return;
    /** @type {any} */
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg?.t === 'deny') {
      this.setStatus('denied');
      return;
    }
    if (msg?.t !== 'admit') return;
    const me = this.conn.participantId;
    try {
      const key = await this.knockKey(this.knockKeys.privateKey, unb64(msg.pub), me);
      const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: /** @type {BufferSource} */ (unb64(msg.iv)), additionalData: te.encode(`conclave admit|${this.room}|${me}`) }, key, /** @type {BufferSource} */ (unb64(msg.ct)));
      this.secret = td.decode(pt);
    } catch {
      return;
    }
    this.knockKeys = null;
    this.status = 'waiting';
    this.emit('secret', { secret: this.secret });
    this.startKeys(me);
  }

  /**
   * Pass-through media (true) while a participant who cannot encrypt is present, so that it can
   * see and hear the meeting and be seen and heard; false: encrypt again (keys as before).
   * @param {boolean} on
   */
  setPlain(on) {
    if (this.plain === on) return;
    this.plain = on;
    this.worker.postMessage({ type: 'mode', plain: on });
  }

  // ---- for tests and the indicator ----

  /** Media worker counters: frames encrypted/decrypted/failed, per-KID decrypts, our KID. */
  stats() {
    const id = ++this.statsSeq;
    return new Promise((resolve) => {
      this.statsWaiters.set(id, resolve);
      this.worker.postMessage({ type: 'stats', id });
    });
  }

  close() {
    this.km?.stop();
    this.km = null;
    this.worker.terminate();
  }
}
