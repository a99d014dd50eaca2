//! The media plane: one UDP socket, a receive thread that routes datagrams, and worker threads that
//! own rooms.
//!
//! ```text
//! UDP socket ──recv thread──▶ Routes (addr / ICE ufrag → worker) ──channel──▶ Worker
//!                                                                             ├─ Room core (sans-IO)
//!                                                                             └─ Peer = str0m::Rtc
//! signaling ──Command──▶ Worker ──ServerMessage──▶ signaling (per participant channel)
//! ```
//! A room lives on exactly one worker (chosen by hashing its name), so forwarding takes no locks.

mod commands;
mod peer;
mod stun;
mod udp;
mod worker;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;
use std::time::Instant;

use conclave_proto::{ErrorCode, ParticipantId, ServerMessage};
use conclave_room::{Access, ModeratorCommand, Pid, RoomConfig, StoredSettings};
use tokio::sync::{mpsc::UnboundedSender, oneshot};

pub use udp::Routes;

/// Identifies one signaling connection, so a late message from a replaced connection is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// What signaling asks of a worker.
#[derive(Debug)]
pub enum Command {
    Join {
        room: String,
        spec: JoinSpec,
        reply: oneshot::Sender<Result<Joined, (ErrorCode, String)>>,
    },
    /// The live room's password hash: `None` if the room is not live, `Some(None)` if it has no
    /// password. Signaling verifies passwords itself, off the media thread.
    Peek {
        room: String,
        reply: oneshot::Sender<Option<Option<String>>>,
    },
    Offer {
        room: String,
        pid: Pid,
        conn: ConnId,
        sdp: String,
    },
    MediaState {
        room: String,
        pid: Pid,
        conn: ConnId,
        audio: bool,
        video: bool,
    },
    Leave {
        room: String,
        pid: Pid,
        conn: ConnId,
    },
    /// An opaque blob for one participant (`to`) or everyone else in the room.
    Relay {
        room: String,
        pid: Pid,
        conn: ConnId,
        to: Option<ParticipantId>,
        data: String,
    },
    /// The signaling connection closed without `leave`.
    ConnectionLost {
        room: String,
        pid: Pid,
        conn: ConnId,
    },
    Moderate {
        room: String,
        pid: Pid,
        conn: ConnId,
        cmd: ModeratorCommand,
    },
}

/// Everything about one join that signaling established.
#[derive(Debug)]
pub struct JoinSpec {
    pub name: String,
    pub sealed_name: Option<String>,
    /// The client encrypts end to end.
    pub encrypts: bool,
    pub resume: Option<String>,
    pub access: Access,
    /// The room's stored settings, if it is persistent.
    pub stored: Option<StoredSettings>,
    pub conn: ConnId,
    pub events: UnboundedSender<ServerMessage>,
}

/// A successful join, as signaling needs it.
#[derive(Debug, Clone)]
pub struct Joined {
    pub pid: Pid,
    pub id: ParticipantId,
    /// Waiting in the lobby.
    pub waiting: bool,
}

/// A persistent room's settings changed during a meeting and must be saved.
#[derive(Debug, Clone)]
pub struct SettingsUpdate {
    pub room: String,
    pub lobby: bool,
    pub password_hash: Option<String>,
}

/// Everything a worker's event loop can be woken by.
#[derive(Debug)]
pub(crate) enum WorkerInput {
    Datagram {
        from: SocketAddr,
        data: Vec<u8>,
        at: Instant,
    },
    Command(Command),
}

/// Handle to the running media plane.
#[derive(Clone)]
pub struct MediaPlane {
    workers: Arc<Vec<mpsc::Sender<WorkerInput>>>,
}

impl MediaPlane {
    /// Bind nothing new: takes the bound UDP socket, starts `workers` threads and the receive thread.
    pub fn start(
        socket: UdpSocket,
        candidate: SocketAddr,
        workers: usize,
        room_config: RoomConfig,
        settings_tx: Option<UnboundedSender<SettingsUpdate>>,
    ) -> std::io::Result<Self> {
        let routes = Arc::new(Routes::default());
        // Datagrams queued per worker, counted up by the receive thread and down by the worker.
        let backlogs: Arc<Vec<AtomicUsize>> =
            Arc::new((0..workers).map(|_| AtomicUsize::new(0)).collect());
        let mut senders = Vec::with_capacity(workers);
        for index in 0..workers {
            let (tx, rx) = mpsc::channel();
            let env = worker::WorkerEnv {
                candidate,
                routes: routes.clone(),
                room_config: room_config.clone(),
                settings_tx: settings_tx.clone(),
                backlogs: backlogs.clone(),
            };
            let w = worker::Worker::new(index, socket.try_clone()?, env);
            std::thread::Builder::new()
                .name(format!("media-worker-{index}"))
                .spawn(move || w.run(rx))?;
            senders.push(tx);
        }
        let senders = Arc::new(senders);
        let recv_senders = senders.clone();
        std::thread::Builder::new()
            .name("media-recv".into())
            .spawn(move || udp::receive_loop(socket, routes, recv_senders, backlogs))?;
        Ok(Self { workers: senders })
    }

    /// Send a command to the worker that owns `room`. Fails only if the worker died.
    pub fn send(&self, room: &str, cmd: Command) -> Result<(), ()> {
        let idx = worker_for(room, self.workers.len());
        self.workers[idx]
            .send(WorkerInput::Command(cmd))
            .map_err(|_| ())
    }
}

/// Rooms are placed by a stable hash of their name: no shared placement table to race on.
fn worker_for(room: &str, workers: usize) -> usize {
    // FNV-1a: stable across runs and platforms (std's hasher is randomly seeded).
    let mut h: u64 = 0xcbf29ce484222325;
    for b in room.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    (h % workers as u64) as usize
}
