//! The relay binary on loopback: each client reaches the server from its own address (as behind a
//! NAT), replies go back to the client they answer, and the exit statistics count the packets.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    // Only a guard against hanging forever; nothing here depends on timing.
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("set timeout");
    s
}

fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).expect("a datagram");
    (buf[..n].to_vec(), from)
}

#[test]
fn clients_get_their_own_upstream_address_and_their_replies() {
    let server = socket();
    // A free port for the relay: bind, note, release.
    let listen = socket().local_addr().unwrap();
    let relay = Command::new(env!("CARGO_BIN_EXE_conclave-netsim"))
        .args(["--listen", &listen.to_string()])
        .args(["--upstream", &server.local_addr().unwrap().to_string()])
        .args(["--downlink", "delay=5ms", "--stats"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start conclave-netsim");

    let (alice, bob) = (socket(), socket());
    // The relay may not be listening yet: send until the server hears from Alice.
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    let alice_upstream = (0..100)
        .find_map(|_| {
            alice.send_to(b"alice", listen).unwrap();
            match server.recv_from(&mut buf) {
                Ok((n, from)) if &buf[..n] == b"alice" => Some(from),
                _ => None,
            }
        })
        .expect("the relay forwards Alice's packets");
    server
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    bob.send_to(b"bob", listen).unwrap();
    // Skip Alice's retries still on their way.
    let bob_upstream = loop {
        let (data, from) = recv(&server);
        if data == b"bob" {
            break from;
        }
        assert_eq!(from, alice_upstream);
    };
    assert_ne!(
        alice_upstream, bob_upstream,
        "one upstream address per client"
    );
    assert_ne!(alice_upstream, listen);

    server.send_to(b"to bob", bob_upstream).unwrap();
    server.send_to(b"to alice", alice_upstream).unwrap();
    let (data, from) = recv(&bob);
    assert_eq!((data.as_slice(), from), (&b"to bob"[..], listen));
    let (data, from) = recv(&alice);
    assert_eq!((data.as_slice(), from), (&b"to alice"[..], listen));

    let pid = relay.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let out = relay.wait_with_output().unwrap();
    let stats: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("statistics as JSON");
    assert_eq!(stats["flows"], 2);
    assert_eq!(stats["downlink"]["packets_out"], 2);
    assert!(stats["uplink"]["packets_out"].as_u64().unwrap() >= 2);
    assert_eq!(stats["uplink"]["dropped_loss"], 0);
}
