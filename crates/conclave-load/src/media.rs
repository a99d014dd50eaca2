//! Media threads: each owns many simulated participants (one `str0m::Rtc` and one UDP socket
//! each) and runs one event loop over all of them with batched socket I/O.
//!
//! Cost control: RTP datagrams are counted from their clear-text header (SSRC, sequence number)
//! and, for most participants, never handed to str0m, so they cost no decryption. Participants
//! marked `verify` hand everything to str0m and check each decrypted payload's counter and send
//! time; with transport-wide feedback (`twcc`) everyone hands everything to str0m, which builds
//! the feedback. Everything else (STUN, DTLS, RTCP) always goes to str0m.
//!
//! Run rule (str0m's): after every input to an `Rtc`, poll its output until it returns a timeout.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::{ExtensionValues, RtpWrite};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::oneshot;

use crate::count::{SeqCounter, Verified, is_rtp};
use crate::synth::{Source, SynthPacket, Turns, VideoShape};
use conclave_udp::{self as sys, RecvBatch};

const WAKER: Token = Token(usize::MAX);
/// The rids of simulcast layers, lowest first, as the web client names its encodings.
const SIMULCAST_RIDS: [&str; 3] = ["l", "m", "h"];
/// Longest sleep, so commands and timers are never late by more than this.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// Room for a few hundred ms of a busy subscriber's media if the generator stalls.
const RECV_BUFFER: usize = 1 << 20;

/// What a simulated participant publishes.
#[derive(Debug, Clone, Copy)]
pub struct Publish {
    pub audio: bool,
    pub video: Option<VideoShape>,
}

/// Work for a media thread. Replies travel on oneshot channels so async signaling can await them.
pub enum Cmd {
    Add {
        slot: usize,
        bind: IpAddr,
        verify: bool,
        publish: Option<Publish>,
        /// Offset of this publisher's packet schedule, so publishers do not send in lockstep.
        phase: Duration,
        /// When it talks (`None`: all the time).
        turns: Option<Turns>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// The server's `publish_layers` for one of the participant's sending m-lines.
    PublishLayers {
        slot: usize,
        mid: String,
        active: Vec<bool>,
    },
    /// Create an SDP offer: the published m-lines the first time, plus this many new receive-only
    /// m-lines. `None` if there is nothing to offer.
    Offer {
        slot: usize,
        add_audio: u32,
        add_video: u32,
        reply: oneshot::Sender<Result<Option<String>, String>>,
    },
    Answer {
        slot: usize,
        sdp: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// The server offers (Janus subscribers): answer it.
    AcceptOffer {
        slot: usize,
        sdp: String,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Start of the measurement window: forget what was counted so far.
    ResetStats,
    Collect {
        reply: oneshot::Sender<ThreadReport>,
    },
    Stop,
}

/// Counters every thread updates once per batch, read by the live progress line.
#[derive(Debug, Default)]
pub struct Live {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub connected: AtomicU64,
    pub connected_publishers: AtomicU64,
    pub disconnected: AtomicU64,
}

/// One thread's totals for the measurement window.
#[derive(Debug, Default, Clone)]
pub struct ThreadReport {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_lost: u64,
    pub rx_reordered: u64,
    /// Retransmissions and padding received (not in `rx_packets`).
    pub rx_resent: u64,
    pub rx_streams: u64,
    pub tx_packets: u64,
    pub verified_unique: u64,
    pub verified_expected: u64,
    pub latencies_us: Vec<u32>,
}

/// Handle to a running media thread.
#[derive(Clone)]
pub struct MediaHandle {
    tx: Sender<Cmd>,
    waker: Arc<Waker>,
}

impl MediaHandle {
    pub fn spawn(index: usize, live: Arc<Live>, gro: bool, twcc: bool) -> std::io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = mpsc::channel();
        let thread = MediaThread {
            poll,
            rx,
            live,
            sims: Vec::new(),
            publishers: Vec::new(),
            batch: if gro {
                RecvBatch::coalescing()
            } else {
                RecvBatch::default()
            },
            gro,
            twcc,
            next_deadline: Instant::now(),
        };
        std::thread::Builder::new()
            .name(format!("load-media-{index}"))
            .spawn(move || thread.run())?;
        Ok(Self { tx, waker })
    }

    /// Queue a command; false if the thread is gone.
    pub fn send(&self, cmd: Cmd) -> bool {
        let ok = self.tx.send(cmd).is_ok();
        let _ = self.waker.wake();
        ok
    }
}

struct Sim {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    verify: bool,
    publish: Option<Publish>,
    phase: Duration,
    turns: Option<Turns>,
    /// Which video layers anyone receives, lowest first (`publish_layers`); until told, all.
    video_wanted: Option<Vec<bool>>,
    offered: bool,
    pending: Option<SdpPendingOffer>,
    audio_mid: Option<Mid>,
    video_mid: Option<Mid>,
    pts: Option<(Option<Pt>, Option<Pt>)>,
    /// The connection's retransmission payload types, as negotiated.
    rtx_pts: Vec<u8>,
    source: Option<Source>,
    connected: bool,
    dead: bool,
    next_timeout: Instant,
    seq: SeqCounter,
    verified: Verified,
    sent: u64,
    out: Vec<Transmit>,
}

struct MediaThread {
    poll: Poll,
    rx: Receiver<Cmd>,
    live: Arc<Live>,
    sims: Vec<Option<Sim>>,
    publishers: Vec<usize>,
    batch: RecvBatch,
    gro: bool,
    /// Participants send transport-wide feedback, so str0m sees every packet (see `twcc` in
    /// `LoadConfig`).
    twcc: bool,
    next_deadline: Instant,
}

impl MediaThread {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut synth = Vec::new();
        loop {
            loop {
                match self.rx.try_recv() {
                    Ok(Cmd::Stop) | Err(TryRecvError::Disconnected) => return,
                    Ok(cmd) => self.command(cmd),
                    Err(TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            let mut wake = self.send_media(now, &mut synth);
            if now >= self.next_deadline {
                self.sweep(now);
            }
            wake = wake.min(self.next_deadline);
            let wait = wake.saturating_duration_since(Instant::now()).min(MAX_WAIT);
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "poll failed");
                    return;
                }
                continue;
            }
            for ev in events.iter() {
                if ev.token() != WAKER {
                    self.drain_socket(ev.token().0);
                }
            }
        }
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Add {
                slot,
                bind,
                verify,
                publish,
                phase,
                turns,
                reply,
            } => {
                let _ = reply.send(self.add(slot, bind, verify, publish, phase, turns));
            }
            Cmd::PublishLayers { slot, mid, active } => {
                let _ = self.with_sim(slot, |sim| {
                    if sim.video_mid.is_some_and(|m| &*m == mid.as_str()) {
                        sim.video_wanted = Some(active);
                        sim.apply_wanted_layers();
                    }
                    Ok(())
                });
            }
            Cmd::Offer {
                slot,
                add_audio,
                add_video,
                reply,
            } => {
                let r = self.with_sim(slot, |sim| Ok(sim.offer(add_audio, add_video)));
                let _ = reply.send(r);
            }
            Cmd::Answer { slot, sdp, reply } => {
                let _ = reply.send(self.with_sim(slot, |sim| sim.accept_answer(&sdp)));
            }
            Cmd::AcceptOffer { slot, sdp, reply } => {
                let _ = reply.send(self.with_sim(slot, |sim| sim.accept_offer(&sdp)));
            }
            Cmd::ResetStats => {
                for sim in self.sims.iter_mut().flatten() {
                    sim.seq.reset();
                    sim.verified.reset();
                    sim.sent = 0;
                }
            }
            Cmd::Collect { reply } => {
                let mut r = ThreadReport::default();
                for sim in self.sims.iter().flatten() {
                    r.rx_packets += sim.seq.packets;
                    r.rx_bytes += sim.seq.bytes;
                    r.rx_lost += sim.seq.lost();
                    r.rx_reordered += sim.seq.reordered;
                    r.rx_resent += sim.seq.resent;
                    r.rx_streams += sim.seq.streams() as u64;
                    r.tx_packets += sim.sent;
                    let (u, e) = sim.verified.totals();
                    r.verified_unique += u;
                    r.verified_expected += e;
                    r.latencies_us.extend_from_slice(&sim.verified.latencies_us);
                }
                let _ = reply.send(r);
            }
            Cmd::Stop => {}
        }
    }

    fn with_sim<T>(
        &mut self,
        slot: usize,
        f: impl FnOnce(&mut Sim) -> Result<T, String>,
    ) -> Result<T, String> {
        let Some(Some(sim)) = self.sims.get_mut(slot) else {
            return Err(format!("no participant in slot {slot}"));
        };
        let r = f(sim);
        sim.drive(&self.live);
        self.next_deadline = self.next_deadline.min(sim.next_timeout);
        r
    }

    fn add(
        &mut self,
        slot: usize,
        bind: IpAddr,
        verify: bool,
        publish: Option<Publish>,
        phase: Duration,
        turns: Option<Turns>,
    ) -> Result<(), String> {
        let std_socket = std::net::UdpSocket::bind((bind, 0)).map_err(|e| e.to_string())?;
        std_socket
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        sys::set_recv_buffer(std_socket.as_raw_fd(), RECV_BUFFER);
        if self.gro && !sys::enable_gro(std_socket.as_raw_fd()) {
            tracing::debug!("UDP GRO not available");
        }
        let local = std_socket.local_addr().map_err(|e| e.to_string())?;
        let mut socket = UdpSocket::from_std(std_socket);
        self.poll
            .registry()
            .register(&mut socket, Token(slot), Interest::READABLE)
            .map_err(|e| e.to_string())?;
        let now = Instant::now();
        let rtc =
            conclave_client::new_rtc_with(now, local, self.twcc).map_err(|e| e.to_string())?;
        if self.sims.len() <= slot {
            self.sims.resize_with(slot + 1, || None);
        }
        self.sims[slot] = Some(Sim {
            rtc,
            socket,
            local,
            verify,
            publish,
            phase,
            turns,
            video_wanted: None,
            offered: false,
            pending: None,
            audio_mid: None,
            video_mid: None,
            pts: None,
            rtx_pts: Vec::new(),
            source: None,
            connected: false,
            dead: false,
            next_timeout: now,
            seq: SeqCounter::default(),
            verified: Verified::default(),
            sent: 0,
            out: Vec::new(),
        });
        if publish.is_some() {
            self.publishers.push(slot);
        }
        self.next_deadline = now;
        Ok(())
    }

    /// Write every publisher's due packets; returns when the next one is due.
    fn send_media(&mut self, now: Instant, synth: &mut Vec<SynthPacket>) -> Instant {
        let mut next = now + MAX_WAIT;
        for &slot in &self.publishers {
            let Some(Some(sim)) = self.sims.get_mut(slot) else {
                continue;
            };
            let Some(source) = sim.source.as_mut() else {
                continue;
            };
            if source.next_due() <= now {
                source.due(now, synth);
                for p in synth.drain(..) {
                    sim.write(p, now);
                }
                sim.drive(&self.live);
                self.next_deadline = self.next_deadline.min(sim.next_timeout);
            }
            if let Some(s) = &sim.source {
                next = next.min(s.next_due());
            }
        }
        next
    }

    /// Hand str0m the time wherever it asked for it.
    fn sweep(&mut self, now: Instant) {
        let mut next = now + MAX_WAIT;
        for sim in self.sims.iter_mut().flatten() {
            if sim.next_timeout <= now && !sim.dead {
                if sim.rtc.handle_input(Input::Timeout(now)).is_err() {
                    sim.dead = true;
                }
                sim.drive(&self.live);
            }
            if !sim.dead {
                next = next.min(sim.next_timeout);
            }
        }
        self.next_deadline = next;
    }

    /// Read everything queued on one participant's socket.
    fn drain_socket(&mut self, slot: usize) {
        let Some(Some(sim)) = self.sims.get_mut(slot) else {
            return;
        };
        let fd = sim.socket.as_raw_fd();
        let (mut packets, mut bytes) = (0u64, 0u64);
        loop {
            let n = match self.batch.recv(fd) {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(error = %e, "receive failed");
                    0
                }
            };
            let now = Instant::now();
            let mut fed = false;
            for i in 0..n {
                let Some((datagrams, from)) = self.batch.datagrams(i) else {
                    continue;
                };
                for data in datagrams {
                    if is_rtp(data) {
                        if sim.seq.count(data, &sim.rtx_pts) {
                            packets += 1;
                            bytes += data.len() as u64;
                        }
                        if !sim.verify && !self.twcc {
                            continue;
                        }
                    }
                    let Ok(contents) = data.try_into() else {
                        continue;
                    };
                    let input = Input::Receive(
                        now,
                        Receive {
                            proto: Protocol::Udp,
                            source: from,
                            destination: sim.local,
                            contents,
                        },
                    );
                    if sim.dead || !sim.rtc.accepts(&input) {
                        continue;
                    }
                    if sim.rtc.handle_input(input).is_err() {
                        sim.dead = true;
                    }
                    sim.drive(&self.live);
                    fed = true;
                }
            }
            if fed {
                self.next_deadline = self.next_deadline.min(sim.next_timeout);
            }
            if n < self.batch.capacity() {
                break;
            }
        }
        self.live.rx_packets.fetch_add(packets, Ordering::Relaxed);
        self.live.rx_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Sim {
    fn simulcast(&self) -> bool {
        self.publish
            .and_then(|p| p.video)
            .is_some_and(|v| v.layer_count() > 1)
    }

    /// Follow the server's `publish_layers` once the source exists.
    fn apply_wanted_layers(&mut self) {
        if let (Some(source), Some(wanted)) = (self.source.as_mut(), self.video_wanted.as_ref()) {
            source.set_layers_on(wanted);
        }
    }

    fn offer(&mut self, add_audio: u32, add_video: u32) -> Option<String> {
        let mut api = self.rtc.sdp_api();
        if !self.offered {
            self.offered = true;
            if let Some(p) = self.publish {
                if p.audio {
                    let mid =
                        api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
                    self.audio_mid = Some(mid);
                }
                if let Some(shape) = p.video {
                    let simulcast = (shape.layer_count() > 1).then(|| {
                        let mut s = Simulcast::new();
                        for rid in &SIMULCAST_RIDS[..shape.layer_count()] {
                            s.add_send_layer(SimulcastLayer::new(rid));
                        }
                        s
                    });
                    let mid =
                        api.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
                    self.video_mid = Some(mid);
                }
            }
        }
        for _ in 0..add_audio {
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        for _ in 0..add_video {
            api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = api.apply()?;
        self.pending = Some(pending);
        Some(offer.to_sdp_string())
    }

    fn accept_answer(&mut self, sdp: &str) -> Result<(), String> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| e.to_string())?;
        let pending = self.pending.take().ok_or("answer without an offer")?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| e.to_string())?;
        self.note_rtx_pts();
        Ok(())
    }

    fn note_rtx_pts(&mut self) {
        let params = self.rtc.codec_config().params();
        self.rtx_pts = params
            .iter()
            .filter_map(|p| p.resend())
            .map(|pt| *pt)
            .collect();
    }

    fn accept_offer(&mut self, sdp: &str) -> Result<String, String> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| e.to_string())?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| e.to_string())?;
        self.note_rtx_pts();
        Ok(answer.to_sdp_string())
    }

    fn payload_types(&mut self) -> (Option<Pt>, Option<Pt>) {
        *self.pts.get_or_insert_with(|| {
            let params = self.rtc.codec_config().params();
            let find = |c: Codec| params.iter().find(|p| p.spec().codec == c).map(|p| p.pt());
            (find(Codec::Opus), find(Codec::Vp8))
        })
    }

    fn write(&mut self, p: SynthPacket, now: Instant) {
        let (audio_pt, video_pt) = self.payload_types();
        let (mid, pt) = if p.video {
            (self.video_mid, video_pt)
        } else {
            (self.audio_mid, audio_pt)
        };
        let (Some(mid), Some(pt)) = (mid, pt) else {
            return;
        };
        let rid = (p.video && self.simulcast()).then(|| Rid::from(SIMULCAST_RIDS[p.layer]));
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, rid) else {
            return;
        };
        let mut ext = ExtensionValues::default();
        if let Some(level) = p.audio_level {
            ext.audio_level = Some(level);
            ext.voice_activity = Some(level > -40);
        }
        let w = RtpWrite::new(pt, p.seq.into(), p.ts, now, p.payload)
            .marker(p.marker)
            .ext_vals(ext)
            .nackable(p.video);
        stream.write_rtp(w);
        self.sent += 1;
    }

    /// Poll str0m until it wants time to pass; send what it transmits in one batch.
    fn drive(&mut self, live: &Live) {
        loop {
            if self.dead || !self.rtc.is_alive() {
                self.mark_dead(live);
                break;
            }
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => self.out.push(t),
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    break;
                }
                Ok(Output::Event(e)) => self.on_event(e, live),
                Err(e) => {
                    tracing::debug!(error = %e, "participant transport failed");
                    self.mark_dead(live);
                    break;
                }
            }
        }
        if !self.out.is_empty() {
            let fd = self.socket.as_raw_fd();
            let n = sys::send_batch(
                fd,
                self.out.iter().map(|t| (t.destination, &t.contents[..])),
            );
            live.tx_packets.fetch_add(n as u64, Ordering::Relaxed);
            self.out.clear();
        }
    }

    fn mark_dead(&mut self, live: &Live) {
        if !self.dead {
            self.dead = true;
            live.disconnected.fetch_add(1, Ordering::Relaxed);
        }
        self.next_timeout = Instant::now() + Duration::from_secs(3600);
    }

    fn on_event(&mut self, e: Event, live: &Live) {
        match e {
            Event::Connected if !self.connected => {
                self.connected = true;
                live.connected.fetch_add(1, Ordering::Relaxed);
                if let Some(p) = self.publish {
                    live.connected_publishers.fetch_add(1, Ordering::Relaxed);
                    let source = Source::new(
                        Instant::now(),
                        p.audio && self.audio_mid.is_some(),
                        p.video.filter(|_| self.video_mid.is_some()),
                        self.phase,
                        self.turns,
                    );
                    self.source = Some(source);
                    self.apply_wanted_layers();
                }
            }
            Event::KeyframeRequest(req) => {
                let layer = req
                    .rid
                    .and_then(|rid| SIMULCAST_RIDS.iter().position(|r| **r == *rid));
                if let Some(s) = self.source.as_mut() {
                    s.request_keyframe(layer);
                }
            }
            Event::RtpPacket(pkt) if self.verify => {
                let ssrc = *pkt.header.ssrc;
                self.verified
                    .record(ssrc, &pkt.payload, conclave_client::unix_micros());
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.mark_dead(live);
            }
            _ => {}
        }
    }
}
