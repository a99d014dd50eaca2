//! Batched UDP I/O (`recvmmsg`/`sendmmsg`): one system call moves many datagrams. The media
//! server sends a forwarded packet's copies to all subscribers in one call; the load generator
//! reads a socket's whole queue in one. Linux only; the unsafe code is kept to building
//! the C structures these calls take.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per system call.
pub const BATCH: usize = 64;
/// Larger than any datagram either server sends (MTU-sized).
const BUF: usize = 2048;
/// Messages per call on a coalescing socket: each may carry up to 64 datagrams.
const GRO_BATCH: usize = 16;
/// A coalesced message holds at most one IP datagram's worth of payload.
const GRO_BUF: usize = 65_535;
/// `UDP_GRO` from `linux/udp.h`: the socket option, and the control message with the size of
/// the datagrams coalesced into one message.
const UDP_GRO: libc::c_int = 104;

/// Receive buffers reused across calls: no allocation per datagram.
pub struct RecvBatch {
    buf: Vec<u8>,
    slot: usize,
    addrs: Vec<libc::sockaddr_storage>,
    lens: Vec<usize>,
    /// Control-message space per message (aligned for `cmsghdr`).
    ctrl: Vec<[u64; 8]>,
    /// Size of the datagrams coalesced into each message; 0 when it holds one.
    segs: Vec<usize>,
    count: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new(BATCH, BUF)
    }
}

impl RecvBatch {
    fn new(messages: usize, slot: usize) -> Self {
        Self {
            buf: vec![0; messages * slot],
            slot,
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
            addrs: vec![unsafe { zeroed() }; messages],
            lens: vec![0; messages],
            ctrl: vec![[0; 8]; messages],
            segs: vec![0; messages],
            count: 0,
        }
    }

    /// Buffers for a socket with [`enable_gro`]: each message may hold many datagrams.
    pub fn coalescing() -> Self {
        Self::new(GRO_BATCH, GRO_BUF)
    }

    /// Messages one call can return: fewer came back only if the queue was emptied.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Read up to a batch of queued messages without blocking; `Ok(0)` when none are queued.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.recv_flags(fd, libc::MSG_DONTWAIT)
    }

    /// Wait for a datagram on a blocking socket, then take what else is queued, up to
    /// [`BATCH`]: one system call (and one wake-up) per burst instead of one per datagram.
    pub fn recv_wait(&mut self, fd: RawFd) -> io::Result<usize> {
        self.recv_flags(fd, libc::MSG_WAITFORONE)
    }

    fn recv_flags(&mut self, fd: RawFd, flags: libc::c_int) -> io::Result<usize> {
        let messages = self.lens.len();
        debug_assert!(messages <= BATCH);
        // SAFETY: iovec and mmsghdr are plain old data; every pointer set below points into
        // `self`, which outlives the call, with the lengths given.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (i, chunk) in self
            .buf
            .chunks_exact_mut(self.slot)
            .enumerate()
            .take(messages)
        {
            iovs[i].iov_base = chunk.as_mut_ptr().cast();
            iovs[i].iov_len = self.slot;
            let hdr = &mut msgs[i].msg_hdr;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = self.ctrl[i].as_mut_ptr().cast();
            hdr.msg_controllen = size_of::<[u64; 8]>() as _;
        }
        // SAFETY: `msgs` holds `messages` initialised headers (see above).
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                messages as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            self.count = 0;
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        for (i, msg) in msgs[..n].iter().enumerate() {
            self.lens[i] = (msg.msg_len as usize).min(self.slot);
            self.segs[i] = gro_segment(&msg.msg_hdr);
        }
        self.count = n;
        Ok(n)
    }

    /// The `i`th datagram of the last [`RecvBatch::recv`] and its source (on a coalescing
    /// socket: the whole message, see [`RecvBatch::datagrams`]).
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.count {
            return None;
        }
        let addr = from_storage(&self.addrs[i])?;
        let start = i * self.slot;
        Some((&self.buf[start..start + self.lens[i]], addr))
    }

    /// The datagrams of the `i`th message and their source: one, or on a socket with
    /// [`enable_gro`] all that the kernel coalesced (same source, equal sizes but the last).
    pub fn datagrams(&self, i: usize) -> Option<(std::slice::Chunks<'_, u8>, SocketAddr)> {
        let (data, addr) = self.get(i)?;
        let seg = match self.segs[i] {
            0 => data.len().max(1),
            s => s,
        };
        Some((data.chunks(seg), addr))
    }
}

/// The datagram size from a message's `UDP_GRO` control message, 0 if it has none.
fn gro_segment(hdr: &libc::msghdr) -> usize {
    // SAFETY: the kernel filled `msg_control` up to `msg_controllen`; the CMSG macros stay
    // within it, and a UDP_GRO message carries one c_int.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                return v.max(0) as usize;
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    0
}

/// Let the kernel hand over datagrams from one sender as one message where it can (`UDP_GRO`):
/// a burst sent with UDP GSO then arrives whole instead of being split on delivery. Read such a
/// socket with [`RecvBatch::coalescing`]. Returns whether the kernel agreed.
pub fn enable_gro(fd: RawFd) -> bool {
    set_int(fd, SOL_UDP, UDP_GRO, 1)
}

/// Send datagrams with as few system calls as possible. Returns how many were sent; a full
/// socket buffer drops the rest (as a real network would).
pub fn send_batch<'a>(
    fd: RawFd,
    packets: impl ExactSizeIterator<Item = (SocketAddr, &'a [u8])>,
) -> usize {
    let mut sent = 0;
    let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
    let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    let mut n = 0;
    let total = packets.len();
    let mut iter = packets.peekable();
    while sent < total {
        while n < BATCH {
            let Some((dest, data)) = iter.next() else {
                break;
            };
            let len = to_storage(dest, &mut addrs[n]);
            iovs[n].iov_base = data.as_ptr() as *mut libc::c_void;
            iovs[n].iov_len = data.len();
            let hdr = &mut msgs[n].msg_hdr;
            hdr.msg_name = (&mut addrs[n] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = len;
            hdr.msg_iov = &mut iovs[n];
            hdr.msg_iovlen = 1;
            n += 1;
        }
        if n == 0 {
            break;
        }
        // SAFETY: the first `n` headers point at live addresses and at payload slices borrowed
        // for the duration of this call.
        let r = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as libc::c_uint, 0) };
        if r <= 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Skip what cannot be sent now rather than spin.
            return sent;
        }
        let r = r as usize;
        sent += r;
        // Keep the unsent tail (partial send) for the next call.
        if r < n {
            for j in r..n {
                addrs.swap(j - r, j);
                iovs.swap(j - r, j);
                msgs.swap(j - r, j);
            }
            n -= r;
            for j in 0..n {
                msgs[j].msg_hdr.msg_name = (&mut addrs[j] as *mut libc::sockaddr_storage).cast();
                msgs[j].msg_hdr.msg_iov = &mut iovs[j];
            }
        } else {
            n = 0;
        }
    }
    sent
}

/// The kernel's limit on segments in one GSO send (`UDP_MAX_SEGMENTS`).
const MAX_SEGMENTS: usize = 64;
/// One GSO send carries at most one IP datagram's worth of payload.
const MAX_GSO_BYTES: usize = 65_000;
/// Payload slices per [`send_batch_gso`] system call.
const IOV_CAP: usize = 1024;
/// `SOL_UDP`/`UDP_SEGMENT` from `linux/udp.h`.
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;

/// Room for one `cmsghdr` carrying a `u16`, aligned as the kernel requires.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct SegmentCmsg([u8; 32]);

/// Like [`send_batch`], and consecutive datagrams to one destination travel as one UDP GSO message
/// when their sizes allow (all but the last of equal size): the kernel walks its send path once
/// for the group and splits it late. Returns how many datagrams were sent and, if a call failed,
/// why (`EIO` or `EINVAL` mean the path cannot do GSO: fall back to [`send_batch`] for the rest).
pub fn send_batch_gso(fd: RawFd, packets: &[(SocketAddr, &[u8])]) -> (usize, Option<io::Error>) {
    let mut sent = 0;
    let mut i = 0;
    // SAFETY: plain old data, zero is a valid value for each.
    let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
    let mut iovs: [libc::iovec; IOV_CAP] = unsafe { zeroed() };
    let mut ctrl = [SegmentCmsg([0; 32]); BATCH];
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    let mut counts = [0usize; BATCH];
    while i < packets.len() {
        let (mut nmsg, mut niov) = (0, 0);
        while nmsg < BATCH && i < packets.len() {
            let (dest, first) = packets[i];
            let seg = first.len();
            let (mut k, mut bytes) = (1, seg);
            while i + k < packets.len() && k < MAX_SEGMENTS {
                let (d, p) = packets[i + k];
                let prev_full = packets[i + k - 1].1.len() == seg;
                if d != dest || !prev_full || p.len() > seg || bytes + p.len() > MAX_GSO_BYTES {
                    break;
                }
                bytes += p.len();
                k += 1;
            }
            if niov + k > IOV_CAP {
                break;
            }
            for (j, (_, p)) in packets[i..i + k].iter().enumerate() {
                iovs[niov + j].iov_base = p.as_ptr() as *mut libc::c_void;
                iovs[niov + j].iov_len = p.len();
            }
            let namelen = to_storage(dest, &mut addrs[nmsg]);
            let hdr = &mut msgs[nmsg].msg_hdr;
            hdr.msg_name = (&mut addrs[nmsg] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = namelen;
            hdr.msg_iov = &mut iovs[niov];
            hdr.msg_iovlen = k;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            if k > 1 {
                hdr.msg_control = ctrl[nmsg].0.as_mut_ptr().cast();
                // SAFETY: the buffer is aligned for cmsghdr and holds CMSG_SPACE(2) bytes.
                unsafe {
                    hdr.msg_controllen = libc::CMSG_SPACE(size_of::<u16>() as u32) as usize;
                    let c = libc::CMSG_FIRSTHDR(hdr);
                    (*c).cmsg_level = SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg as u16);
                }
            }
            counts[nmsg] = k;
            niov += k;
            nmsg += 1;
            i += k;
        }
        let mut off = 0;
        while off < nmsg {
            // SAFETY: messages off..nmsg point at live addresses, iovecs, control buffers and
            // payload slices borrowed for this call.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    msgs[off..].as_mut_ptr(),
                    (nmsg - off) as libc::c_uint,
                    0,
                )
            };
            if r <= 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return (sent, Some(e));
            }
            let r = r as usize;
            sent += counts[off..off + r].iter().sum::<usize>();
            off += r;
        }
    }
    (sent, None)
}

/// Ask for a receive buffer larger than the default so a short stall of the generator does not
/// drop datagrams; FORCE works for root past `rmem_max`, else fall back to the capped option.
pub fn set_recv_buffer(fd: RawFd, bytes: usize) {
    let v = bytes as libc::c_int;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        if set_int(fd, libc::SOL_SOCKET, opt, v) {
            return;
        }
    }
}

/// Set an integer socket option; whether the kernel accepted it.
fn set_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> bool {
    // SAFETY: passes a pointer to a live c_int and its size.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

fn from_storage(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large enough for.
            let a: &libc::sockaddr_in = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(s as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn to_storage(addr: SocketAddr, s: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in.
            let a: &mut libc::sockaddr_in =
                unsafe { &mut *(s as *mut _ as *mut libc::sockaddr_in) };
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_port = v4.port().to_be();
            a.sin_addr = libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let a: &mut libc::sockaddr_in6 =
                unsafe { &mut *(s as *mut _ as *mut libc::sockaddr_in6) };
            a.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            a.sin6_port = v6.port().to_be();
            a.sin6_flowinfo = v6.flowinfo();
            a.sin6_addr = libc::in6_addr {
                s6_addr: v6.ip().octets(),
            };
            a.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn batch_round_trip() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = b.local_addr().unwrap();
        let payloads: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 10 + i as usize]).collect();
        let sent = send_batch(a.as_raw_fd(), payloads.iter().map(|p| (to, p.as_slice())));
        assert_eq!(sent, 100);
        let mut batch = RecvBatch::default();
        let mut got = Vec::new();
        while got.len() < 100 {
            let n = batch.recv(b.as_raw_fd()).unwrap();
            for i in 0..n {
                let (data, from) = batch.get(i).unwrap();
                assert_eq!(from, a.local_addr().unwrap());
                got.push(data.to_vec());
            }
        }
        assert_eq!(got, payloads);
        assert_eq!(batch.recv(b.as_raw_fd()).unwrap(), 0);
    }

    #[test]
    fn gso_groups_arrive_as_separate_datagrams() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (tb, tc) = (b.local_addr().unwrap(), c.local_addr().unwrap());
        // To b: three full segments and a short last one (one GSO message); to c: mixed sizes.
        let full = vec![1u8; 1000];
        let short = vec![2u8; 300];
        let odd = vec![3u8; 1100];
        let packets: Vec<(SocketAddr, &[u8])> = vec![
            (tb, &full),
            (tb, &full),
            (tb, &full),
            (tb, &short),
            (tc, &short),
            (tc, &odd),
            (tc, &full),
        ];
        let (sent, err) = send_batch_gso(a.as_raw_fd(), &packets);
        if let Some(e) = err {
            // A kernel without UDP GSO: nothing to test here.
            eprintln!("no GSO: {e}");
            return;
        }
        assert_eq!(sent, 7);
        let mut batch = RecvBatch::default();
        let mut lens = |s: &UdpSocket, want: usize| {
            let mut got = Vec::new();
            while got.len() < want {
                let n = batch.recv(s.as_raw_fd()).unwrap();
                got.extend((0..n).map(|i| batch.get(i).unwrap().0.len()));
            }
            got
        };
        assert_eq!(lens(&b, 4), vec![1000, 1000, 1000, 300]);
        assert_eq!(lens(&c, 3), vec![300, 1100, 1000]);
    }

    #[test]
    fn a_coalescing_socket_gets_a_gso_burst_as_one_message() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        if !enable_gro(b.as_raw_fd()) {
            eprintln!("no UDP GRO");
            return;
        }
        let tb = b.local_addr().unwrap();
        let full = vec![1u8; 1000];
        let short = vec![2u8; 300];
        let packets: Vec<(SocketAddr, &[u8])> = vec![(tb, &full), (tb, &full), (tb, &short)];
        let (sent, err) = send_batch_gso(a.as_raw_fd(), &packets);
        if let Some(e) = err {
            eprintln!("no GSO: {e}");
            return;
        }
        assert_eq!(sent, 3);
        // A lone datagram afterwards arrives as a message of its own.
        a.send_to(&[7u8; 50], tb).unwrap();
        let mut batch = RecvBatch::coalescing();
        let mut got = Vec::new();
        while got.len() < 4 {
            let n = batch.recv(b.as_raw_fd()).unwrap();
            for i in 0..n {
                let (datagrams, from) = batch.datagrams(i).unwrap();
                assert_eq!(from, a.local_addr().unwrap());
                got.extend(datagrams.map(|d| (d.len(), d[0])));
            }
        }
        assert_eq!(got, vec![(1000, 1), (1000, 1), (300, 2), (50, 7)]);
    }
}
