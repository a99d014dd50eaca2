// Shared page state: the DOM elements of every screen, what the client knows about itself, and the
// screen switch (`document.body.dataset.state` / `.reason`, the tests' hooks).

import { $ } from './dom.js';

export const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
export const RESERVED = new Set([
  'api', 'assets', 'healthz', 'readyz', 'metrics', 'ws', 'privacy', 'static', 'whip', 'whep', 'admin',
]);
export const NAME_KEY = 'conclave.name';

export const ui = {
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
  passwordInput: $('password-input', HTMLInputElement),
  passwordError: $('password-error', HTMLElement),
  camSelect: $('cam-select', HTMLSelectElement),
  micSelect: $('mic-select', HTMLSelectElement),
  mediaMessage: $('media-message', HTMLElement),
  e2eeNote: $('e2ee-note', HTMLElement),
  joinBtn: $('join-btn', HTMLButtonElement),
  lobby: $('lobby', HTMLElement),
  lobbyRoom: $('lobby-room', HTMLElement),
  lobbyLeave: $('lobby-leave', HTMLButtonElement),
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
export const me = {
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
  /** Room password typed on the pre-join page (memory only; resent on reconnection). */
  password: '',
  /** Join token from `?jwt=` (removed from the address bar at once; memory only). */
  token: '',
  /** The meeting secret from the URL fragment (never sent to the server); null: ask for it. */
  /** @type {string|null} */
  secret: null,
};


/** @param {'landing'|'prejoin'|'joining'|'lobby'|'joined'|'reconnecting'|'left'} state */
export function setState(state) {
  document.body.dataset.state = state;
  ui.landing.hidden = state !== 'landing';
  ui.prejoin.hidden = state !== 'prejoin';
  ui.lobby.hidden = state !== 'lobby';
  ui.meeting.hidden = !(state === 'joining' || state === 'joined' || state === 'reconnecting');
  ui.left.hidden = state !== 'left';
  ui.banner.hidden = state !== 'reconnecting' && state !== 'joining';
  ui.banner.textContent = state === 'reconnecting' ? 'Reconnecting…' : state === 'joining' ? 'Joining…' : '';
}

/** @param {string|null} reason error code or `closed` reason, for tests (`data-reason`) */
export function setReason(reason) {
  if (reason) document.body.dataset.reason = reason;
  else delete document.body.dataset.reason;
}

