//! The machine's own limit, measured beside a server: what sending alone costs the kernel.
//!
//! A forwarding server's cheapest possible work per packet is handing an already encrypted
//! datagram to the kernel. This measures that on the same machine, the same hour: one thread
//! sends datagrams shaped like a 1 → N video frame (a GSO message of `segments` datagrams to
//! each of `destinations` sockets, as Conclave's worker sends them) while another takes them
//! off the receiving sockets with GRO, and the sender's CPU time per datagram is the ceiling.
//! On loopback the delivery into the receiving sockets runs inside the send call, on the
//! sender's account, as it does for a server under the load generator. The machine's speed
//! changes from hour to hour (a virtual machine), and this figure with it, more than a server's
//! own work does: beside a server's packets per CPU-second it tells how far the server is from
//! what the kernel allows that hour, not how to correct figures taken in different hours.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use serde::Serialize;

/// What one measurement found.
#[derive(Debug, Clone, Serialize)]
pub struct CeilingReport {
    pub destinations: usize,
    pub segments: usize,
    pub datagram_bytes: usize,
    /// Datagrams the sender handed to the kernel.
    pub sent: u64,
    /// Datagrams the receiving sockets got.
    pub received: u64,
    /// The sending thread's CPU time (user and system, with loopback delivery).
    pub sender_cpu_s: f64,
    pub packets_per_cpu_s: f64,
    pub cpu_us_per_packet: f64,
}

/// The shape of the traffic and how long to send it.
#[derive(Debug, Clone)]
pub struct CeilingConfig {
    pub bind: IpAddr,
    pub destinations: usize,
    pub segments: usize,
    pub datagram_bytes: usize,
    pub duration: Duration,
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

pub fn run(cfg: &CeilingConfig) -> io::Result<CeilingReport> {
    let destinations = cfg.destinations.max(1);
    let segments = cfg.segments.clamp(1, 64);
    let mut receivers = Vec::with_capacity(destinations);
    let mut addrs = Vec::with_capacity(destinations);
    for _ in 0..destinations {
        let s = UdpSocket::bind(SocketAddr::new(cfg.bind, 0))?;
        s.set_nonblocking(true)?;
        conclave_udp::enable_gro(s.as_raw_fd());
        conclave_udp::set_recv_buffer(s.as_raw_fd(), 4 << 20);
        addrs.push(s.local_addr()?);
        receivers.push(mio::net::UdpSocket::from_std(s));
    }
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (received, done) = (received.clone(), done.clone());
        std::thread::spawn(move || receive(receivers, &received, &done))
    };

    let sender = UdpSocket::bind(SocketAddr::new(cfg.bind, 0))?;
    let payload = vec![0xa5u8; cfg.datagram_bytes.clamp(1, 1400)];
    let packets: Vec<(SocketAddr, &[u8])> = addrs
        .iter()
        .flat_map(|a| std::iter::repeat_n((*a, &payload[..]), segments))
        .collect();
    let round = packets.len() as u64;
    let mut sent = 0u64;
    let start = Instant::now();
    let cpu0 = thread_cpu();
    let result = loop {
        if start.elapsed() >= cfg.duration {
            break Ok(());
        }
        // Clocked by the receiver: at most one round in flight, so no receiving socket
        // overflows (a dropped datagram costs less than a delivered one and would flatter the
        // figure). The wait sleeps, which costs this thread nothing.
        while sent > received.load(Ordering::Relaxed) + round && start.elapsed() < cfg.duration {
            std::thread::sleep(Duration::from_micros(50));
        }
        let (n, err) = conclave_udp::send_batch_gso(sender.as_raw_fd(), &packets);
        sent += n as u64;
        if let Some(e) = err.filter(|e| e.kind() != io::ErrorKind::WouldBlock) {
            break Err(e);
        }
    };
    let cpu = thread_cpu().saturating_sub(cpu0).as_secs_f64();
    // Let the reader take what is still queued.
    let settle = Instant::now();
    while received.load(Ordering::Relaxed) < sent && settle.elapsed() < Duration::from_millis(500) {
        std::thread::sleep(Duration::from_millis(5));
    }
    done.store(true, Ordering::Relaxed);
    reader
        .join()
        .map_err(|_| io::Error::other("receiver thread panicked"))??;
    result?;
    let per_s = if cpu > 0.0 { sent as f64 / cpu } else { 0.0 };
    Ok(CeilingReport {
        destinations,
        segments,
        datagram_bytes: payload.len(),
        sent,
        received: received.load(Ordering::Relaxed),
        sender_cpu_s: cpu,
        packets_per_cpu_s: per_s,
        cpu_us_per_packet: if sent > 0 {
            cpu * 1e6 / sent as f64
        } else {
            0.0
        },
    })
}

fn receive(
    mut sockets: Vec<mio::net::UdpSocket>,
    received: &AtomicU64,
    done: &AtomicBool,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    for (i, s) in sockets.iter_mut().enumerate() {
        poll.registry().register(s, Token(i), Interest::READABLE)?;
    }
    let mut events = Events::with_capacity(1024);
    let mut batch = conclave_udp::RecvBatch::coalescing();
    while !done.load(Ordering::Relaxed) {
        poll.poll(&mut events, Some(Duration::from_millis(20)))?;
        for ev in &events {
            let fd = sockets[ev.token().0].as_raw_fd();
            // Edge-triggered: drain the socket.
            loop {
                let n = batch.recv(fd)?;
                let mut count = 0;
                for i in 0..n {
                    count += batch.datagrams(i).map_or(0, |(d, _)| d.count() as u64);
                }
                received.fetch_add(count, Ordering::Relaxed);
                if n < batch.capacity() {
                    break;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_and_counts_over_loopback() {
        let report = run(&CeilingConfig {
            bind: "127.0.0.1".parse().unwrap(),
            destinations: 4,
            segments: 3,
            datagram_bytes: 1200,
            duration: Duration::from_millis(200),
        })
        .unwrap();
        assert!(report.sent > 0);
        assert_eq!(
            report.received, report.sent,
            "loopback delivered everything"
        );
        assert!(report.packets_per_cpu_s > 0.0);
    }
}
