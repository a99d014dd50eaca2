//! Short runs of the load generator against the real server on loopback: two publishers and two
//! subscribers in one room (and one simulcast publisher with two subscribers), every connection
//! verifying payloads. Checks that the summary is sane (everyone connected, packets flowed,
//! nothing lost, server figures present); the benchmarks themselves (`bench/compare.sh`) are not
//! part of the test suite.

mod common;

use std::time::Duration;

use conclave_load::{LoadConfig, Target};

/// A short run in one room, every connection verifying payloads.
fn short_run(server: &common::Server, publishers: usize, subscribers: usize) -> LoadConfig {
    let mut cfg = LoadConfig::new(Target::Conclave, server.http);
    cfg.publishers = publishers;
    cfg.subscribers = subscribers;
    cfg.duration = Duration::from_secs(3);
    cfg.settle = Duration::from_secs(1);
    cfg.ramp = 20.0;
    cfg.verify_every = 1;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_smoke() {
    let server = common::Server::start(&[]);
    let mut cfg = short_run(&server, 2, 2);
    cfg.server_pid = Some(server.pid());
    let s = conclave_load::run(cfg).await.expect("load run");
    println!("{}", s.table());

    assert!(s.errors.is_empty(), "errors: {:?}", s.errors);
    assert_eq!(s.peer_connections, 4);
    assert_eq!(s.connected, 4, "every participant connected");
    assert_eq!(s.disconnected, 0);
    // Each publisher's two tracks go to the other publisher and both subscribers.
    assert_eq!(s.streams_forwarded, 12);
    assert!(
        s.forwarded.packets > 100,
        "packets flowed: {}",
        s.forwarded.packets
    );
    assert_eq!(s.forwarded.lost, 0, "no loss on loopback");
    assert_eq!(s.forwarded.reordered, 0, "every stream in order");
    assert!(s.verified.payloads > 100);
    assert_eq!(
        s.verified.payloads, s.verified.expected,
        "payloads complete"
    );
    assert!(s.latency.samples > 0);
    let cpu = s.server.expect("server figures").cpu_s;
    assert!(cpu > 0.0, "server used CPU");
    assert!(s.generator.cpu_s.is_some());
}

/// Publishers send three simulcast layers, as browsers do; receivers that show no layout get
/// the top one, complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_simulcast() {
    let server = common::Server::start(&[]);
    let mut cfg = short_run(&server, 1, 2);
    cfg.video_kbps = 2500;
    cfg.simulcast = true;
    let s = conclave_load::run(cfg).await.expect("load run");
    println!("{}", s.table());

    assert!(s.errors.is_empty(), "errors: {:?}", s.errors);
    assert_eq!(s.connected, 3, "every participant connected");
    assert_eq!(s.media.simulcast_kbps, [150, 500, 2500]);
    assert_eq!(s.streams_forwarded, 4);
    assert!(s.forwarded.packets > 100, "packets flowed");
    assert_eq!(s.forwarded.lost, 0, "no loss on loopback");
    assert_eq!(s.forwarded.reordered, 0, "every stream in order");
    assert_eq!(
        s.verified.payloads, s.verified.expected,
        "payloads complete"
    );
    // The top layer's ~1,160-byte packets (the middle layer's would average ~600 bytes with the
    // audio, the lowest's less).
    assert!(
        s.forwarded.avg_packet_bytes > 900.0,
        "top layer forwarded: {:.0} bytes per packet",
        s.forwarded.avg_packet_bytes
    );
}
