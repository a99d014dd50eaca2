//! A media worker: one thread, a plain event loop, owning its rooms and their participants'
//! transports. Drives the sans-IO room core and the str0m instances with real time and sockets.
//!
//! Run rule: after any input to a room, [`process`] polls every peer marked dirty until str0m
//! returns a timeout, and drains the room core's outputs, until nothing is dirty. A peer that
//! received a datagram is polled at once (str0m holds one received RTP packet at a time);
//! subscribers that were only written forwarded packets are polled once at the end of the input
//! batch, so a video frame's packets cost each of them one poll, not one per packet; that poll
//! first gives str0m the time, which it needs before it releases newly written media. A timeout
//! str0m asks for that is already due is given within the same poll (see [`poll_peer`]).
//!
//! Timeouts: each room keeps a lower bound of its peers' str0m timeouts and its core's next
//! timeout, so a wake-up touches only the rooms and peers that are due.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use conclave_proto::ServerMessage;
use conclave_room::{Forward, Output as RoomOutput, Pid, Room, RoomConfig};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Event, IceConnectionState, Input, Output};
use tokio::sync::mpsc::UnboundedSender;

use super::contain;
use super::events::handle_event;
use super::peer::Peer;
use super::udp::Remote;
use super::{ConnId, MediaAddrs, Routes, SettingsUpdate, TcpConns, WorkerInput, stun};
use crate::metrics::WorkerMetrics;

/// Longest the loop sleeps when nothing is due, so a quiet worker still notices shutdown.
const IDLE_WAKE: Duration = Duration::from_millis(500);
/// Most inputs handled between two timeout sweeps, so timers stay punctual under load.
const BATCH: usize = 64;
/// Queued datagrams that are sent before the input batch is done, bounding memory and delay.
const FLUSH_AT: usize = 4096;
/// Due timeouts given to a peer within one poll (see [`poll_peer`]); more wait for the next turn
/// of the loop, so one peer cannot hold the worker.
const IMMEDIATE_TIMEOUTS: usize = 64;
/// A receiver's pacer holding media this long is worth a debug line.
const PACER_BEHIND: Duration = Duration::from_millis(100);
/// How stale the room, participant and track gauges in /metrics may be.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

pub struct Worker {
    pub(super) index: usize,
    pub(super) socket: UdpSocket,
    /// The socket is IPv6 (dual-stack): IPv4 destinations are sent as `::ffff:a.b.c.d`.
    pub(super) dual_stack: bool,
    pub(super) addrs: Arc<MediaAddrs>,
    /// ICE-TCP connections' outgoing queues.
    pub(super) tcp: Arc<TcpConns>,
    pub(super) routes: Arc<Routes>,
    pub(super) room_config: RoomConfig,
    pub(super) rooms: HashMap<String, RoomHost>,
    pub(super) by_addr: HashMap<Remote, (String, Pid)>,
    pub(super) by_ufrag: HashMap<String, (String, Pid)>,
    pub(super) settings_tx: Option<UnboundedSender<SettingsUpdate>>,
    /// Datagrams produced while handling a batch of inputs, sent together at its end with
    /// `sendmmsg`, and with UDP GSO for a subscriber's consecutive packets (a video frame).
    pub(super) out: Vec<Transmit>,
    /// UDP GSO is used until the kernel refuses it once.
    pub(super) gso: bool,
    /// Datagrams queued per worker (see `udp::MAX_BACKLOG`); this worker counts its own down.
    backlogs: Arc<Vec<AtomicUsize>>,
    pub(super) metrics: WorkerMetrics,
    placement: Arc<super::placement::Placement>,
    /// When the room, participant and track gauges are next updated.
    next_gauges: Instant,
    /// The worker waits here: its participants' connected sockets and its queue's wake-up.
    pub(super) epoll: conclave_udp::Epoll,
    wake: Arc<conclave_udp::Wake>,
    /// One socket per participant address, connected to it on the shared port: the kernel
    /// hands it that participant's datagrams, which this worker reads itself (no hand-over
    /// from the receive thread). Indexed by epoll token; freed slots are reused.
    pub(super) conn_socks: Vec<Option<UdpSocket>>,
    pub(super) conn_by_remote: HashMap<Remote, usize>,
    pub(super) ready: Vec<u64>,
    /// Receive buffers for the connected sockets (taken while their datagrams are handled).
    pub(super) rbatch: Option<Box<conclave_udp::RecvBatch>>,
}

/// The epoll token of the queue's wake-up; sockets use their slot index.
pub(super) const WAKE_TOKEN: u64 = u64::MAX;

/// What every worker shares with the rest of the media plane.
pub struct WorkerEnv {
    pub addrs: Arc<MediaAddrs>,
    pub tcp: Arc<TcpConns>,
    pub routes: Arc<Routes>,
    pub room_config: RoomConfig,
    pub settings_tx: Option<UnboundedSender<SettingsUpdate>>,
    pub backlogs: Arc<Vec<AtomicUsize>>,
    pub metrics: WorkerMetrics,
    pub placement: Arc<super::placement::Placement>,
}

pub(super) struct RoomHost {
    pub(super) core: Room,
    /// Each participant's signaling connection (knockers too).
    pub(super) conns: HashMap<Pid, Conn>,
    /// Media transports of admitted participants.
    pub(super) peers: HashMap<Pid, Peer>,
    pub(super) dirty: Vec<Pid>,
    /// Subscribers written to since they were last polled (each once: `Peer::pending`).
    pub(super) pending: Vec<Pid>,
    pub(super) forwards: Vec<Forward>,
    /// No peer's str0m timeout is earlier than this: a lower bound kept as peers are polled,
    /// made exact by each sweep, so the loop need not scan every peer on every wake-up.
    peers_due: Option<Instant>,
    /// The room core's next timeout, asked again only after the core was driven.
    core_due: Option<Instant>,
    core_stale: bool,
    /// The number of the last command handled for this room (`placement.rs`).
    pub(super) last_command: u64,
}

/// A participant's signaling connection as the worker sees it.
pub(super) struct Conn {
    pub(super) id: ConnId,
    pub(super) events: UnboundedSender<ServerMessage>,
}

impl RoomHost {
    pub(super) fn new(core: Room) -> Self {
        Self {
            core,
            conns: HashMap::new(),
            peers: HashMap::new(),
            dirty: Vec::new(),
            pending: Vec::new(),
            forwards: Vec::new(),
            peers_due: None,
            core_due: None,
            core_stale: true,
            last_command: 0,
        }
    }

    fn core_due(&mut self) -> Option<Instant> {
        if self.core_stale {
            self.core_due = self.core.poll_timeout();
            self.core_stale = false;
        }
        self.core_due
    }

    /// When this room next needs the worker: written subscribers wait to be polled at once.
    fn due(&mut self, now: Instant) -> Option<Instant> {
        if !self.pending.is_empty() {
            return Some(now);
        }
        let core = self.core_due();
        match (self.peers_due, core) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Take a participant's transport and signaling connection out of the room's lists.
    /// Dropping the connection's sender ends its WebSocket after what was queued.
    fn detach(&mut self, pid: Pid) -> Option<Peer> {
        self.conns.remove(&pid);
        self.dirty.retain(|d| *d != pid);
        self.pending.retain(|d| *d != pid);
        self.peers.remove(&pid)
    }

    pub(super) fn send(&self, pid: Pid, msg: ServerMessage) {
        if let Some(c) = self.conns.get(&pid) {
            let _ = c.events.send(msg);
        }
    }
}

impl Worker {
    pub fn new(
        index: usize,
        socket: UdpSocket,
        dual_stack: bool,
        wake: Arc<conclave_udp::Wake>,
        env: WorkerEnv,
    ) -> std::io::Result<Self> {
        let WorkerEnv {
            addrs,
            tcp,
            routes,
            room_config,
            settings_tx,
            backlogs,
            metrics,
            placement,
        } = env;
        let epoll = conclave_udp::Epoll::new()?;
        epoll.add(wake.fd(), WAKE_TOKEN)?;
        Ok(Self {
            index,
            socket,
            dual_stack,
            addrs,
            tcp,
            routes,
            room_config,
            rooms: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            settings_tx,
            out: Vec::new(),
            gso: true,
            backlogs,
            metrics,
            placement,
            next_gauges: Instant::now(),
            epoll,
            wake,
            conn_socks: Vec::new(),
            conn_by_remote: HashMap::new(),
            ready: Vec::new(),
            rbatch: Some(Box::default()),
        })
    }

    pub fn run(mut self, rx: Receiver<WorkerInput>) {
        loop {
            let now = Instant::now();
            let wait = self
                .next_deadline()
                .map_or(IDLE_WAKE, |t| t.saturating_duration_since(now))
                .min(IDLE_WAKE);
            // Say we sleep, then look at the queue once more: a send after this wakes us.
            self.wake.sleep();
            let queued = match rx.try_recv() {
                Ok(input) => Some(input),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => return,
            };
            let wait = if queued.is_some() {
                Duration::ZERO
            } else {
                wait
            };
            self.epoll.wait(&mut self.ready, wait);
            self.wake.awake();
            let woke = Instant::now();
            if let Some(input) = queued {
                self.handle(input);
            }
            self.read_connected();
            for input in rx.try_iter().take(BATCH) {
                self.handle(input);
            }
            self.handle_timeouts(Instant::now());
            self.flush();
            let done = Instant::now();
            self.metrics
                .busy_seconds
                .inc_by((done - woke).as_secs_f64());
            if done >= self.next_gauges {
                self.update_gauges();
                self.next_gauges = done + GAUGE_INTERVAL;
            }
        }
    }

    /// Summing over rooms costs a little, so it happens once per GAUGE_INTERVAL, not per input.
    fn update_gauges(&self) {
        let m = &self.metrics;
        m.rooms.set(self.rooms.len() as i64);
        m.participants.set(
            self.rooms
                .values()
                .map(|h| h.core.participant_count() as i64)
                .sum(),
        );
        m.tracks.set(
            self.rooms
                .values()
                .map(|h| h.core.track_count() as i64)
                .sum(),
        );
        m.queue_depth
            .set(self.backlogs[self.index].load(Ordering::Relaxed) as i64);
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let now = Instant::now();
        self.rooms.values_mut().filter_map(|h| h.due(now)).min()
    }

    /// Give time to the peers and room cores whose timeouts are due, and poll the subscribers
    /// written to; rooms with nothing due are not touched.
    fn handle_timeouts(&mut self, now: Instant) {
        let due: Vec<String> = self
            .rooms
            .iter_mut()
            .filter_map(|(name, h)| h.due(now).is_some_and(|t| t <= now).then(|| name.clone()))
            .collect();
        for name in due {
            if !contain::room(self, |w| w.room_timeouts(&name, now)) {
                self.close_failed_room(&name);
            }
        }
    }

    fn room_timeouts(&mut self, name: &str, now: Instant) {
        let Some(host) = self.rooms.get_mut(name) else {
            return;
        };
        if host.peers_due.is_some_and(|t| t <= now) {
            let mut later: Option<Instant> = None;
            for (pid, peer) in host.peers.iter_mut() {
                match peer.next_timeout {
                    Some(t) if t <= now => {
                        peer.give_time(now);
                        host.dirty.push(*pid);
                    }
                    Some(t) => later = Some(later.map_or(t, |l| l.min(t))),
                    None => {}
                }
            }
            // The peers just given time report their next timeouts when polled below.
            host.peers_due = later;
        }
        if host.core_due().is_some_and(|t| t <= now) {
            for (pid, peer) in host.peers.iter_mut() {
                let Some(Some((waited, bps))) = peer.guarded(|p| p.pacer_delay(now)) else {
                    continue;
                };
                host.core.set_pacer_delay(*pid, waited, bps);
                if waited >= PACER_BEHIND {
                    tracing::debug!(
                        participant = pid.0,
                        waited_ms = waited.as_millis() as u64,
                        kbps = bps / 1000,
                        "media waits in a receiver's pacer"
                    );
                }
                if host.core.paced_video_stale(now, *pid)
                    && let Some(dropped @ 1..) = peer.guarded(|p| p.drop_queued_video())
                {
                    tracing::debug!(
                        participant = pid.0,
                        dropped,
                        waited_ms = waited.as_millis() as u64,
                        "video waiting in a receiver's pacer dropped"
                    );
                    self.metrics.paced_video_dropped.inc_by(dropped as u64);
                    host.core.video_dropped(now, *pid);
                    host.dirty.push(*pid);
                }
            }
            host.core.handle_timeout(now);
        }
        self.process(name, now);
    }

    /// A panic while handling this room, not owed to one participant's transport
    /// (`contain.rs`): what it left may be inconsistent, so the room ends. Its participants'
    /// connections close; their clients reconnect and open it afresh (stored settings stay).
    fn close_failed_room(&mut self, room: &str) {
        let Some(host) = self.rooms.remove(room) else {
            return;
        };
        self.placement.release(room, self.index, host.last_command);
        self.metrics.rooms_failed.inc();
        tracing::error!(
            worker = self.index,
            participants = host.conns.len(),
            "a room failed with an internal error and was closed; its participants can rejoin"
        );
        for peer in host.peers.values() {
            self.forget_peer(peer);
        }
        // Dropping the room drops its participants' signaling channels, closing their WebSockets.
    }

    fn handle(&mut self, input: WorkerInput) {
        match input {
            WorkerInput::Datagram {
                proto,
                from,
                data,
                at,
            } => {
                self.backlogs[self.index].fetch_sub(1, Ordering::Relaxed);
                self.datagram(proto, from, &data, at)
            }
            WorkerInput::Datagrams(burst) => {
                self.backlogs[self.index].fetch_sub(burst.len(), Ordering::Relaxed);
                for (from, data) in burst.iter() {
                    self.datagram(Protocol::Udp, from, data, burst.at);
                }
            }
            WorkerInput::Command(cmd, number) => {
                let room = cmd.room().map(str::to_owned);
                let handled = contain::room(self, |w| w.command(cmd));
                let Some(room) = room else {
                    if !handled {
                        tracing::error!(worker = self.index, "a command failed");
                    }
                    return;
                };
                if !handled {
                    self.close_failed_room(&room);
                }
                match self.rooms.get_mut(&room) {
                    Some(host) => host.last_command = number,
                    // Not opened, or ended by this command.
                    None => self.placement.release(&room, self.index, number),
                }
            }
        }
    }

    pub(super) fn datagram(&mut self, proto: Protocol, from: SocketAddr, data: &[u8], at: Instant) {
        let remote = (proto, from);
        let key = match self.by_addr.get(&remote) {
            Some(k) => k.clone(),
            None => match stun::server_ufrag(data).and_then(|u| self.by_ufrag.get(u)) {
                Some(k) => k.clone(),
                None => return,
            },
        };
        let (room, pid) = key;
        if !contain::room(self, |w| w.datagram_for(&room, pid, remote, data, at)) {
            self.close_failed_room(&room);
        }
    }

    fn datagram_for(&mut self, room: &str, pid: Pid, remote: Remote, data: &[u8], at: Instant) {
        let (proto, from) = remote;
        let Some(host) = self.rooms.get_mut(room) else {
            return;
        };
        let Some(peer) = host.peers.get_mut(&pid) else {
            return;
        };
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = Input::Receive(
            at,
            Receive {
                proto,
                source: from,
                destination: self.addrs.local_for(proto, from),
                contents,
            },
        );
        let mut new_remote = false;
        match peer.guarded(|p| p.rtc.accepts(&input)) {
            Some(false) => return,
            // Failed just now: the drive below closes it.
            None => {}
            Some(true) => {
                new_remote = !peer.addrs.contains(&remote);
                if new_remote {
                    peer.addrs.push(remote);
                    self.by_addr.insert(remote, (room.to_owned(), pid));
                    self.routes.add_addr(remote, self.index);
                }
                if let Some(Err(e)) = peer.guarded(|p| p.rtc.handle_input(input)) {
                    tracing::debug!(error = %e, "peer input error");
                    peer.dead = true;
                }
            }
        }
        host.dirty.push(pid);
        if new_remote {
            self.connect_remote(remote);
        }
        self.process_input(room, Instant::now());
    }

    pub(super) fn forget_peer(&mut self, peer: &Peer) {
        self.by_ufrag.remove(&peer.ufrag);
        self.routes.remove_ufrag(&peer.ufrag);
        for a in &peer.addrs {
            self.by_addr.remove(a);
            self.routes.remove_addr(a);
            self.disconnect_remote(a);
        }
    }

    /// Drive a room until quiet: poll dirty peers, act on their events, act on the core's outputs.
    pub(super) fn process(&mut self, room: &str, now: Instant) {
        self.drive(room, now, true);
    }

    /// Like [`Self::process`], but subscribers that were only written to wait for the end of the
    /// input batch.
    fn process_input(&mut self, room: &str, now: Instant) {
        self.drive(room, now, false);
    }

    fn drive(&mut self, room: &str, now: Instant, with_pending: bool) {
        let Some(host) = self.rooms.get_mut(room) else {
            return;
        };
        let mut effects = Effects::default();
        loop {
            drain_core(host, &mut effects, &self.metrics);
            if contain::take_failed() {
                fail_peers(self.index, &self.metrics, host, now, &mut effects);
                // Their closing produced outputs (tracks ended) to drain first.
                continue;
            }
            // New transports first: the welcome just queued leads to an offer for them.
            for pid in effects.admitted.drain(..) {
                if host.peers.contains_key(&pid) {
                    continue;
                }
                match Peer::new(now, &self.addrs) {
                    Ok(mut peer) => {
                        peer.fault = crate::fault::transport(room, pid.0);
                        self.by_ufrag
                            .insert(peer.ufrag.clone(), (room.to_owned(), pid));
                        self.routes.add_ufrag(&peer.ufrag, self.index);
                        host.peers.insert(pid, peer);
                    }
                    Err(e) => tracing::error!(error = %e, "could not create a media transport"),
                }
            }
            let Some(pid) = host.dirty.pop().or_else(|| {
                with_pending
                    .then(|| host.pending.pop())
                    .flatten()
                    .inspect(|pid| {
                        if let Some(p) = host.peers.get_mut(pid) {
                            p.pending = false;
                            // Written media waits in str0m until time moves: release it
                            // now, or the poll below would first ask for the time (and get it
                            // in `poll_peer`), costing one more poll.
                            p.release_written(now);
                        }
                    })
            }) else {
                break;
            };
            let mut events = Vec::new();
            let out = &mut self.out;
            contain::peer(host, pid, |host| events = poll_peer(out, host, pid));
            // Outside the participant's ring: a panic in the room core here ends the room.
            for ev in events {
                handle_event(host, pid, ev, now, &self.metrics);
            }
        }
        if self.out.len() >= FLUSH_AT {
            self.flush();
        }
        if let (Some(tx), Some((lobby, password_hash))) = (&self.settings_tx, effects.save.take()) {
            let _ = tx.send(SettingsUpdate {
                room: room.to_owned(),
                lobby,
                password_hash,
            });
        }
        for peer in effects.removed {
            self.forget_peer(&peer);
        }
        let host = self.rooms.get_mut(room).expect("checked above");
        host.core_stale = true;
        if host.core.is_empty() {
            let last = host.last_command;
            self.rooms.remove(room);
            self.placement.release(room, self.index, last);
            tracing::info!(worker = self.index, "room closed");
        }
    }
}

/// Close the transports that panicked (`contain.rs`) and their participants' signaling
/// connections; the clients come back with their resume tokens to fresh transports.
fn fail_peers(
    worker: usize,
    metrics: &WorkerMetrics,
    host: &mut RoomHost,
    now: Instant,
    effects: &mut Effects,
) {
    let failed: Vec<Pid> = host
        .peers
        .iter()
        .filter_map(|(pid, p)| p.failed.then_some(*pid))
        .collect();
    for pid in failed {
        metrics.transports_failed.inc();
        tracing::error!(
            worker,
            participant = pid.0,
            "a participant's media transport failed with an internal error and was closed; \
             the participant can reconnect"
        );
        // A failed transport is dropped untouched (no `disconnect`).
        effects.removed.extend(host.detach(pid));
        host.core.transport_closed(now, pid);
        host.core.connection_lost(now, pid);
    }
}

/// What draining the room core asks of the worker beyond the room itself.
#[derive(Default)]
struct Effects {
    admitted: Vec<Pid>,
    removed: Vec<Peer>,
    save: Option<(bool, Option<String>)>,
}

/// Act on the room core's outputs.
fn drain_core(host: &mut RoomHost, effects: &mut Effects, metrics: &WorkerMetrics) {
    while let Some(out) = host.core.poll_output() {
        match out {
            RoomOutput::Signal { to, msg } => host.send(to, msg),
            RoomOutput::RequestKeyframe {
                publisher,
                mid,
                layer,
            } => {
                if let Some(p) = host.peers.get_mut(&publisher) {
                    metrics.keyframe_requests_sent.inc();
                    p.guarded(|p| p.request_keyframe(mid, layer));
                    host.dirty.push(publisher);
                }
            }
            RoomOutput::DesiredBitrate { to, bps } => {
                tracing::debug!(participant = to.0, kbps = bps / 1000, "desired bitrate");
                if let Some(p) = host.peers.get_mut(&to) {
                    p.guarded(|p| p.set_desired_bitrate(bps));
                    host.dirty.push(to);
                }
            }
            RoomOutput::ResetEstimate { to, bps } => {
                tracing::debug!(participant = to.0, kbps = bps / 1000, "estimator restarted");
                if let Some(p) = host.peers.get_mut(&to) {
                    p.guarded(|p| p.reset_estimate(bps));
                    host.dirty.push(to);
                }
            }
            RoomOutput::AudioRedundancy { to, on } => {
                tracing::debug!(participant = to.0, on, "audio redundancy");
                if let Some(p) = host.peers.get_mut(&to) {
                    p.red_off = !on;
                }
            }
            RoomOutput::Admitted { pid } => effects.admitted.push(pid),
            RoomOutput::Removed { pid } => {
                if let Some(mut p) = host.detach(pid) {
                    p.guarded(|p| p.rtc.disconnect());
                    effects.removed.push(p);
                }
                effects.admitted.retain(|a| *a != pid);
            }
            RoomOutput::SaveSettings {
                lobby,
                password_hash,
            } => effects.save = Some((lobby, password_hash)),
        }
    }
}

/// Poll one peer until str0m wants time to pass; queue what it transmits, return its events.
///
/// A timeout that is already due is given at once, up to [`IMMEDIATE_TIMEOUTS`] times: str0m's
/// pacer asks for one after every packet it lets out, even within a burst it allows, and
/// leaving it to the next turn of the loop would send a video frame's packets to a receiver
/// one wake-up and one system call each instead of together (as one UDP GSO message).
fn poll_peer(out: &mut Vec<Transmit>, host: &mut RoomHost, pid: Pid) -> Vec<Event> {
    let mut events = Vec::new();
    let Some(peer) = host.peers.get_mut(&pid) else {
        return events;
    };
    let mut immediate = 0;
    loop {
        if !peer.rtc.is_alive() {
            peer.next_timeout = None;
            if !peer.dead {
                peer.dead = true;
                events.push(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                ));
            }
            break;
        }
        // A receiver's burst of media comes out here, without a whole `Output` moved per datagram.
        if let Some(t) = peer.rtc.poll_transmit() {
            out.push(t);
            continue;
        }
        match peer.rtc.poll_output() {
            Ok(Output::Transmit(t)) => out.push(t),
            Ok(Output::Timeout(t)) => {
                if immediate < IMMEDIATE_TIMEOUTS {
                    let now = Instant::now();
                    if t <= now {
                        immediate += 1;
                        if peer.rtc.handle_input(Input::Timeout(now)).is_err() {
                            peer.dead = true;
                        }
                        continue;
                    }
                }
                peer.next_timeout = Some(t);
                host.peers_due = Some(host.peers_due.map_or(t, |d| d.min(t)));
                break;
            }
            Ok(Output::Event(e)) => events.push(e),
            Err(e) => {
                tracing::debug!(error = %e, "peer poll error");
                peer.rtc.disconnect();
            }
        }
    }
    events
}
