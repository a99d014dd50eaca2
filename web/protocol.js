// Conclave connection library: one WebSocket for signaling (docs/protocol.md) and one
// RTCPeerConnection for media (media-session.js), with negotiation and reconnection. No DOM
// access here: the UI listens to the events this emits.
//
// Negotiation rules (from docs/protocol.md):
// - the client is always the SDP offerer, one offer at a time (wait for `answer`);
// - the server tells the client how many recvonly slots of each kind it needs (`subscriptions`);
//   when the client has fewer, it adds recvonly transceivers and sends a new offer;
// - `subscriptions[].mid` says which remote participant's track arrives on which transceiver.

import { MediaSession } from './media-session.js';

/** Protocol version spoken by this client. */
export const PROTOCOL_VERSION = 1;

/**
 * @typedef {object} ParticipantInfo
 * @property {string} id
 * @property {string} name
 * @property {boolean} audio
 * @property {boolean} video
 * @property {boolean} [moderator]
 * @property {boolean} [e2ee]  false: this participant does not encrypt end to end (absent: it does)
 * @property {boolean} [screen]  sharing their screen now
 */

/**
 * Room settings every participant sees (`welcome.settings`, `settings`).
 * @typedef {object} RoomSettings
 * @property {boolean} locked
 * @property {boolean} lobby
 * @property {boolean} password  a password is needed to join
 * @property {boolean} persistent
 * @property {boolean} [e2ee_required]  false: a moderator lets in participants who cannot encrypt
 */

/**
 * @typedef {object} Subscription
 * @property {string} mid
 * @property {string} participant_id
 * @property {'audio'|'video'} kind
 * @property {boolean} [screen]  this video is a screen share
 */

/**
 * TURN servers with short-lived credentials, from the server's own configuration.
 * @typedef {{urls: string[], username?: string, credential?: string}} IceServer
 */
/**
 * @typedef {{type: 'welcome', version: number, participant_id: string, resume: string, room: string, participants: ParticipantInfo[], moderator?: boolean, settings?: RoomSettings, ice_servers?: IceServer[], ice_transport_policy?: 'all' | 'relay'}} WelcomeMsg
 * @typedef {{type: 'answer', sdp: string}} AnswerMsg
 * @typedef {{type: 'subscriptions', slots: {audio: number, video: number}, subscriptions: Subscription[]}} SubscriptionsMsg
 * @typedef {{type: 'participant_joined', participant: ParticipantInfo}} JoinedMsg
 * @typedef {{type: 'participant_updated', participant: ParticipantInfo}} UpdatedMsg
 * @typedef {{type: 'participant_left', participant_id: string}} LeftMsg
 * @typedef {{type: 'error', code: string, message: string}} ErrorMsg
 * @typedef {{type: 'lobby_waiting'}} LobbyWaitingMsg
 * @typedef {{type: 'knock', knock_id: string, name: string, sealed_name?: string}} KnockMsg
 * @typedef {{type: 'knock_resolved', knock_id: string}} KnockResolvedMsg
 * @typedef {{type: 'settings', settings: RoomSettings}} SettingsMsg
 * @typedef {{type: 'role', moderator: boolean}} RoleMsg
 * @typedef {{type: 'moderated', action: 'muted'|'video_stopped'|'screen_stopped'}} ModeratedMsg
 * @typedef {{type: 'relay', from: string, data: string}} RelayMsg
 * @typedef {{type: 'closed', reason: 'removed'|'meeting_ended'|'denied'}} ClosedMsg
 * @typedef {{type: 'draining', deadline_s: number}} DrainingMsg
 * @typedef {{type: 'publish_layers', mid: string, active: boolean[]}} PublishLayersMsg
 * @typedef {{type: 'active_speaker', participant_id: string|null}} ActiveSpeakerMsg
 * @typedef {WelcomeMsg|AnswerMsg|SubscriptionsMsg|JoinedMsg|UpdatedMsg|LeftMsg|ErrorMsg|LobbyWaitingMsg|KnockMsg|KnockResolvedMsg|SettingsMsg|RoleMsg|ModeratedMsg|ClosedMsg|RelayMsg|DrainingMsg|PublishLayersMsg|ActiveSpeakerMsg} ServerMsg
 * @typedef {{participant_id: string, height: number}} TileView
 */

/** @type {RoomSettings} */
export const DEFAULT_SETTINGS = Object.freeze({ locked: false, lobby: false, password: false, persistent: false, e2ee_required: true });

/**
 * Connection state, mirrored by the UI in `document.body.dataset.state`. `lobby`: waiting for a
 * moderator to admit us. `closed`: a moderator removed us, ended the meeting or denied the knock.
 * `failed`: the server refused the join. None of `left`, `closed`, `failed` reconnects.
 * @typedef {'idle'|'joining'|'lobby'|'joined'|'reconnecting'|'left'|'closed'|'failed'} ConnState
 */

/**
 * Remote media of one participant.
 * @typedef {object} RemoteMedia
 * @property {MediaStreamTrack|null} audio
 * @property {MediaStreamTrack|null} video
 * @property {MediaStreamTrack|null} [screen] their screen share, when they share
 */

/**
 * Hooks to put an encoded transform (end-to-end encryption) on every sender and receiver, called
 * as each transceiver is created, before it carries media.
 * @typedef {object} Transforms
 * @property {(sender: RTCRtpSender, kind: 'audio'|'video') => void} sender
 * @property {(receiver: RTCRtpReceiver, kind: 'audio'|'video') => void} receiver
 * @property {Record<string, unknown>} [pcConfig] extra RTCPeerConnection configuration
 */

/**
 * Every error in reply to `join` closes the connection (docs/protocol.md). Only these are worth
 * retrying on their own (with backoff); all others are final for this Connection: the UI decides
 * (ask for a password, wait for a host, show why). `draining`: the server is restarting, so
 * retrying reaches it (or its successor) once it is back.
 */
const RETRYABLE_JOIN_ERRORS = new Set(['unavailable', 'not_joined', 'draining']);

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 8000;

/**
 * One participant's connection to a room.
 *
 * Events (all `CustomEvent`s, payload in `detail`):
 * - `state` {state: ConnState}
 * - `welcome` {msg: WelcomeMsg, resumed: boolean}
 * - `participant_joined` / `participant_updated` {participant: ParticipantInfo}
 * - `participant_left` {id: string}
 * - `media` {media: Map<string, RemoteMedia>} — remote tracks per participant id, in full
 * - `server_error` {code: string, message: string, fatal: boolean} — fatal: the join was refused
 *   and this Connection is over (state `failed`)
 * - `pc` {pc: RTCPeerConnection} — a new peer connection was created
 * - `screen` {active: boolean} — our screen share started or stopped
 * - `relay` {from: string, data: string} — an opaque blob from another participant
 * - `lobby` {} — the join waits in the lobby (state `lobby`)
 * - `closed` {reason: string} — out of the room for good (state `closed`)
 * - `knock` {id: string, name: string, sealedName: string|null} / `knock_resolved` {id: string}
 *   — moderators only (`sealedName`: the knocker's end-to-end encrypted name, see e2ee/sealed-name.js)
 * - `settings` {settings: RoomSettings}
 * - `role` {moderator: boolean} — our own role changed (also after `welcome`)
 * - `moderated` {action: 'muted'|'video_stopped'}
 */
export class Connection extends EventTarget {
  /**
   * @param {object} opts
   * @param {string} opts.room
   * @param {string} opts.name
   * @param {string} [opts.url] WebSocket URL; default `/ws` on the page's origin
   * @param {string} [opts.password] room password (sent in every `join`, kept in memory only)
   * @param {string} [opts.token] signed join token (sent in every `join`, also on reconnection)
   * @param {string} [opts.sealedName] the display name end-to-end encrypted for the room's members
   *   (`join.sealed_name`): the server passes it unread to moderators with a lobby knock
   * @param {boolean} [opts.e2ee] false: this client cannot encrypt end to end (`join.e2ee`)
   */
  constructor(opts) {
    super();
    this.room = opts.room;
    this.name = opts.name;
    this.password = opts.password || null;
    this.token = opts.token || null;
    /** @type {string|null} */
    this.sealedName = opts.sealedName || null;
    this.e2ee = opts.e2ee !== false;
    /** Whether we are a moderator (from `welcome` / `role`). */
    this.moderator = false;
    /** @type {RoomSettings} */
    this.settings = { ...DEFAULT_SETTINGS };
    this.url = opts.url ?? defaultWsUrl();
    /** @type {ConnState} */
    this.state = 'idle';
    /** @type {WebSocket|null} */
    this.ws = null;
    /** ICE servers and policy from the last `welcome`. @type {IceServer[]} */
    this.iceServers = [];
    /** @type {RTCIceTransportPolicy} */
    this.iceTransportPolicy = 'all';
    /** @type {string|null} */
    this.participantId = null;
    /** @type {string|null} */
    this.resumeToken = null;
    this.mediaState = { audio: false, video: false };
    /** The last `view` sent (JSON), to send only changes; reset with each connection. */
    /** @type {string|null} */
    this.lastView = null;
    /** @type {string|null} */
    this.activeSpeaker = null;
    /** Participants sharing their screen now (at most one). @type {Set<string>} */
    this.sharing = new Set();
    this.attempt = 0;
    /** @type {ReturnType<typeof setTimeout>|null} */
    this.retryTimer = null;
    /** Generation counter: callbacks from an old WebSocket/PC are ignored. */
    this.gen = 0;
    /** @type {Promise<void>} */
    this.queue = Promise.resolve();
    /** @type {Transforms|null} */
    this.transforms = null;
    /** The peer connection and its tracks. */
    this.media = new MediaSession(this);
  }

  /** The current peer connection, if any. */
  get pc() {
    return this.media.pc;
  }

  /** Remote tracks per participant id (as last emitted with `media`). */
  get remote() {
    return this.media.remote;
  }

  /** Whether to publish a sending transceiver of each kind (false: receive-only). */
  get publish() {
    return this.media.publish;
  }

  set publish(p) {
    this.media.publish = p;
  }

  /**
   * Send an opaque blob to one participant, or to everyone else (`to` null).
   * @param {string|null} to
   * @param {string} data
   * @returns {boolean} whether it could be sent now
   */
  sendRelay(to, data) {
    if (this.state !== 'joined' || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.send(to ? { type: 'relay', to, data } : { type: 'relay', data });
    return true;
  }

  /**
   * Set the local tracks to publish (null = nothing on that sender).
   * @param {MediaStreamTrack|null} audio
   * @param {MediaStreamTrack|null} video
   */
  setLocalTracks(audio, video) {
    this.media.setLocalTracks(audio, video);
  }

  /** Open the connection and join the room. */
  join() {
    this.resumeToken = null;
    this.participantId = null;
    this.attempt = 0;
    this.setState('joining');
    this.open();
  }

  /** Leave the room for good (no reconnection). */
  leave() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.send({ type: 'leave' });
    this.teardown();
    this.resumeToken = null;
    this.setState('left');
  }

  /**
   * Tell the server (and so the others) whether microphone and camera are on.
   * @param {boolean} audio
   * @param {boolean} video
   */
  sendMediaState(audio, video) {
    this.mediaState = { audio, video };
    if (this.state === 'joined') this.send({ type: 'media_state', audio, video });
  }

  // ---- moderator commands (the server refuses them with `not_moderator` for anyone else) ----

  /** @param {string} id */
  mute(id) {
    this.send({ type: 'mute', participant_id: id });
  }

  muteAll() {
    this.send({ type: 'mute_all' });
  }

  /** @param {string} id */
  stopVideo(id) {
    this.send({ type: 'stop_video', participant_id: id });
  }

  /** @param {string} id */
  remove(id) {
    this.send({ type: 'remove', participant_id: id });
  }

  /**
   * @param {string} id
   * @param {boolean} moderator
   */
  setModerator(id, moderator) {
    this.send({ type: 'set_moderator', participant_id: id, moderator });
  }

  /** @param {boolean} locked */
  lock(locked) {
    this.send({ type: 'lock', locked });
  }

  /** @param {boolean} enabled */
  setLobby(enabled) {
    this.send({ type: 'set_lobby', enabled });
  }

  /** @param {boolean} required false: let in participants who cannot encrypt end to end */
  setE2ee(required) {
    this.send({ type: 'set_e2ee', required });
  }

  /** @param {string|null} password null clears it */
  setPassword(password) {
    this.send({ type: 'set_password', password });
  }

  /** @param {string} knockId */
  admit(knockId) {
    this.send({ type: 'admit', knock_id: knockId });
  }

  /** @param {string} knockId */
  deny(knockId) {
    this.send({ type: 'deny', knock_id: knockId });
  }

  endMeeting() {
    this.send({ type: 'end_meeting' });
  }

  /** The connection is over and never reconnects. */
  get over() {
    return this.state === 'left' || this.state === 'closed' || this.state === 'failed';
  }

  /**
   * Replace the track on the camera sender (null: send nothing).
   * @param {MediaStreamTrack|null} track
   */
  async replaceVideoTrack(track) {
    await this.media.replaceVideoTrack(track);
  }

  /**
   * Replace the track on the microphone sender.
   * @param {MediaStreamTrack|null} track
   */
  async replaceAudioTrack(track) {
    await this.media.replaceAudioTrack(track);
  }

  /**
   * Share a screen (from getDisplayMedia) as a separate track, shown large to everyone. One
   * participant shares at a time: if someone else already does, the server answers
   * `screen_share_busy` and this share stops.
   * @param {MediaStreamTrack} track
   */
  async startScreenShare(track) {
    await this.media.startScreenShare(track);
  }

  /** Stop sharing (also when the browser's own "Stop sharing" bar was used). */
  async stopScreenShare() {
    await this.media.stopScreenShare();
  }

  // ---- internals ----

  /** @param {ConnState} state */
  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', { state });
  }

  /**
   * @param {string} type
   * @param {object} detail
   */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** @param {object} msg */
  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  open() {
    const gen = ++this.gen;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (gen !== this.gen) return;
      /** @type {Record<string, unknown>} */
      const join = { type: 'join', version: PROTOCOL_VERSION, room: this.room, name: this.name };
      if (this.resumeToken) join.resume = this.resumeToken;
      if (this.password) join.password = this.password;
      if (this.token) join.token = this.token;
      if (this.sealedName) join.sealed_name = this.sealedName;
      if (!this.e2ee) join.e2ee = false;
      this.send(join);
    };
    ws.onmessage = (ev) => {
      if (gen !== this.gen) return;
      /** @type {ServerMsg} */
      let msg;
      try {
        msg = JSON.parse(String(ev.data));
      } catch {
        console.warn('conclave: non-JSON frame from server');
        return;
      }
      // The end of the connection (`closed`, or an error in reply to `join`) is handled at once,
      // not behind the queue: the WebSocket closes right after, and that must not reconnect.
      if (msg.type === 'closed' || (msg.type === 'error' && this.state !== 'joined')) {
        this.handleFinal(msg);
        return;
      }
      // Handle messages strictly in order (some handlers await the peer connection).
      this.queue = this.queue
        .then(() => (gen === this.gen ? this.handle(msg, gen) : undefined))
        .catch((e) => console.error('conclave: handling', msg.type, e));
    };
    ws.onclose = () => {
      if (gen !== this.gen) return;
      this.ws = null;
      if (this.over) return;
      this.scheduleReconnect();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  /** Drop WebSocket and PC, keep identity (resume token) for a reconnect. */
  teardown() {
    this.gen++;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.ws) {
      const ws = this.ws;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000);
      } catch {
        /* ignore */
      }
    }
    this.ws = null;
    this.media.close();
    this.lastView = null;
  }

  scheduleReconnect() {
    if (this.over) return;
    // Keep the resume token: the server keeps us for 30 s.
    const resume = this.resumeToken;
    this.teardown();
    this.resumeToken = resume;
    this.setState(this.participantId ? 'reconnecting' : 'joining');
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    this.attempt++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.open();
    }, delay);
  }

  /**
   * `closed`, or an error while not joined (in reply to `join`: the server closes next).
   * @param {ClosedMsg|ErrorMsg} msg
   */
  handleFinal(msg) {
    if (msg.type === 'closed') {
      this.teardown();
      this.resumeToken = null;
      this.setState('closed');
      this.emit('closed', { reason: msg.reason });
      return;
    }
    const fatal = !RETRYABLE_JOIN_ERRORS.has(msg.code);
    if (fatal) {
      this.teardown();
      this.resumeToken = null;
      this.setState('failed');
    }
    // Not fatal: the close that follows schedules a retry with backoff.
    this.emit('server_error', { code: msg.code, message: msg.message, fatal });
  }

  /**
   * @param {ServerMsg} msg
   * @param {number} gen
   */
  async handle(msg, gen) {
    switch (msg.type) {
      case 'lobby_waiting':
        this.setState('lobby');
        this.emit('lobby', {});
        break;
      case 'welcome': {
        const resumed = this.participantId !== null && this.participantId === msg.participant_id;
        this.participantId = msg.participant_id;
        this.resumeToken = msg.resume;
        this.attempt = 0;
        this.moderator = !!msg.moderator;
        this.settings = { ...DEFAULT_SETTINGS, ...msg.settings };
        this.sharing.clear();
        for (const p of msg.participants) this.noteSharing(p);
        this.iceServers = msg.ice_servers ?? [];
        this.iceTransportPolicy = msg.ice_transport_policy === 'relay' ? 'relay' : 'all';
        this.media.open(gen, this.iceServers, this.iceTransportPolicy);
        this.setState('joined');
        this.emit('welcome', { msg, resumed });
        this.emit('settings', { settings: this.settings });
        this.emit('role', { moderator: this.moderator });
        this.send({ type: 'media_state', audio: this.mediaState.audio, video: this.mediaState.video });
        // Offer once `subscriptions` arrives (it follows welcome); if it does not, offer anyway.
        setTimeout(() => {
          if (gen === this.gen && !this.media.lastSubs && !this.media.offerInFlight) this.media.negotiate();
        }, 1500);
        break;
      }
      case 'subscriptions':
        this.media.setSubscriptions(msg);
        break;
      case 'answer':
        await this.media.onAnswer(msg.sdp, gen);
        break;
      case 'participant_joined':
        this.noteSharing(msg.participant);
        this.emit('participant_joined', { participant: msg.participant });
        break;
      case 'participant_updated':
        this.noteSharing(msg.participant);
        this.emit('participant_updated', { participant: msg.participant });
        break;
      case 'participant_left':
        this.sharing.delete(msg.participant_id);
        this.emit('participant_left', { id: msg.participant_id });
        break;
      case 'relay':
        this.emit('relay', { from: msg.from, data: msg.data });
        break;
      case 'knock':
        this.emit('knock', { id: msg.knock_id, name: msg.name, sealedName: msg.sealed_name ?? null });
        break;
      case 'knock_resolved':
        this.emit('knock_resolved', { id: msg.knock_id });
        break;
      case 'settings':
        this.settings = { ...DEFAULT_SETTINGS, ...msg.settings };
        this.emit('settings', { settings: this.settings });
        break;
      case 'role':
        this.moderator = !!msg.moderator;
        this.emit('role', { moderator: this.moderator });
        break;
      case 'moderated':
        if (msg.action === 'screen_stopped') await this.media.stopScreenShare();
        this.emit('moderated', { action: msg.action });
        break;
      case 'closed':
        this.handleFinal(msg);
        break;
      case 'draining':
        // The server is shutting down: the meeting goes on until it closes the connection.
        this.emit('draining', { deadlineS: msg.deadline_s });
        break;
      case 'publish_layers':
        await this.media.setPublishLayers(msg.mid, msg.active);
        break;
      case 'active_speaker':
        this.activeSpeaker = msg.participant_id;
        this.emit('active_speaker', { id: msg.participant_id });
        break;
      case 'error': {
        if (this.state !== 'joined') {
          this.handleFinal(msg);
          break;
        }
        this.emit('server_error', { code: msg.code, message: msg.message, fatal: false });
        if (msg.code === 'screen_share_busy') await this.media.stopScreenShare();
        if (msg.code === 'invalid_sdp' || msg.code === 'too_large') await this.media.offerRefused();
        break;
      }
      default:
        console.warn('conclave: unknown message', msg);
    }
  }

  /**
   * Who shares their screen now, from participant updates.
   * @param {ParticipantInfo} p
   */
  noteSharing(p) {
    if (p.screen) this.sharing.add(p.id);
    else this.sharing.delete(p.id);
  }

  /**
   * Tell the server which participants' video we show and how tall: it forwards only those, each
   * in the layer that fits. Sent only when it changed.
   * @param {TileView[]} tiles
   */
  sendView(tiles) {
    const text = JSON.stringify(tiles);
    if (text === this.lastView || this.state !== 'joined') return;
    this.lastView = text;
    this.send({ type: 'view', tiles });
  }
}

/** @returns {string} */
function defaultWsUrl() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/ws`;
}
