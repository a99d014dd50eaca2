//! The run summary: computed once from what was observed, printed as a table and written as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::count::Percentiles;
use crate::media::ThreadReport;
use crate::synth::{AUDIO_INTERVAL, AUDIO_PAYLOAD, VideoShape};
use crate::{LoadConfig, Target, ViewMode};

/// Raw observations of one run.
pub struct Observed {
    pub peer_connections: usize,
    pub connected: u64,
    pub disconnected: u64,
    pub ramp_secs: f64,
    pub window: Duration,
    pub totals: ThreadReport,
    pub server_cpu: Option<f64>,
    pub generator_cpu: Option<f64>,
    pub server_rss_idle_kib: Option<u64>,
    pub server_rss_peak_kib: Option<u64>,
    pub server_hwm_kib: Option<u64>,
    pub udp_rcvbuf_errors: Option<u64>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub target: Target,
    pub rooms: usize,
    pub publishers_per_room: usize,
    pub subscribers_per_room: usize,
    pub participants: usize,
    pub peer_connections: usize,
    pub connected: u64,
    pub disconnected: u64,
    /// What participants showed (`view`).
    pub view: ViewMode,
    /// Each publisher's turn to talk, if they talked in turns.
    pub turn_s: Option<f64>,
    pub tracks_published: usize,
    /// Streams the server should be forwarding (one per track per receiving participant).
    pub streams_forwarded: usize,
    pub media: MediaShape,
    pub ramp_s: f64,
    pub window_s: f64,
    pub forwarded: Forwarded,
    pub verified: VerifiedFigures,
    pub latency: Percentiles,
    pub server: Option<ServerFigures>,
    pub generator: GeneratorFigures,
    /// Datagrams the kernel dropped for full receive buffers during the window (all sockets of
    /// the network namespace: server and generator).
    pub udp_rcvbuf_errors: Option<u64>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MediaShape {
    pub audio_packets_per_s: f64,
    pub audio_payload_bytes: usize,
    pub video_kbps: u32,
    pub video_packets_per_s: f64,
    pub video_payload_bytes: usize,
    /// The rates of the simulcast layers each publisher sends, lowest first, when it sends
    /// several (the fields above then describe the top one, which receivers are expected to
    /// get).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub simulcast_kbps: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Forwarded {
    /// RTP packets received by all participants in the window.
    pub packets: u64,
    pub bytes: u64,
    pub packets_per_s: f64,
    /// If everyone receives every other publisher's audio and video all the time (no `view`,
    /// no turns); an upper bound otherwise.
    pub expected_packets_per_s: f64,
    pub mbit_per_s: f64,
    pub avg_packet_bytes: f64,
    /// Gaps in RTP sequence numbers.
    pub lost: u64,
    pub loss_pct: f64,
    /// Packets that came after a later one of their stream.
    pub reordered: u64,
    /// Retransmissions and padding (bandwidth probes) received: not in `packets`.
    pub resent_packets: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifiedFigures {
    pub payloads: u64,
    pub expected: u64,
    pub loss_pct: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerFigures {
    pub cpu_s: f64,
    /// Share of one core, in percent.
    pub cpu_pct: f64,
    pub cpu_us_per_packet: f64,
    pub packets_per_cpu_s: f64,
    pub rss_idle_mib: Option<f64>,
    pub rss_peak_mib: Option<f64>,
    pub hwm_mib: Option<f64>,
    /// (peak RSS − idle RSS) / participants.
    pub kib_per_participant: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GeneratorFigures {
    pub cpu_s: Option<f64>,
    pub cpu_pct: Option<f64>,
    pub cpu_us_per_packet: Option<f64>,
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

impl Summary {
    pub fn new(cfg: &LoadConfig, o: Observed) -> Self {
        let (p, s, rooms) = (cfg.publishers, cfg.subscribers, cfg.rooms);
        let kinds = cfg.audio as usize + cfg.video().is_some() as usize;
        let receivers_per_track = p.saturating_sub(1) + s;
        let streams = rooms * p * kinds * receivers_per_track;
        let video = cfg.video();
        let audio_pps = if cfg.audio {
            1.0 / AUDIO_INTERVAL.as_secs_f64()
        } else {
            0.0
        };
        let video_pps = video.map_or(0.0, |v| v.packets_per_second());
        let secs = o.window.as_secs_f64().max(1e-9);
        let t = &o.totals;
        let packets_per_s = t.rx_packets as f64 / secs;
        let mut lat = t.latencies_us.clone();
        let server = o.server_cpu.map(|cpu| ServerFigures {
            cpu_s: cpu,
            cpu_pct: cpu / secs * 100.0,
            cpu_us_per_packet: cpu * 1e6 / t.rx_packets.max(1) as f64,
            packets_per_cpu_s: t.rx_packets as f64 / cpu.max(1e-9),
            rss_idle_mib: o.server_rss_idle_kib.map(|k| k as f64 / 1024.0),
            rss_peak_mib: o.server_rss_peak_kib.map(|k| k as f64 / 1024.0),
            hwm_mib: o.server_hwm_kib.map(|k| k as f64 / 1024.0),
            kib_per_participant: o.server_rss_peak_kib.zip(o.server_rss_idle_kib).map(
                |(peak, idle)| peak.saturating_sub(idle) as f64 / (rooms * (p + s)).max(1) as f64,
            ),
        });
        Self {
            target: cfg.target,
            rooms,
            publishers_per_room: p,
            subscribers_per_room: s,
            participants: rooms * (p + s),
            peer_connections: o.peer_connections,
            connected: o.connected,
            disconnected: o.disconnected,
            view: cfg.view,
            turn_s: cfg.turn.map(|t| t.as_secs_f64()),
            tracks_published: rooms * p * kinds,
            streams_forwarded: streams,
            media: MediaShape {
                audio_packets_per_s: audio_pps,
                audio_payload_bytes: AUDIO_PAYLOAD,
                video_kbps: video.map_or(0, |v| {
                    if v.clip {
                        VideoShape::clip_kbps()
                    } else {
                        v.kbps
                    }
                }),
                video_packets_per_s: video_pps,
                video_payload_bytes: video.map_or(0, |v| {
                    if v.clip {
                        v.avg_packet_bytes() as usize
                    } else {
                        v.packets(false).1
                    }
                }),
                simulcast_kbps: video
                    .map(|v| v.layers())
                    .filter(|l| l.len() > 1)
                    .map_or(Vec::new(), |l| l.iter().map(|l| l.kbps).collect()),
            },
            ramp_s: o.ramp_secs,
            window_s: secs,
            forwarded: Forwarded {
                packets: t.rx_packets,
                bytes: t.rx_bytes,
                packets_per_s,
                expected_packets_per_s: (rooms * p * receivers_per_track) as f64
                    * (audio_pps + video_pps),
                mbit_per_s: t.rx_bytes as f64 * 8.0 / secs / 1e6,
                avg_packet_bytes: t.rx_bytes as f64 / t.rx_packets.max(1) as f64,
                lost: t.rx_lost,
                loss_pct: pct(t.rx_lost, t.rx_packets + t.rx_lost),
                reordered: t.rx_reordered,
                resent_packets: t.rx_resent,
            },
            verified: VerifiedFigures {
                payloads: t.verified_unique,
                expected: t.verified_expected,
                loss_pct: pct(
                    t.verified_expected.saturating_sub(t.verified_unique),
                    t.verified_expected,
                ),
            },
            latency: Percentiles::of(&mut lat),
            server,
            generator: GeneratorFigures {
                cpu_s: o.generator_cpu,
                cpu_pct: o.generator_cpu.map(|c| c / secs * 100.0),
                cpu_us_per_packet: o
                    .generator_cpu
                    .map(|c| c * 1e6 / t.rx_packets.max(1) as f64),
            },
            udp_rcvbuf_errors: o.udp_rcvbuf_errors,
            errors: o.errors,
        }
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let f = &self.forwarded;
        let mut row = |k: &str, v: String| {
            let _ = writeln!(s, "  {k:<38} {v}");
        };
        row("target", format!("{:?}", self.target).to_lowercase());
        row(
            "load",
            format!(
                "{} room(s) x ({} publishers + {} subscribers) = {} participants, {} peer connections",
                self.rooms,
                self.publishers_per_room,
                self.subscribers_per_room,
                self.participants,
                self.peer_connections
            ),
        );
        row(
            "connected / failed",
            format!("{} / {}", self.connected, self.disconnected),
        );
        row(
            "tracks published / streams forwarded",
            format!("{} / {}", self.tracks_published, self.streams_forwarded),
        );
        row(
            "media per publisher",
            format!(
                "audio {:.0} pkt/s x {} B; video {}{} kbit/s, {:.0} pkt/s x {} B",
                self.media.audio_packets_per_s,
                self.media.audio_payload_bytes,
                if self.media.simulcast_kbps.is_empty() {
                    String::new()
                } else {
                    let lower: Vec<String> = self.media.simulcast_kbps
                        [..self.media.simulcast_kbps.len() - 1]
                        .iter()
                        .map(|k| k.to_string())
                        .collect();
                    format!("simulcast {} + ", lower.join(" + "))
                },
                self.media.video_kbps,
                self.media.video_packets_per_s,
                self.media.video_payload_bytes
            ),
        );
        row(
            "ramp / window",
            format!("{:.1} s / {:.1} s", self.ramp_s, self.window_s),
        );
        row(
            "forwarded packets/s (expected)",
            format!("{:.0} ({:.0})", f.packets_per_s, f.expected_packets_per_s),
        );
        row(
            "forwarded Mbit/s, avg packet",
            format!("{:.1}, {:.0} B", f.mbit_per_s, f.avg_packet_bytes),
        );
        row(
            "retransmissions + padding (not counted)",
            format!("{}", f.resent_packets),
        );
        row(
            "loss (RTP seq, all)",
            format!("{} ({:.3}%)", f.lost, f.loss_pct),
        );
        row("out of order (RTP seq)", format!("{}", f.reordered));
        row(
            "loss (payloads, verified)",
            format!(
                "{} of {} ({:.3}%)",
                self.verified
                    .expected
                    .saturating_sub(self.verified.payloads),
                self.verified.expected,
                self.verified.loss_pct
            ),
        );
        row(
            "latency p50/p95/p99/max",
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2} ms ({} samples)",
                self.latency.p50_us as f64 / 1000.0,
                self.latency.p95_us as f64 / 1000.0,
                self.latency.p99_us as f64 / 1000.0,
                self.latency.max_us as f64 / 1000.0,
                self.latency.samples
            ),
        );
        if let Some(sv) = &self.server {
            row(
                "server CPU",
                format!("{:.2} s ({:.1}% of a core)", sv.cpu_s, sv.cpu_pct),
            );
            row(
                "server CPU per forwarded packet",
                format!(
                    "{:.2} us ({:.0} packets per CPU-second)",
                    sv.cpu_us_per_packet, sv.packets_per_cpu_s
                ),
            );
            let mib = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} MiB"));
            row(
                "server RSS idle / peak",
                format!("{} / {}", mib(sv.rss_idle_mib), mib(sv.rss_peak_mib)),
            );
            row(
                "server memory per participant",
                sv.kib_per_participant
                    .map_or("-".into(), |k| format!("{k:.0} KiB")),
            );
        }
        if let (Some(c), Some(p), Some(u)) = (
            self.generator.cpu_s,
            self.generator.cpu_pct,
            self.generator.cpu_us_per_packet,
        ) {
            row(
                "generator CPU",
                format!("{c:.2} s ({p:.1}% of a core, {u:.2} us per packet)"),
            );
        }
        if let Some(e) = self.udp_rcvbuf_errors {
            row("UDP receive-buffer drops", e.to_string());
        }
        for e in &self.errors {
            row("error", e.clone());
        }
        s
    }
}
