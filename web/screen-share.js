// Screen sharing on the meeting page: the toolbar button, capturing the screen, the stage that
// shows the presenter's screen to everyone (and "You are presenting" with Stop to the presenter),
// and what moderators and the server can do about it. One presenter at a time (the server says
// `screen_share_busy` otherwise).
//
// Test hooks: the toolbar button `[data-action="screen"]` (hidden when the browser cannot capture
// the screen or the connection cannot send it; `aria-pressed="true"` while we present); the stage
// element `[data-screen="<presenter id>"]` (see grid.js) with `[data-action="stop-screen"]` for the
// presenter.

import { toast } from './dom.js';
import { ICONS } from './icons.js';
import { ScreenTile } from './grid.js';

/** @typedef {import('./protocol.js').Connection} Connection */
/** @typedef {import('./grid.js').Grid} Grid */
/** @typedef {import('./grid.js').LayoutMode} LayoutMode */
/** @typedef {import('./protocol.js').ParticipantInfo & {screen?: boolean}} SharingInfo */
/** @typedef {import('./protocol.js').RemoteMedia & {screen?: MediaStreamTrack|null}} SharingMedia */

/**
 * The connection's screen-share methods (absent from connections that cannot send a screen).
 * @typedef {{startScreenShare?: (track: MediaStreamTrack) => Promise<void>, stopScreenShare?: () => unknown}} ScreenApi
 */

/** Screens change little from frame to frame: 15 frames a second keep text sharp at low cost. */
const SCREEN_FPS = 15;

/** @param {Connection|null} c */
function api(c) {
  return /** @type {ScreenApi} */ (/** @type {unknown} */ (c ?? {}));
}

/** Whether this browser can capture a screen at all. */
export function canCaptureScreen() {
  return typeof navigator.mediaDevices?.getDisplayMedia === 'function';
}

export class ScreenShare {
  /**
   * @param {object} ctx
   * @param {Grid} ctx.grid
   * @param {HTMLButtonElement} ctx.button the toolbar button
   * @param {(id: string) => string} ctx.nameOf a participant's shown name
   * @param {(mode: LayoutMode) => void} ctx.setLayout switch the layout (and its button)
   */
  constructor(ctx) {
    this.ctx = ctx;
    /** @type {Connection|null} */
    this.conn = null;
    /** Our own screen while we present. */
    /** @type {MediaStreamTrack|null} */
    this.track = null;
    /** Who presents now (our own id while we do). */
    /** @type {string|null} */
    this.presenter = null;
    /** The layout before a share put the stage up, restored when it ends. */
    /** @type {LayoutMode|null} */
    this.layoutBefore = null;
    this.starting = false;
    /** @type {Map<string, SharingInfo>|undefined} */
    this.participants = undefined;
    /** @type {Map<string, SharingMedia>|undefined} */
    this.media = undefined;
    ctx.button.innerHTML = ICONS.screen;
    ctx.button.addEventListener('click', () => {
      if (this.track) this.stop();
      else this.start().catch(console.error);
    });
    this.render();
  }

  /** @param {Connection} c a new meeting's connection */
  attach(c) {
    this.reset();
    this.conn = c;
    this.render();
  }

  reset() {
    this.stopTrack();
    this.conn = null;
    this.presenter = null;
    this.layoutBefore = null;
    this.ctx.grid.setScreen(null);
    this.render();
  }

  available() {
    return canCaptureScreen() && typeof api(this.conn).startScreenShare === 'function';
  }

  async start() {
    const c = this.conn;
    const startScreenShare = api(c).startScreenShare;
    if (!c || !startScreenShare || this.starting) return;
    if (this.presenter && this.presenter !== c.participantId) {
      this.busy();
      return;
    }
    this.starting = true;
    /** @type {MediaStreamTrack|null} */
    let track = null;
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({
        video: { frameRate: { ideal: SCREEN_FPS, max: SCREEN_FPS } },
        audio: false,
      });
      track = stream.getVideoTracks()[0] ?? null;
      if (!track || c !== this.conn) {
        track?.stop();
        return;
      }
      // Text and lines over motion: keep the resolution, drop frames when short of bandwidth.
      track.contentHint = 'detail';
      track.addEventListener('ended', () => {
        // The browser's own "Stop sharing" control.
        if (track === this.track) this.stop();
      });
      this.track = track;
      this.update();
      await startScreenShare.call(c, track);
    } catch (e) {
      const name = e instanceof DOMException ? e.name : '';
      if (track === this.track) this.stopTrack();
      this.update();
      // NotAllowedError: the user closed the browser's picker; nothing to say.
      if (name !== 'NotAllowedError' && name !== 'AbortError') {
        toast('Your screen could not be shared.', { kind: 'error' });
        console.warn('conclave: screen share', e);
      }
    } finally {
      this.starting = false;
    }
  }

  /** Stop presenting (our Stop button, the toolbar button, or the browser's control). */
  stop() {
    if (!this.track) return;
    this.stopTrack();
    Promise.resolve(api(this.conn).stopScreenShare?.call(this.conn)).catch(console.error);
    this.update();
  }

  stopTrack() {
    const t = this.track;
    this.track = null;
    t?.stop();
  }

  /** The server refused our share: someone else presents. */
  busy() {
    if (this.track) {
      this.stopTrack();
      Promise.resolve(api(this.conn).stopScreenShare?.call(this.conn)).catch(() => {});
    }
    const other = this.presenter && this.presenter !== this.conn?.participantId ? this.ctx.nameOf(this.presenter) : null;
    toast(
      other
        ? `${other} is presenting. Only one person can present at a time: ask them to stop first.`
        : 'Someone else is presenting. Only one person can present at a time: ask them to stop first.',
      { kind: 'error' },
    );
    this.update();
  }

  /** A moderator stopped our screen share. */
  stoppedByModerator() {
    if (this.track) {
      this.stopTrack();
      Promise.resolve(api(this.conn).stopScreenShare?.call(this.conn)).catch(() => {});
    }
    toast('A moderator stopped your screen share.', { kind: 'warning' });
    this.update();
  }

  /**
   * Recompute who presents from what the server says (`screen` in participant info) and which
   * screens arrive, and show it.
   * @param {Map<string, SharingInfo>} [participants]
   * @param {Map<string, SharingMedia>} [media]
   */
  update(participants, media) {
    if (participants) this.participants = participants;
    if (media) this.media = media;
    const grid = this.ctx.grid;
    const self = this.conn?.participantId ?? null;
    /** @type {string|null} */
    let presenter = this.track && self ? self : null;
    if (!presenter) {
      for (const p of this.participants?.values() ?? []) {
        if (p.screen || this.media?.get(p.id)?.screen) {
          presenter = p.id;
          break;
        }
      }
    }
    const was = this.presenter;
    this.presenter = presenter;
    if (presenter !== was) {
      if (!presenter) {
        grid.setScreen(null);
        if (this.layoutBefore && grid.mode === 'speaker') this.ctx.setLayout(this.layoutBefore);
        this.layoutBefore = null;
      } else {
        const local = presenter === self;
        grid.setScreen(new ScreenTile(presenter, local, () => this.stop()));
        if (!was) {
          this.layoutBefore = grid.mode;
          this.ctx.setLayout('speaker');
        }
        if (!local) toast(`${this.ctx.nameOf(presenter)} is presenting.`);
      }
    }
    if (presenter && grid.screen) {
      grid.screen.setName(presenter === self ? '' : this.ctx.nameOf(presenter));
      grid.screen.setTrack(this.media?.get(presenter)?.screen ?? null);
    }
    this.render();
  }

  render() {
    const b = this.ctx.button;
    b.hidden = !this.available();
    const on = !!this.track;
    b.setAttribute('aria-pressed', String(on));
    const label = on ? 'Stop presenting' : 'Present your screen';
    b.setAttribute('aria-label', label);
    b.title = label;
  }
}
