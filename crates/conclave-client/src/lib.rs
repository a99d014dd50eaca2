//! A simulated Conclave participant: a real WebRTC client (str0m, RTP mode) that joins through the
//! real signaling, publishes synthetic Opus-like audio and VP8-like video, and counts what it
//! receives from every other participant (packets, loss, one-way latency).
//!
//! Each synthetic payload starts with a marker, the sender's packet counter and the send time, so a
//! receiver can measure loss and latency without decoding anything.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use conclave_proto::{
    ClientMessage, Kind, PROTOCOL_VERSION, ParticipantId, ServerMessage, SlotCounts,
};
use futures_util::{SinkExt, StreamExt};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::TcpType;
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::rtp::{Extension, ExtensionMap};
use str0m::{Candidate, Event, Input, Output, Rtc};
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::LengthDelimitedCodec;

const MARKER: &[u8; 4] = b"CNCL";
const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
/// Receive buffer of a participant's UDP socket (4 MiB: seconds of a small meeting's media).
const RECV_BUFFER: usize = 4 << 20;
const VIDEO_INTERVAL: Duration = Duration::from_millis(33);
/// Frames between keyframes when nobody asks for one.
const KEYFRAME_EVERY: u64 = 90;

impl From<tokio_tungstenite::tungstenite::Error> for ClientError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        Self::WebSocket(Box::new(e))
    }
}

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("websocket: {0}")]
    WebSocket(Box<tokio_tungstenite::tungstenite::Error>),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("webrtc: {0}")]
    Rtc(#[from] str0m::RtcError),
    #[error("server refused: {0}")]
    Refused(String),
    #[error("protocol: {0}")]
    Protocol(String),
}

/// What to do.
#[derive(Debug, Clone)]
pub struct ParticipantConfig {
    /// The server's HTTP address (signaling is at `/ws`).
    pub server: SocketAddr,
    pub room: String,
    pub name: String,
    /// Local address to bind the UDP socket to.
    pub bind_ip: IpAddr,
    pub publish_audio: bool,
    pub publish_video: bool,
    /// Bytes per video packet; keyframes are three times as many packets.
    pub video_packet_bytes: usize,
    pub video_packets_per_frame: usize,
    /// How long to stay in the meeting after media starts flowing.
    pub duration: Duration,
    /// Drop this share (0.0–1.0) of incoming datagrams once connected, to simulate a lossy
    /// downlink; the seed makes the pattern repeatable.
    pub drop_incoming: f64,
    pub seed: u64,
    /// Room or moderator password, and join token, sent in `join`.
    pub password: Option<String>,
    pub token: Option<String>,
    /// Offer no UDP candidate: connect to the server's passive ICE-TCP candidate only (what a
    /// browser behind a firewall that blocks UDP does).
    pub ice_tcp_only: bool,
}

impl ParticipantConfig {
    pub fn new(server: SocketAddr, room: &str, name: &str) -> Self {
        Self {
            server,
            room: room.into(),
            name: name.into(),
            bind_ip: server.ip(),
            publish_audio: true,
            publish_video: true,
            video_packet_bytes: 1000,
            video_packets_per_frame: 2,
            duration: Duration::from_secs(3),
            drop_incoming: 0.0,
            seed: 1,
            password: None,
            token: None,
            ice_tcp_only: false,
        }
    }
}

/// What one participant received from one other participant's track.
#[derive(Debug, Clone, Default)]
pub struct TrackReport {
    pub packets: u64,
    pub bytes: u64,
    /// Distinct sender counters seen; `expected - unique` were lost.
    pub unique: u64,
    pub expected: u64,
    /// One-way latency samples in microseconds.
    pub latencies_us: Vec<u64>,
    /// Packets that started a keyframe.
    pub keyframes: u64,
    /// When the newest packet received was sent (sender's clock, µs since the Unix epoch).
    pub last_sent_us: u64,
    first_counter: Option<u32>,
    last_counter: u32,
    seen: std::collections::HashSet<u32>,
}

impl TrackReport {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.unique)
    }
}

/// Everything one simulated participant observed.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub participant_id: Option<ParticipantId>,
    pub sent_packets: u64,
    pub received: HashMap<(ParticipantId, Kind), TrackReport>,
    pub keyframe_requests: u64,
}

/// A simulated participant's WebRTC stack: RTP mode, Opus and VP8 (what the server accepts),
/// one host candidate at `local`.
pub fn new_rtc(now: Instant, local: SocketAddr) -> Result<Rtc, str0m::RtcError> {
    new_rtc_with(now, local, false)
}

/// [`new_rtc`], optionally with transport-wide congestion feedback as browsers send it: the
/// server then estimates and paces this participant's downlink. Its feedback comes from str0m,
/// so it needs every received packet handed to it.
pub fn new_rtc_with(now: Instant, local: SocketAddr, twcc: bool) -> Result<Rtc, str0m::RtcError> {
    let mut rtc = bare_rtc(now, twcc);
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    Ok(rtc)
}

/// The same stack without any candidate yet.
fn bare_rtc(now: Instant, twcc: bool) -> Rtc {
    // By default no transport-wide congestion feedback: a simulated participant measures what
    // arrives and is not a congestion-controlled receiver, so the server neither estimates nor
    // paces its downlink (as for any client without it) and every forwarded packet is counted.
    let mut exts = ExtensionMap::empty();
    for (id, ext) in ExtensionMap::standard().iter() {
        if twcc || *ext != Extension::TransportSequenceNumber {
            exts.set(id, ext.clone());
        }
    }
    Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .set_extension_map(exts)
        .build(now)
}

/// The server's passive ICE-TCP candidate in an SDP answer
/// (`a=candidate:<f> 1 tcp <prio> <ip> <port> typ host tcptype passive`).
pub fn passive_tcp_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|l| {
        let f: Vec<&str> = l.strip_prefix("a=candidate:")?.split_whitespace().collect();
        let passive = f.get(2)?.eq_ignore_ascii_case("tcp")
            && f.windows(2).any(|w| w[0] == "tcptype" && w[1] == "passive");
        if !passive {
            return None;
        }
        Some(SocketAddr::new(
            f.get(4)?.parse().ok()?,
            f.get(5)?.parse().ok()?,
        ))
    })
}

/// One ICE-TCP connection to the server (RFC 4571 framing).
struct TcpLink {
    local: SocketAddr,
    remote: SocketAddr,
    frames: tokio_util::codec::FramedRead<tokio::net::tcp::OwnedReadHalf, LengthDelimitedCodec>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl TcpLink {
    async fn connect(rtc: &mut Rtc, server: SocketAddr) -> Result<Self, ClientError> {
        let stream = tokio::net::TcpStream::connect(server).await?;
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        let candidate = Candidate::builder()
            .tcp()
            .host(local)
            .tcptype(TcpType::Active)
            .build()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let (rd, write) = stream.into_split();
        let codec = LengthDelimitedCodec::builder()
            .length_field_length(2)
            .max_frame_length(4096)
            .new_codec();
        Ok(Self {
            local,
            remote: server,
            frames: tokio_util::codec::FramedRead::new(rd, codec),
            write,
        })
    }

    async fn send(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let len = u16::try_from(data.len())
            .map_err(|_| ClientError::Protocol("packet too long for ICE-TCP".into()))?;
        let mut buf = Vec::with_capacity(data.len() + 2);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(data);
        self.write.write_all(&buf).await?;
        Ok(())
    }
}

/// Join, publish and receive for `cfg.duration` once media flows, then leave.
pub async fn run_participant(cfg: ParticipantConfig) -> Result<Report, ClientError> {
    let url = format!("ws://{}/ws", cfg.server);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let socket = UdpSocket::bind((cfg.bind_ip, 0)).await?;
    // Audio is not retransmitted: a stall of this task on a busy machine must not overflow the
    // default buffer (about 200 KB, a few hundred loopback datagrams) and lose it for good.
    conclave_udp::set_recv_buffer(socket.as_raw_fd(), RECV_BUFFER);
    let local = socket.local_addr()?;
    let now = Instant::now();
    let mut rtc = if cfg.ice_tcp_only {
        bare_rtc(now, false)
    } else {
        new_rtc(now, local)?
    };
    let mut tcp: Option<TcpLink> = None;

    let join = ClientMessage::Join {
        version: PROTOCOL_VERSION,
        room: cfg.room.clone(),
        name: cfg.name.clone(),
        resume: None,
        password: cfg.password.clone(),
        token: cfg.token.clone(),
        sealed_name: None,
        e2ee: None,
    };
    ws.send(Message::text(
        serde_json::to_string(&join).expect("serializes"),
    ))
    .await?;

    let mut st = State {
        report: Report::default(),
        pending: None,
        published: None,
        wanted: SlotCounts::default(),
        have: SlotCounts::default(),
        offered_once: false,
        subscriptions: HashMap::new(),
        connected_at: None,
        next_audio: now,
        next_video: now,
        frame: 0,
        audio_seq: 0,
        video_seq: 0,
        keyframe_wanted: true,
    };
    let mut buf = vec![0u8; 2048];
    let mut next_timeout;
    let mut rng = cfg.seed | 1;

    loop {
        if st
            .connected_at
            .is_some_and(|at| at.elapsed() >= cfg.duration)
        {
            break;
        }
        // Negotiate when nothing is pending and we lack slots (or have never offered).
        if st.pending.is_none()
            && (!st.offered_once
                || st.have.audio < st.wanted.audio
                || st.have.video < st.wanted.video)
            && st.report.participant_id.is_some()
        {
            let mut api = rtc.sdp_api();
            if !st.offered_once {
                let a = cfg.publish_audio.then(|| {
                    api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None)
                });
                let v = cfg.publish_video.then(|| {
                    api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None)
                });
                st.published = Some((a, v));
            }
            for _ in st.have.audio..st.wanted.audio {
                api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
            }
            for _ in st.have.video..st.wanted.video {
                api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
            }
            st.have.audio = st.have.audio.max(st.wanted.audio);
            st.have.video = st.have.video.max(st.wanted.video);
            st.offered_once = true;
            if let Some((offer, pending)) = api.apply() {
                st.pending = Some(pending);
                let msg = ClientMessage::Offer {
                    screen_mid: None,
                    sdp: offer.to_sdp_string(),
                };
                ws.send(Message::text(
                    serde_json::to_string(&msg).expect("serializes"),
                ))
                .await?;
            }
        }

        // Drain str0m.
        loop {
            match rtc.poll_output()? {
                Output::Transmit(t) => match (&mut tcp, t.proto) {
                    (Some(link), Protocol::Tcp) if t.destination == link.remote => {
                        link.send(&t.contents).await?;
                    }
                    (_, Protocol::Udp) => {
                        socket.send_to(&t.contents, t.destination).await?;
                    }
                    _ => {}
                },
                Output::Timeout(t) => {
                    next_timeout = t;
                    break;
                }
                Output::Event(e) => st.on_event(&mut rtc, e),
            }
        }
        if !rtc.is_alive() {
            return Err(ClientError::Protocol("transport closed".into()));
        }

        let media_due = st.next_audio.min(st.next_video);
        let wake = if st.connected_at.is_some() {
            next_timeout.min(media_due)
        } else {
            next_timeout
        };
        tokio::select! {
            msg = ws.next() => {
                let Some(msg) = msg else { return Err(ClientError::Protocol("signaling closed".into())) };
                if let Message::Text(text) = msg? {
                    let m: ServerMessage = serde_json::from_str(text.as_str()).map_err(|e| ClientError::Protocol(e.to_string()))?;
                    if let (true, None, ServerMessage::Answer { sdp }) = (cfg.ice_tcp_only, &tcp, &m) {
                        let server = passive_tcp_candidate(sdp)
                            .ok_or_else(|| ClientError::Protocol("no ICE-TCP candidate in the answer".into()))?;
                        tcp = Some(TcpLink::connect(&mut rtc, server).await?);
                    }
                    st.on_signal(&mut rtc, m)?;
                }
            }
            r = socket.recv_from(&mut buf) => {
                let (n, source) = r?;
                if st.connected_at.is_some() && cfg.drop_incoming > 0.0 && next_random(&mut rng) < cfg.drop_incoming {
                    continue;
                }
                if let Ok(contents) = buf[..n].try_into() {
                    let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents });
                    rtc.handle_input(input)?;
                }
            }
            f = async { tcp.as_mut().expect("guarded").frames.next().await }, if tcp.is_some() => {
                let link = tcp.as_ref().expect("guarded");
                let frame = f.ok_or_else(|| ClientError::Protocol("ICE-TCP connection closed".into()))??;
                if let Ok(contents) = frame[..].try_into() {
                    let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Tcp, source: link.remote, destination: link.local, contents });
                    rtc.handle_input(input)?;
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                rtc.handle_input(Input::Timeout(now))?;
                if st.connected_at.is_some() {
                    st.send_media(&mut rtc, &cfg, now);
                }
            }
        }
    }

    ws.send(Message::text(
        serde_json::to_string(&ClientMessage::Leave).expect("serializes"),
    ))
    .await?;
    let _ = ws.close(None).await;
    Ok(st.report)
}

struct State {
    report: Report,
    pending: Option<SdpPendingOffer>,
    /// Our sending mids (audio, video).
    published: Option<(Option<Mid>, Option<Mid>)>,
    wanted: SlotCounts,
    have: SlotCounts,
    offered_once: bool,
    subscriptions: HashMap<String, (ParticipantId, Kind)>,
    connected_at: Option<Instant>,
    next_audio: Instant,
    next_video: Instant,
    frame: u64,
    /// Per-track packet counters: RTP sequence number and the counter inside the payload.
    audio_seq: u32,
    video_seq: u32,
    keyframe_wanted: bool,
}

impl State {
    fn on_signal(&mut self, rtc: &mut Rtc, m: ServerMessage) -> Result<(), ClientError> {
        match m {
            ServerMessage::Welcome { participant_id, .. } => {
                self.report.participant_id = Some(participant_id)
            }
            ServerMessage::Subscriptions {
                slots,
                subscriptions,
            } => {
                self.wanted = slots;
                self.subscriptions = subscriptions
                    .into_iter()
                    .map(|s| (s.mid, (s.participant_id, s.kind)))
                    .collect();
            }
            ServerMessage::Answer { sdp } => {
                let answer = SdpAnswer::from_sdp_string(&sdp)
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                let pending = self
                    .pending
                    .take()
                    .ok_or_else(|| ClientError::Protocol("answer without offer".into()))?;
                rtc.sdp_api().accept_answer(pending, answer)?;
            }
            ServerMessage::Closed { reason } => {
                return Err(ClientError::Refused(format!("closed: {reason:?}")));
            }
            ServerMessage::Error { code, message } => {
                return Err(ClientError::Refused(format!("{code:?}: {message}")));
            }
            _ => {}
        }
        Ok(())
    }

    fn on_event(&mut self, rtc: &mut Rtc, e: Event) {
        match e {
            Event::Connected => {
                self.connected_at.get_or_insert_with(Instant::now);
            }
            Event::KeyframeRequest(_) => {
                self.report.keyframe_requests += 1;
                self.keyframe_wanted = true;
            }
            Event::RtpPacket(pkt) => {
                let Some(mid) = rtc
                    .direct_api()
                    .stream_rx(&pkt.header.ssrc)
                    .map(|s| s.mid())
                else {
                    return;
                };
                let Some(key) = self.subscriptions.get(&mid.to_string()).cloned() else {
                    return;
                };
                let r = self.report.received.entry(key).or_default();
                r.packets += 1;
                r.bytes += pkt.payload.len() as u64;
                if let Some((counter, sent_us)) = parse_payload(&pkt.payload) {
                    if r.seen.insert(counter) {
                        r.unique += 1;
                    }
                    let first = *r.first_counter.get_or_insert(counter);
                    r.last_counter = r.last_counter.max(counter);
                    r.expected = (r.last_counter - first.min(r.last_counter)) as u64 + 1;
                    r.last_sent_us = r.last_sent_us.max(sent_us);
                    let now_us = unix_micros();
                    r.latencies_us.push(now_us.saturating_sub(sent_us));
                }
                if pkt.payload.len() > 1 && pkt.payload[0] & 0x10 != 0 && pkt.payload[1] & 0x01 == 0
                {
                    r.keyframes += 1;
                }
            }
            _ => {}
        }
    }

    fn send_media(&mut self, rtc: &mut Rtc, cfg: &ParticipantConfig, now: Instant) {
        let Some((audio_mid, video_mid)) = self.published else {
            return;
        };
        while now >= self.next_audio {
            self.next_audio += AUDIO_INTERVAL;
            if let Some(mid) = audio_mid {
                self.audio_seq += 1;
                let payload = payload(80, None, self.audio_seq);
                let ts = self.audio_seq.wrapping_mul(960);
                if write(
                    rtc,
                    mid,
                    Codec::Opus,
                    self.audio_seq as u64,
                    ts,
                    false,
                    payload,
                ) {
                    self.report.sent_packets += 1;
                }
            }
        }
        while now >= self.next_video {
            self.next_video += VIDEO_INTERVAL;
            let Some(mid) = video_mid else {
                continue;
            };
            self.frame += 1;
            let keyframe = self.keyframe_wanted || self.frame % KEYFRAME_EVERY == 1;
            self.keyframe_wanted = false;
            let n = if keyframe {
                cfg.video_packets_per_frame * 3
            } else {
                cfg.video_packets_per_frame
            };
            let ts = (self.frame as u32).wrapping_mul(3000);
            for i in 0..n {
                let vp8 = (i == 0, keyframe);
                self.video_seq += 1;
                let payload = payload(cfg.video_packet_bytes, Some(vp8), self.video_seq);
                if write(
                    rtc,
                    mid,
                    Codec::Vp8,
                    self.video_seq as u64,
                    ts,
                    i + 1 == n,
                    payload,
                ) {
                    self.report.sent_packets += 1;
                }
            }
        }
    }
}

/// The start of a VP8 keyframe (RFC 6386 9.1): frame tag (key frame, shown), start code,
/// 1280x720. Servers that look for keyframes in the payload (Janus does, before it switches a
/// receiver's simulcast layer) check the start code.
const VP8_KEYFRAME_HEADER: [u8; 10] = [0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02];

/// Build a payload: optional VP8 descriptor and header (one byte each; a keyframe's first packet
/// has the keyframe header), marker, counter, send time. `vp8` is (starts a frame, is a
/// keyframe). The load generator uses the same format.
pub fn payload(len: usize, vp8: Option<(bool, bool)>, counter: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(len.max(24));
    if let Some((start, keyframe)) = vp8 {
        p.push(if start { 0x10 } else { 0x00 });
        match (start, keyframe) {
            (true, true) => p.extend_from_slice(&VP8_KEYFRAME_HEADER),
            (_, keyframe) => p.push(if keyframe { 0x00 } else { 0x01 }),
        }
    }
    p.extend_from_slice(MARKER);
    p.extend_from_slice(&counter.to_be_bytes());
    p.extend_from_slice(&unix_micros().to_be_bytes());
    p.resize(len.max(p.len()), 0xab);
    p
}

fn write(
    rtc: &mut Rtc,
    mid: Mid,
    codec: Codec,
    seq: u64,
    ts: u32,
    marker: bool,
    payload: Vec<u8>,
) -> bool {
    let Some(pt) = pt_for(rtc, codec) else {
        return false;
    };
    let mut api = rtc.direct_api();
    let Some(stream) = api.stream_tx_by_mid(mid, None) else {
        return false;
    };
    stream.write_rtp(
        RtpWrite::new(pt, seq.into(), ts, Instant::now(), payload)
            .marker(marker)
            .nackable(codec == Codec::Vp8),
    );
    true
}

fn pt_for(rtc: &Rtc, codec: Codec) -> Option<Pt> {
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt())
}

/// The sender's counter and send time (Unix microseconds) from a payload built by [`payload`].
pub fn parse_payload(p: &[u8]) -> Option<(u32, u64)> {
    let start = p
        .windows(4)
        .take(2 + VP8_KEYFRAME_HEADER.len())
        .position(|w| w == MARKER)?;
    let b = p.get(start + 4..start + 16)?;
    let counter = u32::from_be_bytes(b[0..4].try_into().ok()?);
    let sent = u64::from_be_bytes(b[4..12].try_into().ok()?);
    Some((counter, sent))
}

/// xorshift64: a repeatable loss pattern, no dependency.
fn next_random(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// Wall-clock time in Unix microseconds: sender and receiver share the machine's clock.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
