//! Prometheus metrics: aggregates only. Labels are limited to the worker index and fixed words;
//! never an address, name, room name or id.
//!
//! `prometheus-client` (the Prometheus project's own Rust client) gives counters and gauges that
//! are plain shared atomics: each media worker holds clones of its own handles and updates them
//! without locks or contention; the registry reads them at scrape time.

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::AppState;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    pub workers: Vec<WorkerMetrics>,
    /// Open signaling WebSockets.
    pub connections: Gauge,
    /// Joins refused because the server is draining.
    pub joins_refused_draining: Counter,
}

/// One media worker's handles (clones share the same atomics as the registry).
#[derive(Clone, Default)]
pub struct WorkerMetrics {
    pub rooms: Gauge,
    pub participants: Gauge,
    pub tracks: Gauge,
    pub queue_depth: Gauge,
    pub packets_forwarded: Counter,
    pub bytes_forwarded: Counter,
    /// Keyframe requests (PLI/FIR) received from subscribers.
    pub keyframe_requests_received: Counter,
    /// Keyframe requests the server sent to publishers.
    pub keyframe_requests_sent: Counter,
    /// NACKs (retransmission requests) received from subscribers.
    pub nacks_received: Counter,
    /// NACKs the server sent to publishers for packets it did not receive.
    pub nacks_sent: Counter,
    /// Packets publishers' streams lost on the way to the server, as the server measured it.
    pub packets_lost: Counter,
    /// Incoming video datagrams dropped unread because they had waited too long for the worker.
    pub datagrams_dropped_late: Counter,
    /// Video packets dropped from receivers' pacers after waiting too long.
    pub paced_video_dropped: Counter,
    /// Participants' transports closed after a panic inside them (`media/contain.rs`).
    pub transports_failed: Counter,
    /// Rooms closed after a panic while handling them.
    pub rooms_failed: Counter,
    pub busy_seconds: Counter<f64, AtomicU64>,
}

impl Metrics {
    pub fn new(workers: usize) -> Self {
        let mut registry = Registry::with_prefix("conclave");
        registry.register(
            "build",
            "Build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let connections = Gauge::default();
        registry.register(
            "signaling_connections",
            "Open signaling WebSocket connections",
            connections.clone(),
        );
        let joins_refused_draining = Counter::default();
        registry.register(
            "joins_refused_draining",
            "Joins refused because the server was draining",
            joins_refused_draining.clone(),
        );
        macro_rules! families {
            ($($field:ident: $ty:ty, $name:literal, $help:literal;)*) => {{
                $(let $field = Family::<Labels, $ty>::default();
                registry.register($name, $help, $field.clone());)*
                (0..workers)
                    .map(|i| {
                        let l: Labels = vec![("worker", i.to_string())];
                        WorkerMetrics { $($field: $field.get_or_create(&l).clone(),)* }
                    })
                    .collect::<Vec<_>>()
            }};
        }
        let workers = families! {
            rooms: Gauge, "rooms", "Rooms with someone in them";
            participants: Gauge, "participants", "Participants in rooms (lobby included)";
            tracks: Gauge, "tracks", "Published audio and video tracks";
            queue_depth: Gauge, "worker_queue_depth", "Datagrams waiting for the media worker";
            packets_forwarded: Counter, "packets_forwarded", "RTP packets forwarded to subscribers";
            bytes_forwarded: Counter, "forwarded_payload_bytes", "RTP payload bytes forwarded to subscribers";
            keyframe_requests_received: Counter, "keyframe_requests_received", "Keyframe requests (PLI/FIR) from subscribers";
            keyframe_requests_sent: Counter, "keyframe_requests_sent", "Keyframe requests sent to publishers";
            nacks_received: Counter, "nacks_received", "NACKs (retransmission requests) from subscribers";
            nacks_sent: Counter, "nacks_sent", "NACKs sent to publishers";
            packets_lost: Counter, "packets_lost", "Packets lost from publishers to the server";
            datagrams_dropped_late: Counter, "datagrams_dropped_late", "Incoming video datagrams dropped because they waited too long for a busy media worker";
            paced_video_dropped: Counter, "paced_video_dropped", "Video packets dropped after waiting too long in a receiver's pacer (the receiver resumes at a keyframe)";
            transports_failed: Counter, "transports_failed", "Participants' media transports closed after an internal error (the participant can reconnect)";
            rooms_failed: Counter, "rooms_failed", "Rooms closed after an internal error (their participants can rejoin)";
            busy_seconds: Counter<f64, AtomicU64>, "worker_busy_seconds", "Time media workers spent working (not waiting)";
        };
        Self {
            registry,
            workers,
            connections,
            joins_refused_draining,
        }
    }
}

pub async fn scrape(State(state): State<AppState>) -> Response {
    let mut body = String::new();
    encode(&mut body, &state.metrics.registry).expect("writing to a String cannot fail");
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
