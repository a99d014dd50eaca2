//! The receive side of the one UDP socket: read datagrams and hand each to the worker that owns its
//! participant, found by remote address (after ICE) or by the ICE username fragment (before).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
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
    workers: Arc<Vec<Sender<WorkerInput>>>,
    backlogs: Arc<Vec<AtomicUsize>>,
) {
    let mut dropped: u64 = 0;
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(v) => v,
            Err(e) => {
                // ICMP errors from a vanished peer surface here on some systems; keep serving.
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        let data = &buf[..n];
        let from = canonical(from);
        let Some(worker) = routes.route(Protocol::Udp, &from, data) else {
            continue;
        };
        if backlogs[worker].load(Ordering::Relaxed) >= MAX_BACKLOG {
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
        backlogs[worker].fetch_add(1, Ordering::Relaxed);
        let input = WorkerInput::Datagram {
            proto: Protocol::Udp,
            from,
            data: data.to_vec(),
            at: Instant::now(),
        };
        if workers[worker].send(input).is_err() {
            tracing::error!(worker, "media worker is gone");
        }
    }
}
