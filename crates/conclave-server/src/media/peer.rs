//! One participant's WebRTC transport: a `str0m::Rtc` in RTP mode plus what the worker needs to
//! route to it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use conclave_proto::Kind;
use conclave_room::{Forward, MAX_LAYERS, Mid as RoomMid, Published};
use str0m::bwe::Bitrate;
use str0m::change::SdpOffer;
use str0m::format::{Codec, CodecConfig, CodecSpec, PayloadParams};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt, Rid, Rids};
use str0m::net::{Protocol, TcpType};
use str0m::rtp::{ExtensionValues, RtpWrite, Ssrc};
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

/// How often str0m reports stream statistics (cumulative NACKs, packets, loss).
const STATS_INTERVAL: Duration = Duration::from_secs(5);

/// How long a sent video packet is kept for retransmission. A NACK comes one round trip after
/// the loss (plus the receiver's wait for reordering), and a retransmission older than about a
/// second arrives too late to be played; str0m's default of 3 s held three times the memory per
/// receive slot for nothing.
const RTX_MAX_AGE: Duration = Duration::from_secs(1);
/// Most packets kept per video send stream, whatever their age: a second of a 2.5 Mbit/s layer
/// is ~280 packets; this leaves room for a screen share's keyframe burst.
const RTX_MAX_PACKETS: usize = 1024;
/// Retransmissions queued beyond this share of a stream's sent bytes are dropped (str0m's
/// default): a receiver on a very lossy path should get a lower layer, not a flood of resends.
const RTX_RATIO_CAP: Option<f32> = Some(0.15);

/// m-lines by mid and kind.
pub type MediaList = Vec<(RoomMid, Kind)>;

/// Downlink estimate to start from, before the transport has measured anything: enough for a
/// few tiles at medium quality; the estimator probes up from here.
const INITIAL_ESTIMATE: Bitrate = Bitrate::kbps(1500);
/// Least bitrate the estimator is asked to keep (audio and the lowest video layers).
const MIN_BITRATE: Bitrate = Bitrate::kbps(150);

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
    /// An offer has been accepted: the transport can no longer be rebuilt.
    negotiated: bool,
    /// Send streams by m-line, once their retransmission buffer is sized: forwarded packets find
    /// their stream by SSRC (a hash lookup) instead of str0m's scan of all streams by mid.
    tx: Vec<(RoomMid, Ssrc)>,
    /// Forwarded packets were written since the last poll (see the worker's run rule).
    pub pending: bool,
    /// The transport ended (ICE failed, DTLS closed); the participant may still be in the room.
    pub dead: bool,
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
            negotiated: false,
            tx: Vec::new(),
            pending: false,
            dead: false,
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

    /// Size the retransmission buffer of send streams declared since the last call. Audio is
    /// never retransmitted (no RTX is negotiated for Opus), so its buffer is turned off.
    pub fn tune_send_streams(&mut self) {
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

    /// The codec (and its format) of an incoming payload type.
    pub fn codec_of(&self, pt: Pt) -> Option<CodecSpec> {
        self.rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.pt() == pt)
            .map(|p| p.spec())
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
        let Some(pt) = self.pt_for(&pkt.codec) else {
            return false;
        };
        let write = RtpWrite::new(
            pt,
            f.out.seq.into(),
            f.out.ts,
            pkt.wallclock,
            pkt.payload.clone(),
        )
        .marker(pkt.marker)
        .ext_vals(pkt.ext_vals.clone())
        .nackable(pkt.nackable);
        let mut api = self.rtc.direct_api();
        let ssrc = self.tx.iter().find(|(m, _)| *m == f.mid).map(|(_, s)| *s);
        if let Some(stream) = ssrc.and_then(|s| api.stream_tx(&s)) {
            stream.write_rtp(write);
            return true;
        }
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

    /// What the room would like to send this peer: the estimator probes up towards it.
    pub fn set_desired_bitrate(&mut self, bps: u64) {
        self.rtc
            .bwe()
            .set_bitrate(MIN_BITRATE, Bitrate::bps(bps.max(MIN_BITRATE.as_u64())));
    }
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
        .enable_opus(true, false)
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
            if !p.spec().codec.is_audio() {
                return *p;
            }
            let mut spec = p.spec();
            spec.format.use_dtx = Some(true);
            let mut audio = PayloadParams::new(p.pt(), p.resend(), spec);
            audio.set_fb_transport_cc(false);
            audio
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
    pub payload: &'a std::sync::Arc<[u8]>,
    pub marker: bool,
    pub ext_vals: &'a ExtensionValues,
    pub wallclock: Instant,
    pub nackable: bool,
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    use super::*;

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
