//! `conclave-load`: simulated WebRTC participants (str0m) that join through a server's real
//! signaling, publish browser-shaped synthetic media, and measure what the server forwards:
//! packets and bytes per second, loss, one-way latency, and the server's CPU time and memory
//! (from `/proc`). Drives Conclave or, for comparison, a Janus VideoRoom.
//!
//! Structure: the controller ([`run`]) plans participants and paces joins; async tasks do each
//! participant's signaling; a few media threads ([`media`]) own all WebRTC transports and sockets.

pub mod ceiling;
pub mod conclave;
pub mod count;
pub mod http;
pub mod janus;
pub mod media;
pub mod procfs;
pub mod report;
pub mod synth;
pub mod view;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::{oneshot, watch};

use crate::media::{Cmd, Live, MediaHandle, Publish, ThreadReport};
use crate::report::{Observed, Summary};
use crate::synth::{Turns, VideoShape};
use crate::view::Layout;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("signaling: {0}")]
    Signaling(String),
    #[error("server refused: {0}")]
    Refused(String),
    #[error("media: {0}")]
    Media(String),
    #[error("a media thread stopped")]
    MediaGone,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl From<String> for LoadError {
    fn from(s: String) -> Self {
        Self::Media(s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Conclave,
    Janus,
}

/// What simulated Conclave participants show, and so which videos the server sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ViewMode {
    /// No `view`: everyone's video, up to the server's last-N (a client without a layout).
    None,
    /// The first page of a 16-tile grid, as the web client shows.
    Grid,
    /// Three in four show the grid, one in four the speaker view (stage and filmstrip).
    Mixed,
}

impl ViewMode {
    /// The layout of the `n`-th participant of a room.
    fn layout(self, n: usize) -> Option<Layout> {
        match self {
            Self::None => None,
            Self::Grid => Some(Layout::Grid),
            Self::Mixed if n % 4 == 3 => Some(Layout::Speaker),
            Self::Mixed => Some(Layout::Grid),
        }
    }
}

/// One run's load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub target: Target,
    /// Conclave: the HTTP address (signaling at `/ws`). Janus: the HTTP API address (`/janus`).
    pub server: SocketAddr,
    pub rooms: usize,
    /// Conclave: the rooms' names (`load-0`, `load-1`, … when empty).
    pub room_names: Vec<String>,
    /// Per room: participants that publish (and receive every other publisher).
    pub publishers: usize,
    /// Per room: participants that only receive.
    pub subscribers: usize,
    /// Length of the measurement window, after everyone is connected.
    pub duration: Duration,
    /// Joins per second.
    pub ramp: f64,
    /// Wait after the last connection before measuring (keyframes, renegotiation settle).
    pub settle: Duration,
    /// Local address for the participants' sockets.
    pub bind_ip: IpAddr,
    pub audio: bool,
    /// Video bit rate per publisher in kbit/s; 0 for no video.
    pub video_kbps: u32,
    /// Send the real VP8 clip (browsers can decode it) instead of video shaped by `video_kbps`.
    pub video_clip: bool,
    /// Conclave: join declaring that participants cannot encrypt end to end (`e2ee: false`); the
    /// room must allow it.
    pub plain: bool,
    pub keyframe_every: Duration,
    /// Every n-th participant decrypts and verifies payloads (latency, end-to-end loss).
    pub verify_every: usize,
    pub threads: usize,
    /// The server process, for CPU time and memory.
    pub server_pid: Option<u32>,
    /// Print a live progress line to stderr.
    pub progress: bool,
    /// Longest wait for everyone to connect.
    pub connect_timeout: Duration,
    /// Conclave: what participants show.
    pub view: ViewMode,
    /// Publishers talk one at a time for this long each, in join order; `None`: all talk all
    /// the time.
    pub turn: Option<Duration>,
    /// Receive with UDP GRO: a burst the server sent as one GSO message arrives as one (see
    /// `conclave_udp::enable_gro`), and its split is not charged to the server.
    pub gro: bool,
    /// Publishers send their video as three simulcast layers (`video_kbps` the top one's rate).
    pub simulcast: bool,
    /// Participants send transport-wide congestion feedback, as browsers do, so the server
    /// estimates and paces their downlinks; every receiver then hands its packets to str0m.
    pub twcc: bool,
}

impl LoadConfig {
    pub fn new(target: Target, server: SocketAddr) -> Self {
        Self {
            target,
            server,
            rooms: 1,
            room_names: Vec::new(),
            publishers: 1,
            subscribers: 10,
            duration: Duration::from_secs(30),
            ramp: 50.0,
            settle: Duration::from_secs(2),
            bind_ip: server.ip(),
            audio: true,
            video_kbps: 500,
            video_clip: false,
            plain: false,
            keyframe_every: Duration::from_secs(3),
            verify_every: 10,
            threads: 1,
            server_pid: None,
            progress: false,
            connect_timeout: Duration::from_secs(60),
            view: ViewMode::None,
            turn: None,
            gro: true,
            simulcast: false,
            twcc: false,
        }
    }

    /// The video each publisher sends, if any.
    pub(crate) fn video(&self) -> Option<VideoShape> {
        (self.video_kbps > 0 || self.video_clip).then_some(VideoShape {
            kbps: self.video_kbps,
            keyframe_every: self.keyframe_every,
            clip: self.video_clip,
            simulcast: self.simulcast,
        })
    }
}

/// A planned simulated peer connection: which media thread and slot holds it.
#[derive(Debug, Clone, Copy)]
struct Placement {
    thread: usize,
    slot: usize,
}

struct Planner {
    threads: Vec<MediaHandle>,
    next_slot: Vec<usize>,
    count: usize,
    /// Peer connections that receive media, for picking which verify.
    receivers: usize,
    verify_every: usize,
    bind_ip: IpAddr,
}

impl Planner {
    /// Create a peer connection on the next thread, round robin. Of those that `receive`, the
    /// first and every `verify_every`-th verify payloads.
    async fn add(
        &mut self,
        publish: Option<Publish>,
        turns: Option<Turns>,
        receives: bool,
    ) -> Result<Placement, LoadError> {
        let thread = self.count % self.threads.len();
        let slot = self.next_slot[thread];
        self.next_slot[thread] += 1;
        let verify = receives && self.receivers.is_multiple_of(self.verify_every.max(1));
        self.receivers += receives as usize;
        // Spread publishers' schedules over one video frame interval.
        let phase = Duration::from_micros((self.count as u64 * 7919) % 33_333);
        self.count += 1;
        let (tx, rx) = oneshot::channel();
        self.threads[thread].send(Cmd::Add {
            slot,
            bind: self.bind_ip,
            verify,
            publish,
            phase,
            turns,
            reply: tx,
        });
        rx.await.map_err(|_| LoadError::MediaGone)??;
        Ok(Placement { thread, slot })
    }
}

/// Run one load and return its summary.
pub async fn run(cfg: LoadConfig) -> Result<Summary, LoadError> {
    let live = Arc::new(Live::default());
    let threads = (0..cfg.threads.max(1))
        .map(|i| MediaHandle::spawn(i, live.clone(), cfg.gro, cfg.twcc))
        .collect::<Result<Vec<_>, _>>()?;
    let mut planner = Planner {
        threads: threads.clone(),
        next_slot: vec![0; threads.len()],
        count: 0,
        receivers: 0,
        verify_every: cfg.verify_every,
        bind_ip: cfg.bind_ip,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let server_idle = cfg.server_pid.and_then(procfs::memory_kib).map(|m| m.0);
    let publish = Publish {
        audio: cfg.audio,
        video: cfg.video(),
    };

    let started = Instant::now();
    let pcs = match cfg.target {
        Target::Conclave => {
            join_conclave(&cfg, &mut planner, publish, &stop_rx, &errors, &live).await?
        }
        Target::Janus => join_janus(&cfg, &mut planner, publish, &stop_rx, &errors, &live).await?,
    };
    let deadline = Instant::now() + cfg.connect_timeout;
    while live.connected.load(Ordering::Relaxed) + live.disconnected.load(Ordering::Relaxed)
        < pcs as u64
        && Instant::now() < deadline
    {
        progress(&cfg, &live, "connecting", started, pcs);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ramp_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(cfg.settle).await;

    // The measurement window.
    for t in &threads {
        t.send(Cmd::ResetStats);
    }
    let snap = Snapshot::take(&cfg);
    let window = Instant::now();
    let mut server_rss_peak = 0u64;
    while window.elapsed() < cfg.duration {
        tokio::time::sleep(Duration::from_secs(1).min(cfg.duration)).await;
        if let Some((rss, _)) = cfg.server_pid.and_then(procfs::memory_kib) {
            server_rss_peak = server_rss_peak.max(rss);
        }
        progress(&cfg, &live, "measuring", started, pcs);
    }
    let mut totals = ThreadReport::default();
    for t in &threads {
        let (tx, rx) = oneshot::channel();
        t.send(Cmd::Collect { reply: tx });
        let r = rx.await.map_err(|_| LoadError::MediaGone)?;
        totals.rx_packets += r.rx_packets;
        totals.rx_bytes += r.rx_bytes;
        totals.rx_lost += r.rx_lost;
        totals.rx_reordered += r.rx_reordered;
        totals.rx_resent += r.rx_resent;
        totals.rx_streams += r.rx_streams;
        totals.tx_packets += r.tx_packets;
        totals.verified_unique += r.verified_unique;
        totals.verified_expected += r.verified_expected;
        totals.latencies_us.extend(r.latencies_us);
    }
    let elapsed = window.elapsed();
    let end = Snapshot::take(&cfg);
    if cfg.progress {
        eprintln!();
    }
    let _ = stop_tx.send(true);
    // Let participants say goodbye before the media threads go.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for t in &threads {
        t.send(Cmd::Stop);
    }

    let observed = Observed {
        peer_connections: pcs,
        connected: live.connected.load(Ordering::Relaxed),
        disconnected: live.disconnected.load(Ordering::Relaxed),
        ramp_secs,
        window: elapsed,
        totals,
        server_cpu: snap.server_cpu.zip(end.server_cpu).map(|(a, b)| b - a),
        generator_cpu: end.own_cpu.zip(snap.own_cpu).map(|(b, a)| b - a),
        server_rss_idle_kib: server_idle,
        server_rss_peak_kib: (server_rss_peak > 0).then_some(server_rss_peak),
        server_hwm_kib: cfg.server_pid.and_then(procfs::memory_kib).map(|m| m.1),
        udp_rcvbuf_errors: end.rcvbuf.zip(snap.rcvbuf).map(|(b, a)| b - a),
        errors: errors.lock().expect("errors lock").clone(),
    };
    Ok(Summary::new(&cfg, observed))
}

struct Snapshot {
    server_cpu: Option<f64>,
    own_cpu: Option<f64>,
    rcvbuf: Option<u64>,
}

impl Snapshot {
    fn take(cfg: &LoadConfig) -> Self {
        Self {
            server_cpu: cfg.server_pid.and_then(procfs::cpu_seconds),
            own_cpu: procfs::cpu_seconds(std::process::id()),
            rcvbuf: procfs::udp_rcvbuf_errors(),
        }
    }
}

/// Waits between joins so they arrive at `cfg.ramp` per second.
struct Ramp {
    interval: Duration,
    next: Instant,
}

impl Ramp {
    fn new(per_second: f64) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / per_second.max(0.1)),
            next: Instant::now(),
        }
    }

    async fn tick(&mut self) {
        tokio::time::sleep_until(self.next.into()).await;
        self.next = self.next.max(Instant::now() - self.interval) + self.interval;
    }
}

fn record(errors: &Arc<Mutex<Vec<String>>>, e: LoadError) {
    let mut errs = errors.lock().expect("errors lock");
    if errs.len() < 20 {
        errs.push(e.to_string());
    }
}

/// Publishers of every room first, then subscribers; returns the number of peer connections.
async fn join_conclave(
    cfg: &LoadConfig,
    planner: &mut Planner,
    publish: Publish,
    stop: &watch::Receiver<bool>,
    errors: &Arc<Mutex<Vec<String>>>,
    live: &Arc<Live>,
) -> Result<usize, LoadError> {
    let mut ramp = Ramp::new(cfg.ramp);
    let mut n = 0;
    let started = Instant::now();
    let epoch = Instant::now();
    for (role, count) in [("p", cfg.publishers), ("s", cfg.subscribers)] {
        for r in 0..cfg.rooms {
            for i in 0..count {
                ramp.tick().await;
                let publishes = role == "p";
                let receives = !publishes || cfg.publishers > 1;
                let turns = cfg.turn.filter(|_| publishes).map(|turn| Turns {
                    index: i,
                    of: cfg.publishers,
                    turn,
                    epoch,
                });
                let p = planner
                    .add(publishes.then_some(publish), turns, receives)
                    .await?;
                let media = planner.threads[p.thread].clone();
                let room = cfg
                    .room_names
                    .get(r)
                    .cloned()
                    .unwrap_or_else(|| format!("load-{r}"));
                let (server, name) = (cfg.server, format!("{role}{i}"));
                let (stop, errors) = (stop.clone(), errors.clone());
                let behaviour = conclave::Behaviour {
                    layout: cfg.view.layout(i),
                    plain: cfg.plain,
                };
                tokio::spawn(async move {
                    if let Err(e) =
                        conclave::participant(server, room, name, media, p.slot, behaviour, stop)
                            .await
                    {
                        record(&errors, e);
                    }
                });
                n += 1;
                progress(cfg, live, "joining", started, n);
            }
        }
    }
    Ok(n)
}

/// Janus: publishers join; once all are connected, subscribers subscribe to their feeds.
async fn join_janus(
    cfg: &LoadConfig,
    planner: &mut Planner,
    publish: Publish,
    stop: &watch::Receiver<bool>,
    errors: &Arc<Mutex<Vec<String>>>,
    live: &Arc<Live>,
) -> Result<usize, LoadError> {
    let mut ramp = Ramp::new(cfg.ramp);
    let started = Instant::now();
    let mut n = 0;
    let mut sessions = Vec::new();
    let mut feeds: Vec<Vec<janus::Feed>> = Vec::new();
    for r in 0..cfg.rooms {
        let session = janus::Session::create(cfg.server, stop.clone()).await?;
        let room = 4242_0000 + r as u64;
        session.create_room(room, cfg.publishers).await?;
        let mut room_feeds = Vec::new();
        for i in 0..cfg.publishers {
            ramp.tick().await;
            let p = planner.add(Some(publish), None, false).await?;
            let media = &planner.threads[p.thread];
            let handle = session.attach().await?;
            room_feeds.push(
                handle
                    .publish(room, &format!("p{i}"), media, p.slot)
                    .await?,
            );
            n += 1;
            progress(cfg, live, "joining", started, n);
        }
        sessions.push((session, room));
        feeds.push(room_feeds);
    }
    // A feed can be subscribed only once its publisher is connected.
    let deadline = Instant::now() + cfg.connect_timeout;
    while live.connected_publishers.load(Ordering::Relaxed) < n as u64 && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (r, (session, room)) in sessions.iter().enumerate() {
        // Publishers receive every other publisher on a second peer connection.
        let publisher_views = (0..cfg.publishers).map(|me| {
            let others: Vec<_> = feeds[r]
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != me)
                .map(|(_, f)| *f)
                .collect();
            others
        });
        let subscriber_views = (0..cfg.subscribers).map(|_| feeds[r].clone());
        for view in publisher_views.chain(subscriber_views) {
            if view.is_empty() {
                continue;
            }
            ramp.tick().await;
            let p = planner.add(None, None, true).await?;
            let media = planner.threads[p.thread].clone();
            let (session, room, errors) = (session.clone(), *room, errors.clone());
            tokio::spawn(async move {
                let r = async {
                    let h = session.attach().await?;
                    h.subscribe(room, &view, &media, p.slot).await
                };
                if let Err(e) = r.await {
                    record(&errors, e);
                }
            });
            n += 1;
            progress(cfg, live, "joining", started, n);
        }
    }
    Ok(n)
}

fn progress(cfg: &LoadConfig, live: &Live, phase: &str, started: Instant, pcs: usize) {
    static LAST: Mutex<Option<(Instant, u64)>> = Mutex::new(None);
    if !cfg.progress {
        return;
    }
    let t = started.elapsed().as_secs_f64();
    let rx = live.rx_packets.load(Ordering::Relaxed);
    let rate = {
        let mut last = LAST.lock().expect("progress lock");
        let now = Instant::now();
        let rate = last.map_or(0.0, |(at, n)| {
            (rx - n.min(rx)) as f64 / now.duration_since(at).as_secs_f64().max(1e-3)
        });
        *last = Some((now, rx));
        rate
    };
    let server = cfg
        .server_pid
        .and_then(procfs::cpu_seconds)
        .map_or(String::new(), |c| format!("  server-cpu {c:.1}s"));
    eprint!(
        "\r{phase:<10} t={t:>5.1}s  pcs {pcs}  connected {}  failed {}  rx {:.1}k pkt/s{server}   ",
        live.connected.load(Ordering::Relaxed),
        live.disconnected.load(Ordering::Relaxed),
        rate / 1000.0,
    );
}
