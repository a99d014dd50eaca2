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

/// One sample's value, by its name and labels as written (`conclave_rooms{worker="0"}`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Two meetings on a server with two media workers run one on each, as an operator sees in the
/// metrics, and both work. The room names are two that a hash of the name (how rooms were once
/// placed) put on the same worker, leaving the other core idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_meetings_run_on_both_workers() {
    let server = common::Server::start(&["--workers", "2", "--metrics"]);
    let mut tasks = Vec::new();
    for room in ["lecture", "board"] {
        for name in ["Ann", "Ben"] {
            let mut cfg = ParticipantConfig::new(server.http, room, name);
            cfg.duration = Duration::from_secs(4);
            tasks.push(tokio::spawn(run_participant(cfg)));
        }
    }
    // The workers count their rooms and people once a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let res = common::http_get(server.http, "/metrics");
        let body = res.split("\r\n\r\n").nth(1).unwrap_or_default();
        let spread = (0..2).all(|w| {
            sample(body, &format!("conclave_rooms{{worker=\"{w}\"}}")) == Some(1.0)
                && sample(body, &format!("conclave_participants{{worker=\"{w}\"}}")) == Some(2.0)
        });
        if spread {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "one room and two people on each worker:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for t in tasks {
        let report = t.await.unwrap().expect("participant ran");
        assert!(
            report.received.values().any(|t| t.packets > 10),
            "each meeting's media flowed"
        );
    }
}
