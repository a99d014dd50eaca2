//! ICE-TCP: WebRTC over TCP for networks that block UDP (RFC 6544, passive candidates only: the
//! browser connects to us). Each connection carries the same packets a UDP flow would, framed
//! with a 2-byte length (RFC 4571). Frames go to the owning worker exactly like datagrams; what a
//! worker transmits over TCP goes back through [`TcpConns`].
//!
//! Bounds: frames longer than [`MAX_FRAME`] or empty, a first frame that names no participant's
//! ICE ufrag, or a later one that no longer routes, close that connection (and only that one).
//! Each connection has a fixed outgoing queue; when the peer does not read fast enough, packets
//! are dropped as UDP would lose them, so a slow reader cannot grow the server's memory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use str0m::net::Protocol;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use super::WorkerInput;
use super::udp::{MAX_BACKLOG, Routes, canonical};

/// Largest frame accepted: media packets are MTU-sized (the UDP path reads 2,048 bytes).
pub(super) const MAX_FRAME: usize = 2048;
/// Packets queued for one connection before more are dropped (~1 s of a 1 Mbit/s stream).
const SEND_QUEUE: usize = 256;
/// Open connections at most; more are closed at once.
const MAX_CONNECTIONS: usize = 4096;
/// A connection must name a participant (a STUN binding request) this soon.
const FIRST_FRAME_WITHIN: Duration = Duration::from_secs(10);

/// Outgoing queues of the open connections, by remote address.
#[derive(Default)]
pub struct TcpConns {
    writers: RwLock<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>,
    open: AtomicUsize,
}

impl TcpConns {
    /// Queue one packet for the connection from `to`. False if there is none or it is full.
    pub fn send(&self, to: SocketAddr, data: &[u8]) -> bool {
        let writers = self.writers.read().expect("tcp writers lock");
        writers
            .get(&canonical(to))
            .is_some_and(|w| w.try_send(data.to_vec()).is_ok())
    }
}

/// Accept connections forever (on the signaling runtime; the media workers stay plain threads).
pub(super) async fn accept_loop(
    listener: TcpListener,
    routes: Arc<Routes>,
    workers: Arc<Vec<super::WorkerTx>>,
    backlogs: Arc<Vec<AtomicUsize>>,
    conns: Arc<TcpConns>,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "ICE-TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if conns.open.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            conns.open.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (routes, workers, backlogs, conns) = (
            routes.clone(),
            workers.clone(),
            backlogs.clone(),
            conns.clone(),
        );
        tokio::spawn(async move {
            let remote = canonical(remote);
            let (tx, rx) = mpsc::channel(SEND_QUEUE);
            conns
                .writers
                .write()
                .expect("tcp writers lock")
                .insert(remote, tx);
            let end = connection(stream, remote, rx, &routes, &workers, &backlogs).await;
            tracing::debug!(reason = end, "ICE-TCP connection closed");
            conns
                .writers
                .write()
                .expect("tcp writers lock")
                .remove(&remote);
            conns.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Serve one connection until it ends; returns why, for the debug log.
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    routes: &Routes,
    workers: &[super::WorkerTx],
    backlogs: &[AtomicUsize],
) -> &'static str {
    let (rd, mut wr) = stream.into_split();
    let codec = LengthDelimitedCodec::builder()
        .length_field_length(2)
        .max_frame_length(MAX_FRAME)
        .new_codec();
    let mut frames = FramedRead::new(rd, codec);
    let first_deadline = tokio::time::Instant::now() + FIRST_FRAME_WITHIN;
    let mut routed_once = false;
    let mut out = Vec::new();
    loop {
        tokio::select! {
            frame = frames.next() => {
                let data = match frame {
                    None => return "closed by peer",
                    Some(Err(_)) => return "oversized frame or read error",
                    Some(Ok(d)) => d,
                };
                if data.is_empty() {
                    return "empty frame";
                }
                let Some(worker) = routes.route(Protocol::Tcp, &remote, &data) else {
                    return "frame for no participant";
                };
                routed_once = true;
                if backlogs[worker].load(Ordering::Relaxed) >= MAX_BACKLOG {
                    continue;
                }
                backlogs[worker].fetch_add(1, Ordering::Relaxed);
                let input = WorkerInput::Datagram {
                    proto: Protocol::Tcp,
                    from: remote,
                    data: data.to_vec(),
                    at: Instant::now(),
                };
                if workers[worker].send(input).is_err() {
                    return "worker gone";
                }
            }
            packet = outgoing.recv() => {
                let Some(packet) = packet else { return "closed" };
                // Batch what is already queued into one write.
                out.clear();
                push_frame(&mut out, &packet);
                while out.len() < 64 * 1024 {
                    match outgoing.try_recv() {
                        Ok(p) => push_frame(&mut out, &p),
                        Err(_) => break,
                    }
                }
                if wr.write_all(&out).await.is_err() {
                    return "write error";
                }
            }
            _ = tokio::time::sleep_until(first_deadline), if !routed_once => {
                return "no ICE request in time";
            }
        }
    }
}

/// RFC 4571 framing: a 2-byte big-endian length, then the packet.
fn push_frame(out: &mut Vec<u8>, packet: &[u8]) {
    // Workers never produce packets near 64 KiB; a longer one would be a bug, not input.
    let Ok(len) = u16::try_from(packet.len()) else {
        return;
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_a_big_endian_length() {
        let mut out = Vec::new();
        push_frame(&mut out, &[1, 2, 3]);
        push_frame(&mut out, &[]);
        assert_eq!(out, [0, 3, 1, 2, 3, 0, 0]);
    }
}
