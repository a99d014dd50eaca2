// The media half of a connection: one RTCPeerConnection with the camera, microphone and screen
// senders and the receive slots, negotiation with the server (the client always offers, one
// offer at a time) and the remote tracks per participant. The Connection (protocol.js) owns one,
// makes a new peer connection on every `welcome` and feeds it the server's media messages; this
// sends offers and emits events through the Connection.

/** @typedef {import('./protocol.js').Connection} Connection */
/** @typedef {import('./protocol.js').RemoteMedia} RemoteMedia */
/** @typedef {import('./protocol.js').IceServer} IceServer */
/** @typedef {import('./protocol.js').SubscriptionsMsg} SubscriptionsMsg */

/**
 * Camera simulcast layers, lowest first: about 180p, 360p and 720p from a 720p camera.
 * @type {RTCRtpEncodingParameters[]}
 */
const SIMULCAST = [
  { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'h', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

/**
 * Peer connection configuration. ICE servers come only from the server's `welcome` (its own TURN
 * server, or the one its operator chose); there is no built-in default (privacy rule).
 */
const PC_CONFIG = /** @type {RTCConfiguration} */ ({
  iceServers: [],
  bundlePolicy: 'max-bundle',
  rtcpMuxPolicy: 'require',
});

/** How long a `disconnected` peer connection may take to come back before we reconnect. */
const DISCONNECTED_GRACE_MS = 5000;

export class MediaSession {
  /** @param {Connection} conn */
  constructor(conn) {
    this.conn = conn;
    /** @type {RTCPeerConnection|null} */
    this.pc = null;
    /** @type {MediaStreamTrack|null} */
    this.audioTrack = null;
    /** @type {MediaStreamTrack|null} */
    this.videoTrack = null;
    /** Whether to publish a sending transceiver of each kind (false: receive-only). */
    this.publish = { audio: true, video: true };
    /** @type {RTCRtpTransceiver|null} */
    this.audioTx = null;
    /** @type {RTCRtpTransceiver|null} */
    this.videoTx = null;
    /** @type {MediaStreamTrack|null} */
    this.screenTrack = null;
    /** @type {RTCRtpTransceiver|null} */
    this.screenTx = null;
    /** The server's last `publish_layers` per sending mid. @type {Map<string, boolean[]>} */
    this.wantedLayers = new Map();
    /** @type {SubscriptionsMsg|null} */
    this.lastSubs = null;
    this.offerInFlight = false;
    this.offerPending = false;
    /** @type {ReturnType<typeof setTimeout>|null} */
    this.disconnectTimer = null;
    /** @type {Map<string, RemoteMedia>} */
    this.remote = new Map();
  }

  /**
   * A new peer connection for the connection generation `gen`, with our senders on it.
   * @param {number} gen
   * @param {IceServer[]} iceServers
   * @param {RTCIceTransportPolicy} iceTransportPolicy
   */
  open(gen, iceServers, iceTransportPolicy) {
    if (this.pc) this.pc.close();
    const transforms = this.conn.transforms;
    // The welcome's ICE servers last: nothing else may add or replace them.
    const pc = new RTCPeerConnection({ ...PC_CONFIG, ...transforms?.pcConfig, iceServers, iceTransportPolicy });
    this.pc = pc;
    if (this.publish.audio) {
      this.audioTx = pc.addTransceiver(this.audioTrack ?? 'audio', { direction: 'sendonly' });
      transforms?.sender(this.audioTx.sender, 'audio');
    }
    if (this.publish.video) {
      // Three simulcast layers, lowest first (the server reads layer order from the offer): each
      // receiver gets the one that fits its tile and its downlink.
      this.videoTx = pc.addTransceiver(this.videoTrack ?? 'video', {
        direction: 'sendonly',
        sendEncodings: SIMULCAST.map((e) => ({ ...e })),
      });
      transforms?.sender(this.videoTx.sender, 'video');
    }
    this.screenTx = null;
    this.attachScreen();
    pc.onconnectionstatechange = () => {
      if (gen !== this.conn.gen) return;
      const s = pc.connectionState;
      if (s === 'failed') {
        this.conn.scheduleReconnect();
      } else if (s === 'disconnected') {
        if (!this.disconnectTimer) {
          this.disconnectTimer = setTimeout(() => {
            this.disconnectTimer = null;
            if (gen === this.conn.gen && pc.connectionState === 'disconnected') this.conn.scheduleReconnect();
          }, DISCONNECTED_GRACE_MS);
        }
      } else if (this.disconnectTimer) {
        clearTimeout(this.disconnectTimer);
        this.disconnectTimer = null;
      }
    };
    pc.ontrack = () => this.applySubscriptions();
    this.conn.emit('pc', { pc });
  }

  /** Close the peer connection; the local tracks and the screen share stay for the next one. */
  close() {
    if (this.disconnectTimer) clearTimeout(this.disconnectTimer);
    this.disconnectTimer = null;
    if (this.pc) {
      const pc = this.pc;
      pc.onconnectionstatechange = null;
      pc.close();
    }
    this.pc = null;
    this.audioTx = null;
    this.videoTx = null;
    this.wantedLayers.clear();
    this.offerInFlight = false;
    this.offerPending = false;
    this.lastSubs = null;
    this.setRemote(new Map());
  }

  /**
   * Set the local tracks to publish (null = nothing on that sender).
   * @param {MediaStreamTrack|null} audio
   * @param {MediaStreamTrack|null} video
   */
  setLocalTracks(audio, video) {
    this.audioTrack = audio;
    this.videoTrack = video;
  }

  /** @param {MediaStreamTrack|null} track */
  async replaceVideoTrack(track) {
    this.videoTrack = track;
    if (this.videoTx) await this.videoTx.sender.replaceTrack(track);
  }

  /** @param {MediaStreamTrack|null} track */
  async replaceAudioTrack(track) {
    this.audioTrack = track;
    if (this.audioTx) await this.audioTx.sender.replaceTrack(track);
  }

  /**
   * The server's `subscriptions`: add receive slots if it needs more, show what arrives where.
   * @param {SubscriptionsMsg} msg
   */
  setSubscriptions(msg) {
    this.lastSubs = msg;
    this.ensureSlots();
    this.applySubscriptions();
  }

  /**
   * The server's `answer` to our offer in flight.
   * @param {string} sdp
   * @param {number} gen
   */
  async onAnswer(sdp, gen) {
    const pc = this.pc;
    if (!pc || pc.signalingState !== 'have-local-offer') {
      console.warn('conclave: unexpected answer');
      return;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp });
    if (gen !== this.conn.gen) return;
    this.offerInFlight = false;
    this.applySubscriptions();
    await this.applyPublishLayers();
    if (this.offerPending) {
      this.offerPending = false;
      this.negotiate();
    } else {
      this.ensureSlots();
    }
  }

  /** The server refused our offer: let the next change trigger a new one. */
  async offerRefused() {
    this.offerInFlight = false;
    if (this.pc && this.pc.signalingState === 'have-local-offer') {
      await this.pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
    }
  }

  /**
   * @param {'audio'|'video'} kind
   * @returns {RTCRtpTransceiver[]}
   */
  recvTransceivers(kind) {
    if (!this.pc) return [];
    return this.pc
      .getTransceivers()
      .filter((t) => t.direction === 'recvonly' && t.receiver.track.kind === kind);
  }

  /**
   * Share a screen (from getDisplayMedia) as a separate track, shown large to everyone. One
   * participant shares at a time: if someone else already does, the server answers
   * `screen_share_busy` and this share stops.
   * @param {MediaStreamTrack} track
   */
  async startScreenShare(track) {
    this.screenTrack = track;
    track.addEventListener('ended', () => {
      if (this.screenTrack === track) this.stopScreenShare();
    });
    this.attachScreen();
    this.conn.emit('screen', { active: true });
    await this.negotiate();
  }

  /** Stop sharing (also when the browser's own "Stop sharing" bar was used). */
  async stopScreenShare() {
    const track = this.screenTrack;
    if (!track) return;
    this.screenTrack = null;
    track.stop();
    if (this.screenTx && this.pc) {
      await this.screenTx.sender.replaceTrack(null).catch(() => {});
      this.screenTx.direction = 'inactive';
    }
    this.conn.emit('screen', { active: false });
    await this.negotiate();
  }

  /** Put the screen track on its transceiver (new peer connections too, after a reconnect). */
  attachScreen() {
    const pc = this.pc;
    const track = this.screenTrack;
    if (!pc || !track) return;
    if (this.screenTx && pc.getTransceivers().includes(this.screenTx)) {
      this.screenTx.sender.replaceTrack(track).catch(() => {});
      this.screenTx.direction = 'sendonly';
      return;
    }
    // Detail over motion: full resolution, a low frame rate is fine for slides and documents.
    this.screenTx = pc.addTransceiver(track, {
      direction: 'sendonly',
      sendEncodings: [{ maxFramerate: 15, maxBitrate: 2_500_000 }],
    });
    this.conn.transforms?.sender(this.screenTx.sender, 'video');
  }

  /**
   * The server says which of our simulcast layers anyone receives: pause the others (saves our
   * CPU and uplink), resume them when needed.
   * @param {string} mid
   * @param {boolean[]} active
   */
  async setPublishLayers(mid, active) {
    this.wantedLayers.set(mid, active);
    await this.applyPublishLayers();
  }

  /**
   * Make the senders' layers what the server last asked for. Also run after every negotiation:
   * a `setParameters` racing a renegotiation can fail, and the server does not repeat itself.
   */
  async applyPublishLayers() {
    for (const [mid, active] of this.wantedLayers) {
      const tx = this.pc?.getTransceivers().find((t) => t.mid === mid && t.sender.track?.kind !== 'audio');
      if (!tx) continue;
      const params = tx.sender.getParameters();
      if (!params.encodings?.length) continue;
      let changed = false;
      params.encodings.forEach((e, i) => {
        const on = active[i] ?? true;
        if (e.active !== on) {
          e.active = on;
          changed = true;
        }
      });
      if (changed) await tx.sender.setParameters(params).catch((e) => console.warn('conclave: layers', e));
    }
  }

  /** Add recvonly transceivers if the server asks for more slots, then offer. */
  ensureSlots() {
    const pc = this.pc;
    if (!pc) return;
    const slots = this.lastSubs?.slots ?? { audio: 0, video: 0 };
    let added = false;
    for (const kind of /** @type {const} */ (['audio', 'video'])) {
      const want = slots[kind] ?? 0;
      for (let have = this.recvTransceivers(kind).length; have < want; have++) {
        const t = pc.addTransceiver(kind, { direction: 'recvonly' });
        this.conn.transforms?.receiver(t.receiver, kind);
        added = true;
      }
    }
    // The first offer goes out once we know the slots (or at once if there is something to send).
    if (added || (!this.offerInFlight && pc.signalingState === 'stable' && !pc.currentRemoteDescription)) {
      this.negotiate();
    }
  }

  /** Send an offer now, or after the answer to the one in flight. */
  async negotiate() {
    const pc = this.pc;
    if (!pc) return;
    if (this.offerInFlight || pc.signalingState !== 'stable') {
      this.offerPending = true;
      return;
    }
    if (pc.getTransceivers().length === 0) return; // nothing to send or receive yet
    const gen = this.conn.gen;
    this.offerInFlight = true;
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (!pc.currentRemoteDescription) await waitForGathering(pc, 1000);
      if (gen !== this.conn.gen) return;
      const sdp = pc.localDescription?.sdp ?? offer.sdp ?? '';
      const screenMid = this.screenTrack && this.screenTx?.mid ? this.screenTx.mid : undefined;
      this.conn.send({ type: 'offer', sdp, ...(screenMid ? { screen_mid: screenMid } : {}) });
    } catch (e) {
      console.error('conclave: offer failed', e);
      this.offerInFlight = false;
    }
  }

  /** Map `subscriptions` onto transceivers and emit the remote tracks per participant. */
  applySubscriptions() {
    const pc = this.pc;
    /** @type {Map<string, RemoteMedia>} */
    const media = new Map();
    if (pc && this.lastSubs) {
      const byMid = new Map(pc.getTransceivers().filter((t) => t.mid !== null).map((t) => [t.mid, t]));
      for (const sub of this.lastSubs.subscriptions) {
        const t = byMid.get(sub.mid);
        if (!t) continue; // not negotiated yet; applied again after the answer
        const entry = media.get(sub.participant_id) ?? { audio: null, video: null, screen: null };
        if (t.receiver.track.kind === sub.kind) {
          if (sub.screen) entry.screen = t.receiver.track;
          else entry[sub.kind] = t.receiver.track;
        }
        media.set(sub.participant_id, entry);
      }
    }
    this.setRemote(media);
  }

  /** @param {Map<string, RemoteMedia>} media */
  setRemote(media) {
    const same =
      media.size === this.remote.size &&
      [...media].every(([id, m]) => {
        const old = this.remote.get(id);
        return old && old.audio === m.audio && old.video === m.video && old.screen === m.screen;
      });
    if (same) return;
    this.remote = media;
    this.conn.emit('media', { media });
  }
}

/**
 * Resolve when ICE gathering is complete or after `ms`, whichever is first.
 * @param {RTCPeerConnection} pc
 * @param {number} ms
 * @returns {Promise<void>}
 */
function waitForGathering(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener('icegatheringstatechange', check);
      clearTimeout(timer);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, ms);
    pc.addEventListener('icegatheringstatechange', check);
  });
}
