// Where end-to-end encryption meets the rest of the meeting page: one E2eeSession (keys, media
// worker, knocking) and its MeetingExtras (chat, reactions, hands, indicator) per connection; the
// names the page shows for participants and for lobby knocks; and handing the meeting key to
// someone a moderator has just let in from the server's lobby.
//
// Names: the server only ever gets the placeholder "-" from a client that holds the secret; real
// names arrive end-to-end encrypted. A name the server does know (from a join token, or typed by
// someone who opened a link without the secret) is shown until an encrypted one arrives.
//
// Participants who cannot encrypt (join with `e2ee: false`, only when a moderator allows it): while
// one is present, media goes in pass-through mode (E2eeSession.setPlain) and every encrypting
// member sends it its name in a `clear_name` relay message, which the server can read. Such a
// client runs no key exchange: no chat, reactions or hands, and it shows "Participant" for anyone
// whose name it has not been sent (docs/e2ee.md).

import { E2eeSession, NAME_PLACEHOLDER } from './e2ee/session.js';
import { openSealedName } from './e2ee/sealed-name.js';
import { MeetingExtras } from './meeting-extras.js';
import { toast } from './dom.js';

/** @typedef {import('./protocol.js').Connection} Connection */
/** @typedef {import('./protocol.js').ParticipantInfo} ParticipantInfo */

/**
 * How long after a moderator admits a knocker without the secret from the lobby its client may
 * ask for the key and get it without a second prompt.
 */
const HANDOVER_MS = 120000;

/**
 * What a moderator is shown for a lobby knock. `kind`: `sealed` — the name was encrypted with the
 * meeting key (the knocker has the invite link); `clear` — typed by someone without the key, the
 * server could read it; `unknown` — no name could be read.
 * `server` is the name as the server has it (what it will call the participant once admitted).
 * @typedef {{name: string, kind: 'sealed'|'clear'|'unknown', server: string}} KnockName
 */

export class E2eeMeeting {
  /**
   * @param {object} hooks
   * @param {(id: string) => void} hooks.onName a participant's shown name may have changed
   * @param {() => void} hooks.onStatus the encryption status changed (every name may have)
   * @param {() => void} hooks.layout the grid must re-layout (a side panel opened or closed)
   * @param {(secret: string) => void} hooks.onSecret we now hold the meeting secret
   * @param {() => void} [hooks.onUnencrypted] who does not encrypt changed
   */
  constructor(hooks) {
    this.hooks = hooks;
    /** @type {E2eeSession|null} */
    this.session = null;
    /** @type {MeetingExtras|null} */
    this.extras = null;
    /** @type {Connection|null} */
    this.conn = null;
    this.room = '';
    /** @type {string|null} */
    this.secret = null;
    /** Names the server gave participants (placeholders included). */
    /** @type {Map<string, string>} */
    this.serverNames = new Map();
    /**
     * Knockers without the secret we admitted from the lobby: `id` is set once the server says
     * who joined under that name; their key request is then answered without a prompt.
     * @type {{name: string, at: number, id: string|null}[]}
     */
    this.handovers = [];
    /** Remote participants who do not encrypt (their `e2ee` flag is false). */
    /** @type {Set<string>} */
    this.unencrypted = new Set();
    /** This client cannot encrypt: no session, names from `clear_name` messages. */
    this.plainClient = false;
    /** Names encrypting members sent this unencrypted client in the clear. */
    /** @type {Map<string, string>} */
    this.clearNames = new Map();
    this.name = '';
  }

  /**
   * Track who does not encrypt; switch media to pass-through while anyone does.
   * @param {ParticipantInfo} p
   */
  noteE2ee(p) {
    const was = this.unencrypted.has(p.id);
    if (p.e2ee === false) this.unencrypted.add(p.id);
    else this.unencrypted.delete(p.id);
    // A newcomer who cannot encrypt could not read our encrypted name: send it in the clear.
    if (p.e2ee === false && !was && !this.plainClient && this.name) {
      this.conn?.sendRelay(p.id, JSON.stringify({ t: 'clear_name', name: this.name }));
    }
  }

  updatePlain() {
    this.session?.setPlain(this.unencrypted.size > 0);
    this.extras?.setUnencrypted([...this.unencrypted].map((id) => this.displayName(id)));
    this.hooks.onUnencrypted?.();
  }

  /**
   * A client that cannot encrypt joins without a session: plain media, names from the server or
   * from `clear_name` messages.
   * @param {Connection} c
   */
  startPlain(c) {
    this.stop();
    this.conn = c;
    this.plainClient = true;
    c.transforms = null;
    const live = () => c === this.conn;
    c.addEventListener('welcome', (ev) => {
      if (!live()) return;
      const { msg } = /** @type {CustomEvent<{msg: import('./protocol.js').WelcomeMsg}>} */ (ev).detail;
      this.serverNames.clear();
      for (const p of msg.participants) this.serverNames.set(p.id, p.name);
    });
    const seen = (/** @type {Event} */ ev) => {
      if (!live()) return;
      const p = /** @type {ParticipantInfo} */ (/** @type {CustomEvent} */ (ev).detail.participant);
      this.serverNames.set(p.id, p.name);
    };
    c.addEventListener('participant_joined', seen);
    c.addEventListener('participant_updated', seen);
    c.addEventListener('participant_left', (ev) => {
      if (!live()) return;
      const { id } = /** @type {CustomEvent} */ (ev).detail;
      this.serverNames.delete(id);
      this.clearNames.delete(id);
    });
    c.addEventListener('relay', (ev) => {
      if (!live()) return;
      const { from, data } = /** @type {CustomEvent} */ (ev).detail;
      /** @type {any} */
      let msg;
      try {
        msg = JSON.parse(data);
      } catch {
        return;
      }
      const name = typeof msg?.name === 'string' ? msg.name.trim().slice(0, 64) : '';
      if (msg?.t !== 'clear_name' || !name) return;
      this.clearNames.set(from, name);
      this.hooks.onName(from);
    });
  }

  /**
   * Start encryption for a new connection (before it joins).
   * @param {Connection} c
   * @param {{room: string, secret: string|null, name: string}} opts
   */
  start(c, opts) {
    this.stop();
    this.conn = c;
    this.room = opts.room;
    this.secret = opts.secret;
    this.name = opts.name;
    const session = new E2eeSession(opts);
    this.session = session;
    c.transforms = session.transforms();
    session.attach(c);
    const extras = new MeetingExtras(session, {
      selfId: () => c.participantId,
      nameOf: (id) => this.displayName(id),
      layout: this.hooks.layout,
      toast: (text, o) => toast(text, o),
      autoAdmit: (k) => this.autoAdmit(k),
    });
    this.extras = extras;
    const live = () => session === this.session;
    const named = (/** @type {Event} */ ev) => {
      if (!live()) return;
      this.hooks.onName(/** @type {CustomEvent} */ (ev).detail.id);
      extras.refreshNames();
    };
    session.addEventListener('member', named);
    session.addEventListener('unverified', named);
    session.addEventListener('status', () => {
      if (!live()) return;
      this.hooks.onStatus();
      extras.refreshNames();
    });
    session.addEventListener('secret', (ev) => {
      if (!live()) return;
      this.secret = /** @type {CustomEvent} */ (ev).detail.secret;
      this.hooks.onSecret(/** @type {string} */ (this.secret));
    });
    // The server's names (tokens, knockers without the secret), and who arrives after an admit.
    c.addEventListener('welcome', (ev) => {
      if (!live()) return;
      const { msg } = /** @type {CustomEvent<{msg: import('./protocol.js').WelcomeMsg}>} */ (ev).detail;
      this.serverNames.clear();
      this.unencrypted.clear();
      for (const p of msg.participants) {
        this.serverNames.set(p.id, p.name);
        this.noteE2ee(p);
      }
      this.updatePlain();
    });
    const seen = (/** @type {Event} */ ev) => {
      if (!live()) return;
      const p = /** @type {ParticipantInfo} */ (/** @type {CustomEvent} */ (ev).detail.participant);
      const isNew = !this.serverNames.has(p.id);
      this.serverNames.set(p.id, p.name);
      if (p.id !== c.participantId) {
        this.noteE2ee(p);
        this.updatePlain();
      }
      if (isNew) {
        const h = this.handovers.find((x) => x.id === null && x.name === p.name);
        if (h) h.id = p.id;
      }
    };
    c.addEventListener('participant_joined', seen);
    c.addEventListener('participant_updated', seen);
    c.addEventListener('participant_left', (ev) => {
      if (!live()) return;
      const { id } = /** @type {CustomEvent} */ (ev).detail;
      this.serverNames.delete(id);
      this.handovers = this.handovers.filter((h) => h.id !== id);
      if (this.unencrypted.delete(id)) this.updatePlain();
    });
  }

  stop() {
    this.extras?.destroy();
    this.extras = null;
    this.session?.close();
    this.session = null;
    this.conn = null;
    this.serverNames.clear();
    this.handovers = [];
    this.unencrypted.clear();
    this.plainClient = false;
    this.clearNames.clear();
  }

  /**
   * The name this page shows for a remote participant: the end-to-end encrypted one; else the
   * one the server has (a token's, or typed without the secret); else what we know about them.
   * @param {string} id
   * @param {string} [serverName] the server's name, when the caller has it at hand
   * @returns {string}
   */
  displayName(id, serverName) {
    const s = this.session;
    const n = s?.nameOf(id) ?? this.clearNames.get(id);
    if (n) return n;
    const server = serverName ?? this.serverNames.get(id);
    if (server && server !== NAME_PLACEHOLDER) return server;
    // We cannot encrypt, so no encrypted name can reach us; the member has not sent one in clear.
    if (this.plainClient) return 'Participant';
    if (s?.unverified.has(id)) return 'Unverified participant';
    // Without the key (still asking for it, or refused) no name can be read.
    return s?.status === 'knocking' || s?.status === 'denied' ? 'Encrypted name' : 'Joining…';
  }

  /**
   * The name to show a moderator for a lobby knock.
   * @param {{name: string, sealedName: string|null}} knock
   * @returns {Promise<KnockName>}
   */
  async knockName(knock) {
    if (knock.sealedName && this.secret) {
      const name = await openSealedName(this.secret, this.room, knock.sealedName);
      if (name) return { name, kind: 'sealed', server: knock.name };
    }
    const clear = (knock.name ?? '').trim();
    if (clear && clear !== NAME_PLACEHOLDER) return { name: clear, kind: 'clear', server: knock.name };
    return { name: 'Unverified guest', kind: 'unknown', server: knock.name };
  }

  /**
   * We admitted a knock from the lobby. If the knocker has no meeting key, remember them: their
   * client will ask for the key as soon as it is in, and we answer without asking again.
   * @param {KnockName} k
   */
  admittedFromLobby(k) {
    if (k.kind !== 'clear') return;
    const now = Date.now();
    this.handovers = this.handovers.filter((h) => now - h.at < HANDOVER_MS);
    this.handovers.push({ name: k.server, at: now, id: null });
  }

  /**
   * A key request (client-side knock) arrived: answer it at once if it comes from the one we just
   * admitted from the lobby.
   * @param {{id: string, name: string}} k
   * @returns {boolean} handled (no prompt)
   */
  autoAdmit(k) {
    const now = Date.now();
    const i = this.handovers.findIndex((h) => h.id === k.id && now - h.at < HANDOVER_MS);
    if (i < 0 || !this.session) return false;
    const [h] = this.handovers.splice(i, 1);
    this.session.admit(k.id).catch((e) => console.error('conclave e2ee:', e));
    toast(`${h.name} got the meeting key (you let them in from the lobby).`);
    return true;
  }
}
