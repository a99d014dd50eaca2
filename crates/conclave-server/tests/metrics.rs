//! Prometheus metrics after a real meeting: the expected families, counting what happened, and
//! nothing that identifies anyone (no address, name, room name or id).

mod common;

use std::time::Duration;

use conclave_client::{ParticipantConfig, run_participant};

/// Sum of every sample of one metric (all workers).
fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_meeting_and_identify_nobody() {
    let metrics_addr = common::free_tcp_addr(std::net::Ipv4Addr::LOCALHOST.into());
    let server = common::Server::start(&["--metrics-listen", &metrics_addr.to_string()]);
    let room = "metrics-audit-room";
    let names = ["Quentin Metric-Person", "Rosalind Metric-Person"];
    let mut tasks = Vec::new();
    for name in names {
        let mut cfg = ParticipantConfig::new(server.http, room, name);
        cfg.duration = Duration::from_secs(3);
        tasks.push(tokio::spawn(run_participant(cfg)));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let report = t.await.unwrap().expect("participant ran");
        assert!(
            report.received.values().any(|t| t.packets > 10),
            "media flowed"
        );
        ids.push(report.participant_id.unwrap());
    }

    let res = common::http_get(metrics_addr, "/metrics");
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    let body = res.split("\r\n\r\n").nth(1).unwrap_or_default();
    for family in [
        "conclave_build_info{version=",
        "conclave_rooms{worker=",
        "conclave_participants{worker=",
        "conclave_tracks{worker=",
        "conclave_worker_queue_depth{worker=",
        "conclave_worker_busy_seconds_total{worker=",
        "conclave_packets_forwarded_total{worker=",
        "conclave_forwarded_payload_bytes_total{worker=",
        "conclave_keyframe_requests_received_total{worker=",
        "conclave_keyframe_requests_sent_total{worker=",
        "conclave_nacks_received_total{worker=",
        "conclave_nacks_sent_total{worker=",
        "conclave_packets_lost_total{worker=",
        "conclave_signaling_connections ",
    ] {
        assert!(body.contains(family), "no {family}:\n{body}");
    }
    assert!(
        total(body, "conclave_packets_forwarded_total") > 100.0,
        "{body}"
    );
    assert!(
        total(body, "conclave_forwarded_payload_bytes_total") > 10_000.0,
        "{body}"
    );
    assert!(
        total(body, "conclave_worker_busy_seconds_total") > 0.0,
        "{body}"
    );
    // Video to a new subscriber starts with a keyframe the server asked for.
    assert!(
        total(body, "conclave_keyframe_requests_sent_total") >= 1.0,
        "{body}"
    );

    for secret in names
        .iter()
        .map(|n| n.to_string())
        .chain(ids.iter().map(|id| id.0.clone()))
        .chain([room.to_owned(), "127.0.0.1".to_owned()])
    {
        assert!(
            !body.contains(&secret),
            "metrics contain {secret:?}:\n{body}"
        );
    }
    // Only on the metrics address, not on the public listener.
    assert!(!common::http_get(server.http, "/metrics").contains("conclave_build_info"));
}

#[test]
fn metrics_on_the_main_listener_only_when_enabled() {
    let off = common::Server::start(&[]);
    assert!(!common::http_get(off.http, "/metrics").contains("conclave_build_info"));
    let on = common::Server::start(&["--metrics"]);
    let res = common::http_get(on.http, "/metrics");
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.contains("conclave_build_info"), "{res}");
}
