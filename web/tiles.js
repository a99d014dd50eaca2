// Video tiles and the responsive grid.
//
// Stable hooks (tests rely on them): each tile is an element with
// `data-participant="<participant id>"` containing a `<video>` that carries the participant's
// video and audio tracks in one MediaStream; the local tile also has `data-local`.
// `data-video` / `data-audio` = "on" | "off" mirror the participant's media_state, and the name is
// in an element with class `name`. Moderators' tiles have `data-moderator` and a visible badge.
// A participant who does not encrypt end to end has `data-e2ee="off"` and a "Not encrypted" badge.

import { ICONS } from './icons.js';

/**
 * @param {string} name
 * @returns {string}
 */
export function initials(name) {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const letters = parts.length >= 2 ? [parts[0], parts[parts.length - 1]] : parts;
  const s = letters.map((p) => Array.from(p)[0] ?? '').join('');
  return s.toUpperCase() || '?';
}

/**
 * Stable colour per participant id, for the camera-off placeholder.
 * @param {string} id
 * @returns {string}
 */
function hue(id) {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${h} 45% 38%)`;
}

export class Tile {
  /**
   * @param {string} id
   * @param {string} name
   * @param {boolean} local
   */
  constructor(id, name, local) {
    this.id = id;
    this.local = local;
    this.el = document.createElement('div');
    this.el.className = 'tile';
    this.el.dataset.participant = id;
    if (local) this.el.dataset.local = '';
    this.video = document.createElement('video');
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.setAttribute('playsinline', '');
    this.video.setAttribute('autoplay', '');
    if (local) this.video.muted = true;
    this.placeholder = document.createElement('div');
    this.placeholder.className = 'placeholder';
    this.avatar = document.createElement('span');
    this.avatar.className = 'avatar';
    this.avatar.style.setProperty('background', hue(id));
    this.placeholder.append(this.avatar);
    const label = document.createElement('div');
    label.className = 'label';
    this.micIcon = document.createElement('span');
    this.micIcon.className = 'mic-off';
    this.micIcon.innerHTML = ICONS.micOff;
    this.micIcon.setAttribute('role', 'img');
    this.micIcon.setAttribute('aria-label', 'Microphone muted');
    this.nameEl = document.createElement('span');
    this.nameEl.className = 'name';
    this.modBadge = document.createElement('span');
    this.modBadge.className = 'mod-badge';
    this.modBadge.textContent = 'Moderator';
    this.modBadge.hidden = true;
    this.e2eeBadge = document.createElement('span');
    this.e2eeBadge.className = 'e2ee-off-badge';
    this.e2eeBadge.textContent = 'Not encrypted';
    this.e2eeBadge.title = 'This participant cannot encrypt end to end';
    this.e2eeBadge.hidden = true;
    label.append(this.micIcon, this.nameEl, this.modBadge, this.e2eeBadge);
    this.el.append(this.video, this.placeholder, label);
    /** @type {MediaStreamTrack|null} */
    this.audioTrack = null;
    /** @type {MediaStreamTrack|null} */
    this.videoTrack = null;
    /** @type {(() => void)|null} */
    this.onAutoplayBlocked = null;
    this.setName(name);
    this.setState(true, true);
    this.updateReceiving();
  }

  /** @param {string} name */
  setName(name) {
    this.name = name;
    this.nameEl.textContent = this.local ? `${name} (you)` : name;
    this.avatar.textContent = initials(name);
    this.el.setAttribute('aria-label', this.local ? `${name} (you)` : name);
  }

  /** @param {boolean} on */
  setModerator(on) {
    this.modBadge.hidden = !on;
    if (on) this.el.dataset.moderator = '';
    else delete this.el.dataset.moderator;
  }

  /** @param {boolean} on whether this participant encrypts end to end */
  setE2ee(on) {
    this.e2eeBadge.hidden = on;
    if (on) delete this.el.dataset.e2ee;
    else this.el.dataset.e2ee = 'off';
  }

  /**
   * @param {boolean} audio
   * @param {boolean} video
   */
  setState(audio, video) {
    this.el.dataset.audio = audio ? 'on' : 'off';
    this.el.dataset.video = video ? 'on' : 'off';
  }

  /**
   * Attach the participant's tracks (one MediaStream with audio and video).
   * @param {MediaStreamTrack|null} audio
   * @param {MediaStreamTrack|null} video
   */
  setTracks(audio, video) {
    if (audio === this.audioTrack && video === this.videoTrack) return;
    for (const t of [this.videoTrack]) {
      if (t) {
        t.removeEventListener('mute', this.updateReceivingBound);
        t.removeEventListener('unmute', this.updateReceivingBound);
      }
    }
    this.audioTrack = audio;
    this.videoTrack = video;
    if (video) {
      video.addEventListener('mute', this.updateReceivingBound);
      video.addEventListener('unmute', this.updateReceivingBound);
    }
    /** @type {MediaStreamTrack[]} */
    const tracks = [];
    if (video) tracks.push(video);
    if (audio && !this.local) tracks.push(audio);
    this.video.srcObject = tracks.length ? new MediaStream(tracks) : null;
    this.updateReceiving();
    if (tracks.length) this.play();
  }

  updateReceivingBound = () => this.updateReceiving();

  /** Show the video when a live, unmuted video track is attached; otherwise the initials. */
  updateReceiving() {
    const t = this.videoTrack;
    const receiving = !!t && t.readyState === 'live' && (this.local || !t.muted);
    if (receiving) this.el.dataset.receiving = '';
    else delete this.el.dataset.receiving;
  }

  play() {
    const p = this.video.play();
    if (!p) return;
    p.catch((err) => {
      if (err && err.name === 'NotAllowedError' && !this.local) {
        // Autoplay with sound refused: play muted, and let the user enable sound with a click.
        this.video.muted = true;
        this.video.play().catch(() => {});
        this.onAutoplayBlocked?.();
      }
    });
  }

  /** After a user gesture: unmute and play. */
  enableSound() {
    if (this.local) return;
    this.video.muted = false;
    this.video.play().catch(() => {});
  }

  remove() {
    this.setTracks(null, null);
    this.el.remove();
  }
}
