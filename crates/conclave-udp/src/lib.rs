//! Batched UDP I/O (`recvmmsg`/`sendmmsg`, GSO, GRO): one system call moves many datagrams. The
//! media server sends a forwarded packet's copies to all subscribers in one call; the load
//! generator reads a socket's whole queue in one. Also what a media worker waits with: sockets
//! connected to single participants on the shared port, `epoll`, and an `eventfd` wake-up.
//! Linux only; the unsafe code is kept to building the C structures these calls take.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::UdpSocket;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
/// `SO_TIMESTAMPNS` (`SO_TIMESTAMPNS_OLD` in `asm-generic/socket.h`, a native `timespec` where
/// `time_t` is 64 bits): the socket option, and the control message with a datagram's arrival.
const SO_TIMESTAMPNS: libc::c_int = 35;

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
    /// When the kernel queued each message, on a socket with [`enable_timestamps`].
    stamps: Vec<Option<SystemTime>>,
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
            stamps: vec![None; messages],
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
            (self.segs[i], self.stamps[i]) = control(&msg.msg_hdr);
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

    /// When the kernel queued the `i`th message of the last call, on a socket with
    /// [`enable_timestamps`] (wall-clock time: compare with `SystemTime::now()`).
    pub fn queued_at(&self, i: usize) -> Option<SystemTime> {
        if i >= self.count {
            return None;
        }
        self.stamps[i]
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

/// From a message's control messages: the datagram size of `UDP_GRO` (0 without it), and when
/// the kernel queued it (`SO_TIMESTAMPNS`).
fn control(hdr: &libc::msghdr) -> (usize, Option<SystemTime>) {
    let (mut seg, mut stamp) = (0, None);
    // SAFETY: the kernel filled `msg_control` up to `msg_controllen`; the CMSG macros stay
    // within it, a UDP_GRO message carries one c_int and an SO_TIMESTAMPNS one a timespec.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                seg = v.max(0) as usize;
            } else if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == SO_TIMESTAMPNS {
                let t = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                stamp = (t.tv_sec >= 0).then(|| {
                    UNIX_EPOCH
                        + Duration::new(t.tv_sec as u64, t.tv_nsec.clamp(0, 999_999_999) as u32)
                });
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    (seg, stamp)
}

/// Have the kernel note when it queued each datagram (`SO_TIMESTAMPNS`), read back with
/// [`RecvBatch::queued_at`]: how long a datagram waited for a busy reader. Returns whether the
/// kernel agreed.
pub fn enable_timestamps(fd: RawFd) -> bool {
    set_int(fd, libc::SOL_SOCKET, SO_TIMESTAMPNS, 1).is_ok()
}

/// Let the kernel hand over datagrams from one sender as one message where it can (`UDP_GRO`):
/// a burst sent with UDP GSO then arrives whole instead of being split on delivery. Read such a
/// socket with [`RecvBatch::coalescing`]. Returns whether the kernel agreed.
pub fn enable_gro(fd: RawFd) -> bool {
    set_int(fd, SOL_UDP, UDP_GRO, 1).is_ok()
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
        if set_int(fd, libc::SOL_SOCKET, opt, v).is_ok() {
            return;
        }
    }
}

/// The port's first socket, bound like [`bind_shared`] with no peer, after making sure that no
/// other socket holds the port: `SO_REUSEPORT` would otherwise let a second process (a server
/// started twice by mistake) share it silently, each getting part of the other's datagrams.
/// Binding once without the option first fails with `AddrInUse` if anything holds the port; a
/// port of 0 takes the one the kernel picked for that first bind.
pub fn bind_shared_first(addr: SocketAddr) -> io::Result<UdpSocket> {
    let probe = UdpSocket::bind(addr)?;
    let addr = SocketAddr::new(addr.ip(), probe.local_addr()?.port());
    drop(probe);
    bind_shared(addr, None)
}

/// A UDP socket bound to `addr` with `SO_REUSEPORT`, so that sockets connected to single peers
/// can share the port; `remote`: connect it to that peer. The kernel hands a connected socket
/// the datagrams from its peer, and the rest to the unconnected one.
pub fn bind_shared(addr: SocketAddr, remote: Option<SocketAddr>) -> io::Result<UdpSocket> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2); the descriptor is owned by the UdpSocket at once.
    let fd = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nothing else owns.
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };
    set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    if addr.is_ipv6() {
        // Dual-stack, like std's `[::]` sockets on Linux.
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)?;
    }
    // SAFETY: sockaddr_storage is plain old data; `to_storage` fills it for `addr`.
    let mut st: libc::sockaddr_storage = unsafe { zeroed() };
    let len = to_storage(addr, &mut st);
    // SAFETY: `st` holds a valid address of length `len`.
    if unsafe { libc::bind(fd, (&st as *const libc::sockaddr_storage).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if let Some(remote) = remote {
        sock.connect(remote)?;
    }
    Ok(sock)
}

/// Set an integer socket option.
fn set_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// An `epoll` instance: a thread waits for any of many sockets (and a [`Wake`]) at once.
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain epoll_create1; the descriptor is owned at once.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is fresh and ours.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Report `fd` readable as `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open; `ev` lives across the call.
        if unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stop reporting `fd` (closing it does too).
    pub fn remove(&self, fd: RawFd) {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL.
        unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
    }

    /// Wait up to `timeout` for readable descriptors; their tokens go to `ready`.
    pub fn wait(&self, ready: &mut Vec<u64>, timeout: std::time::Duration) {
        ready.clear();
        // SAFETY: plain old data, filled by the kernel up to the count it returns.
        let mut events: [libc::epoll_event; BATCH] = unsafe { zeroed() };
        // Nanosecond timeouts (epoll_pwait2), so timers are not rounded up to milliseconds.
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // A kernel without epoll_pwait2 says so once; later waits go straight to epoll_wait.
        static NO_PWAIT2: AtomicBool = AtomicBool::new(false);
        let mut n = -1;
        if !NO_PWAIT2.load(Ordering::Relaxed) {
            // SAFETY: `events` has room for BATCH entries; `ts` lives across the call; no sigmask.
            n = unsafe {
                libc::epoll_pwait2(
                    self.fd.as_raw_fd(),
                    events.as_mut_ptr(),
                    BATCH as libc::c_int,
                    &ts,
                    std::ptr::null(),
                )
            };
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                NO_PWAIT2.store(true, Ordering::Relaxed);
            }
        }
        if NO_PWAIT2.load(Ordering::Relaxed) {
            // A kernel before 5.11: millisecond timeouts, rounded up.
            let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            // SAFETY: as above.
            n = unsafe {
                libc::epoll_wait(
                    self.fd.as_raw_fd(),
                    events.as_mut_ptr(),
                    BATCH as libc::c_int,
                    ms,
                )
            };
        }
        for ev in events.iter().take(n.max(0) as usize) {
            ready.push(ev.u64);
        }
    }
}

/// Wakes a thread waiting in an [`Epoll`] (an `eventfd` in it), only when it says it sleeps:
/// a busy thread costs its senders no system call.
pub struct Wake {
    fd: OwnedFd,
    sleeping: AtomicBool,
}

impl Wake {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain eventfd; the descriptor is owned at once.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: `fd` is fresh and ours.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            sleeping: AtomicBool::new(false),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// After queueing work for the thread: wake it if it sleeps.
    pub fn wake(&self) {
        if self.sleeping.load(Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our eventfd.
            unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// The thread is about to wait: from now on senders wake it. It must look at its queue once
    /// more after this, then wait.
    pub fn sleep(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
    }

    /// The thread is awake: clear the flag and any pending wake-up.
    pub fn awake(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; EAGAIN when nothing is pending.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
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
mod tests;
