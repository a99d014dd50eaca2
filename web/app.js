// Conclave web client: pages (landing, pre-join, meeting, left) on top of the connection library.
//
// Test hooks:
// - `document.body.dataset.state` is `landing | prejoin | joining | joined | reconnecting | left`;
// - tiles carry `data-participant`, `data-local`, `data-video`, `data-audio` (see tiles.js);
// - `window.conclave` exposes `pc` (the current RTCPeerConnection, for `getStats()` in tests),
//   `connection` (the Connection) and `participantId`.

import { Connection } from './protocol.js';
import { getLocalMedia, getCameraTrack, getMicTrack, listDevices, MESSAGES } from './media.js';
import { Grid, Tile } from './tiles.js';
import { ICONS } from './icons.js';
import { E2eeSession, NAME_PLACEHOLDER, transformSupport } from './e2ee/session.js';
import { generateSecret, validSecret } from './e2ee/keys.js';
import { MeetingExtras } from './meeting-extras.js';

/** @typedef {import('./protocol.js').ParticipantInfo} ParticipantInfo */
/** @typedef {import('./protocol.js').RemoteMedia} RemoteMedia */

const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
const RESERVED = new Set([
  'api', 'assets', 'healthz', 'readyz', 'metrics', 'ws', 'privacy', 'static', 'whip', 'whep', 'admin',
]);
const NAME_KEY = 'conclave.name';

/** Human text for server error codes. */
const ERROR_TEXT = /** @type {Record<string, (m: string) => string>} */ ({
  bad_message: (m) => `The server did not understand a message from this page (${m}). Try reloading.`,
  too_large: () => 'A message was too large for the server.',
  unsupported_version: () => 'This page is out of date for the server. Please reload the page.',
  invalid_room: (m) => `That room name can't be used: ${m}.`,
  invalid_name: (m) => `That name can't be used: ${m}.`,
  not_joined: () => 'The connection got out of step with the server. Reconnecting may help.',
  already_joined: () => 'This connection has already joined a room.',
  invalid_sdp: (m) => `The server could not set up audio and video with this browser: ${m}.`,
  room_full: () => 'This room is full. Try again later or use another room.',
  unavailable: () => "The server can't take meetings right now. Trying again…",
});

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
function $(id, type) {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`#${id} missing`);
  return el;
}

const ui = {
  landing: $('landing', HTMLElement),
  landingForm: $('landing-form', HTMLFormElement),
  roomInput: $('room-input', HTMLInputElement),
  landingError: $('landing-error', HTMLElement),
  randomRoom: $('random-room', HTMLButtonElement),
  prejoin: $('prejoin', HTMLElement),
  prejoinRoom: $('prejoin-room', HTMLElement),
  preview: $('preview', HTMLVideoElement),
  previewOff: $('preview-off', HTMLElement),
  preMic: $('pre-mic', HTMLButtonElement),
  preCam: $('pre-cam', HTMLButtonElement),
  prejoinForm: $('prejoin-form', HTMLFormElement),
  nameInput: $('name-input', HTMLInputElement),
  nameError: $('name-error', HTMLElement),
  camSelect: $('cam-select', HTMLSelectElement),
  micSelect: $('mic-select', HTMLSelectElement),
  mediaMessage: $('media-message', HTMLElement),
  e2eeNote: $('e2ee-note', HTMLElement),
  joinBtn: $('join-btn', HTMLButtonElement),
  meeting: $('meeting', HTMLElement),
  banner: $('banner', HTMLElement),
  grid: $('grid', HTMLElement),
  people: $('people', HTMLElement),
  peopleList: $('people-list', HTMLUListElement),
  peopleCount: $('people-count', HTMLElement),
  meetingRoom: $('meeting-room', HTMLElement),
  micBtn: $('mic-btn', HTMLButtonElement),
  camBtn: $('cam-btn', HTMLButtonElement),
  peopleBtn: $('people-btn', HTMLButtonElement),
  soundBtn: $('sound-btn', HTMLButtonElement),
  leaveBtn: $('leave-btn', HTMLButtonElement),
  left: $('left', HTMLElement),
  leftTitle: $('left-title', HTMLElement),
  leftDetail: $('left-detail', HTMLElement),
  rejoinBtn: $('rejoin-btn', HTMLButtonElement),
  toasts: $('toasts', HTMLElement),
};

/** Everything the client knows about itself. */
const me = {
  room: '',
  name: '',
  micOn: true,
  camOn: true,
  /** @type {MediaStreamTrack|null} */
  audio: null,
  /** @type {MediaStreamTrack|null} */
  video: null,
  /** A microphone / camera was available at some point (so we publish a sender of that kind). */
  hasMic: false,
  hasCam: false,
  /** @type {string|null} */
  mediaMessage: null,
  audioDevice: '',
  videoDevice: '',
  /** The meeting secret from the URL fragment (never sent to the server); null: knock. */
  /** @type {string|null} */
  secret: null,
};

/** @type {Connection|null} */
let conn = null;
const grid = new Grid(ui.grid);
/** @type {Map<string, ParticipantInfo>} */
const participants = new Map();
/** @type {Tile|null} */
let localTile = null;
/** @type {E2eeSession|null} */
let e2ee = null;
/** @type {MeetingExtras|null} */
let extras = null;

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
    return e2ee;
  },
};

// ---------------------------------------------------------------------------------------------
// Screens

/** @param {'landing'|'prejoin'|'joining'|'joined'|'reconnecting'|'left'} state */
function setState(state) {
  document.body.dataset.state = state;
  ui.landing.hidden = state !== 'landing';
  ui.prejoin.hidden = state !== 'prejoin';
  ui.meeting.hidden = !(state === 'joining' || state === 'joined' || state === 'reconnecting');
  ui.left.hidden = state !== 'left';
  ui.banner.hidden = state !== 'reconnecting' && state !== 'joining';
  ui.banner.textContent = state === 'reconnecting' ? 'Reconnecting…' : state === 'joining' ? 'Joining…' : '';
}

/**
 * @param {string} text
 * @param {{kind?: 'error'|'info'|'warning', sticky?: boolean}} [opts]
 */
function toast(text, opts = {}) {
  const el = document.createElement('div');
  el.className = `toast ${opts.kind ?? 'info'}`;
  el.setAttribute('role', opts.kind === 'error' ? 'alert' : 'status');
  const msg = document.createElement('span');
  msg.textContent = text;
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'toast-close';
  close.setAttribute('aria-label', 'Dismiss');
  close.textContent = '×';
  close.addEventListener('click', () => el.remove());
  el.append(msg, close);
  ui.toasts.append(el);
  if (!opts.sticky) setTimeout(() => el.remove(), 8000);
}

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
// Pre-join

/** @param {boolean} on */
function setToggle(/** @type {HTMLButtonElement} */ btn, on, /** @type {'mic'|'cam'} */ kind, inMeeting = false) {
  btn.setAttribute('aria-pressed', String(on));
  btn.classList.toggle('off', !on);
  btn.innerHTML = kind === 'mic' ? (on ? ICONS.mic : ICONS.micOff) : on ? ICONS.cam : ICONS.camOff;
  const label =
    kind === 'mic'
      ? inMeeting ? (on ? 'Mute microphone' : 'Unmute microphone') : on ? 'Microphone on' : 'Microphone off'
      : inMeeting ? (on ? 'Turn camera off' : 'Turn camera on') : on ? 'Camera on' : 'Camera off';
  btn.setAttribute('aria-label', label);
  btn.title = label;
}

function updatePreview() {
  const v = me.camOn ? me.video : null;
  ui.preview.srcObject = v ? new MediaStream([v]) : null;
  ui.previewOff.hidden = !!v;
  ui.previewOff.textContent = me.hasCam ? 'Camera is off' : 'No camera';
  if (v) ui.preview.play().catch(() => {});
  setToggle(ui.preMic, me.micOn && !!me.audio, 'mic');
  setToggle(ui.preCam, me.camOn && !!me.video, 'cam');
}

function showMediaMessage() {
  ui.mediaMessage.textContent = me.mediaMessage ?? '';
  ui.mediaMessage.hidden = !me.mediaMessage;
}

/** Acquire local media according to me.micOn / me.camOn. */
async function acquireMedia() {
  const res = await getLocalMedia({
    audio: true,
    video: me.camOn,
    audioDevice: me.audioDevice || undefined,
    videoDevice: me.videoDevice || undefined,
  });
  me.audio = res.audio;
  me.video = res.video;
  me.hasMic = me.hasMic || !!res.audio;
  me.hasCam = me.hasCam || !!res.video;
  if (!me.camOn && res.failure === null) me.hasCam = me.hasCam || (await listDevices()).cameras.length > 0;
  me.mediaMessage = res.message;
  if (me.audio) me.audio.enabled = me.micOn;
  if (!me.audio) me.micOn = false;
  if (!me.video && me.camOn) me.camOn = false;
}

async function fillDeviceSelects() {
  const { cameras, mics } = await listDevices();
  /**
   * @param {HTMLSelectElement} sel
   * @param {MediaDeviceInfo[]} devs
   * @param {MediaStreamTrack|null} track
   * @param {string} fallback
   */
  const fill = (sel, devs, track, fallback) => {
    sel.replaceChildren();
    const current = track?.getSettings().deviceId;
    devs.forEach((d, i) => {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || `${fallback} ${i + 1}`;
      if (d.deviceId === current) o.selected = true;
      sel.append(o);
    });
    sel.disabled = devs.length === 0;
    if (devs.length === 0) {
      const o = document.createElement('option');
      o.textContent = `No ${fallback.toLowerCase()} available`;
      sel.append(o);
    }
  };
  fill(ui.camSelect, cameras, me.video, 'Camera');
  fill(ui.micSelect, mics, me.audio, 'Microphone');
}

function stopLocalMedia() {
  me.audio?.stop();
  me.video?.stop();
  me.audio = null;
  me.video = null;
  ui.preview.srcObject = null;
}

async function showPrejoin() {
  setState('prejoin');
  ui.prejoinRoom.textContent = me.room;
  ui.nameInput.value = me.name;
  updatePreview();
  await acquireMedia();
  updatePreview();
  showMediaMessage();
  await fillDeviceSelects();
  if (!ui.nameInput.value) ui.nameInput.focus();
  else ui.joinBtn.focus();
}

function wirePrejoin() {
  ui.preMic.addEventListener('click', () => {
    if (!me.audio) {
      toast(me.mediaMessage ?? 'No microphone available.', { kind: 'warning' });
      return;
    }
    me.micOn = !me.micOn;
    me.audio.enabled = me.micOn;
    updatePreview();
  });
  ui.preCam.addEventListener('click', async () => {
    if (me.camOn) {
      me.camOn = false;
      me.video?.stop();
      me.video = null;
    } else {
      try {
        me.video = await getCameraTrack(me.videoDevice || undefined);
        me.camOn = true;
        me.hasCam = true;
      } catch {
        toast(me.mediaMessage ?? MESSAGES.no_camera, { kind: 'warning' });
      }
    }
    updatePreview();
  });
  ui.camSelect.addEventListener('change', async () => {
    me.videoDevice = ui.camSelect.value;
    if (!me.camOn) return;
    try {
      const t = await getCameraTrack(me.videoDevice);
      me.video?.stop();
      me.video = t;
    } catch {
      toast('That camera could not be started.', { kind: 'warning' });
    }
    updatePreview();
  });
  ui.micSelect.addEventListener('change', async () => {
    me.audioDevice = ui.micSelect.value;
    try {
      const t = await getMicTrack(me.audioDevice);
      me.audio?.stop();
      me.audio = t;
      t.enabled = me.micOn;
    } catch {
      toast('That microphone could not be started.', { kind: 'warning' });
    }
  });
  ui.prejoinForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = ui.nameInput.value.trim();
    if (!name) {
      ui.nameInput.focus();
      return;
    }
    ui.nameError.hidden = true;
    me.name = name;
    try {
      localStorage.setItem(NAME_KEY, name);
    } catch {
      /* storage may be unavailable */
    }
    startMeeting();
  });
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
  const rows = [];
  if (conn?.participantId) {
    rows.push({ id: conn.participantId, name: `${me.name} (you)`, ...mediaState() });
  }
  for (const p of participants.values()) rows.push(p);
  ui.peopleCount.textContent = `(${rows.length})`;
  ui.peopleList.replaceChildren(
    ...rows.map((p) => {
      const li = document.createElement('li');
      li.dataset.participantItem = p.id;
      const name = document.createElement('span');
      name.className = 'person-name';
      name.textContent = p.name;
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
      li.append(name, mic, cam);
      return li;
    }),
  );
}

/**
 * A remote participant's name as this client knows it: end-to-end encrypted names only.
 * @param {string} id
 */
function displayName(id) {
  const n = e2ee?.nameOf(id);
  if (n) return n;
  return e2ee?.unverified.has(id) ? 'Unverified participant' : 'Joining…';
}

/** @param {ParticipantInfo} p */
function upsertRemote(p) {
  p = { ...p, name: displayName(p.id) };
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
  renderPeople();
}

/** @param {string} id */
function removeRemote(id) {
  participants.delete(id);
  extras?.removeParticipant(id);
  grid.remove(id);
  renderPeople();
}

/** @param {Map<string, RemoteMedia>} media */
function applyRemoteMedia(media) {
  for (const [id, tile] of grid.tiles) {
    if (tile.local) continue;
    const m = media.get(id);
    tile.setTracks(m?.audio ?? null, m?.video ?? null);
  }
}

function startMeeting() {
  ui.preview.srcObject = null;
  ui.meetingRoom.textContent = me.room;
  setState('joining');
  participants.clear();
  grid.clear();
  localTile = null;
  // The server gets a placeholder, never the name: names travel end-to-end encrypted.
  const c = new Connection({ room: me.room, name: NAME_PLACEHOLDER });
  conn = c;
  const session = new E2eeSession({ room: me.room, secret: me.secret, name: me.name });
  e2ee = session;
  c.transforms = session.transforms();
  session.attach(c);
  extras = new MeetingExtras(session, {
    selfId: () => c.participantId,
    nameOf: (id) => (id === c.participantId ? me.name : displayName(id)),
    layout: () => grid.layout(),
    toast: (text, opts) => toast(text, opts),
  });
  const refresh = (/** @type {string} */ id) => {
    const p = participants.get(id);
    if (p && session === e2ee) upsertRemote(p);
    extras?.refreshNames();
  };
  session.addEventListener('member', (ev) => refresh(/** @type {CustomEvent} */ (ev).detail.id));
  session.addEventListener('unverified', (ev) => refresh(/** @type {CustomEvent} */ (ev).detail.id));
  session.addEventListener('status', () => {
    for (const id of [...participants.keys()]) refresh(id);
  });
  session.addEventListener('secret', (ev) => {
    // Now part of the invite link (and kept for a reload); still never sent to the server.
    me.secret = /** @type {CustomEvent} */ (ev).detail.secret;
    history.replaceState(null, '', `${location.pathname}${location.search}#${me.secret}`);
  });
  c.publish = { audio: me.hasMic, video: me.hasCam };
  if (!me.camOn && me.video) {
    me.video.stop();
    me.video = null;
  }
  c.setLocalTracks(me.audio, me.camOn ? me.video : null);
  const s = mediaState();
  c.sendMediaState(s.audio, s.video);
  if (me.mediaMessage) toast(me.mediaMessage, { kind: 'warning', sticky: true });

  c.addEventListener('state', (ev) => {
    if (c !== conn) return;
    const { state } = /** @type {CustomEvent} */ (ev).detail;
    if (state === 'joining' || state === 'joined' || state === 'reconnecting') setState(state);
  });
  c.addEventListener('welcome', (ev) => {
    if (c !== conn) return;
    const { msg } = /** @type {CustomEvent<{msg: import('./protocol.js').WelcomeMsg}>} */ (ev).detail;
    if (localTile && localTile.id !== msg.participant_id) {
      grid.remove(localTile.id);
      localTile = null;
    }
    if (!localTile) {
      localTile = new Tile(msg.participant_id, me.name, true);
      grid.add(localTile);
    }
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
  c.addEventListener('media', (ev) => {
    if (c === conn) applyRemoteMedia(/** @type {CustomEvent} */ (ev).detail.media);
  });
  c.addEventListener('server_error', (ev) => {
    if (c !== conn) return;
    const { code, message, fatal } = /** @type {CustomEvent} */ (ev).detail;
    const text = (ERROR_TEXT[code] ?? ((/** @type {string} */ m) => m))(message);
    if (fatal) {
      endMeeting();
      if (code === 'invalid_name') {
        ui.nameError.textContent = text;
        ui.nameError.hidden = false;
        showPrejoin().catch(console.error);
      } else {
        showLeft('Could not join the meeting', text);
      }
    }
    toast(text, { kind: 'error' });
  });
  c.join();
}

function endMeeting() {
  const c = conn;
  conn = null;
  c?.leave();
  extras?.destroy();
  extras = null;
  e2ee?.close();
  e2ee = null;
  grid.clear();
  participants.clear();
  localTile = null;
  stopLocalMedia();
  ui.soundBtn.hidden = true;
  for (const t of ui.toasts.querySelectorAll('.toast.warning')) t.remove();
}

/**
 * @param {string} title
 * @param {string} detail
 */
function showLeft(title, detail) {
  ui.leftTitle.textContent = title;
  ui.leftDetail.textContent = detail;
  setState('left');
  ui.rejoinBtn.focus();
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
    setState('joining');
    me.camOn = true;
    await acquireMedia();
    startMeeting();
  });
  window.addEventListener('pagehide', () => conn?.leave());
}

// ---------------------------------------------------------------------------------------------
// Start

async function main() {
  const path = decodeURIComponent(location.pathname.replace(/^\/+|\/+$/g, ''));
  wirePrejoin();
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
  if (!transformSupport()) {
    // Meetings are always end-to-end encrypted; a browser that cannot encrypt stays out.
    ui.e2eeNote.textContent =
      "This browser can't encrypt audio and video end to end (it lacks encoded transforms), so it " +
      "can't join: Conclave meetings are always end-to-end encrypted. Use a current Chrome, Edge, " +
      'Firefox or Safari.';
    ui.e2eeNote.classList.add('error');
    ui.e2eeNote.hidden = false;
    ui.joinBtn.disabled = true;
    await showPrejoin();
    return;
  }
  if (!me.secret) {
    ui.e2eeNote.textContent =
      'This link has no meeting key. If the meeting has started, you will ask to be let in; if not, ' +
      'you start it and your invite link will carry a new key.';
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
