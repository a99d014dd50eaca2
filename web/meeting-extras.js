// Meeting features that ride on end-to-end encrypted application messages: chat (with unread
// count; only for those present, nothing stored), reactions on the sender's tile, raised hands
// with a visible queue; plus the encryption indicator with the safety code, the "can't decrypt"
// and knocking messages, and admit/deny prompts for key requests (someone in the meeting without
// the secret asks for it; not the server's lobby, see moderation.js).
//
// Test hooks: `#safety-code` holds the safety code; `#e2ee-btn[data-status]` is the E2eeStatus;
// tiles get `data-hand` while a hand is up; `#chat-log li` are chat messages; key requests are
// `.key-request[data-key-request="<participant id>"]` in `#key-requests` (with `.knock-name`).
// While someone who cannot encrypt is present, `#e2ee-btn` has `data-e2ee="off"` and says who.

/** @typedef {import('./e2ee/session.js').E2eeSession} E2eeSession */

const REACTIONS = ['👍', '❤️', '😂', '👏', '🎉'];
const MAX_CHAT = 1000;

const STATUS_LABEL = {
  ok: 'End-to-end encrypted',
  waiting: 'Exchanging keys…',
  cant_decrypt: "Can't decrypt",
  knocking: 'Waiting to be let in',
  denied: 'Not let in',
};

const STATUS_ALERT = {
  cant_decrypt:
    "Can't decrypt this meeting: the key in your link doesn't match the one the others use. " +
    'Ask for a new invite link.',
  knocking: 'Your link has no meeting key, so you asked to be let in. Someone in the meeting can admit you.',
  denied: 'Someone in the meeting declined your request to join.',
};

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
function el(id) {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} missing`);
  return e;
}

export class MeetingExtras {
  /**
   * @param {E2eeSession} session
   * @param {object} ctx
   * @param {() => string|null} ctx.selfId
   * @param {(id: string) => string} ctx.nameOf
   * @param {() => void} ctx.layout  the grid must re-layout (a side panel opened or closed)
   * @param {(text: string, opts?: {kind?: 'error'|'info'|'warning'}) => void} ctx.toast
   * @param {(k: {id: string, name: string}) => boolean} [ctx.autoAdmit] answers a key request
   *   without a prompt (returns true) when it is already decided
   */
  constructor(session, ctx) {
    this.session = session;
    this.ctx = ctx;
    this.abort = new AbortController();
    this.unread = 0;
    /** Participant ids with a raised hand, in the order they were raised. */
    /** @type {string[]} */
    this.hands = [];
    /** Names of the participants present who do not encrypt (see setUnencrypted). */
    /** @type {string[]} */
    this.unencrypted = [];
    const opts = { signal: this.abort.signal };

    el('chat-log').replaceChildren();
    this.setUnread(0);
    el('hands-list').replaceChildren();
    el('hands').hidden = true;
    el('key-requests-list').replaceChildren();
    el('key-requests').hidden = true;
    el('safety-code').textContent = '…';
    this.showStatus(session.status);

    el('chat-btn').addEventListener('click', () => this.toggleChat(), opts);
    el('chat-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const input = /** @type {HTMLInputElement} */ (el('chat-input'));
      const text = input.value.trim().slice(0, MAX_CHAT);
      if (!text) return;
      input.value = '';
      session.sendChat(text);
      this.addChat('You', text);
    }, opts);
    el('hand-btn').addEventListener('click', () => {
      const me = ctx.selfId();
      if (!me) return;
      const up = !this.hands.includes(me);
      session.setHand(up);
      this.setHand(me, up);
    }, opts);
    for (const b of document.querySelectorAll('button.react')) {
      b.addEventListener('click', () => {
        const emoji = /** @type {HTMLElement} */ (b).dataset.emoji ?? '';
        session.react(emoji);
        const me = ctx.selfId();
        if (me) this.showReaction(me, emoji);
      }, opts);
    }
    el('e2ee-btn').addEventListener('click', () => {
      const panel = el('e2ee-panel');
      panel.hidden = !panel.hidden;
      el('e2ee-btn').setAttribute('aria-expanded', String(!panel.hidden));
    }, opts);
    el('copy-invite').addEventListener('click', () => {
      navigator.clipboard?.writeText(location.href).then(
        () => ctx.toast('Invite link copied. It contains the meeting key: share it only with people you invite.'),
        () => ctx.toast(location.href),
      );
    }, opts);

    session.addEventListener('app', (ev) => this.onApp(/** @type {CustomEvent} */ (ev).detail), opts);
    session.addEventListener('member', (ev) => {
      const { id, hand } = /** @type {CustomEvent} */ (ev).detail;
      if (hand !== this.hands.includes(id)) this.setHand(id, hand);
    }, opts);
    session.addEventListener('safety', (ev) => {
      el('safety-code').textContent = /** @type {CustomEvent} */ (ev).detail.code;
    }, opts);
    session.addEventListener('status', (ev) => this.showStatus(/** @type {CustomEvent} */ (ev).detail.status), opts);
    session.addEventListener('knock', (ev) => {
      const k = /** @type {CustomEvent} */ (ev).detail;
      if (!ctx.autoAdmit?.(k)) this.showKnock(k);
    }, opts);
    session.addEventListener('knock_done', (ev) => {
      const { id, by, admitted } = /** @type {CustomEvent} */ (ev).detail;
      this.removeKnock(id);
      if (by && by !== ctx.selfId()) ctx.toast(`${ctx.nameOf(by)} ${admitted ? 'let someone in' : 'declined a request to join'}.`);
    }, opts);
  }

  destroy() {
    this.abort.abort();
    this.unencrypted = [];
    this.showStatus(this.session.status);
    el('e2ee-alert').hidden = true;
    el('e2ee-panel').hidden = true;
    el('key-requests-list').replaceChildren();
    el('key-requests').hidden = true;
  }

  /** @param {string} id */
  removeParticipant(id) {
    if (this.hands.includes(id)) this.setHand(id, false);
  }

  /** A participant's name became known: refresh where it is shown. */
  refreshNames() {
    this.renderHands();
  }

  /** @param {{from: string, msg: any}} d */
  onApp({ from, msg }) {
    switch (msg?.k) {
      case 'chat':
        if (typeof msg.text === 'string') this.addChat(this.ctx.nameOf(from), msg.text.slice(0, MAX_CHAT));
        break;
      case 'react':
        if (REACTIONS.includes(msg.emoji)) this.showReaction(from, msg.emoji);
        break;
      case 'hand':
        this.setHand(from, msg.up === true);
        break;
    }
  }

  toggleChat() {
    const panel = el('chat');
    panel.hidden = !panel.hidden;
    el('chat-btn').setAttribute('aria-pressed', String(!panel.hidden));
    el('chat-btn').setAttribute('aria-label', panel.hidden ? 'Show chat' : 'Hide chat');
    if (!panel.hidden) {
      this.setUnread(0);
      el('chat-input').focus();
    }
    this.ctx.layout();
  }

  /** @param {number} n */
  setUnread(n) {
    this.unread = n;
    const badge = el('chat-unread');
    badge.textContent = String(n);
    badge.hidden = n === 0;
  }

  /**
   * @param {string} who
   * @param {string} text
   */
  addChat(who, text) {
    const li = document.createElement('li');
    const w = document.createElement('span');
    w.className = 'who';
    w.textContent = who;
    const t = document.createElement('span');
    t.className = 'text';
    t.textContent = text;
    li.append(w, t);
    const log = el('chat-log');
    log.append(li);
    log.scrollTop = log.scrollHeight;
    if (el('chat').hidden && who !== 'You') this.setUnread(this.unread + 1);
  }

  /** @param {string} id */
  tile(id) {
    return /** @type {HTMLElement|null} */ (document.querySelector(`#grid [data-participant="${CSS.escape(id)}"]`));
  }

  /**
   * @param {string} id
   * @param {string} emoji
   */
  showReaction(id, emoji) {
    const tile = this.tile(id);
    if (!tile) return;
    const r = document.createElement('span');
    r.className = 'reaction';
    r.textContent = emoji;
    r.dataset.emoji = emoji;
    tile.append(r);
    setTimeout(() => r.remove(), 3000);
  }

  /**
   * @param {string} id
   * @param {boolean} up
   */
  setHand(id, up) {
    this.hands = this.hands.filter((h) => h !== id);
    if (up) this.hands.push(id);
    if (id === this.ctx.selfId()) {
      el('hand-btn').setAttribute('aria-pressed', String(up));
      el('hand-btn').setAttribute('aria-label', up ? 'Lower hand' : 'Raise hand');
    }
    this.renderHands();
  }

  renderHands() {
    for (const t of document.querySelectorAll('#grid [data-participant]')) {
      const tile = /** @type {HTMLElement} */ (t);
      const up = this.hands.includes(tile.dataset.participant ?? '');
      if (up) tile.dataset.hand = '';
      else delete tile.dataset.hand;
      if (up && !tile.querySelector('.hand-badge')) {
        const b = document.createElement('span');
        b.className = 'hand-badge';
        b.textContent = '✋';
        b.setAttribute('aria-label', 'Hand raised');
        tile.append(b);
      }
    }
    el('hands').hidden = this.hands.length === 0;
    el('hands-list').replaceChildren(
      ...this.hands.map((id) => {
        const li = document.createElement('li');
        li.textContent = id === this.ctx.selfId() ? 'You' : this.ctx.nameOf(id);
        return li;
      }),
    );
  }

  /**
   * Participants who cannot encrypt are present (or no longer): the indicator warns and says who.
   * @param {string[]} names
   */
  setUnencrypted(names) {
    this.unencrypted = names;
    this.showStatus(this.session.status);
  }

  /** @param {import('./e2ee/session.js').E2eeStatus} status */
  showStatus(status) {
    const btn = el('e2ee-btn');
    btn.dataset.status = status;
    const off = this.unencrypted;
    if (off.length) {
      btn.dataset.e2ee = 'off';
      const who = off.length === 1 ? `${off[0]} cannot encrypt` : `${off.join(', ')} cannot encrypt`;
      el('e2ee-label').textContent = `Not end-to-end encrypted: ${who}`;
      el('e2ee-panel-state').textContent =
        `This meeting is not end-to-end encrypted right now: ${who}, so audio and video are sent ` +
        'unencrypted and the server could see and hear them. Chat stays encrypted among the others.';
    } else {
      delete btn.dataset.e2ee;
      el('e2ee-label').textContent = STATUS_LABEL[status];
      el('e2ee-panel-state').textContent =
        'This meeting is end-to-end encrypted. The server forwards audio, video, names and chat ' +
        'without being able to read them.';
    }
    const alert = el('e2ee-alert');
    const text = /** @type {Record<string, string>} */ (STATUS_ALERT)[status];
    alert.textContent = text ?? '';
    alert.hidden = !text;
  }

  /** @param {{id: string, name: string}} k */
  showKnock({ id, name }) {
    this.removeKnock(id);
    const li = document.createElement('li');
    li.className = 'key-request';
    li.dataset.keyRequest = id;
    const who = document.createElement('span');
    who.className = 'knock-who';
    const label = document.createElement('span');
    label.className = 'knock-name';
    label.textContent = name;
    const note = document.createElement('span');
    note.className = 'knock-note';
    note.textContent = 'not verified: has no meeting key';
    who.append(label, note);
    /**
     * @param {string} text
     * @param {string} label accessible name
     * @param {string} cls
     * @param {() => void} act
     */
    const button = (text, label, cls, act) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = `btn small ${cls}`.trim();
      b.textContent = text;
      b.setAttribute('aria-label', label);
      b.title = label;
      b.addEventListener('click', () => {
        this.removeKnock(id);
        act();
      });
      return b;
    };
    li.append(
      who,
      button('Admit', `Admit ${name}: give them the meeting key`, 'primary', () => this.session.admit(id)),
      button('Deny', `Deny ${name} the meeting key`, '', () => this.session.deny(id)),
    );
    el('key-requests-list').append(li);
    el('key-requests').hidden = false;
  }

  /** @param {string} id */
  removeKnock(id) {
    el('key-requests-list').querySelector(`[data-key-request="${CSS.escape(id)}"]`)?.remove();
    el('key-requests').hidden = el('key-requests-list').childElementCount === 0;
  }
}
