//! The receive side of the one UDP socket: read what is queued with `recvmmsg` and hand each
//! datagram to the worker that owns its participant, found by remote address (after ICE) or by the
//! ICE username fragment (before); a burst goes to each worker as one message.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use conclave_udp::RecvBatch;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use str0m::net::Protocol;

use super::WorkerInput;
use super::stun;

/// A remote transport address: the same address and port over UDP and TCP are different flows.
pub type Remote = (Protocol, SocketAddr);

/// IPv4 peers on a dual-stack (`[::]`) socket appear as `::ffff:a.b.c.d`; routes, ICE and logs
/// all use the plain IPv4 form.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// Which worker serves a remote address or a server ufrag. Written by workers when a participant
/// is created, connects or goes; read by the receive thread for every datagram.
#[derive(Default)]
pub struct Routes {
    by_addr: RwLock<HashMap<Remote, usize>>,
    by_ufrag: RwLock<HashMap<String, usize>>,
}

impl Routes {
    pub fn add_ufrag(&self, ufrag: &str, worker: usize) {
        self.by_ufrag
            .write()
            .expect("routes lock")
            .insert(ufrag.to_owned(), worker);
    }

    pub fn remove_ufrag(&self, ufrag: &str) {
        self.by_ufrag.write().expect("routes lock").remove(ufrag);
    }

    pub fn add_addr(&self, addr: Remote, worker: usize) {
        self.by_addr
            .write()
            .expect("routes lock")
            .insert(addr, worker);
    }

    pub fn remove_addr(&self, addr: &Remote) {
        self.by_addr.write().expect("routes lock").remove(addr);
    }

    pub(super) fn route(&self, proto: Protocol, from: &SocketAddr, data: &[u8]) -> Option<usize> {
        if let Some(w) = self
            .by_addr
            .read()
            .expect("routes lock")
            .get(&(proto, *from))
        {
            return Some(*w);
        }
        self.route_ufrag(data)
    }

    /// Before ICE completes a datagram is a STUN check naming the server's ufrag.
    fn route_ufrag(&self, data: &[u8]) -> Option<usize> {
        let ufrag = stun::server_ufrag(data)?;
        self.by_ufrag
            .read()
            .expect("routes lock")
            .get(ufrag)
            .copied()
    }
}

/// Datagrams a worker may have waiting before more for it are dropped. Under overload, dropping
/// at the door keeps latency and memory bounded; an unbounded queue turns overload into seconds
/// of delay for everyone on that worker. At 100,000 packets/s this is about 160 ms of backlog.
pub(super) const MAX_BACKLOG: usize = 16_384;

pub(super) fn receive_loop(
    socket: UdpSocket,
    routes: Arc<Routes>,
    workers: Arc<Vec<super::WorkerTx>>,
    backlogs: Arc<Vec<AtomicUsize>>,
) {
    let fd = socket.as_raw_fd();
    let mut dropped: u64 = 0;
    let mut batch = RecvBatch::default();
    // One hand-off per worker and burst: a video frame's packets cost one channel message and at
    // most one wake-up of the worker, not one each.
    let mut parts: Vec<Option<Datagrams>> = (0..workers.len()).map(|_| None).collect();
    loop {
        let n = match batch.recv_wait(fd) {
            Ok(n) => n,
            Err(e) => {
                // ICMP errors from a vanished peer surface here on some systems; keep serving.
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        let at = Instant::now();
        {
            let by_addr = routes.by_addr.read().expect("routes lock");
            for i in 0..n {
                let Some((data, from)) = batch.get(i) else {
                    continue;
                };
                let from = canonical(from);
                let worker = match by_addr.get(&(Protocol::Udp, from)) {
                    Some(w) => *w,
                    None => match routes.route_ufrag(data) {
                        Some(w) => w,
                        None => continue,
                    },
                };
                let part = &mut parts[worker];
                let queued =
                    backlogs[worker].load(Ordering::Relaxed) + part.as_ref().map_or(0, |p| p.len());
                if queued >= MAX_BACKLOG {
                    dropped += 1;
                    if dropped.is_power_of_two() {
                        tracing::warn!(
                            worker,
                            dropped,
                            "media worker overloaded: dropping incoming datagrams"
                        );
                    }
                    continue;
                }
                part.get_or_insert_with(|| Datagrams::new(at))
                    .push(from, data);
            }
        }
        for (worker, part) in parts.iter_mut().enumerate() {
            let Some(full) = part.take() else {
                continue;
            };
            backlogs[worker].fetch_add(full.len(), Ordering::Relaxed);
            if workers[worker].send(WorkerInput::Datagrams(full)).is_err() {
                tracing::error!(worker, "media worker is gone");
            }
        }
    }
}

/// Datagrams from the UDP socket for one worker, received together: one buffer for all their
/// bytes, so a burst costs one allocation.
#[derive(Debug)]
pub(crate) struct Datagrams {
    /// When the burst was read.
    pub(crate) at: Instant,
    bytes: Vec<u8>,
    /// Each datagram's source and where its bytes end in `bytes`.
    items: Vec<(SocketAddr, usize)>,
}

impl Datagrams {
    fn new(at: Instant) -> Self {
        Self {
            at,
            bytes: Vec::new(),
            items: Vec::new(),
        }
    }

    fn push(&mut self, from: SocketAddr, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        self.items.push((from, self.bytes.len()));
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Each datagram's source and bytes, in arrival order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        let mut start = 0;
        self.items.iter().map(move |&(from, end)| {
            let data = &self.bytes[start..end];
            start = end;
            (from, data)
        })
    }
}
