//! A media worker's sockets: the socket connected to each participant's address, read by the
//! worker itself (video that waited too long there is dropped unread), and the batched send of
//! what a turn of the loop produced (`sendmmsg`, UDP GSO for a receiver's consecutive packets).

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use str0m::net::Protocol;

use super::udp::Remote;
use super::worker::{WAKE_TOKEN, Worker};

/// Video that waited longer than this in a participant's socket is dropped unread: the
/// worker is behind, and forwarding video that late costs the time it needs to catch up (the
/// publisher's retransmission or next keyframe repairs the gap). A socket's buffer
/// (`PARTICIPANT_RECV_BUFFER`) holds seconds of one publisher's media: without the limit, a room
/// at the limit of its worker's core held packets up to 9 s and grew to 2 GB. Audio is always
/// read: a server stalled for over a second must not cut a sentence.
const MAX_INPUT_AGE: Duration = Duration::from_millis(250);

impl Worker {
    /// Give a participant's UDP address a socket of its own on the shared port, read by this
    /// worker. Without one (the system refused) its datagrams keep coming through the receive
    /// thread.
    pub(super) fn connect_remote(&mut self, remote: Remote) {
        if remote.0 != Protocol::Udp || self.conn_by_remote.contains_key(&remote) {
            return;
        }
        let Ok(local) = self.socket.local_addr() else {
            return;
        };
        let to = if self.dual_stack {
            to_v6(remote.1)
        } else {
            remote.1
        };
        let sock = match conclave_udp::bind_shared(local, Some(to)) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "no connected socket for a participant");
                return;
            }
        };
        if sock.set_nonblocking(true).is_err() {
            return;
        }
        conclave_udp::set_recv_buffer(sock.as_raw_fd(), super::PARTICIPANT_RECV_BUFFER);
        conclave_udp::enable_timestamps(sock.as_raw_fd());
        let slot = match self.conn_socks.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.conn_socks.push(None);
                self.conn_socks.len() - 1
            }
        };
        if self.epoll.add(sock.as_raw_fd(), slot as u64).is_err() {
            return;
        }
        self.conn_socks[slot] = Some(sock);
        self.conn_by_remote.insert(remote, slot);
    }

    pub(super) fn disconnect_remote(&mut self, remote: &Remote) {
        if let Some(slot) = self.conn_by_remote.remove(remote)
            && let Some(sock) = self.conn_socks[slot].take()
        {
            self.epoll.remove(sock.as_raw_fd());
        }
    }

    /// Read every ready connected socket to its end.
    pub(super) fn read_connected(&mut self) {
        let Some(mut batch) = self.rbatch.take() else {
            return;
        };
        let ready = std::mem::take(&mut self.ready);
        for &token in &ready {
            if token == WAKE_TOKEN {
                continue;
            }
            let Some(Some(sock)) = self.conn_socks.get(token as usize) else {
                continue;
            };
            let fd = sock.as_raw_fd();
            loop {
                let n = batch.recv(fd).unwrap_or(0);
                let at = Instant::now();
                let wall = SystemTime::now();
                for i in 0..n {
                    let late = batch
                        .queued_at(i)
                        .and_then(|t| wall.duration_since(t).ok())
                        .is_some_and(|waited| waited > MAX_INPUT_AGE);
                    if let Some((data, from)) = batch.get(i) {
                        let from = super::udp::canonical(from);
                        if late && self.late_video(Protocol::Udp, from, data) {
                            self.dropped_late();
                            continue;
                        }
                        self.datagram(Protocol::Udp, from, data, at);
                    }
                }
                if n < batch.capacity() {
                    break;
                }
            }
        }
        self.ready = ready;
        self.rbatch = Some(batch);
    }

    /// Whether a datagram is a video RTP packet (or its retransmission) of a known
    /// participant. Only those are dropped when late: audio is cheap and a gap in it is heard,
    /// RTCP carries the feedback that recovers from the drop (NACK, PLI), and a lost STUN or DTLS
    /// datagram costs a join a retransmission timeout.
    pub(super) fn late_video(&self, proto: Protocol, from: SocketAddr, data: &[u8]) -> bool {
        // RTP by RFC 7983 (first byte 128-191) and not RTCP (packet types 192-223, RFC 5761).
        let (Some(&first), Some(&second)) = (data.first(), data.get(1)) else {
            return false;
        };
        if !(128..=191).contains(&first) || (192..=223).contains(&second) {
            return false;
        }
        let Some((room, pid)) = self.by_addr.get(&(proto, from)) else {
            return false;
        };
        let Some(peer) = self.rooms.get(room).and_then(|h| h.peers.get(pid)) else {
            return false;
        };
        peer.is_video_pt((second & 0x7f).into())
    }

    pub(super) fn dropped_late(&self) {
        let dropped = self.metrics.datagrams_dropped_late.inc() + 1;
        if dropped.is_power_of_two() {
            tracing::warn!(
                worker = self.index,
                dropped,
                "media worker overloaded: dropping video that waited too long"
            );
        }
    }

    pub(super) fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let fd = self.socket.as_raw_fd();
        let dual_stack = self.dual_stack;
        let mut packets: Vec<(SocketAddr, &[u8])> = Vec::with_capacity(self.out.len());
        for t in &self.out {
            match t.proto {
                Protocol::Udp => packets.push((
                    if dual_stack {
                        to_v6(t.destination)
                    } else {
                        t.destination
                    },
                    &t.contents[..],
                )),
                // ICE-TCP: only to a connection the browser opened (checks str0m would send
                // towards active candidates are dropped, as a passive endpoint cannot make them).
                _ => {
                    self.tcp.send(t.destination, &t.contents);
                }
            }
        }
        let mut sent = 0;
        if self.gso {
            // GSO needs a destination's datagrams adjacent; the sort is stable, keeping their order.
            packets.sort_by_key(|p| p.0);
            let (n, err) = conclave_udp::send_batch_gso(fd, &packets);
            sent = n;
            if let Some(e) = err.filter(|e| e.kind() != std::io::ErrorKind::WouldBlock) {
                tracing::info!(error = %e, "UDP GSO unavailable, sending datagrams one by one");
                self.gso = false;
            }
        }
        if !self.gso {
            let rest = &packets[sent..];
            sent += conclave_udp::send_batch(fd, rest.iter().copied());
        }
        if sent < packets.len() {
            tracing::debug!(dropped = packets.len() - sent, "udp send buffer full");
        }
        drop(packets);
        // The buffers go back to str0m for the next packets it encrypts on this thread,
        // sparing an allocation and a free per datagram.
        for t in self.out.drain(..) {
            str0m::net::recycle_datagram(t.contents);
        }
    }
}

/// An IPv4 address as a dual-stack socket needs it.
fn to_v6(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    }
}
