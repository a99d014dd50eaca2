//! Bad input from a client gets a clear error, harms no one else, and never takes the server down.

mod common;

use common::ws::{connect, expect_error, join, recv, recv_type, send};
use conclave_client::{ParticipantConfig, run_participant};
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_errors_and_connection_stays_usable() {
    let mut server = common::Server::start(&[]);
    let mut ws = connect(&server).await;
    send(&mut ws, "{not json").await;
    expect_error(&mut ws, "bad_message").await;
    send(&mut ws, r#"{"type":"teleport"}"#).await;
    expect_error(&mut ws, "bad_message").await;
    send(&mut ws, r#"{"type":"join","version":1,"room":"r"}"#).await;
    expect_error(&mut ws, "bad_message").await;
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    expect_error(&mut ws, "bad_message").await;
    let big = json!({"type": "offer", "sdp": "x".repeat(300 * 1024)}).to_string();
    send(&mut ws, big).await;
    expect_error(&mut ws, "too_large").await;
    // Out of order: an offer or media state before join.
    send(&mut ws, json!({"type": "offer", "sdp": "v=0"}).to_string()).await;
    expect_error(&mut ws, "not_joined").await;
    send(
        &mut ws,
        json!({"type": "media_state", "audio": true, "video": true}).to_string(),
    )
    .await;
    expect_error(&mut ws, "not_joined").await;
    // Still usable: a proper join works.
    send(&mut ws, join("bad-input", "Mallory")).await;
    let w = recv_type(&mut ws, "welcome").await;
    assert_eq!(w["room"], "bad-input");
    send(&mut ws, join("bad-input", "Mallory")).await;
    assert_eq!(recv_type(&mut ws, "error").await["code"], "already_joined");
    // Invalid SDP gets a clear error, the participant stays.
    send(
        &mut ws,
        json!({"type": "offer", "sdp": "this is not sdp"}).to_string(),
    )
    .await;
    let e = recv_type(&mut ws, "error").await;
    assert_eq!(e["code"], "invalid_sdp");
    send(&mut ws, json!({"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"}).to_string()).await;
    let e = recv_type(&mut ws, "error").await;
    assert_eq!(e["code"], "invalid_sdp");
    assert!(server.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_joins_are_refused_and_closed() {
    let mut server = common::Server::start(&[]);
    let cases = [
        (
            json!({"type": "join", "version": 99, "room": "r", "name": "A"}),
            "unsupported_version",
        ),
        (
            json!({"type": "join", "version": 1, "room": "a b", "name": "A"}),
            "invalid_room",
        ),
        (
            json!({"type": "join", "version": 1, "room": "", "name": "A"}),
            "invalid_room",
        ),
        (
            json!({"type": "join", "version": 1, "room": "x".repeat(65), "name": "A"}),
            "invalid_room",
        ),
        (
            json!({"type": "join", "version": 1, "room": "healthz", "name": "A"}),
            "invalid_room",
        ),
        (
            json!({"type": "join", "version": 1, "room": "r", "name": ""}),
            "invalid_name",
        ),
        (
            json!({"type": "join", "version": 1, "room": "r", "name": "   "}),
            "invalid_name",
        ),
        (
            json!({"type": "join", "version": 1, "room": "r", "name": "x".repeat(65)}),
            "invalid_name",
        ),
        (
            json!({"type": "join", "version": 1, "room": "r", "name": "Eve\u{0}\u{1b}[31m"}),
            "invalid_name",
        ),
    ];
    for (msg, code) in cases {
        let mut ws = connect(&server).await;
        send(&mut ws, msg.to_string()).await;
        expect_error(&mut ws, code).await;
        assert!(
            recv(&mut ws).await.is_none(),
            "connection closed after a refused join ({code})"
        );
    }
    assert!(server.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_client_is_removed_and_meeting_carries_on() {
    let mut server = common::Server::start(&["--reconnect-grace", "2"]);
    let mut observer = connect(&server).await;
    send(&mut observer, join("vanish", "Olivia")).await;
    recv_type(&mut observer, "welcome").await;

    // A client joins, then its TCP connection disappears without a close frame.
    let mut ghost = connect(&server).await;
    send(&mut ghost, join("vanish", "Ghost")).await;
    let ghost_id = recv_type(&mut ghost, "welcome").await["participant_id"].clone();
    let joined = recv_type(&mut observer, "participant_joined").await;
    assert_eq!(joined["participant"]["id"], ghost_id);
    // Garbage on the ghost's connection first: others are unaffected.
    send(&mut ghost, "\u{0}\u{0}garbage").await;
    drop(ghost);

    // The observer is told the ghost left once the reconnect grace period ends.
    let left = recv_type(&mut observer, "participant_left").await;
    assert_eq!(left["participant_id"], ghost_id);

    // The meeting carries on: two simulated participants still exchange media in that room.
    let mut tasks = Vec::new();
    for name in ["p1", "p2"] {
        let cfg = ParticipantConfig::new(server.http, "vanish", name);
        tasks.push(tokio::spawn(run_participant(cfg)));
    }
    for t in tasks {
        let report = t.await.unwrap().unwrap();
        let audio_from_other = report
            .received
            .iter()
            .filter(|((_, kind), t)| *kind == conclave_proto::Kind::Audio && t.packets > 20)
            .count();
        assert_eq!(audio_from_other, 1, "each hears the other");
    }
    assert!(server.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_floods_are_rate_limited_and_others_carry_on() {
    let mut server = common::Server::start(&[]);
    let mut calm = connect(&server).await;
    send(&mut calm, join("flood", "Calm")).await;
    recv_type(&mut calm, "welcome").await;
    let mut flood = connect(&server).await;
    send(&mut flood, join("flood", "Flood")).await;
    recv_type(&mut flood, "welcome").await;
    // Half a burst more than allowed: the excess is dropped with one rate_limited error, and the
    // connection stays (a client that keeps flooding far longer is cut off).
    for i in 0..1500 {
        let on = i % 2 == 0;
        send(
            &mut flood,
            json!({"type": "media_state", "audio": on, "video": on}).to_string(),
        )
        .await;
    }
    assert_eq!(recv_type(&mut flood, "error").await["code"], "rate_limited");
    // The calm participant is still served.
    send(
        &mut calm,
        json!({"type": "lock", "locked": true}).to_string(),
    )
    .await;
    loop {
        let m = recv_type(&mut calm, "settings").await;
        if m["settings"]["locked"] == true {
            break;
        }
    }
    assert!(server.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_cleanly() {
    let mut server = common::Server::start(&[]);
    let mut ws = connect(&server).await;
    send(&mut ws, join("shutdown", "Stayer")).await;
    recv_type(&mut ws, "welcome").await;
    let status = tokio::task::block_in_place(|| server.terminate());
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    // Whatever was already sent may still be read; then the connection ends.
    let mut left = 0;
    while recv(&mut ws).await.is_some() {
        left += 1;
        assert!(left < 10, "connections end");
    }
    assert!(server.log().contains("shutting down"));
}
