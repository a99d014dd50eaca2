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
fn a_timestamped_socket_tells_how_long_a_datagram_waited() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert!(enable_timestamps(b.as_raw_fd()));
    let mut batch = RecvBatch::default();
    // The kernel turns arrival stamping on a moment after the first socket asks for it
    // (until then a datagram is stamped when read), so the first tries may see no wait.
    let mut waits = Vec::new();
    for _ in 0..10 {
        a.send_to(b"late", b.local_addr().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut n = 0;
        while n == 0 {
            n = batch.recv(b.as_raw_fd()).unwrap();
        }
        assert_eq!(batch.get(0).unwrap().0, b"late");
        let waited = SystemTime::now()
            .duration_since(batch.queued_at(0).expect("a timestamp"))
            .unwrap();
        waits.push(waited);
        if waited >= Duration::from_millis(50) {
            break;
        }
    }
    assert!(
        waits
            .last()
            .is_some_and(|w| *w >= Duration::from_millis(50)),
        "the stamp tells the wait: {waits:?}"
    );
    // Without the option, no timestamp.
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.send_to(b"plain", a.local_addr().unwrap()).unwrap();
    while batch.recv(a.as_raw_fd()).unwrap() == 0 {}
    assert_eq!(batch.queued_at(0), None);
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

#[test]
fn a_connected_shared_socket_gets_its_peers_datagrams_only() {
    let shared = bind_shared("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let port = shared.local_addr().unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    let conn = bind_shared(port, Some(peer.local_addr().unwrap())).unwrap();
    for i in 0..10u8 {
        peer.send_to(&[1, i], port).unwrap();
        other.send_to(&[2, i], port).unwrap();
    }
    let epoll = Epoll::new().unwrap();
    epoll.add(conn.as_raw_fd(), 7).unwrap();
    let mut ready = Vec::new();
    epoll.wait(&mut ready, std::time::Duration::from_secs(1));
    assert_eq!(ready, vec![7]);
    let mut batch = RecvBatch::default();
    let mut from_conn = Vec::new();
    while from_conn.len() < 10 {
        let n = batch.recv(conn.as_raw_fd()).unwrap();
        from_conn.extend((0..n).map(|i| batch.get(i).unwrap().0[0]));
    }
    assert!(from_conn.iter().all(|&b| b == 1));
    let mut from_shared = Vec::new();
    while from_shared.len() < 10 {
        let n = batch.recv(shared.as_raw_fd()).unwrap();
        from_shared.extend((0..n).map(|i| batch.get(i).unwrap().0[0]));
    }
    assert!(from_shared.iter().all(|&b| b == 2));
}

#[test]
fn a_port_in_use_is_refused_to_a_second_first_socket() {
    let first = bind_shared_first("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = first.local_addr().unwrap();
    // Another server on the same port would share datagrams silently; it must fail instead.
    let err = bind_shared_first(port).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    // The port's own connected sockets still join it.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    bind_shared(port, Some(peer.local_addr().unwrap())).unwrap();
    // A plain socket holding a port keeps it too.
    let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = bind_shared_first(plain.local_addr().unwrap()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
}

#[test]
fn wake_reaches_a_sleeping_waiter_only() {
    let epoll = Epoll::new().unwrap();
    let wake = std::sync::Arc::new(Wake::new().unwrap());
    epoll.add(wake.fd(), 1).unwrap();
    let mut ready = Vec::new();
    // Awake: a wake costs nothing and leaves nothing pending.
    wake.wake();
    epoll.wait(&mut ready, std::time::Duration::ZERO);
    assert!(ready.is_empty());
    // Asleep: another thread's wake ends the wait.
    wake.sleep();
    let w = wake.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        w.wake();
    });
    epoll.wait(&mut ready, std::time::Duration::from_secs(10));
    wake.awake();
    t.join().unwrap();
    assert_eq!(ready, vec![1]);
    epoll.wait(&mut ready, std::time::Duration::ZERO);
    assert!(ready.is_empty(), "awake() clears the wake-up");
}
