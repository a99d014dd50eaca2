//! Participants behind restrictive networks: ICE-TCP (a participant with no UDP candidate at
//! all), IPv6, and the built-in TURN server's credentials and relay restriction.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use conclave_client::{ParticipantConfig, Report, run_participant};
use conclave_proto::Kind;
use hmac::{Hmac, Mac};
use sha1::Sha1;

fn free_tcp_port(ip: &str) -> u16 {
    common::free_tcp_addr(ip.parse().unwrap()).port()
}

/// One participant over UDP, one over ICE-TCP only; each must receive the other's audio and
/// video. On failure, the server's account of its ICE-TCP connections is shown (the server runs
/// with `--log conclave=debug`, which says why each one ended).
async fn udp_and_tcp_participants(server: &common::Server, room: &str) -> (Report, Report) {
    let http = server.http;
    let mut udp = ParticipantConfig::new(http, room, "udp");
    udp.duration = Duration::from_secs(4);
    let mut tcp = ParticipantConfig::new(http, room, "tcp");
    tcp.ice_tcp_only = true;
    tcp.duration = Duration::from_secs(4);
    let a = tokio::spawn(run_participant(udp));
    let b = tokio::spawn(run_participant(tcp));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    if a.is_err() || b.is_err() {
        let log = server.log();
        let tcp: Vec<&str> = log.lines().filter(|l| l.contains("ICE-TCP")).collect();
        panic!(
            "UDP participant: {:?}\nICE-TCP participant: {:?}\nserver on ICE-TCP:\n{}",
            a.err(),
            b.err(),
            tcp.join("\n")
        );
    }
    (a.unwrap(), b.unwrap())
}

fn assert_receives(r: &Report, from: &Report, who: &str) {
    let from = from.participant_id.clone().unwrap();
    for kind in [Kind::Audio, Kind::Video] {
        let t = r
            .received
            .get(&(from.clone(), kind))
            .unwrap_or_else(|| panic!("{who} received no {kind:?}"));
        let mut lat = t.latencies_us.clone();
        lat.sort_unstable();
        let p50 = lat.get(lat.len() / 2).copied().unwrap_or(0);
        println!(
            "{who} {kind:?}: {} packets, {} lost, latency p50 {p50} us",
            t.packets,
            t.lost()
        );
        assert!(
            t.packets >= 50,
            "{who} got only {} {kind:?} packets",
            t.packets
        );
        if kind == Kind::Video {
            assert!(t.keyframes >= 1, "{who}'s video started without a keyframe");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_tcp_participant_exchanges_media_with_udp_participant() {
    let port = free_tcp_port("127.0.0.1");
    let server = common::Server::start(&[
        "--ice-tcp",
        &format!("127.0.0.1:{port}"),
        "--log",
        "conclave=debug",
    ]);
    let (udp, tcp) = udp_and_tcp_participants(&server, "icetcp").await;
    assert_receives(&tcp, &udp, "ICE-TCP participant");
    assert_receives(&udp, &tcp, "UDP participant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_over_udp_and_tcp() {
    // Default ICE-TCP: the UDP port number, over TCP, on ::1.
    let server = common::Server::start_v6(&["--log", "conclave=debug"]);
    assert!(server.http.is_ipv6());
    let (udp, tcp) = udp_and_tcp_participants(&server, "ipv6").await;
    assert_receives(&tcp, &udp, "IPv6 ICE-TCP participant");
    assert_receives(&udp, &tcp, "IPv6 UDP participant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_dual_stack_socket_serves_ipv4_and_ipv6() {
    // --udp [::]:port with --public-ip 127.0.0.1 and ::1: one socket, two host candidates per
    // transport. An IPv4 participant, an IPv6 participant and one over ICE-TCP meet.
    let server = common::Server::start_dual_stack(&[]);
    let room = "dual-stack";
    let mut v4 = ParticipantConfig::new(server.http, room, "v4");
    v4.bind_ip = "127.0.0.1".parse().unwrap();
    let mut v6 = ParticipantConfig::new(server.http, room, "v6");
    v6.bind_ip = "::1".parse().unwrap();
    let mut tcp = ParticipantConfig::new(server.http, room, "tcp");
    tcp.ice_tcp_only = true;
    let tasks: Vec<_> = [v4, v6, tcp]
        .into_iter()
        .map(|mut c| {
            c.duration = Duration::from_secs(4);
            tokio::spawn(run_participant(c))
        })
        .collect();
    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await.unwrap().expect("participant"));
    }
    let names = ["IPv4", "IPv6", "ICE-TCP"];
    for (i, r) in reports.iter().enumerate() {
        for (j, from) in reports.iter().enumerate() {
            if i != j {
                assert_receives(r, from, &format!("{} from {}", names[i], names[j]));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_for_nobody_closes_only_that_connection() {
    use std::io::{Read, Write};
    let port = free_tcp_port("127.0.0.1");
    let server = common::Server::start(&[
        "--ice-tcp",
        &format!("127.0.0.1:{port}"),
        "--log",
        "conclave=debug",
    ]);
    let tcp = SocketAddr::from(([127, 0, 0, 1], port));
    // An oversized frame, and a well-formed frame that is no ICE request for anyone.
    for frame in [vec![0xff, 0xff, 1, 2, 3], vec![0, 4, 1, 2, 3, 4]] {
        let mut s = std::net::TcpStream::connect(tcp).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(&frame).unwrap();
        let mut buf = [0u8; 16];
        // The server closes the connection: end of stream (or a reset), never data.
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    }
    // Meetings over ICE-TCP still work.
    let (udp, tcp) = udp_and_tcp_participants(&server, "after-bad-frames").await;
    assert_receives(&tcp, &udp, "ICE-TCP participant");
}

const SECRET: &str = "test-only-turn-secret-0123456789";

fn password(secret: &str, username: &str) -> String {
    let mut m = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Allocate a relay on the TURN server with these credentials.
async fn allocate(
    turn: SocketAddr,
    username: &str,
    password: &str,
) -> Result<(turn::client::Client, impl webrtc_util::Conn), turn::Error> {
    let conn = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let client = turn::client::Client::new(turn::client::ClientConfig {
        stun_serv_addr: turn.to_string(),
        turn_serv_addr: turn.to_string(),
        username: username.into(),
        password: password.into(),
        realm: "conclave".into(),
        software: String::new(),
        rto_in_ms: 0,
        conn: Arc::new(conn),
        vnet: None,
    })
    .await?;
    client.listen().await?;
    let relay = client.allocate().await?;
    Ok((client, relay))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_credentials_in_welcome_expire_and_need_the_secret() {
    let turn_port = free_tcp_port("127.0.0.1");
    let turn_addr = SocketAddr::from(([127, 0, 0, 1], turn_port));
    let server = common::Server::start(&[
        "--turn-listen",
        &turn_addr.to_string(),
        "--turn-secret",
        SECRET,
        "--turn-credential-ttl",
        "3600",
    ]);

    // The welcome carries the built-in server's URLs and a credential for this participant.
    let mut ws = common::ws::connect(&server).await;
    common::ws::send(&mut ws, common::ws::join("turn-creds", "Alice")).await;
    let welcome = common::ws::recv_type(&mut ws, "welcome").await;
    let servers = welcome["ice_servers"].as_array().expect("ice_servers");
    assert_eq!(servers.len(), 1, "{welcome}");
    let urls: Vec<&str> = servers[0]["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            format!("turn:{turn_addr}?transport=udp"),
            format!("turn:{turn_addr}?transport=tcp")
        ]
    );
    let username = servers[0]["username"].as_str().unwrap();
    let credential = servers[0]["credential"].as_str().unwrap();
    let (expiry, opaque) = username.split_once(':').expect("<expiry>:<opaque>");
    let expiry: u64 = expiry.parse().unwrap();
    let now = now_unix();
    assert!(
        expiry > now + 3000 && expiry <= now + 3600 + 5,
        "{username}"
    );
    assert!(!opaque.is_empty() && !opaque.contains("Alice"));
    assert_eq!(
        credential,
        password(SECRET, username),
        "HMAC-SHA1 of the username"
    );
    // No relay-only policy unless configured.
    assert!(welcome.get("ice_transport_policy").is_none());

    // The built-in server accepts it...
    let (client, relay) = allocate(turn_addr, username, credential)
        .await
        .expect("allocation with the handed-out credential");
    let relayed = webrtc_util::Conn::local_addr(&relay).unwrap();
    assert_eq!(relayed.ip(), turn_addr.ip());

    // ...and relays nowhere but to the media server: a datagram to another local socket never
    // arrives (permissions for any peer are granted, the relay socket drops the traffic).
    let bystander = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = bystander.local_addr().unwrap();
    for _ in 0..5 {
        let _ = webrtc_util::Conn::send_to(&relay, b"not for you", target).await;
    }
    let mut buf = [0u8; 64];
    let got = tokio::time::timeout(Duration::from_secs(1), bystander.recv_from(&mut buf)).await;
    assert!(got.is_err(), "the relay forwarded to an arbitrary address");
    client.close().await.unwrap();

    // A credential made with another secret is refused.
    let forged = password("some-other-secret-0123456789", username);
    assert!(allocate(turn_addr, username, &forged).await.is_err());
    // An expired credential is refused even with the right HMAC.
    let old = format!("{}:0123456789abcdef", now - 60);
    assert!(
        allocate(turn_addr, &old, &password(SECRET, &old))
            .await
            .is_err()
    );
    // A username without an expiry is refused.
    assert!(
        allocate(turn_addr, "alice", &password(SECRET, "alice"))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_turn_urls_and_relay_policy_in_welcome() {
    let server = common::Server::start(&[
        "--turn-url",
        "turn:turn.example.org:3478?transport=udp,turns:turn.example.org:443?transport=tcp",
        "--turn-secret",
        SECRET,
        "--ice-transport-policy",
        "relay",
    ]);
    let mut ws = common::ws::connect(&server).await;
    common::ws::send(&mut ws, common::ws::join("external-turn", "Bob")).await;
    let welcome = common::ws::recv_type(&mut ws, "welcome").await;
    assert_eq!(welcome["ice_transport_policy"], "relay");
    let s = &welcome["ice_servers"][0];
    assert_eq!(s["urls"][1], "turns:turn.example.org:443?transport=tcp");
    let username = s["username"].as_str().unwrap();
    assert_eq!(s["credential"], password(SECRET, username));
}

#[test]
fn turn_settings_that_cannot_work_are_refused_at_start() {
    let (ok, out) = common::run_cli(&["--turn-url", "turn:turn.example.org"], &[]);
    assert!(!ok && out.contains("CONCLAVE_TURN_SECRET"), "{out}");
    let (ok, out) = common::run_cli(&["--ice-transport-policy", "relay"], &[]);
    assert!(!ok && out.contains("TURN"), "{out}");
}
