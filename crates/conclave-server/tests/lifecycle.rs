//! Health, readiness and shutdown as an operator and participants see them: SIGTERM drains
//! (participants are told, new joins refused, /readyz 503, then everything closes), SIGINT
//! closes at once.

mod common;

use common::ws::{connect, expect_error, join, recv, recv_type, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_running_meeting() {
    let mut server = common::Server::start(&["--drain-timeout", "4"]);
    assert!(common::http_get(server.http, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(common::http_get(server.http, "/readyz").starts_with("HTTP/1.1 200"));
    let mut ann = connect(&server).await;
    send(&mut ann, join("drain-room", "Ann")).await;
    recv_type(&mut ann, "welcome").await;
    let mut bob = connect(&server).await;
    send(&mut bob, join("drain-room", "Bob")).await;
    recv_type(&mut bob, "welcome").await;

    server.signal("TERM");
    let notice = recv_type(&mut ann, "draining").await;
    assert_eq!(notice["deadline_s"], 4, "{notice}");
    recv_type(&mut bob, "draining").await;
    // Still alive, no longer ready.
    assert!(common::http_get(server.http, "/healthz").starts_with("HTTP/1.1 200"));
    let ready = common::http_get(server.http, "/readyz");
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    // New joins are refused with a clear code.
    let mut late = connect(&server).await;
    send(&mut late, join("drain-room", "Late")).await;
    expect_error(&mut late, "draining").await;
    // The meeting goes on during the drain: the room still relays between its members.
    send(&mut ann, r#"{"type":"relay","data":"still here"}"#).await;
    assert_eq!(recv_type(&mut bob, "relay").await["data"], "still here");
    // Then the server closes the connections and exits cleanly.
    while recv(&mut ann).await.is_some() {}
    while recv(&mut bob).await.is_some() {}
    let status = server.wait_exit();
    assert!(status.success(), "{status:?}");
    let log = server.log();
    assert!(log.contains("draining"), "{log}");
    assert!(log.contains("stopped"), "the store closed: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_closes_at_once() {
    // A drain this long would outlast the test: SIGINT must not wait for it.
    let mut server = common::Server::start(&["--drain-timeout", "3600"]);
    let mut ann = connect(&server).await;
    send(&mut ann, join("interrupt-room", "Ann")).await;
    recv_type(&mut ann, "welcome").await;
    server.signal("INT");
    while let Some(m) = recv(&mut ann).await {
        assert_ne!(m["type"], "draining", "SIGINT does not drain");
    }
    assert!(server.wait_exit().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_without_meetings_stops_at_once() {
    let mut server = common::Server::start(&["--drain-timeout", "3600"]);
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_without_tls_keeps_serving() {
    let mut server = common::Server::start(&[]);
    assert!(common::http_get(server.http, "/readyz").starts_with("HTTP/1.1 200"));
    server.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !server
        .log()
        .contains("SIGHUP: no TLS certificate to reload")
    {
        assert!(server.alive(), "SIGHUP ended the server");
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(common::http_get(server.http, "/readyz").starts_with("HTTP/1.1 200"));
    assert!(server.terminate().success());
}

/// A second server started on a running one's media port by mistake stops with a clear error
/// instead of sharing that port's datagrams with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_port_in_use_is_refused() {
    let mut server = common::Server::start(&[]);
    let http = common::free_tcp_addr(std::net::Ipv4Addr::LOCALHOST.into());
    let scratch = common::Scratch::new("port");
    let data_dir = scratch.join("data");
    let out_path = scratch.join("second.log");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args([
            "--listen",
            &http.to_string(),
            "--udp",
            &server.udp.to_string(),
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            second.kill().unwrap();
            panic!("a second server started on a media port in use");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert!(!status.success(), "{out}");
    assert!(out.contains("the port is in use"), "{out}");
    assert!(server.alive());
    assert!(common::http_get(server.http, "/readyz").starts_with("HTTP/1.1 200"));
    assert!(server.terminate().success());
}
