// Conclave web client: pages (landing, pre-join, meeting, left) on top of the connection library.
//
// Test hooks:
// - `document.body.dataset.state` is `landing | prejoin | joining | lobby | joined | reconnecting |
//   left`; `document.body.dataset.reason` is the error code or `closed` reason that ended or
//   refused the join (absent otherwise);
// - tiles carry `data-participant`, `data-local`, `data-video`, `data-audio`, `data-moderator`
//   (see tiles.js), the active speaker's `data-speaking`; tiles on other pages stay in the DOM,
//   `hidden` (see grid.js for layouts, pages and `#grid[data-layout]`); toolbar buttons
//   `[data-action="layout"]`, `[data-action="screen"]` (see screen-share.js), pager
//   `[data-action="page-prev|page-next"]`; moderator controls carry `data-action` (see moderation.js);
// - `?name=` prefills the name, `&autojoin=1` skips the pre-join page, `?jwt=` is a join token
//   (removed from the address bar at once; passwords are never taken from the URL), `#<secret>`
//   is the meeting's end-to-end encryption secret (never sent to the server);
// - end-to-end encryption hooks are listed in meeting-extras.js; a browser that cannot encrypt
//   has `document.body.dataset.e2ee = 'off'` and shows `#e2ee-plain` once in a meeting;
// - `window.conclave` exposes `pc` (the current RTCPeerConnection, for `getStats()` in tests),
//   `connection` (the Connection), `participantId` and `e2ee` (the E2eeSession).

import { Connection } from './protocol.js';
import { getCameraTrack, getMicTrack, MESSAGES } from './media.js';
import { Tile } from './tiles.js';
import { Grid } from './grid.js';
import { ScreenShare } from './screen-share.js';
import { ICONS } from './icons.js';
import { $, toast } from './dom.js';
import { ui, me, setState, setReason, ROOM_RE, RESERVED, NAME_KEY } from './page.js';
import { setToggle, acquireMedia, stopLocalMedia, showPrejoin, wirePrejoin } from './prejoin.js';
import { errorText, drainingText, CLOSED_TEXT, REFUSED_TITLE, PASSWORD_ERRORS } from './messages.js';
import { Moderation } from './moderation.js';
import { E2eeMeeting } from './e2ee-meeting.js';
import { NAME_PLACEHOLDER, transformSupport } from './e2ee/session.js';
import { generateSecret, validSecret } from './e2ee/keys.js';
import { sealName } from './e2ee/sealed-name.js';

/** @typedef {import('./protocol.js').ParticipantInfo} ParticipantInfo */
/** @typedef {import('./protocol.js').RemoteMedia} RemoteMedia */

/**
 * This browser has no encoded transforms, so it cannot encrypt media: it joins with `e2ee: false`
 * and gets in only if a moderator allows participants who cannot encrypt (docs/e2ee.md).
 */
const cannotEncrypt = !transformSupport();

/** While the server says `host_required`, the page tries again this often. */
const HOST_RETRY_MS = 5000;

/** @type {Connection|null} */
let conn = null;
const pager = {
  box: $('pager', HTMLElement),
  label: $('pager-label', HTMLElement),
  prev: /** @type {HTMLButtonElement} */ (document.querySelector('[data-action="page-prev"]')),
  next: /** @type {HTMLButtonElement} */ (document.querySelector('[data-action="page-next"]')),
};
const layoutBtn = $('layout-btn', HTMLButtonElement);
const grid = new Grid(ui.grid, {
  // The server forwards only what is drawn, each in the layer that fits its height.
  onView: (tiles) => conn?.sendView(tiles),
  onPages: (page, pages) => {
    pager.box.hidden = pages <= 1;
    pager.label.textContent = `${page + 1} / ${pages}`;
    pager.prev.disabled = page === 0;
    pager.next.disabled = page >= pages - 1;
  },
});
/** @type {Map<string, ParticipantInfo>} */
const participants = new Map();
const screen = new ScreenShare({
  grid,
  button: $('screen-btn', HTMLButtonElement),
  nameOf: (id) => participants.get(id)?.name ?? 'Someone',
  setLayout,
});
/** @type {Tile|null} */
let localTile = null;
/** @type {ReturnType<typeof setTimeout>|null} */
let hostRetry = null;
/** Names the server gave remote participants (the placeholder for most, see e2ee-meeting.js). */
/** @type {Map<string, string>} */
const serverNames = new Map();
const crypt = new E2eeMeeting({
  onName: (id) => refreshName(id),
  onStatus: () => {
    for (const id of [...participants.keys()]) refreshName(id);
  },
  layout: () => grid.layout(),
  onSecret: (secret) => {
    // Now part of the invite link (and kept for a reload); still never sent to the server.
    me.secret = secret;
    history.replaceState(history.state, '', `${location.pathname}${location.search}#${secret}`);
  },
});
const mod = new Moderation(
  () => {
    localTile?.setModerator(mod.moderator);
    renderPeople();
  },
  {
    knockName: (k) => crypt.knockName(k),
    onAdmit: (k) => crypt.admittedFromLobby(k),
  },
);

// Exposed for tests and debugging (see the header comment).
/** @type {any} */ (window).conclave = {
  get pc() {
    return conn?.pc ?? null;
  },
  get connection() {
    return conn;
  },
  get participantId() {
    return conn?.participantId ?? null;
  },
  get e2ee() {
    return crypt.session;
  },
};


// ---------------------------------------------------------------------------------------------
// Landing

function randomRoomName() {
  const words = ['amber', 'brisk', 'cedar', 'delta', 'ember', 'fjord', 'grove', 'harbor', 'iris', 'jade',
    'kestrel', 'lumen', 'maple', 'nova', 'opal', 'pine', 'quartz', 'river', 'sage', 'tide'];
  const bytes = crypto.getRandomValues(new Uint32Array(3));
  const w = (/** @type {number} */ i) => words[bytes[i] % words.length];
  return `${w(0)}-${w(1)}-${(bytes[2] % 9000) + 1000}`;
}

/** @param {string} room */
function validRoom(room) {
  return ROOM_RE.test(room) && !RESERVED.has(room.toLowerCase());
}

function showLanding() {
  setState('landing');
  ui.landingForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const room = ui.roomInput.value.trim();
    if (!validRoom(room)) {
      ui.landingError.textContent = 'Room names are 1–64 letters, digits, "-" or "_".';
      ui.landingError.hidden = false;
      return;
    }
    location.assign(`/${encodeURIComponent(room)}`);
  });
  // A new meeting gets a new secret in the fragment, which browsers never send to the server.
  ui.randomRoom.addEventListener('click', () => location.assign(`/${randomRoomName()}#${generateSecret()}`));
  ui.roomInput.focus();
}


// ---------------------------------------------------------------------------------------------
// Meeting

function mediaState() {
  return { audio: !!me.audio && me.micOn, video: !!me.video && me.camOn };
}

function updateControls() {
  const s = mediaState();
  setToggle(ui.micBtn, s.audio, 'mic', true);
  setToggle(ui.camBtn, s.video, 'cam', true);
  if (localTile) {
    localTile.setState(s.audio, s.video);
    localTile.setTracks(null, s.video ? me.video : null);
  }
  renderPeople();
}

function renderPeople() {
  /** @type {(ParticipantInfo & {local?: boolean})[]} */
  const rows = [];
  if (conn?.participantId) {
    rows.push({ id: conn.participantId, name: `${me.name} (you)`, ...mediaState(), moderator: mod.moderator, local: true, e2ee: !cannotEncrypt });
  }
  for (const p of participants.values()) rows.push(p);
  ui.peopleCount.textContent = `(${rows.length})`;
  // Re-rendering replaces the buttons: keep keyboard focus on the same action.
  const active = /** @type {HTMLElement|null} */ (document.activeElement);
  const refocus = active && ui.peopleList.contains(active) ? active.dataset : null;
  ui.peopleList.replaceChildren(
    ...rows.map((p) => {
      const li = document.createElement('li');
      li.dataset.participantItem = p.id;
      if (p.moderator) li.dataset.moderator = '';
      const name = document.createElement('span');
      name.className = 'person-name';
      name.textContent = p.name;
      const badge = document.createElement('span');
      badge.className = 'mod-badge';
      badge.textContent = 'Moderator';
      badge.hidden = !p.moderator;
      const plain = document.createElement('span');
      plain.className = 'e2ee-off-badge';
      plain.textContent = 'Not encrypted';
      plain.title = 'Cannot encrypt end to end';
      plain.hidden = p.e2ee !== false;
      if (p.e2ee === false) li.dataset.e2ee = 'off';
      const mic = document.createElement('span');
      mic.className = `state ${p.audio ? 'on' : 'off'}`;
      mic.innerHTML = p.audio ? ICONS.mic : ICONS.micOff;
      mic.setAttribute('role', 'img');
      mic.setAttribute('aria-label', p.audio ? 'Microphone on' : 'Microphone muted');
      const cam = document.createElement('span');
      cam.className = `state ${p.video ? 'on' : 'off'}`;
      cam.innerHTML = p.video ? ICONS.cam : ICONS.camOff;
      cam.setAttribute('role', 'img');
      cam.setAttribute('aria-label', p.video ? 'Camera on' : 'Camera off');
      const head = document.createElement('div');
      head.className = 'person-head';
      head.append(name, badge, plain, mic, cam);
      li.append(head, ...(p.local ? [] : mod.rowActions(p)));
      return li;
    }),
  );
  if (refocus?.action) {
    const sel = `button[data-action="${CSS.escape(refocus.action)}"][data-target="${CSS.escape(refocus.target ?? '')}"]`;
    /** @type {HTMLButtonElement|null} */ (ui.peopleList.querySelector(sel))?.focus();
  }
}

/**
 * @param {ParticipantInfo} info as the server sent it
 */
function upsertRemote(info) {
  if (info.id === conn?.participantId) {
    // The server may tell everyone, us included, about our own change (role, moderated media).
    localTile?.setModerator(!!info.moderator);
    return;
  }
  serverNames.set(info.id, info.name);
  // Shown everywhere (tile, people list, moderator actions): the end-to-end encrypted name.
  const p = { ...info, name: crypt.displayName(info.id, info.name) };
  participants.set(p.id, p);
  let tile = grid.tiles.get(p.id);
  if (!tile) {
    tile = new Tile(p.id, p.name, false);
    tile.onAutoplayBlocked = () => {
      ui.soundBtn.hidden = false;
    };
    grid.add(tile);
    const m = conn?.remote.get(p.id);
    if (m) tile.setTracks(m.audio, m.video);
  }
  tile.setName(p.name);
  tile.setState(p.audio, p.video);
  tile.setModerator(!!p.moderator);
  tile.setE2ee(p.e2ee !== false);
  screen.update(participants);
  renderPeople();
}

/**
 * A participant's shown name may have changed (their encrypted name arrived, or could not).
 * @param {string} id
 */
function refreshName(id) {
  const p = participants.get(id);
  if (p) upsertRemote({ ...p, name: serverNames.get(id) ?? NAME_PLACEHOLDER });
}

/** @param {string} id */
function removeRemote(id) {
  participants.delete(id);
  serverNames.delete(id);
  crypt.extras?.removeParticipant(id);
  grid.remove(id);
  screen.update(participants);
  renderPeople();
}

/** @param {Map<string, RemoteMedia>} media */
function applyRemoteMedia(media) {
  for (const [id, tile] of grid.tiles) {
    if (tile.local) continue;
    const m = media.get(id);
    tile.setTracks(m?.audio ?? null, m?.video ?? null);
  }
  screen.update(participants, media);
}

/**
 * @param {{background?: boolean}} [opts] background: a retry while the "waiting for the host"
 *   screen stays up (no "Joining…" flash, no repeated toasts) until the server lets us in
 */
function startMeeting(opts = {}) {
  let background = !!opts.background;
  if (hostRetry) clearTimeout(hostRetry);
  hostRetry = null;
  if (!background) {
    setReason(null);
    setState('joining');
  }
  ui.preview.srcObject = null;
  ui.meetingRoom.textContent = me.room;
  participants.clear();
  serverNames.clear();
  grid.clear();
  localTile = null;
  // With the secret, the server gets a placeholder, never the name: names travel end-to-end
  // encrypted (and, for a lobby knock, sealed with the secret). Without it, the name is typed for
  // whoever admits us, and the server can read it (docs/e2ee.md).
  // A browser that cannot encrypt sends its name in the clear (it has no key exchange at all).
  const c = new Connection({
    room: me.room,
    name: me.secret && !cannotEncrypt ? NAME_PLACEHOLDER : me.name,
    password: me.password,
    token: me.token,
    e2ee: !cannotEncrypt,
  });
  conn = c;
  mod.attach(c);
  screen.attach(c);
  if (cannotEncrypt) crypt.startPlain(c);
  else crypt.start(c, { room: me.room, secret: me.secret, name: me.name });
  showPlainSelf(cannotEncrypt);
  c.publish = { audio: me.hasMic, video: me.hasCam };
  if (!me.camOn && me.video) {
    me.video.stop();
    me.video = null;
  }
  c.setLocalTracks(me.audio, me.camOn ? me.video : null);
  const s = mediaState();
  c.sendMediaState(s.audio, s.video);
  if (me.mediaMessage && !background) toast(me.mediaMessage, { kind: 'warning', sticky: true });

  c.addEventListener('state', (ev) => {
    if (c !== conn) return;
    const { state } = /** @type {CustomEvent} */ (ev).detail;
    if (background && state === 'joining') return;
    if (state === 'joined') {
      background = false;
      setReason(null);
      // A new session on the server knows nothing of what we show.
      grid.sendView();
    }
    if (state === 'joining' || state === 'joined' || state === 'reconnecting') setState(state);
  });
  c.addEventListener('lobby', () => {
    if (c !== conn) return;
    background = false;
    setReason(null);
    ui.lobbyRoom.textContent = me.room;
    setState('lobby');
    ui.lobbyLeave.focus();
  });
  c.addEventListener('welcome', (ev) => {
    if (c !== conn) return;
    const { msg } = /** @type {CustomEvent<{msg: import('./protocol.js').WelcomeMsg}>} */ (ev).detail;
    // The password worked (or was not needed): it stays in memory for reconnections only.
    if (localTile && localTile.id !== msg.participant_id) {
      grid.remove(localTile.id);
      localTile = null;
    }
    if (!localTile) {
      localTile = new Tile(msg.participant_id, me.name, true);
      localTile.setE2ee(!cannotEncrypt);
      grid.add(localTile);
    }
    localTile.setModerator(!!msg.moderator);
    // Refresh the remote participants from the (possibly new) welcome.
    const present = new Set(msg.participants.map((p) => p.id));
    for (const id of [...participants.keys()]) if (!present.has(id)) removeRemote(id);
    for (const p of msg.participants) upsertRemote(p);
    updateControls();
  });
  c.addEventListener('participant_joined', (ev) => {
    if (c === conn) upsertRemote(/** @type {CustomEvent} */ (ev).detail.participant);
  });
  c.addEventListener('participant_updated', (ev) => {
    if (c === conn) upsertRemote(/** @type {CustomEvent} */ (ev).detail.participant);
  });
  c.addEventListener('participant_left', (ev) => {
    if (c === conn) removeRemote(/** @type {CustomEvent} */ (ev).detail.id);
  });
  c.addEventListener('active_speaker', (ev) => {
    if (c === conn) grid.setSpeaker(/** @type {CustomEvent} */ (ev).detail.id ?? null);
  });
  c.addEventListener('media', (ev) => {
    if (c === conn) applyRemoteMedia(/** @type {CustomEvent} */ (ev).detail.media);
  });
  c.addEventListener('moderated', (ev) => {
    if (c === conn) onModerated(/** @type {CustomEvent} */ (ev).detail.action).catch(console.error);
  });
  c.addEventListener('draining', (ev) => {
    if (c !== conn) return;
    document.body.dataset.draining = 'true';
    toast(drainingText(/** @type {CustomEvent} */ (ev).detail.deadlineS), { kind: 'warning', sticky: true });
  });
  c.addEventListener('closed', (ev) => {
    if (c !== conn) return;
    const { reason } = /** @type {CustomEvent} */ (ev).detail;
    endMeeting();
    const t = CLOSED_TEXT[reason] ?? { title: 'You are out of the meeting', detail: `Reason: ${reason}.` };
    showLeft(t.title, t.detail, reason);
  });
  c.addEventListener('server_error', (ev) => {
    if (c !== conn) return;
    const { code, message, fatal } = /** @type {CustomEvent} */ (ev).detail;
    const text = errorText(code, message);
    if (!fatal) {
      if (code === 'screen_share_busy') screen.busy();
      else toast(text, { kind: 'error' });
      return;
    }
    onJoinRefused(code, text);
  });
  if (me.secret && !cannotEncrypt) {
    const secret = me.secret;
    sealName(secret, me.room, me.name)
      .catch((e) => {
        console.error('conclave: sealing the name', e);
        return '';
      })
      .then((sealed) => {
        if (c !== conn) return;
        c.sealedName = sealed || null;
        c.join();
      });
  } else {
    c.join();
  }
}

/**
 * The server refused the join (the connection is closed): say why, and what the user can do.
 * @param {string} code
 * @param {string} text
 */
function onJoinRefused(code, text) {
  if (code === 'host_required') {
    // Keep the local media: the page joins by itself once a host has opened the meeting.
    endMeeting({ keepMedia: true });
    showLeft(REFUSED_TITLE[code], text, code);
    ui.rejoinBtn.textContent = 'Try now';
    hostRetry = setTimeout(() => {
      hostRetry = null;
      if (document.body.dataset.reason === 'host_required') startMeeting({ background: true });
    }, HOST_RETRY_MS);
    return;
  }
  endMeeting();
  if (code === 'invalid_name') {
    ui.nameError.textContent = text;
    ui.nameError.hidden = false;
    setReason(code);
    showPrejoin().catch(console.error);
  } else if (PASSWORD_ERRORS.has(code)) {
    setReason(code);
    showPrejoin({ passwordError: text }).catch(console.error);
  } else {
    showLeft(REFUSED_TITLE[code] ?? 'Could not join the meeting', text, code);
    if (code === 'removed') ui.rejoinBtn.hidden = true;
    if (code === 'e2ee_required') ui.rejoinBtn.textContent = 'Try again';
    if (code === 'invalid_token') {
      // The same token would be refused again: a new attempt joins without it (as a guest).
      me.token = '';
      ui.rejoinBtn.textContent = 'Join without the link';
    }
  }
}

/**
 * A moderator turned our microphone or camera off: do the same locally (so the buttons tell the
 * truth and nothing is captured), tell the server, and say so. The user may turn it on again.
 * @param {'muted'|'video_stopped'|'screen_stopped'} action
 */
async function onModerated(action) {
  if (action === 'screen_stopped') {
    screen.stoppedByModerator();
    return;
  }
  if (action === 'muted') {
    me.micOn = false;
    if (me.audio) me.audio.enabled = false;
    toast('A moderator muted you. You can unmute yourself when you need to speak.', { kind: 'warning' });
  } else if (action === 'video_stopped') {
    if (me.video) {
      const old = me.video;
      me.video = null;
      me.camOn = false;
      await conn?.replaceVideoTrack(null);
      old.stop();
    }
    me.camOn = false;
    toast('A moderator turned your camera off. You can turn it on again.', { kind: 'warning' });
  }
  const s = mediaState();
  conn?.sendMediaState(s.audio, s.video);
  updateControls();
}

/**
 * Switch between the grid and speaker view. The button is a toggle with a constant name
 * ("Speaker view", pressed in speaker view); its icon shows the view a press switches to.
 * @param {import('./grid.js').LayoutMode} mode
 */
function setLayout(mode) {
  grid.setMode(mode);
  const speaker = mode === 'speaker';
  layoutBtn.setAttribute('aria-pressed', String(speaker));
  layoutBtn.innerHTML = speaker ? ICONS.gridView : ICONS.speakerView;
  layoutBtn.title = speaker ? 'Back to the grid' : 'Speaker view: the active speaker large';
}

/** @param {{keepMedia?: boolean}} [opts] */
function endMeeting(opts = {}) {
  const c = conn;
  conn = null;
  c?.leave();
  mod.reset();
  screen.reset();
  crypt.stop();
  showPlainSelf(false);
  grid.clear();
  participants.clear();
  serverNames.clear();
  localTile = null;
  if (!opts.keepMedia) stopLocalMedia();
  ui.soundBtn.hidden = true;
  for (const t of ui.toasts.querySelectorAll('.toast.warning')) t.remove();
}

/**
 * Say, for as long as we are in the meeting, that this browser's connection is not end-to-end
 * encrypted (it cannot encrypt); it has no chat, hands or reactions (see e2ee-meeting.js).
 * @param {boolean} on
 */
function showPlainSelf(on) {
  const plain = /** @type {HTMLElement} */ (document.getElementById('e2ee-plain'));
  plain.hidden = !on;
  const btn = /** @type {HTMLElement} */ (document.getElementById('e2ee-btn'));
  if (on) {
    document.body.dataset.e2ee = 'off';
    btn.dataset.e2ee = 'off';
    btn.dataset.status = 'plain';
    /** @type {HTMLElement} */ (document.getElementById('e2ee-label')).textContent = 'Not end-to-end encrypted';
    /** @type {HTMLElement} */ (document.getElementById('e2ee-panel-state')).textContent =
      'Your browser cannot encrypt end to end: what you send and receive in this meeting is not ' +
      'end-to-end encrypted, and the server could see and hear it.';
  } else if (document.body.dataset.e2ee === 'off') {
    delete document.body.dataset.e2ee;
    delete btn.dataset.e2ee;
  }
}

/**
 * @param {string} title
 * @param {string} detail
 * @param {string|null} [reason] error code or `closed` reason (`data-reason`)
 */
function showLeft(title, detail, reason = null) {
  const again = document.body.dataset.state === 'left' && document.body.dataset.reason === (reason ?? undefined);
  ui.leftTitle.textContent = title;
  ui.leftDetail.textContent = detail;
  ui.rejoinBtn.hidden = false;
  ui.rejoinBtn.textContent = reason === 'denied' ? 'Ask again' : 'Rejoin';
  setReason(reason);
  setState('left');
  if (!again) ui.rejoinBtn.focus(); // not on every background retry
}

function wireMeeting() {
  ui.micBtn.addEventListener('click', async () => {
    if (!me.audio) {
      if (!conn?.publish.audio) {
        toast(me.mediaMessage ?? 'No microphone available.', { kind: 'warning' });
        return;
      }
      try {
        me.audio = await getMicTrack(me.audioDevice || undefined);
        me.micOn = false;
        await conn.replaceAudioTrack(me.audio);
      } catch {
        toast('The microphone could not be started.', { kind: 'warning' });
        return;
      }
    }
    me.micOn = !me.micOn;
    me.audio.enabled = me.micOn;
    const s = mediaState();
    conn?.sendMediaState(s.audio, s.video);
    updateControls();
  });
  ui.camBtn.addEventListener('click', async () => {
    if (!conn) return;
    if (me.camOn && me.video) {
      me.camOn = false;
      const old = me.video;
      me.video = null;
      await conn.replaceVideoTrack(null);
      old.stop(); // camera light off
    } else {
      if (!conn.publish.video) {
        toast(me.mediaMessage ?? MESSAGES.no_camera, { kind: 'warning' });
        return;
      }
      ui.camBtn.disabled = true;
      try {
        const t = await getCameraTrack(me.videoDevice || undefined);
        if (!conn) {
          t.stop();
          return;
        }
        me.video = t;
        me.camOn = true;
        await conn.replaceVideoTrack(t);
      } catch {
        toast('The camera could not be started.', { kind: 'warning' });
      } finally {
        ui.camBtn.disabled = false;
      }
    }
    const s = mediaState();
    conn?.sendMediaState(s.audio, s.video);
    updateControls();
  });
  ui.peopleBtn.addEventListener('click', () => {
    const open = ui.people.hidden;
    ui.people.hidden = !open;
    ui.peopleBtn.setAttribute('aria-pressed', String(open));
    ui.peopleBtn.setAttribute('aria-label', open ? 'Hide participants' : 'Show participants');
    grid.layout();
  });
  ui.peopleBtn.innerHTML = ICONS.people;
  layoutBtn.addEventListener('click', () => setLayout(grid.mode === 'grid' ? 'speaker' : 'grid'));
  setLayout('grid');
  pager.prev.innerHTML = ICONS.prev;
  pager.next.innerHTML = ICONS.next;
  pager.prev.addEventListener('click', () => grid.turnPage(-1));
  pager.next.addEventListener('click', () => grid.turnPage(1));
  ui.peopleBtn.title = 'Participants';
  ui.leaveBtn.innerHTML = ICONS.leave;
  ui.leaveBtn.title = 'Leave meeting';
  ui.leaveBtn.addEventListener('click', () => {
    endMeeting();
    showLeft('You left the meeting', `You were in “${me.room}”.`);
  });
  ui.soundBtn.addEventListener('click', () => {
    for (const t of grid.tiles.values()) t.enableSound();
    ui.soundBtn.hidden = true;
  });
  ui.rejoinBtn.addEventListener('click', async () => {
    if (hostRetry) clearTimeout(hostRetry);
    hostRetry = null;
    setReason(null);
    setState('joining');
    stopLocalMedia();
    me.camOn = true;
    await acquireMedia();
    startMeeting();
  });
  ui.lobbyLeave.addEventListener('click', () => {
    endMeeting();
    showLeft('You left the lobby', `You were waiting to join “${me.room}”.`);
  });
  window.addEventListener('pagehide', () => conn?.leave());
}

// ---------------------------------------------------------------------------------------------
// Start

/**
 * A join token may come in the page URL (`?jwt=`). Keep it in memory only, and remove it from the
 * address bar at once (history, bookmarks, screen shares, copy-pasted links), keeping the other
 * parameters and the fragment (the E2EE secret).
 */
function takeTokenFromUrl() {
  const params = new URLSearchParams(location.search);
  const jwt = params.get('jwt');
  if (jwt === null) return;
  me.token = jwt.trim();
  params.delete('jwt');
  const query = params.toString();
  history.replaceState(history.state, '', `${location.pathname}${query ? `?${query}` : ''}${location.hash}`);
}

async function main() {
  takeTokenFromUrl();
  const path = decodeURIComponent(location.pathname.replace(/^\/+|\/+$/g, ''));
  wirePrejoin(startMeeting);
  wireMeeting();
  if (!path) {
    showLanding();
    return;
  }
  if (!validRoom(path)) {
    showLanding();
    ui.roomInput.value = path.slice(0, 64);
    ui.landingError.textContent = `"${path}" is not a valid room name: use 1–64 letters, digits, "-" or "_".`;
    ui.landingError.hidden = false;
    return;
  }
  me.room = path;
  const fragment = location.hash.replace(/^#/, '');
  me.secret = validSecret(fragment) ? fragment : null;
  const params = new URLSearchParams(location.search);
  let stored = '';
  try {
    stored = localStorage.getItem(NAME_KEY) ?? '';
  } catch {
    /* storage may be unavailable */
  }
  me.name = (params.get('name') ?? stored).trim().slice(0, 64);
  if (params.get('name')) {
    try {
      localStorage.setItem(NAME_KEY, me.name);
    } catch {
      /* ignore */
    }
  }
  document.title = `${me.room} · Conclave`;
  if (cannotEncrypt) {
    // Meetings are end-to-end encrypted: this browser gets in only if a moderator allows
    // participants who cannot encrypt. Always through the pre-join page, so the user reads this.
    ui.e2eeNote.textContent =
      "This browser can't encrypt audio and video end to end (it lacks encoded transforms). You can " +
      'join only if a moderator of this meeting allows participants who cannot encrypt, and then ' +
      'what you send and receive is not end-to-end encrypted. A current Chrome, Edge, Firefox or ' +
      'Safari can encrypt.';
    ui.e2eeNote.classList.add('error');
    ui.e2eeNote.hidden = false;
    await showPrejoin();
    return;
  }
  if (!me.secret) {
    ui.e2eeNote.textContent =
      'This link has no meeting key, so the server will see the name you type. If the meeting has ' +
      'started, you will ask to be let in; if not, you start it and your invite link will carry a new key.';
    ui.e2eeNote.hidden = false;
  }
  if (params.get('autojoin') === '1' && me.name) {
    setState('joining');
    await acquireMedia();
    startMeeting();
  } else {
    await showPrejoin();
  }
}

main().catch((e) => {
  console.error(e);
  toast(`Something went wrong: ${e instanceof Error ? e.message : String(e)}`, { kind: 'error', sticky: true });
});
