//! One participant's WebRTC transport: a `str0m::Rtc` in RTP mode plus what the worker needs to
//! route to it.

use std::net::SocketAddr;
use std::time::Instant;

use conclave_proto::Kind;
use conclave_room::{Forward, Mid as RoomMid};
use str0m::change::SdpOffer;
use str0m::format::{Codec, CodecSpec};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpWrite};
use str0m::{Candidate, Rtc, RtcError};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum OfferError {
    #[error("could not parse the SDP offer: {0}")]
    Parse(String),
    #[error("could not accept the SDP offer: {0}")]
    Accept(String),
}

/// m-lines by mid and kind.
pub type MediaList = Vec<(RoomMid, Kind)>;

pub struct Peer {
    pub rtc: Rtc,
    /// Our ICE ufrag, registered in the routes.
    pub ufrag: String,
    /// Remote addresses seen for this peer, registered in the routes.
    pub addrs: Vec<SocketAddr>,
    /// Every m-line negotiated so far, in order.
    pub mids: Vec<(Mid, MediaKind)>,
    pub next_timeout: Option<Instant>,
    /// The transport ended (ICE failed, DTLS closed); the participant may still be in the room.
    pub dead: bool,
}

impl Peer {
    pub fn new(now: Instant, candidate: SocketAddr) -> Result<Self, RtcError> {
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            // Opus and VP8 are what every browser sends and receives; one codec per kind means
            // every publisher's packets can go to every subscriber unchanged. H.264 is offered
            // after VP8, so browsers keep sending VP8; it is there for WHIP encoders (OBS Studio
            // sends only H.264), and browsers decode it.
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .build(now);
        let c = Candidate::host(candidate, "udp")?;
        rtc.add_local_candidate(c);
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        Ok(Self {
            rtc,
            ufrag,
            addrs: Vec::new(),
            mids: Vec::new(),
            next_timeout: Some(now),
            dead: false,
        })
    }

    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, OfferError> {
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
    pub fn media_lists(&self) -> (MediaList, MediaList) {
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
                published.push((room_mid, kind));
            }
            if matches!(dir, Direction::SendOnly | Direction::SendRecv) {
                slots.push((room_mid, kind));
            }
        }
        (published, slots)
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
        let mid: Mid = f.mid.as_str().into();
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, None) else {
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
        stream.write_rtp(write);
        true
    }

    pub fn request_keyframe(&mut self, mid: RoomMid) {
        let mid: Mid = mid.as_str().into();
        if let Some(stream) = self.rtc.direct_api().stream_rx_by_mid(mid, None) {
            stream.request_keyframe(KeyframeRequestKind::Pli);
        }
    }
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
