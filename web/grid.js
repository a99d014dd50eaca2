// Lays out the meeting's tiles: a paged grid ("grid") or a large stage with a filmstrip
// ("speaker"), the screen share on the stage when there is one, the active speaker highlighted,
// and, after every change, what is drawn and how tall (the `view` the server forwards by).
//
// Tiles stay in the DOM in the order they were added (moving a playing <video> would interrupt
// it); pages and the stage are made with CSS `order` / positions, and tiles not shown get `hidden`
// and `data-page-hidden`.
//
// Test hooks: `#grid[data-layout="grid|speaker"]`, `data-page="<n>"` and `data-pages="<n>"` on
// `#grid`; the active speaker's tile has `data-speaking`; the tile on the stage has `data-stage`;
// a screen share is an element `[data-screen="<participant id>"]` (not a `data-participant` tile).

import { Tile } from './tiles.js';

/** @typedef {'grid'|'speaker'} LayoutMode */
/** @typedef {import('./protocol.js').TileView} TileView */

/** Space between tiles, CSS pixels (as in style.css). */
const GAP = 12;
/** Send the view at most this often (trailing call, so the final layout is always sent). */
const VIEW_INTERVAL_MS = 350;

/**
 * How many tiles a grid page holds at this width (own tile included): fewer on narrow screens,
 * where more would be too small to recognise anyone.
 * @param {number} width CSS pixels
 */
export function pageSizeFor(width) {
  if (width < 560) return 4;
  if (width < 960) return 9;
  return 16;
}

/**
 * Height in device pixels a tile is drawn at, rounded to 10 px (small changes do not matter).
 * @param {HTMLElement} el
 */
function drawnHeight(el) {
  return Math.round((el.getBoundingClientRect().height * (window.devicePixelRatio || 1)) / 10) * 10;
}

/**
 * A screen share: the presenter's screen, or, for the presenter, a note with a Stop button
 * (showing their own screen back to them would mirror it endlessly).
 */
export class ScreenTile {
  /**
   * @param {string} id participant id of the presenter
   * @param {boolean} local we are presenting
   * @param {() => void} onStop the presenter pressed Stop
   */
  constructor(id, local, onStop) {
    this.id = id;
    this.local = local;
    this.el = document.createElement('div');
    this.el.className = 'tile screen';
    this.el.dataset.screen = id;
    if (local) this.el.dataset.local = '';
    this.el.setAttribute('role', 'region');
    this.video = document.createElement('video');
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.muted = true; // screen shares carry no audio
    this.note = document.createElement('div');
    this.note.className = 'screen-note';
    this.label = document.createElement('div');
    this.label.className = 'label presenting';
    this.labelText = document.createElement('span');
    this.labelText.className = 'name';
    this.label.append(this.labelText);
    if (local) {
      const text = document.createElement('p');
      text.textContent = 'You are presenting. Everyone sees your screen.';
      const stop = document.createElement('button');
      stop.type = 'button';
      stop.className = 'btn danger';
      stop.dataset.action = 'stop-screen';
      stop.textContent = 'Stop presenting';
      stop.addEventListener('click', onStop);
      this.note.append(text, stop);
      this.el.append(this.note, this.label);
    } else {
      const text = document.createElement('p');
      text.className = 'muted';
      text.textContent = 'Waiting for the shared screen…';
      this.note.append(text);
      this.el.append(this.video, this.note, this.label);
    }
    /** @type {MediaStreamTrack|null} */
    this.track = null;
    this.setName('');
  }

  /** @param {string} name the presenter's shown name */
  setName(name) {
    const text = this.local ? 'You are presenting' : `${name} is presenting`;
    this.labelText.textContent = text;
    this.el.setAttribute('aria-label', this.local ? text : `Screen shared by ${name}`);
  }

  /** @param {MediaStreamTrack|null} track the remote screen, once it arrives */
  setTrack(track) {
    if (this.local || track === this.track) return;
    this.track = track;
    this.video.srcObject = track ? new MediaStream([track]) : null;
    if (track) this.el.dataset.receiving = '';
    else delete this.el.dataset.receiving;
    if (track) this.video.play().catch(() => {});
  }

  remove() {
    this.video.srcObject = null;
    this.el.remove();
  }
}

export class Grid {
  /**
   * @param {HTMLElement} el the tiles' container
   * @param {object} [opts]
   * @param {(tiles: TileView[]) => void} [opts.onView] what is drawn changed (throttled)
   * @param {(page: number, pages: number) => void} [opts.onPages] page or page count changed
   */
  constructor(el, opts = {}) {
    this.el = el;
    this.onView = opts.onView ?? null;
    this.onPages = opts.onPages ?? null;
    /** @type {Map<string, Tile>} */
    this.tiles = new Map();
    /** Remote participants in page order (the local tile always comes first). */
    /** @type {string[]} */
    this.order = [];
    /** @type {LayoutMode} */
    this.mode = 'grid';
    /** @type {string|null} */
    this.speaker = null;
    /** The remote participant on the stage in speaker view (the last remote speaker). */
    /** @type {string|null} */
    this.stageId = null;
    /** When each participant last became the active speaker (for who leaves page 1 first). */
    /** @type {Map<string, number>} */
    this.spokeAt = new Map();
    /** @type {ScreenTile|null} */
    this.screen = null;
    this.page = 0;
    this.pages = 1;
    this.pageSize = 16;
    /** @type {ReturnType<typeof setTimeout>|null} */
    this.viewTimer = null;
    this.viewDirty = false;
    /** What the last layout drew, most important first. */
    /** @type {HTMLElement[]} */
    this.shown = [];
    this.el.dataset.layout = this.mode;
    new ResizeObserver(() => this.layout()).observe(el);
  }

  /** @param {Tile} tile */
  add(tile) {
    this.tiles.get(tile.id)?.remove();
    this.tiles.set(tile.id, tile);
    if (!tile.local && !this.order.includes(tile.id)) this.order.push(tile.id);
    if (tile.local) this.el.prepend(tile.el);
    else this.el.append(tile.el);
    if (tile.id === this.speaker) {
      // The speaker was announced before their tile existed.
      tile.el.dataset.speaking = '';
      if (!tile.local) {
        this.stageId = tile.id;
        this.bringToFirstPage(tile.id);
      }
    }
    this.layout();
  }

  /** @param {string} id */
  remove(id) {
    const t = this.tiles.get(id);
    if (!t) return;
    t.remove();
    this.tiles.delete(id);
    this.order = this.order.filter((x) => x !== id);
    this.spokeAt.delete(id);
    if (this.stageId === id) this.stageId = null;
    this.layout();
  }

  clear() {
    for (const t of this.tiles.values()) t.remove();
    this.tiles.clear();
    this.order = [];
    this.spokeAt.clear();
    this.speaker = null;
    this.stageId = null;
    this.setScreen(null);
    this.page = 0;
    this.layout();
  }

  /** @param {LayoutMode} mode */
  setMode(mode) {
    if (mode === this.mode) return;
    this.mode = mode;
    this.el.dataset.layout = mode;
    this.page = 0;
    this.layout();
  }

  /**
   * The active speaker changed: highlight their tile, put them on the stage (if remote) and on
   * the first page (if they were on another one).
   * @param {string|null} id
   */
  setSpeaker(id) {
    if (id === this.speaker) return;
    if (this.speaker) {
      const old = this.tiles.get(this.speaker);
      if (old) delete old.el.dataset.speaking;
    }
    this.speaker = id;
    const tile = id ? this.tiles.get(id) : undefined;
    if (!id || !tile) {
      this.layout();
      return;
    }
    tile.el.dataset.speaking = '';
    this.spokeAt.set(id, performance.now());
    if (!tile.local) {
      this.stageId = id;
      this.bringToFirstPage(id);
    }
    this.layout();
  }

  /**
   * Swap a remote participant from a later page with the first page's least recent speaker, so
   * the others keep their places.
   * @param {string} id
   */
  bringToFirstPage(id) {
    const slots = Math.max(1, this.pageSize - 1 - (this.screen ? 1 : 0));
    const at = this.order.indexOf(id);
    if (at < slots) return;
    let swap = 0;
    let oldest = Infinity;
    for (let i = 0; i < slots && i < this.order.length; i++) {
      const t = this.spokeAt.get(this.order[i]) ?? 0;
      if (t <= oldest) {
        oldest = t;
        swap = i;
      }
    }
    [this.order[swap], this.order[at]] = [this.order[at], this.order[swap]];
  }

  /**
   * Show a screen share on the stage (null: nobody shares).
   * @param {ScreenTile|null} screen
   */
  setScreen(screen) {
    if (this.screen === screen) return;
    this.screen?.remove();
    this.screen = screen;
    if (screen) this.el.prepend(screen.el);
    this.layout();
  }

  /** @param {number} delta */
  turnPage(delta) {
    const next = Math.min(this.pages - 1, Math.max(0, this.page + delta));
    if (next === this.page) return;
    this.page = next;
    this.layout();
  }

  /** Everything that can be drawn, most important first (the stage is decided separately). */
  ordered() {
    /** @type {HTMLElement[]} */
    const els = [];
    for (const t of this.tiles.values()) if (t.local) els.push(t.el);
    for (const id of this.order) {
      const t = this.tiles.get(id);
      if (t) els.push(t.el);
    }
    return els;
  }

  /** The element on the stage in speaker view. */
  stage() {
    if (this.screen) return this.screen.el;
    const id = this.stageId && this.tiles.has(this.stageId) ? this.stageId : this.order.find((x) => this.tiles.has(x));
    const t = id ? this.tiles.get(id) : [...this.tiles.values()][0];
    return t?.el ?? null;
  }

  layout() {
    const W = this.el.clientWidth || window.innerWidth;
    const H = this.el.clientHeight || window.innerHeight;
    const all = this.ordered();
    if (this.screen) all.unshift(this.screen.el);
    /** @type {HTMLElement[]} drawn, most important first */
    let shown;
    if (this.mode === 'speaker') shown = this.layoutSpeaker(all, W, H);
    else shown = this.layoutGrid(all, W, H);
    for (const el of all) {
      const on = shown.includes(el);
      el.hidden = !on;
      if (on) delete el.dataset.pageHidden;
      else el.dataset.pageHidden = '';
    }
    this.shown = shown;
    this.el.dataset.count = String(this.tiles.size);
    this.el.dataset.page = String(this.page + 1);
    this.el.dataset.pages = String(this.pages);
    this.onPages?.(this.page, this.pages);
    this.scheduleView();
  }

  /**
   * The grid: pages of up to `pageSize` tiles, each page filling the space with 16:9 tiles.
   * @param {HTMLElement[]} all
   * @param {number} W
   * @param {number} H
   */
  layoutGrid(all, W, H) {
    this.pageSize = pageSizeFor(W);
    this.pages = Math.max(1, Math.ceil(all.length / this.pageSize));
    this.page = Math.min(this.page, this.pages - 1);
    const shown = all.slice(this.page * this.pageSize, (this.page + 1) * this.pageSize);
    const n = Math.max(1, shown.length);
    let best = { cols: 1, rows: n, size: 0 };
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      const w = (W - GAP * (cols - 1)) / cols;
      const h = (H - GAP * (rows - 1)) / rows;
      const tileW = Math.min(w, (h * 16) / 9);
      if (tileW > best.size) best = { cols, rows, size: tileW };
    }
    this.el.style.setProperty('--cols', String(best.cols));
    this.el.style.setProperty('--rows', String(best.rows));
    this.el.style.setProperty('--tile-w', `${Math.floor(best.size)}px`);
    for (const el of all) {
      el.style.removeProperty('order');
      for (const p of ['left', 'top', 'width', 'height']) el.style.removeProperty(p);
      delete el.dataset.stage;
    }
    shown.forEach((el, i) => el.style.setProperty('order', String(i)));
    return shown;
  }

  /**
   * Speaker view: the stage (screen share, else the active speaker) as large as fits, the others
   * in a filmstrip of small tiles below it, paged when they do not fit in one row.
   * @param {HTMLElement[]} all
   * @param {number} W
   * @param {number} H
   */
  layoutSpeaker(all, W, H) {
    const stage = this.stage();
    const strip = all.filter((el) => el !== stage);
    const stripH = strip.length ? Math.round(Math.min(160, Math.max(72, H * 0.18))) : 0;
    const stripW = Math.round((stripH * 16) / 9);
    this.pageSize = Math.max(1, Math.floor((W + GAP) / (stripW + GAP)));
    this.pages = Math.max(1, Math.ceil(strip.length / this.pageSize));
    this.page = Math.min(this.page, this.pages - 1);
    const onStrip = strip.slice(this.page * this.pageSize, (this.page + 1) * this.pageSize);
    const stageH = Math.max(0, H - (stripH ? stripH + GAP : 0));
    const stageW = Math.min(W, (stageH * 16) / 9);
    const stageHfit = Math.min(stageH, (stageW * 9) / 16);
    /**
     * @param {HTMLElement} el
     * @param {number} x
     * @param {number} y
     * @param {number} w
     * @param {number} h
     */
    const place = (el, x, y, w, h) => {
      el.style.left = `${Math.round(x)}px`;
      el.style.top = `${Math.round(y)}px`;
      el.style.width = `${Math.round(w)}px`;
      el.style.height = `${Math.round(h)}px`;
      el.style.removeProperty('order');
    };
    for (const el of all) delete el.dataset.stage;
    const top = Math.max(0, (H - stageHfit - (stripH ? stripH + GAP : 0)) / 2);
    if (stage) {
      stage.dataset.stage = '';
      place(stage, (W - stageW) / 2, top, stageW, stageHfit);
    }
    const rowW = onStrip.length * stripW + Math.max(0, onStrip.length - 1) * GAP;
    onStrip.forEach((el, i) => place(el, (W - rowW) / 2 + i * (stripW + GAP), top + stageHfit + GAP, stripW, stripH));
    return stage ? [stage, ...onStrip] : onStrip;
  }

  /** Send the view now if nothing was sent recently, else once the interval is over. */
  scheduleView() {
    if (!this.onView) return;
    if (this.viewTimer) {
      this.viewDirty = true;
      return;
    }
    // Measured after this task: the browser has applied the new sizes by then.
    this.viewDirty = false;
    this.viewTimer = setTimeout(() => {
      this.sendView();
      this.viewTimer = setTimeout(() => {
        this.viewTimer = null;
        if (this.viewDirty) this.scheduleView();
      }, VIEW_INTERVAL_MS);
    }, 0);
  }

  /** Send the view at once (e.g. after a reconnection, whose server forgot it). */
  sendView() {
    this.onView?.(this.view());
  }

  /**
   * Visible remote participants, most important first (stage or active speaker, then the page in
   * order), with their drawn height in device pixels. A screen share counts as its presenter.
   * @returns {TileView[]}
   */
  view() {
    const speaker = this.speaker ? this.tiles.get(this.speaker)?.el : undefined;
    const els = [...this.shown];
    // The active speaker right after the stage: the server gives them bandwidth first.
    if (speaker && els.includes(speaker) && speaker.dataset.stage === undefined) {
      els.splice(els.indexOf(speaker), 1);
      els.splice(els[0]?.dataset.stage !== undefined ? 1 : 0, 0, speaker);
    }
    /** @type {TileView[]} */
    const out = [];
    for (const e of els) {
      if (e.dataset.local !== undefined || !e.isConnected || e.hidden) continue;
      const id = e.dataset.participant ?? e.dataset.screen ?? '';
      if (!id || out.some((t) => t.participant_id === id)) continue;
      out.push({ participant_id: id, height: drawnHeight(e) });
    }
    return out;
  }
}
