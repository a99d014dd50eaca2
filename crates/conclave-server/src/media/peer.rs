//! One participant's WebRTC transport: a `str0m::Rtc` in RTP mode plus what the worker needs to
//! route to it.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conclave_proto::Kind;
use conclave_room::codec::{red_primary, red_renumber};
use conclave_room::{Forward, MAX_LAYERS, Mid as RoomMid, Published, Vp8Ids};
use str0m::bwe::Bitrate;
use str0m::change::SdpOffer;
use str0m::format::{Codec, CodecConfig, CodecSpec, PayloadParams};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt, Rid, Rids};
use str0m::net::{Protocol, TcpType};
use str0m::rtp::{ExtensionValues, RtpWrite, Ssrc, Vp8Descriptor, Vp8Patch};
use str0m::{Candidate, IceCreds, Rtc, RtcError};

use super::MediaAddrs;
use super::udp::Remote;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum OfferError {
    #[error("could not parse the SDP offer: {0}")]
    Parse(String),
    #[error("could not accept the SDP offer: {0}")]
    Accept(String),
}

/// How often str0m reports statistics: per stream (cumulative NACKs, packets, loss) and per
/// transport (its unsmoothed downlink estimate, which the room uses to act on a drop at once).
/// Shorter reacts sooner to a collapsing downlink; each report costs an event per stream.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// How long a sent video packet is kept for retransmission. A NACK comes one round trip after
/// the loss (plus the receiver's wait for reordering), and a retransmission older than about a
/// second arrives too late to be played; str0m's default of 3 s held three times the memory per
/// receive slot for nothing.
const RTX_MAX_AGE: Duration = Duration::from_secs(1);
/// Most packets kept per video send stream, whatever their age: a second of a 2.5 Mbit/s layer
/// is ~280 packets; this leaves room for a screen share's keyframe burst.
const RTX_MAX_PACKETS: usize = 1024;

/// m-lines by mid and kind.
pub type MediaList = Vec<(RoomMid, Kind)>;

/// Downlink estimate to start from, before the transport has measured anything: enough for a
/// few tiles at medium quality; the estimator probes up from here.
const INITIAL_ESTIMATE: Bitrate = Bitrate::kbps(1500);
/// Least bitrate the estimator is asked to keep (audio and the lowest video layers).
const MIN_BITRATE: Bitrate = Bitrate::kbps(150);
/// Share of a stream's bytes over a second that may be retransmissions before str0m drops the
/// queued ones. Its default (15 %) can be exceeded right after a keyframe on a lossy downlink:
/// a receiver asks again for packets whose retransmission is still waiting in the pacer, each
/// request queues another copy, and past the cap every queued retransmission is dropped, the
/// keyframe stays incomplete and the picture freezes until another one. Higher spends more of a lossy
/// link on repair; the pacer still holds the total to the estimate.
const RTX_RATIO_CAP: Option<f32> = Some(0.5);

pub struct Peer {
    pub rtc: Rtc,
    /// Our ICE ufrag, registered in the routes.
    pub ufrag: String,
    /// Remote addresses seen for this peer, registered in the routes.
    pub addrs: Vec<Remote>,
    /// Every m-line negotiated so far, in order.
    pub mids: Vec<(Mid, MediaKind)>,
    pub next_timeout: Option<Instant>,
    /// The m-line the client said carries its screen share.
    pub screen_mid: Option<Mid>,
    /// The client sends transport-wide congestion feedback, so its downlink estimate is real.
    pub twcc: bool,
    /// RED is sent to this peer as its primary block only, although negotiated: the room
    /// found its downlink too small for the redundancy (`Output::AudioRedundancy`).
    pub red_off: bool,
    /// An offer has been accepted: the transport can no longer be rebuilt.
    negotiated: bool,
    /// Send streams by m-line, once their retransmission buffer is sized: forwarded packets find
    /// their stream by SSRC (a hash lookup) instead of str0m's scan of all streams by mid.
    tx: Vec<(RoomMid, Ssrc)>,
    /// Forwarded packets were written since the last poll (see the worker's run rule).
    pub pending: bool,
    /// The transport ended (ICE failed, DTLS closed); the participant may still be in the room.
    pub dead: bool,
    /// A panic inside this transport (`contain.rs`): it is never touched again, only closed.
    pub failed: bool,
    /// Test builds only: a fault to inject (`fault.rs`).
    pub fault: crate::fault::Armed,
    /// Last cumulative (NACKs, packets) str0m reported per stream and direction (true: ingress),
    /// so metrics count only what is new.
    stats_seen: HashMap<(Mid, Option<Rid>, bool), (u64, u64)>,
}

impl Peer {
    pub fn new(now: Instant, media: &MediaAddrs) -> Result<Self, RtcError> {
        let mut rtc = build_rtc(now, media, true, None)?;
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        Ok(Self {
            rtc,
            ufrag,
            addrs: Vec::new(),
            mids: Vec::new(),
            next_timeout: Some(now),
            screen_mid: None,
            twcc: true,
            red_off: false,
            negotiated: false,
            tx: Vec::new(),
            pending: false,
            dead: false,
            failed: false,
            fault: Default::default(),
            stats_seen: HashMap::new(),
        })
    }

    pub fn accept_offer(
        &mut self,
        now: Instant,
        media: &MediaAddrs,
        sdp: &str,
        screen_mid: Option<&str>,
    ) -> Result<String, OfferError> {
        self.screen_mid = screen_mid.map(Mid::from);
        // Only clients that send transport-wide congestion feedback (every browser does) get a
        // downlink estimate and pacing; for others the estimate could never move, so their
        // pacing is lifted and their layers are chosen by tile size alone.
        let twcc = sdp.contains("transport-wide-cc");
        if !twcc && self.twcc {
            if self.negotiated {
                self.rtc.bwe().reset(Bitrate::gbps(10));
            } else {
                // Before the first offer the transport holds nothing: it is rebuilt without an
                // estimator (and so without a pacer), keeping its ICE credentials. Resetting the
                // estimator would not do: str0m keeps pacing at the initial estimate until
                // feedback arrives, which here never does.
                let creds = self.rtc.direct_api().local_ice_credentials();
                self.rtc = build_rtc(now, media, false, Some(creds))
                    .map_err(|e| OfferError::Accept(e.to_string()))?;
            }
        }
        self.twcc = twcc;
        self.negotiated = true;
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| OfferError::Parse(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| OfferError::Accept(e.to_string()))?;
        Ok(answer.to_sdp_string())
    }

    /// Published tracks (the client sends) and receive slots (the client receives), by the
    /// negotiated direction of each m-line as seen from the server.
    pub fn media_lists(&self) -> (Vec<Published>, MediaList) {
        let mut published = Vec::new();
        let mut slots = Vec::new();
        for (mid, kind) in &self.mids {
            let Some(media) = self.rtc.media(*mid) else {
                continue;
            };
            let Some(room_mid) = RoomMid::new(mid) else {
                continue;
            };
            let kind = match kind {
                MediaKind::Audio => Kind::Audio,
                MediaKind::Video => Kind::Video,
            };
            let dir = media.direction();
            if matches!(dir, Direction::RecvOnly | Direction::SendRecv) {
                let layers = match media.rids_rx() {
                    Rids::Specific(rids) => rids.len().clamp(1, MAX_LAYERS) as u8,
                    _ => 1,
                };
                published.push(Published {
                    mid: room_mid,
                    kind,
                    layers,
                    screen: kind == Kind::Video && self.screen_mid == Some(*mid),
                });
            }
            if matches!(dir, Direction::SendOnly | Direction::SendRecv) {
                slots.push((room_mid, kind));
            }
        }
        (published, slots)
    }

    /// After an m-line was added or changed: its send stream tuned, and the lists the room
    /// needs (see [`Self::media_lists`]).
    pub fn media_changed(&mut self) -> (Vec<Published>, MediaList) {
        self.tune_send_streams();
        self.media_lists()
    }

    /// Size the retransmission buffer of send streams declared since the last call. Audio is
    /// never retransmitted (no RTX is negotiated for Opus), so its buffer is turned off.
    fn tune_send_streams(&mut self) {
        let mut api = self.rtc.direct_api();
        for (mid, kind) in &self.mids {
            let Some(stream) = api.stream_tx_by_mid(*mid, None) else {
                continue;
            };
            let ssrc = stream.ssrc();
            let Some(room_mid) = RoomMid::new(mid) else {
                continue;
            };
            if self.tx.contains(&(room_mid, ssrc)) {
                continue;
            }
            self.tx.retain(|(m, _)| *m != room_mid);
            self.tx.push((room_mid, ssrc));
            match kind {
                MediaKind::Video => {
                    stream.set_rtx_cache(RTX_MAX_PACKETS, RTX_MAX_AGE, RTX_RATIO_CAP)
                }
                MediaKind::Audio => stream.set_rtx_cache(0, Duration::ZERO, None),
            }
        }
    }

    /// The codec (and its format) of an incoming payload type, the codec's own payload type, and
    /// whether it comes wrapped in RED (the payload type is the codec's RED type).
    pub fn codec_of(&self, pt: Pt) -> Option<(CodecSpec, Pt, bool)> {
        self.rtc.codec_config().params().iter().find_map(|p| {
            if p.pt() == pt {
                Some((p.spec(), pt, false))
            } else if p.red() == Some(pt) {
                Some((p.spec(), p.pt(), true))
            } else {
                None
            }
        })
    }

    /// Whether an incoming payload type is video: a video codec's, or its retransmission's.
    pub fn is_video_pt(&self, pt: Pt) -> bool {
        self.rtc.codec_config().params().iter().any(|p| {
            p.spec().codec.is_video()
                && (p.pt() == pt || p.resend() == Some(pt) || p.red() == Some(pt))
        })
    }

    /// This peer's payload type for `spec` wrapped in RED, if it negotiated RED.
    fn red_pt_for(&self, spec: &CodecSpec) -> Option<Pt> {
        self.rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == spec.codec)
            .and_then(|p| p.red())
    }

    /// This peer's payload type for what a publisher sent. H.264 comes in variants: the same
    /// packetization mode is required (mode 0 cannot carry fragments), the same profile preferred.
    fn pt_for(&self, spec: &CodecSpec) -> Option<Pt> {
        let params = self.rtc.codec_config().params();
        let same = params.iter().filter(|p| p.spec().codec == spec.codec);
        if spec.codec != Codec::H264 {
            return same.map(|p| p.pt()).next();
        }
        let mode = |p: &&str0m::format::PayloadParams| {
            p.spec().format.packetization_mode.unwrap_or(0)
                == spec.format.packetization_mode.unwrap_or(0)
        };
        let profile = |p: &&str0m::format::PayloadParams| {
            p.spec().format.profile_level_id == spec.format.profile_level_id
        };
        same.clone()
            .filter(mode)
            .find(profile)
            .or_else(|| same.clone().find(mode))
            .map(|p| p.pt())
    }

    /// Write one forwarded packet to this subscriber. Returns false if it could not be sent
    /// (slot not negotiated yet, codec not supported by this subscriber).
    pub fn write_forward(&mut self, f: &Forward, pkt: &ForwardedPacket<'_>) -> bool {
        if self.dead {
            return false;
        }
        // RED goes as it came to a subscriber that negotiated it; one that did not gets the
        // primary block alone, as plain Opus (when the RED headers are readable).
        let renumbered;
        let red_pt = if self.red_off {
            None
        } else {
            self.red_pt_for(&pkt.codec)
        };
        let (pt, payload) = match (pkt.red, red_pt) {
            (true, Some(red)) => match self.pt_for(&pkt.codec) {
                Some(pt) if pt == pkt.pt => (red, pkt.payload),
                // This subscriber numbers the codec differently: so must the block headers.
                Some(pt) => {
                    let mut copy = pkt.payload.to_vec();
                    if !red_renumber(&mut copy, *pkt.pt, *pt) {
                        return false;
                    }
                    renumbered = Arc::from(copy);
                    (red, &renumbered)
                }
                None => return false,
            },
            (true, None) => match (self.pt_for(&pkt.codec), pkt.primary()) {
                (Some(pt), Some(primary)) => (pt, primary),
                _ => return false,
            },
            (false, _) => match self.pt_for(&pkt.codec) {
                Some(pt) => (pt, pkt.payload),
                None => return false,
            },
        };
        let write = RtpWrite::new(
            pt,
            f.out.seq.into(),
            f.out.ts,
            pkt.wallclock,
            payload.clone(),
        )
        .marker(pkt.marker)
        .ext_vals(pkt.ext_vals.clone())
        .nackable(pkt.nackable);
        let write = match vp8_patch(pkt.vp8.as_ref(), f.vp8) {
            Some(patch) => write.vp8_patch(patch),
            None => write,
        };
        let mut api = self.rtc.direct_api();
        let ssrc = self.tx.iter().find(|(m, _)| *m == f.mid).map(|(_, s)| *s);
        // Written as a packet alone (not through the whole stream), so that the release below
        // can let it out without walking the transport's event sources again.
        let write = match ssrc {
            Some(s) => match api.write_rtp(&s, write) {
                Ok(()) => return true,
                Err(write) => write,
            },
            None => write,
        };
        let Some(stream) = api.stream_tx_by_mid(f.mid.as_str().into(), None) else {
            return false;
        };
        stream.write_rtp(write);
        true
    }

    /// What is new in a stream's cumulative (NACKs, packets) since the last report.
    pub fn stats_delta(
        &mut self,
        key: (Mid, Option<Rid>, bool),
        nacks: u64,
        packets: u64,
    ) -> (u64, u64) {
        let last = self
            .stats_seen
            .insert(key, (nacks, packets))
            .unwrap_or((0, 0));
        (nacks.saturating_sub(last.0), packets.saturating_sub(last.1))
    }

    /// The simulcast layer of an incoming stream: the rid's position in the offer's simulcast
    /// list, which browsers give lowest first (as the client sets its encodings); 0 without
    /// simulcast.
    pub fn layer_of(&self, mid: Mid, rid: Option<Rid>) -> u8 {
        let Some(rid) = rid else { return 0 };
        match self.rtc.media(mid).map(|m| m.rids_rx()) {
            Some(Rids::Specific(rids)) => rids.iter().position(|r| *r == rid).unwrap_or(0) as u8,
            _ => 0,
        }
    }

    fn rid_of(&self, mid: Mid, layer: u8) -> Option<Rid> {
        match self.rtc.media(mid).map(|m| m.rids_rx()) {
            Some(Rids::Specific(rids)) => rids.get(layer as usize).copied(),
            _ => None,
        }
    }

    pub fn request_keyframe(&mut self, mid: RoomMid, layer: u8) {
        let mid: Mid = mid.as_str().into();
        let rid = self.rid_of(mid, layer);
        if let Some(stream) = self.rtc.direct_api().stream_rx_by_mid(mid, rid) {
            stream.request_keyframe(KeyframeRequestKind::Pli);
        }
    }

    /// Restart the downlink estimator from `bps` (it probes up from there), for a peer whose
    /// downlink estimate comes from transport-wide feedback.
    pub fn reset_estimate(&mut self, bps: u64) {
        if self.twcc {
            self.rtc
                .bwe()
                .reset(Bitrate::bps(bps.max(MIN_BITRATE.as_u64())));
        }
    }

    /// For a peer paced to a downlink estimate: how long its oldest paced packet has waited, as
    /// of `now`, and the estimate as it stands.
    pub fn pacer_delay(&mut self, now: Instant) -> Option<(Duration, u64)> {
        if !self.twcc {
            return None;
        }
        let bwe = self.rtc.bwe();
        Some((bwe.pacer_delay(now), bwe.current_estimate()?.as_u64()))
    }

    /// Drop the video waiting in this peer's pacer; returns how many packets (see the worker's
    /// `STALE_PACED_VIDEO`).
    pub fn drop_queued_video(&mut self) -> usize {
        let mut api = self.rtc.direct_api();
        self.mids
            .iter()
            .filter(|(_, kind)| *kind == MediaKind::Video)
            .filter_map(|(mid, _)| api.stream_tx_by_mid(*mid, None).map(|s| s.drop_queued()))
            .sum()
    }

    /// What the room would like to send this peer: the estimator probes up towards it.
    pub fn set_desired_bitrate(&mut self, bps: u64) {
        self.rtc
            .bwe()
            .set_bitrate(MIN_BITRATE, Bitrate::bps(bps.max(MIN_BITRATE.as_u64())));
    }
}

/// The byte changes that give a forwarded VP8 packet the receive slot's picture numbering. str0m
/// applies them while copying the payload into the outgoing packet (and into retransmissions), so
/// the payload shared by all receivers is never copied for one of them. `None` when nothing
/// changes.
fn vp8_patch(descriptor: Option<&Vp8Descriptor>, ids: Option<Vp8Ids>) -> Option<Vp8Patch> {
    let (descriptor, ids) = (descriptor?, ids?);
    let mut patch = descriptor.patch();
    let mut changed = false;
    if let Some(p) = ids.picture_id
        && descriptor.picture_id() != Some(p.value)
    {
        patch = patch.picture_id(p.value);
        changed = true;
    }
    if let Some(t) = ids.tl0_pic_idx
        && descriptor.tl0_pic_idx() != Some(t)
    {
        patch = patch.tl0_pic_idx(t);
        changed = true;
    }
    if let Some(k) = ids.key_idx
        && descriptor.key_idx() != Some(k)
    {
        patch = patch.key_idx(k);
        changed = true;
    }
    // The room core keeps each field's presence and width, so building cannot fail.
    changed.then(|| patch.build().ok()).flatten()
}

/// The server's audio payload parameters: DTX, no transport-wide feedback (see [`Peer::new`]),
/// RED kept as str0m negotiates it.
fn audio_params(p: &PayloadParams) -> PayloadParams {
    let mut spec = p.spec();
    spec.format.use_dtx = Some(true);
    let mut audio = PayloadParams::new(p.pt(), p.resend(), spec);
    audio.set_fb_transport_cc(false);
    with_red(audio, p.red())
}

/// A RED payload type on a codec's payload parameters. str0m 0.25 sets it only through
/// `enable_opus(_, true)`, which also resets the format and feedback this server changes; the
/// parameters' serialized form carries it, so it is copied over through that.
fn with_red(params: PayloadParams, red: Option<Pt>) -> PayloadParams {
    let Some(red) = red else { return params };
    let copied = serde_json::to_value(params).and_then(|mut v| {
        v["red"] = serde_json::to_value(red)?;
        serde_json::from_value(v)
    });
    // Both values come from str0m's own serialization; failing would be a str0m change, and
    // then audio simply goes without redundancy.
    copied.unwrap_or(params)
}

/// A transport in RTP mode with our codecs and candidates; with a downlink estimator (and pacing)
/// for clients that send transport-wide congestion feedback.
fn build_rtc(
    now: Instant,
    media: &MediaAddrs,
    bwe: bool,
    creds: Option<IceCreds>,
) -> Result<Rtc, RtcError> {
    let mut config = Rtc::builder()
        .set_rtp_mode(true)
        // Opus and VP8 are what every browser sends and receives; one codec per kind means
        // every publisher's packets can go to every subscriber unchanged. H.264 is offered
        // after VP8, so browsers keep sending VP8; it is there for WHIP encoders (OBS Studio
        // sends only H.264), and browsers decode it.
        .clear_codecs()
        // Opus with RED (RFC 2198) where the client offers it: each packet also carries the
        // previous one, so a lost audio packet is recovered without a retransmission.
        .enable_opus(true, true)
        .enable_vp8(true)
        .enable_h264(true)
        // Feeds the NACK and loss counters in /metrics.
        .set_stats_interval(Some(STATS_INTERVAL))
        // Each receiver's downlink estimate (TWCC) decides which simulcast layers it gets.
        .enable_bwe(bwe.then_some(INITIAL_ESTIMATE));
    if let Some(creds) = creds {
        config = config.set_local_ice_credentials(creds);
    }
    // No transport-wide feedback on audio: the estimator then never probes with padding on
    // an audio m-line, which browsers take for a new audio stream and play (silence)
    // instead of the real one. Video (with RTX) carries the probes.
    // Opus with in-band FEC (str0m's default) and DTX: silence costs almost nothing, which
    // matters with many microphones open in a large meeting.
    let params: Vec<PayloadParams> = config
        .codec_config()
        .params()
        .iter()
        .map(|p| {
            if p.spec().codec.is_audio() {
                audio_params(p)
            } else {
                *p
            }
        })
        .collect();
    *config.codec_config() = CodecConfig::new_from_payload_params(params);
    let mut rtc = config.build(now);
    for (proto, addr) in media.candidates() {
        let c = match proto {
            // Passive only: browsers connect to us (RFC 6544); we never dial out.
            Protocol::Tcp => Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Passive)
                .build()?,
            _ => Candidate::host(addr, "udp")?,
        };
        rtc.add_local_candidate(c);
    }
    Ok(rtc)
}

/// The parts of an incoming packet that go out again unchanged.
pub struct ForwardedPacket<'a> {
    pub codec: CodecSpec,
    /// The payload is RED-wrapped `codec`.
    pub red: bool,
    /// The publisher's payload type of `codec`: a RED payload's primary block must be of it.
    pub pt: Pt,
    pub payload: &'a Arc<[u8]>,
    /// The primary block of a RED payload, cut out once for the subscribers without RED.
    pub primary: OnceCell<Option<Arc<[u8]>>>,
    pub marker: bool,
    pub ext_vals: &'a ExtensionValues,
    pub wallclock: Instant,
    pub nackable: bool,
    /// The VP8 payload descriptor, parsed, to renumber per receiver.
    pub vp8: Option<Vp8Descriptor>,
}

impl ForwardedPacket<'_> {
    /// The primary block of a RED payload, if its headers are readable and it carries the
    /// publisher's codec (an end-to-end encrypted payload whose headers were encrypted is not).
    fn primary(&self) -> Option<&Arc<[u8]>> {
        self.primary
            .get_or_init(|| {
                let (pt, range) = red_primary(self.payload)?;
                (pt == *self.pt).then(|| Arc::from(&self.payload[range]))
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    use super::*;
    use str0m::rtp::{RedDecoder, RedEncoder, RedundantBlock};

    #[test]
    fn red_survives_the_audio_settings() {
        let mut config = CodecConfig::new_from_payload_params(Vec::new());
        config.enable_opus(true, true);
        let opus = config.params()[0];
        let red = opus.red().expect("str0m folds RED onto Opus");
        let changed = audio_params(&opus);
        assert_eq!(changed.red(), Some(red));
        assert_eq!(changed.spec().format.use_dtx, Some(true));
        assert!(!changed.fb_transport_cc());
    }

    #[test]
    fn red_primary_agrees_with_str0m() {
        let previous = RedundantBlock {
            pt: 111,
            timestamp_offset: 960,
            payload: vec![7; 80],
        };
        let red = RedEncoder::encode(111, &[1, 2, 3, 4, 5], &[previous]);
        let (pt, range) = red_primary(&red).expect("well-formed RED");
        let blocks = RedDecoder::decode(&red).expect("str0m reads it too");
        let primary = blocks.last().expect("a primary block");
        assert_eq!((pt, &red[range]), (primary.pt, primary.payload));
    }

    fn offer(now: Instant) -> String {
        // The simulated participant offers no transport-wide feedback.
        let mut client =
            conclave_client::new_rtc(now, SocketAddr::from(([127, 0, 0, 1], 50000))).unwrap();
        let mut api = client.sdp_api();
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, _pending) = api.apply().unwrap();
        offer.to_sdp_string()
    }

    #[test]
    fn a_transport_rebuilt_for_a_client_without_feedback_keeps_its_ice_credentials() {
        let now = Instant::now();
        let media = MediaAddrs {
            ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            udp_port: 40000,
            tcp_port: None,
        };
        let mut peer = Peer::new(now, &media).unwrap();
        let sdp = offer(now);
        assert!(!sdp.contains("transport-wide-cc"));
        let answer = peer.accept_offer(now, &media, &sdp, None).unwrap();
        // The worker routes the client's first STUN request by this ufrag.
        assert!(answer.contains(&format!("a=ice-ufrag:{}", peer.ufrag)));
        assert!(!peer.twcc);
    }
}
