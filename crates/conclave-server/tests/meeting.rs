//! The real server on loopback with three simulated participants (str0m clients): each publishes
//! synthetic audio and video and must receive both tracks of the two others.

mod common;

use std::time::Duration;

use conclave_client::{ParticipantConfig, Report, TrackReport, run_participant, unix_micros};
use conclave_proto::Kind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_receive_each_other() {
    let server = common::Server::start(&[]);
    let names = ["alice", "bob", "carol"];
    let mut tasks = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut cfg = ParticipantConfig::new(server.http, "integration", name);
        cfg.duration = Duration::from_secs(5) - Duration::from_millis(400 * i as u64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400 * i as u64)).await;
            run_participant(cfg).await
        }));
    }
    let mut reports = Vec::new();
    for t in tasks {
        reports.push(
            t.await
                .unwrap()
                .unwrap_or_else(|e| panic!("participant failed: {e}")),
        );
    }

    let ids: Vec<_> = reports
        .iter()
        .map(|r| r.participant_id.clone().unwrap())
        .collect();
    let (mut total_packets, mut total_lost) = (0u64, 0u64);
    for (i, r) in reports.iter().enumerate() {
        for (j, other) in ids.iter().enumerate() {
            if i == j {
                assert!(
                    !r.received.keys().any(|(p, _)| p == other),
                    "{} receives its own media",
                    names[i]
                );
                continue;
            }
            for kind in [Kind::Audio, Kind::Video] {
                let t = r.received.get(&(other.clone(), kind)).unwrap_or_else(|| {
                    panic!("{} received no {kind:?} from {}", names[i], names[j])
                });
                let mut lat = t.latencies_us.clone();
                lat.sort_unstable();
                let p50 = lat.get(lat.len() / 2).copied().unwrap_or(0);
                println!(
                    "{:>5} <- {:<5} {:?}: {} packets, {} bytes, {} lost of {}, latency p50 {} us, keyframe starts {}",
                    names[i],
                    names[j],
                    kind,
                    t.packets,
                    t.bytes,
                    t.lost(),
                    t.expected,
                    p50,
                    t.keyframes
                );
                // At least a second of media (50 audio packets/s, ~60 video packets/s).
                assert!(
                    t.packets >= 50,
                    "{} got only {} {kind:?} packets from {}",
                    names[i],
                    t.packets,
                    names[j]
                );
                if kind == Kind::Video {
                    assert!(
                        t.keyframes >= 1,
                        "video to {} started without a keyframe",
                        names[i]
                    );
                }
                total_packets += t.unique;
                total_lost += t.lost();
            }
        }
    }
    println!("forwarded packets received: {total_packets}, lost: {total_lost}");
    // Loopback: loss should be nil; allow a little for a loaded CI machine.
    assert!(
        total_lost * 100 <= total_packets,
        "loss {total_lost} of {total_packets}"
    );
}

/// A subscriber on a lossy downlink: the server retransmits lost video packets (NACK/RTX) from
/// its send buffer, so video arrives complete while audio (not retransmitted) shows the loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_video_packets_are_retransmitted() {
    let server = common::Server::start(&[]);
    let mut publisher = ParticipantConfig::new(server.http, "lossy", "pub");
    publisher.duration = Duration::from_secs(5);
    let mut receiver = ParticipantConfig::new(server.http, "lossy", "sub");
    receiver.duration = Duration::from_secs(4);
    receiver.publish_audio = false;
    receiver.publish_video = false;
    receiver.drop_incoming = 0.05;
    receiver.seed = 42;
    let p = tokio::spawn(run_participant(publisher));
    let r = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        run_participant(receiver).await
    });
    let _ = p.await.unwrap().unwrap();
    let report = r.await.unwrap().unwrap();
    let audio = received(&report, Kind::Audio);
    let video = received(&report, Kind::Video);
    println!(
        "5% downlink drop: audio {} lost of {}, video {} lost of {} after retransmission",
        audio.lost(),
        audio.expected,
        video.lost(),
        video.expected
    );
    assert!(audio.lost() > 0, "the simulated loss took effect");
    // Everything but packets lost in the last moments before leaving is repaired.
    assert!(
        video.lost() * 100 <= video.expected,
        "video lost {} of {}",
        video.lost(),
        video.expected
    );
}

/// The server stops for 1.5 s (a busy machine) while two participants keep sending:
/// their datagrams wait in the kernel's receive buffers, so no audio, which is never
/// retransmitted, is lost when it runs again. Video that waited that long is dropped unread
/// (the operator is told), and the picture goes on after the stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_loses_no_audio_and_skips_stale_video() {
    let server = common::Server::start(&[]);
    let mut tasks = Vec::new();
    for name in ["alice", "bob"] {
        let mut cfg = ParticipantConfig::new(server.http, "stall", name);
        cfg.duration = Duration::from_secs(6);
        tasks.push(tokio::spawn(run_participant(cfg)));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.signal("STOP");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.signal("CONT");
    let resumed_us = unix_micros();
    for t in tasks {
        let report = t.await.unwrap().expect("participant ran");
        let audio = received(&report, Kind::Audio);
        println!(
            "audio across a 1.5 s stall: {} packets, {} lost of {}",
            audio.packets,
            audio.lost(),
            audio.expected
        );
        assert!(
            audio.expected >= 150,
            "audio flowed before and after the stall"
        );
        assert_eq!(audio.lost(), 0, "audio lost across the stall");
        let video = received(&report, Kind::Video);
        println!(
            "video across a 1.5 s stall: {} packets, {} lost of {}",
            video.packets,
            video.lost(),
            video.expected
        );
        // How many packets were sent before the subscription began varies with the machine's
        // speed; what a user sees is that the picture moves again once the server runs.
        let after_ms = video.last_sent_us.saturating_sub(resumed_us) / 1000;
        println!("video sent {after_ms} ms after the server resumed was received");
        assert!(
            after_ms >= 500,
            "video went on after the stall: the newest received was sent {after_ms} ms after it"
        );
    }
    assert!(
        server
            .log()
            .contains("media worker overloaded: dropping video that waited too long"),
        "stale video was dropped and logged:\n{}",
        server.log()
    );
}

/// What a participant received of one kind (from the only other participant sending it).
fn received(report: &Report, kind: Kind) -> &TrackReport {
    report
        .received
        .iter()
        .find(|((_, k), _)| *k == kind)
        .unwrap_or_else(|| panic!("{kind:?} received"))
        .1
}
