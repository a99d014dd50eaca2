//! The media plane: one UDP port, a receive thread that routes datagrams, and worker threads that
//! own rooms.
//!
//! ```text
//! UDP port, shared socket ──recv thread──▶ Routes (addr / ICE ufrag → worker) ──channel──▶ Worker
//! UDP port, a connected socket per participant address ─────────── read by its own ──────▶ Worker
//! TCP (ICE-TCP) ──task per connection──▶ Routes                                ──channel──▶ Worker
//!                                                                             ├─ Room core (sans-IO)
//!                                                                             └─ Peer = str0m::Rtc
//! signaling ──Command──▶ Worker ──ServerMessage──▶ signaling (per participant channel)
//! ```
//! A room lives on exactly one worker, so forwarding takes no locks; a new room goes to the
//! worker with the fewest participants (`placement.rs`).
//! Once a participant's UDP address is known, the worker opens a socket connected to it on the
//! shared port (`SO_REUSEPORT`): the kernel delivers that participant's datagrams there, and the
//! worker reads them itself, without the receive thread's hand-over and wake-up. The shared
//! socket keeps whatever has no connected socket (new participants, a changed address).

mod commands;
mod contain;
mod events;
mod peer;
mod placement;
mod sockets;
mod stun;
mod tcp;
mod udp;
mod worker;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;
use std::time::Instant;

use conclave_proto::{ErrorCode, ParticipantId, ServerMessage};
use conclave_room::{Access, ModeratorCommand, Pid, RoomConfig, StoredSettings};
use str0m::net::Protocol;
use tokio::sync::{mpsc::UnboundedSender, oneshot};

pub use tcp::TcpConns;
pub use udp::Routes;

/// Receive buffer asked of the kernel for each participant's connected socket, and for the shared
/// one (first contact, and participants without a socket of their own). The default (about
/// 200 KB, a few hundred datagrams) overflows when a worker is busy for a moment, and a lost
/// audio packet is not retransmitted: it was gone for every receiver. Only queued datagrams take
/// memory. Without `CAP_NET_ADMIN` the kernel caps this at `net.core.rmem_max`.
pub const PARTICIPANT_RECV_BUFFER: usize = 1 << 20;
/// See [`PARTICIPANT_RECV_BUFFER`]; the shared socket carries every participant's first contact.
pub const SHARED_RECV_BUFFER: usize = 4 << 20;

/// The media server's addresses as browsers see them: one host candidate per address and
/// transport (UDP, and TCP when ICE-TCP is on).
#[derive(Debug, Clone)]
pub struct MediaAddrs {
    pub ips: Vec<IpAddr>,
    pub udp_port: u16,
    pub tcp_port: Option<u16>,
}

impl MediaAddrs {
    /// Every (transport, address) we announce.
    pub fn candidates(&self) -> Vec<(Protocol, SocketAddr)> {
        let mut v = Vec::new();
        for ip in &self.ips {
            v.push((Protocol::Udp, SocketAddr::new(*ip, self.udp_port)));
            if let Some(p) = self.tcp_port {
                v.push((Protocol::Tcp, SocketAddr::new(*ip, p)));
            }
        }
        v
    }

    /// The announced address a packet from `from` arrived at, as ICE needs it. A socket bound to
    /// all interfaces does not say which address was hit; the one of the sender's address family
    /// is right whenever there is one address per family.
    pub fn local_for(&self, proto: Protocol, from: SocketAddr) -> SocketAddr {
        let port = match proto {
            Protocol::Udp => self.udp_port,
            _ => self.tcp_port.unwrap_or(self.udp_port),
        };
        let ip = self
            .ips
            .iter()
            .find(|ip| ip.is_ipv4() == from.is_ipv4())
            .or(self.ips.first())
            .copied()
            .unwrap_or(from.ip());
        SocketAddr::new(ip, port)
    }

    /// UDP media addresses: the only peers the built-in TURN server relays to.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, self.udp_port))
            .collect()
    }
}

/// Identifies one signaling connection, so a late message from a replaced connection is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// A worker's input queue. The worker waits in `epoll` (its participants' sockets and this
/// queue's wake-up), so a send wakes it when it sleeps.
#[derive(Clone)]
pub struct WorkerTx {
    tx: mpsc::Sender<WorkerInput>,
    wake: Arc<conclave_udp::Wake>,
}

/// The worker's thread has ended: its queue takes nothing more.
#[derive(Debug)]
pub struct WorkerGone;

impl WorkerTx {
    pub fn send(&self, input: WorkerInput) -> Result<(), WorkerGone> {
        self.tx.send(input).map_err(|_| WorkerGone)?;
        self.wake.wake();
        Ok(())
    }
}

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
        /// The m-line carrying a screen share.
        screen_mid: Option<String>,
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
    /// What the client shows: publishers and drawn heights, most important first.
    View {
        room: String,
        pid: Pid,
        conn: ConnId,
        tiles: Vec<(ParticipantId, u32)>,
    },
    /// Whether the participant's media transport is connected (ICE and DTLS done).
    Connected {
        room: String,
        pid: Pid,
        reply: oneshot::Sender<bool>,
    },
    /// The operator's view of this worker's live meetings: counts only.
    Meetings {
        reply: oneshot::Sender<Vec<MeetingCounts>>,
    },
    /// The operator ends a meeting; replies whether it was live.
    EndMeeting {
        room: String,
        reply: oneshot::Sender<bool>,
    },
}

impl Command {
    /// The room the command is for; `None` for the worker as a whole.
    fn room(&self) -> Option<&str> {
        match self {
            Command::Join { room, .. }
            | Command::Peek { room, .. }
            | Command::Offer { room, .. }
            | Command::MediaState { room, .. }
            | Command::Leave { room, .. }
            | Command::Relay { room, .. }
            | Command::ConnectionLost { room, .. }
            | Command::Moderate { room, .. }
            | Command::View { room, .. }
            | Command::Connected { room, .. }
            | Command::EndMeeting { room, .. } => Some(room),
            Command::Meetings { .. } => None,
        }
    }
}

/// A live meeting as the operator sees it: no participant names, ids or addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingCounts {
    pub room: String,
    /// In the meeting or waiting in its lobby.
    pub participants: usize,
    /// Published audio and video tracks.
    pub tracks: usize,
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
        proto: Protocol,
        from: SocketAddr,
        data: Vec<u8>,
        at: Instant,
    },
    /// A burst from the UDP socket.
    Datagrams(udp::Datagrams),
    /// A command and its number among those sent to its room (`placement.rs`; 0 for the worker
    /// as a whole).
    Command(Command, u64),
}

/// Handle to the running media plane.
#[derive(Clone)]
pub struct MediaPlane {
    workers: Arc<Vec<WorkerTx>>,
    placement: Arc<placement::Placement>,
}

impl MediaPlane {
    /// Bind nothing new: takes the bound UDP socket (and TCP listener for ICE-TCP), starts
    /// `workers` threads, the receive thread and, with TCP, the accept task on the current
    /// tokio runtime.
    pub fn start(
        socket: UdpSocket,
        tcp: Option<tokio::net::TcpListener>,
        addrs: MediaAddrs,
        workers: usize,
        room_config: RoomConfig,
        settings_tx: Option<UnboundedSender<SettingsUpdate>>,
        metrics: &[crate::metrics::WorkerMetrics],
    ) -> std::io::Result<Self> {
        let routes = Arc::new(Routes::default());
        let tcp_conns = Arc::new(TcpConns::default());
        let addrs = Arc::new(addrs);
        let dual_stack = socket.local_addr()?.is_ipv6();
        // Datagrams queued per worker, counted up by the receive thread and down by the worker.
        let backlogs: Arc<Vec<AtomicUsize>> =
            Arc::new((0..workers).map(|_| AtomicUsize::new(0)).collect());
        // Callers without metrics pass none: the handles then count for placement only.
        let metrics: Vec<crate::metrics::WorkerMetrics> = (0..workers)
            .map(|i| metrics.get(i).cloned().unwrap_or_default())
            .collect();
        let placement = Arc::new(placement::Placement::new(
            metrics.iter().map(|m| m.participants.clone()).collect(),
        ));
        let mut senders = Vec::with_capacity(workers);
        for (index, metrics) in metrics.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel();
            let wake = Arc::new(conclave_udp::Wake::new()?);
            let env = worker::WorkerEnv {
                addrs: addrs.clone(),
                tcp: tcp_conns.clone(),
                routes: routes.clone(),
                room_config: room_config.clone(),
                settings_tx: settings_tx.clone(),
                backlogs: backlogs.clone(),
                metrics,
                placement: placement.clone(),
            };
            let w = worker::Worker::new(index, socket.try_clone()?, dual_stack, wake.clone(), env)?;
            std::thread::Builder::new()
                .name(format!("media-worker-{index}"))
                .spawn(move || w.run(rx))?;
            senders.push(WorkerTx { tx, wake });
        }
        let senders = Arc::new(senders);
        if let Some(listener) = tcp {
            tokio::spawn(tcp::accept_loop(
                listener,
                routes.clone(),
                senders.clone(),
                backlogs.clone(),
                tcp_conns,
            ));
        }
        let recv_senders = senders.clone();
        std::thread::Builder::new()
            .name("media-recv".into())
            .spawn(move || udp::receive_loop(socket, routes, recv_senders, backlogs))?;
        Ok(Self {
            workers: senders,
            placement,
        })
    }

    /// Send a command to the worker that runs `room` (the least loaded one if it runs
    /// nowhere yet). Fails only if the worker died.
    pub fn send(&self, room: &str, cmd: Command) -> Result<(), ()> {
        self.placement.route(room, |worker, number| {
            self.workers[worker]
                .send(WorkerInput::Command(cmd, number))
                .map_err(|_| ())
        })
    }
}

impl MediaPlane {
    /// Every worker's live meetings, sorted by room name.
    pub async fn meetings(&self) -> Result<Vec<MeetingCounts>, ()> {
        let mut replies = Vec::with_capacity(self.workers.len());
        for w in self.workers.iter() {
            let (reply, rx) = oneshot::channel();
            w.send(WorkerInput::Command(Command::Meetings { reply }, 0))
                .map_err(|_| ())?;
            replies.push(rx);
        }
        let mut all = Vec::new();
        for rx in replies {
            all.extend(rx.await.map_err(|_| ())?);
        }
        all.sort_by(|a, b| a.room.cmp(&b.room));
        Ok(all)
    }
}
