//! A panic in a media worker costs one participant's transport, or one room, never the worker's
//! other meetings. The server is a test build with the `fault` feature: `CONCLAVE_FAULT` makes
//! it panic once, where a bug reachable by remote input would (inside a participant's transport,
//! or in a room's handling). One worker carries every room here, so a dead worker would stop
//! the other meeting too.

mod common;

use std::time::Duration;

use conclave_client::{ParticipantConfig, Report, TrackReport, run_participant};
use conclave_proto::{Kind, ParticipantId};

/// A fault-injecting server with one media worker (every room on it) and its metrics address.
fn server_with_fault(fault: &str) -> (common::Server, String) {
    let metrics = common::free_tcp_addr(std::net::Ipv4Addr::LOCALHOST.into()).to_string();
    let server = common::Server::start_with_env(
        &[("CONCLAVE_FAULT", fault)],
        &["--workers", "1", "--metrics-listen", &metrics],
    );
    (server, metrics)
}

fn track<'a>(r: &'a Report, from: &ParticipantId, kind: Kind) -> &'a TrackReport {
    r.received
        .get(&(from.clone(), kind))
        .unwrap_or_else(|| panic!("no {kind:?} from {from:?}"))
}

/// The other meeting on the worker went on through the panic: both kinds of media each way for
/// a meeting of `seconds`, with no audio lost.
fn unaffected(a: &Report, b: &Report, seconds: u64) {
    for (to, from) in [(a, b), (b, a)] {
        let from = from.participant_id.as_ref().unwrap();
        let audio = track(to, from, Kind::Audio);
        let video = track(to, from, Kind::Video);
        println!(
            "other meeting: audio {} packets, {} lost; video {} packets, {} lost",
            audio.packets,
            audio.lost(),
            video.packets,
            video.lost()
        );
        // 50 audio packets a second. The fault comes a second or two in: half the meeting's
        // length, without a gap, is media past it (a busy machine connects late, so not more).
        assert!(
            audio.packets >= 25 * seconds,
            "audio stopped: {} packets",
            audio.packets
        );
        assert_eq!(audio.lost(), 0, "audio lost in the other meeting");
        assert!(video.packets >= 25 * seconds, "video stopped");
    }
}

fn both_ways(a: &Report, b: &Report) {
    for (to, from) in [(a, b), (b, a)] {
        let from = from.participant_id.as_ref().unwrap();
        for kind in [Kind::Audio, Kind::Video] {
            let t = track(to, from, kind);
            assert!(t.packets >= 50, "only {} {kind:?} packets", t.packets);
        }
    }
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn run(server: std::net::SocketAddr, room: &str, name: &str, secs: u64) -> Report {
    let mut cfg = ParticipantConfig::new(server, room, name);
    cfg.duration = Duration::from_secs(secs);
    run_participant(cfg)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transport_closes_only_that_participant() {
    let (mut server, metrics) = server_with_fault("transport:mallory");
    let http = server.http;
    let carol = tokio::spawn(async move { run(http, "council", "carol", 7).await });
    let dave = tokio::spawn(async move { run(http, "council", "dave", 7).await });
    let alice = tokio::spawn(async move { run(http, "consultation", "alice", 7).await });

    // Mallory's transport panics on her 100th packet (about a second in): the server closes
    // her connection, which a browser would answer by reconnecting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut cfg = ParticipantConfig::new(http, "consultation", "mallory");
    cfg.duration = Duration::from_secs(6);
    let mallory = tokio::time::timeout(Duration::from_secs(20), run_participant(cfg))
        .await
        .expect("mallory's connection ended");
    println!("mallory: {mallory:?}");
    assert!(mallory.is_err(), "mallory's connection was closed");

    // The room she was in goes on: someone joining now exchanges media with Alice.
    let erin = run(http, "consultation", "erin", 3).await;
    let alice = alice.await.unwrap();
    both_ways(&alice, &erin);
    unaffected(&carol.await.unwrap(), &dave.await.unwrap(), 7);

    assert!(server.alive(), "the server is running");
    let log = server.log();
    assert!(
        log.contains("media transport failed with an internal error"),
        "the operator is told:\n{log}"
    );
    let body = common::http_get(metrics.parse().unwrap(), "/metrics");
    assert_eq!(metric(&body, "conclave_transports_failed_total"), 1.0);
    assert_eq!(metric(&body, "conclave_rooms_failed_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_room_closes_only_that_room() {
    let (mut server, metrics) = server_with_fault("room:consultation");
    let http = server.http;
    let carol = tokio::spawn(async move { run(http, "council", "carol", 6).await });
    let dave = tokio::spawn(async move { run(http, "council", "dave", 6).await });

    // The second join to the consultation panics in the worker: the room ends, both its
    // participants' connections with it.
    let mut cfg = ParticipantConfig::new(http, "consultation", "alice");
    cfg.duration = Duration::from_secs(6);
    let alice = tokio::spawn(run_participant(cfg));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut cfg = ParticipantConfig::new(http, "consultation", "bob");
    cfg.duration = Duration::from_secs(3);
    let bob = tokio::time::timeout(Duration::from_secs(20), run_participant(cfg))
        .await
        .expect("bob's join ended");
    println!("bob: {bob:?}");
    assert!(bob.is_err(), "bob's join failed");
    let alice = tokio::time::timeout(Duration::from_secs(20), alice)
        .await
        .expect("alice's connection ended")
        .unwrap();
    println!("alice: {alice:?}");
    assert!(alice.is_err(), "alice's connection was closed");

    // Opened again, the room works.
    let frank = tokio::spawn(async move { run(http, "consultation", "frank", 3).await });
    let grace = run(http, "consultation", "grace", 3).await;
    both_ways(&frank.await.unwrap(), &grace);
    unaffected(&carol.await.unwrap(), &dave.await.unwrap(), 6);

    assert!(server.alive(), "the server is running");
    let log = server.log();
    assert!(
        log.contains("a room failed with an internal error"),
        "the operator is told:\n{log}"
    );
    let body = common::http_get(metrics.parse().unwrap(), "/metrics");
    assert_eq!(metric(&body, "conclave_rooms_failed_total"), 1.0);
}
