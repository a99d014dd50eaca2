// Moderator side of the meeting page: the moderator bar (mute all, lock, lobby, password, end
// meeting), per-participant actions in the people list, the lobby panel with knocks, and the
// room-state indicators everyone sees. The server enforces every rule; this only shows controls
// to moderators and sends their commands.
//
// Test hooks: buttons carry `data-action` (`mute-all`, `lock`, `lobby`, `password`, `e2ee`, `end-meeting`;
// per participant `mute`, `stop-video`, `stop-screen-share` (while they present), `remove`,
// `set-moderator` with `data-target="<id>"`; per
// knock `admit`, `deny` with `data-knock="<knock id>"`); indicators `[data-indicator=locked|lobby|
// password|e2ee-off]` (and the `#e2ee-policy` banner while encryption is not required); `document.body.dataset.moderator` is present while we are a moderator. A knock's
// `.knock-name` is the knocker's name as far as we can read it (see KnockName).

import { $, toast, confirmDialog } from './dom.js';
import { DEFAULT_SETTINGS } from './protocol.js';

/** @typedef {import('./protocol.js').Connection} Connection */
/** @typedef {import('./protocol.js').ParticipantInfo} ParticipantInfo */
/** @typedef {import('./protocol.js').RoomSettings} RoomSettings */

/**
 * A knock's name as shown: `sealed` — encrypted with the meeting key by a knocker who has it;
 * `clear` — typed by someone without the key (the server can read it); `unknown` — unreadable.
 * `server` is the name the server has for the knocker.
 * @typedef {{name: string, kind: 'sealed'|'clear'|'unknown', server: string}} KnockName
 */

/** What a knock's note says about its name. */
const KNOCK_NOTE = {
  sealed: '',
  clear: 'no meeting key, name not verified',
  unknown: 'name could not be read',
};

export class Moderation {
  /**
   * @param {() => void} onChange called when our role changes (to re-render the people list and tiles)
   * @param {object} [hooks]
   * @param {(k: {name: string, sealedName: string|null}) => Promise<KnockName>} [hooks.knockName]
   *   reads a knock's name (decrypting its sealed name); default: the name the server sent
   * @param {(k: KnockName) => void} [hooks.onAdmit] we admitted this knock
   */
  constructor(onChange, hooks = {}) {
    this.onChange = onChange;
    this.hooks = hooks;
    /** @type {Connection|null} */
    this.conn = null;
    this.moderator = false;
    /** The first `role` / `settings` of a connection is not announced, later changes are. */
    this.roleKnown = false;
    this.settingsKnown = false;
    /** @type {RoomSettings} */
    this.settings = { ...DEFAULT_SETTINGS };
    /** @type {Map<string, KnockName>} knock id → name */
    this.knocks = new Map();
    /** Knock ids already resolved (a late name must not bring one back). */
    /** @type {Set<string>} */
    this.resolved = new Set();
    this.bar = $('mod-bar', HTMLElement);
    this.knocksEl = $('knocks', HTMLElement);
    this.knocksList = $('knocks-list', HTMLUListElement);
    this.knocksCount = $('knocks-count', HTMLElement);
    this.indicators = $('room-indicators', HTMLElement);
    this.pwDialog = /** @type {HTMLDialogElement} */ (document.getElementById('password-dialog'));
    this.pwInput = $('room-password-input', HTMLInputElement);
    this.wire();
    this.render();
  }

  /**
   * Follow a new connection (a new join; reconnections keep the same Connection).
   * @param {Connection} c
   */
  attach(c) {
    this.reset();
    this.conn = c;
    c.addEventListener('welcome', (ev) => {
      if (c !== this.conn) return;
      const { resumed } = /** @type {CustomEvent} */ (ev).detail;
      // After a resumed session the server may or may not send pending knocks again; keep ours.
      if (!resumed) this.knocks.clear();
      this.renderKnocks();
    });
    c.addEventListener('role', (ev) => {
      if (c !== this.conn) return;
      const { moderator } = /** @type {CustomEvent} */ (ev).detail;
      const was = this.moderator;
      this.moderator = moderator;
      if (!moderator) this.knocks.clear();
      if (was !== moderator && c.state === 'joined' && this.roleKnown) {
        toast(moderator ? 'You are now a moderator.' : 'You are no longer a moderator.');
      }
      this.roleKnown = true;
      this.render();
      this.onChange();
    });
    c.addEventListener('settings', (ev) => {
      if (c !== this.conn) return;
      const { settings } = /** @type {CustomEvent} */ (ev).detail;
      const old = this.settings;
      this.settings = settings;
      if (this.settingsKnown) announceSettings(old, settings);
      this.settingsKnown = true;
      this.render();
    });
    c.addEventListener('knock', async (ev) => {
      if (c !== this.conn || !this.moderator) return;
      const { id, name, sealedName } = /** @type {CustomEvent} */ (ev).detail;
      const isNew = !this.knocks.has(id);
      /** @type {KnockName} */
      const shown = this.hooks.knockName
        ? await this.hooks.knockName({ name, sealedName }).catch(() => ({ name, kind: /** @type {const} */ ('unknown'), server: name }))
        : { name, kind: 'sealed', server: name }; // no encryption layer: the server's name as is
      // Resolved (or gone) while the name was being read: nothing to show.
      if (c !== this.conn || !this.moderator || (!isNew && !this.knocks.has(id)) || this.resolved.has(id)) return;
      this.knocks.set(id, shown);
      this.renderKnocks();
      if (isNew) toast(`${shown.name} is waiting in the lobby.`);
    });
    c.addEventListener('knock_resolved', (ev) => {
      if (c !== this.conn) return;
      const { id } = /** @type {CustomEvent} */ (ev).detail;
      this.knocks.delete(id);
      this.resolved.add(id);
      this.renderKnocks();
    });
  }

  reset() {
    this.conn = null;
    this.moderator = false;
    this.roleKnown = false;
    this.settingsKnown = false;
    this.settings = { ...DEFAULT_SETTINGS };
    this.knocks.clear();
    this.resolved.clear();
    if (this.pwDialog.open) this.pwDialog.close();
    this.render();
  }

  wire() {
    this.bar.addEventListener('click', async (ev) => {
      const btn = /** @type {HTMLElement} */ (ev.target).closest('button');
      const c = this.conn;
      if (!btn || !c) return;
      switch (btn.dataset.action) {
        case 'mute-all':
          c.muteAll();
          toast('Everyone except moderators is muted.');
          break;
        case 'lock':
          c.lock(!this.settings.locked);
          break;
        case 'lobby':
          c.setLobby(!this.settings.lobby);
          break;
        case 'password':
          this.openPasswordDialog();
          break;
        case 'e2ee':
          // Pressed: participants who cannot encrypt may join (docs/e2ee.md).
          c.setE2ee(this.settings.e2ee_required === false);
          break;
        case 'end-meeting':
          if (await confirmDialog('End the meeting for everyone? Everyone will be disconnected.', 'End meeting')) {
            this.conn?.endMeeting();
          }
          break;
      }
    });
    this.knocksList.addEventListener('click', (ev) => {
      const btn = /** @type {HTMLElement} */ (ev.target).closest('button');
      const id = btn?.dataset.knock;
      if (!btn || !id || !this.conn) return;
      const k = this.knocks.get(id);
      if (btn.dataset.action === 'admit') {
        if (k) this.hooks.onAdmit?.(k);
        this.conn.admit(id);
      } else if (btn.dataset.action === 'deny') {
        this.conn.deny(id);
      }
      // Disable until the server confirms with knock_resolved.
      for (const b of this.knocksList.querySelectorAll(`button[data-knock="${CSS.escape(id)}"]`)) {
        /** @type {HTMLButtonElement} */ (b).disabled = true;
      }
    });
    $('password-cancel', HTMLButtonElement).addEventListener('click', () => this.pwDialog.close());
    $('password-clear', HTMLButtonElement).addEventListener('click', () => {
      this.conn?.setPassword(null);
      this.pwDialog.close();
    });
    $('password-form', HTMLFormElement).addEventListener('submit', (ev) => {
      ev.preventDefault();
      const pw = this.pwInput.value;
      if (!pw) {
        this.pwInput.focus();
        return;
      }
      this.conn?.setPassword(pw);
      this.pwInput.value = '';
      this.pwDialog.close();
    });
    this.pwDialog.addEventListener('close', () => {
      this.pwInput.value = '';
    });
  }

  openPasswordDialog() {
    const has = this.settings.password;
    $('password-dialog-state', HTMLElement).textContent = has
      ? 'This meeting has a password. Set a new one, or remove it.'
      : 'No password is set. People who join will need the password you set here (people already in stay).';
    $('password-clear', HTMLButtonElement).hidden = !has;
    this.pwInput.value = '';
    this.pwDialog.showModal();
    this.pwInput.focus();
  }

  render() {
    const s = this.settings;
    if (this.moderator) document.body.dataset.moderator = '';
    else delete document.body.dataset.moderator;
    this.bar.hidden = !this.moderator;
    if (!this.moderator && this.pwDialog.open) this.pwDialog.close();
    const lock = /** @type {HTMLButtonElement} */ (this.bar.querySelector('[data-action="lock"]'));
    // Toggle buttons: a constant name, the state in aria-pressed (and the pressed style).
    lock.setAttribute('aria-pressed', String(s.locked));
    lock.title = s.locked ? 'Locked: nobody new can join. Press to unlock.' : 'Lock: let nobody new join';
    const lobby = /** @type {HTMLButtonElement} */ (this.bar.querySelector('[data-action="lobby"]'));
    lobby.setAttribute('aria-pressed', String(s.lobby));
    lobby.title = s.lobby ? 'Lobby on: a moderator admits each joiner. Press to turn off.' : 'Lobby off: joiners come straight in';
    const e2eeOff = s.e2ee_required === false;
    const allow = /** @type {HTMLButtonElement} */ (this.bar.querySelector('[data-action="e2ee"]'));
    allow.setAttribute('aria-pressed', String(e2eeOff));
    allow.title = e2eeOff
      ? 'Participants who cannot encrypt may join: while one is here, audio and video are not end-to-end encrypted. Press to require encryption again.'
      : 'Only participants who encrypt end to end can join. Press to let in those who cannot (everyone will be told).';
    $('e2ee-policy', HTMLElement).hidden = !e2eeOff;
    const pw = /** @type {HTMLButtonElement} */ (this.bar.querySelector('[data-action="password"]'));
    pw.textContent = s.password ? 'Change password' : 'Set password';
    /** @type {Record<string, [boolean, string]>} */
    const chips = {
      locked: [s.locked, 'Locked: nobody new can join'],
      lobby: [s.lobby, 'Lobby: a moderator admits each joiner'],
      password: [s.password, 'A password is needed to join'],
      'e2ee-off': [e2eeOff, 'End-to-end encryption is not required: participants who cannot encrypt may join'],
    };
    for (const [key, [on, title]] of Object.entries(chips)) {
      const chip = /** @type {HTMLElement} */ (this.indicators.querySelector(`[data-indicator="${key}"]`));
      chip.hidden = !on;
      chip.title = title;
    }
    this.renderKnocks();
  }

  renderKnocks() {
    const show = this.moderator && this.knocks.size > 0;
    this.knocksEl.hidden = !show;
    this.knocksCount.textContent = String(this.knocks.size);
    this.knocksList.replaceChildren(
      ...[...this.knocks].map(([id, { name, kind }]) => {
        const li = document.createElement('li');
        li.dataset.knockItem = id;
        li.dataset.knockKind = kind;
        const who = document.createElement('span');
        who.className = 'knock-who';
        const label = document.createElement('span');
        label.className = 'knock-name';
        label.textContent = name;
        who.append(label);
        if (KNOCK_NOTE[kind]) {
          const note = document.createElement('span');
          note.className = 'knock-note';
          note.textContent = KNOCK_NOTE[kind];
          who.append(note);
        }
        const what = KNOCK_NOTE[kind] ? `${name} (${KNOCK_NOTE[kind]})` : name;
        li.append(
          who,
          button('Admit', `Admit ${what}`, { action: 'admit', knock: id }, 'primary'),
          button('Deny', `Deny ${what}`, { action: 'deny', knock: id }),
        );
        return li;
      }),
    );
  }

  /**
   * Moderator buttons for one remote participant's row in the people list (none when we are not
   * a moderator).
   * @param {ParticipantInfo} p
   * @returns {HTMLElement[]}
   */
  rowActions(p) {
    const c = this.conn;
    if (!this.moderator || !c) return [];
    const box = document.createElement('div');
    box.className = 'person-actions';
    const mute = button('Mute', `Mute ${p.name}`, { action: 'mute', target: p.id });
    mute.disabled = !p.audio;
    mute.addEventListener('click', () => this.conn?.mute(p.id));
    const cam = button('Stop camera', `Stop ${p.name}'s camera`, { action: 'stop-video', target: p.id });
    cam.disabled = !p.video;
    cam.addEventListener('click', () => this.conn?.stopVideo(p.id));
    const mod = button(
      p.moderator ? 'Revoke moderator' : 'Make moderator',
      p.moderator ? `Revoke moderator role from ${p.name}` : `Make ${p.name} a moderator`,
      { action: 'set-moderator', target: p.id, moderator: String(!p.moderator) },
    );
    mod.addEventListener('click', () => this.conn?.setModerator(p.id, !p.moderator));
    const remove = button('Remove', `Remove ${p.name} from the meeting`, { action: 'remove', target: p.id }, 'danger');
    remove.addEventListener('click', async () => {
      if (await confirmDialog(`Remove ${p.name} from the meeting? They cannot come back with this session.`, 'Remove')) {
        this.conn?.remove(p.id);
      }
    });
    box.append(mute, cam);
    if (/** @type {ParticipantInfo & {screen?: boolean}} */ (p).screen) {
      const screen = button('Stop screen share', `Stop ${p.name}'s screen share`, { action: 'stop-screen-share', target: p.id });
      screen.addEventListener('click', () => this.conn?.send({ type: 'stop_screen_share', participant_id: p.id }));
      box.append(screen);
    }
    box.append(mod, remove);
    return [box];
  }
}

/**
 * @param {string} text
 * @param {string} label accessible name
 * @param {Record<string, string>} data
 * @param {string} [cls]
 */
function button(text, label, data, cls = '') {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `btn small ${cls}`.trim();
  b.textContent = text;
  b.setAttribute('aria-label', label);
  b.title = label;
  Object.assign(b.dataset, data);
  return b;
}

/**
 * Tell everyone what a moderator changed.
 * @param {RoomSettings} a
 * @param {RoomSettings} b
 */
function announceSettings(a, b) {
  if (a.locked !== b.locked) toast(b.locked ? 'The meeting is now locked: nobody new can join.' : 'The meeting is unlocked.');
  if (a.lobby !== b.lobby) toast(b.lobby ? 'The lobby is on: a moderator admits each new person.' : 'The lobby is off.');
  if (a.password !== b.password) toast(b.password ? 'A password is now needed to join.' : 'The meeting password was removed.');
  if ((a.e2ee_required !== false) !== (b.e2ee_required !== false)) {
    toast(
      b.e2ee_required === false
        ? 'End-to-end encryption is not required in this meeting: a moderator lets in participants who cannot encrypt.'
        : 'End-to-end encryption is required again: nobody new who cannot encrypt can join.',
      { kind: b.e2ee_required === false ? 'warning' : 'info' },
    );
  }
}
