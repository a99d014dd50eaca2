//! The admin API against the real server: off without a token, refuses wrong tokens, manages
//! persistent rooms, shows live meetings as counts only, ends a meeting, and its OpenAPI document
//! lists exactly the routes that exist.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::ws::{connect, join, recv, recv_type, send};
use common::{Server, http};
use conclave_client::{ParticipantConfig, run_participant};
use serde_json::{Value, json};

const TOKEN: &str = "admin-token-for-tests-0123456789abcdef";

fn auth() -> [(&'static str, &'static str); 1] {
    [(
        "Authorization",
        "Bearer admin-token-for-tests-0123456789abcdef",
    )]
}

fn get(server: &Server, path: &str) -> common::HttpResponse {
    http(server.http, "GET", path, &auth(), "")
}

#[test]
fn api_is_off_without_a_token_and_short_tokens_are_refused() {
    let server = Server::start(&[]);
    assert_eq!(get(&server, "/api/v1/rooms").status, 404);
    assert_eq!(get(&server, "/api/v1/openapi.json").status, 404);
    drop(server);

    let (ok, out) = common::run_cli(
        &["--listen", "127.0.0.1:0", "--udp", "127.0.0.1:0"],
        &[("CONCLAVE_ADMIN_TOKEN", "short")],
    );
    assert!(!ok);
    assert!(out.contains("at least 32 characters"), "{out}");
}

#[test]
fn rooms_need_the_token_and_are_created_listed_and_deleted() {
    let server = Server::start(&["--admin-token", TOKEN]);
    let rooms = "/api/v1/rooms";

    let none = http(server.http, "GET", rooms, &[], "");
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        none.header("content-type"),
        Some("application/problem+json")
    );
    let wrong_token = format!("Bearer {}x", &TOKEN[..TOKEN.len() - 1]);
    let wrong = http(
        server.http,
        "GET",
        rooms,
        &[("Authorization", &wrong_token)],
        "",
    );
    assert_eq!(wrong.status, 401);
    let basic = http(
        server.http,
        "GET",
        rooms,
        &[("Authorization", &format!("Basic {TOKEN}"))],
        "",
    );
    assert_eq!(basic.status, 401);

    let json_body = [auth()[0], ("Content-Type", "application/json")];
    let body =
        json!({"name": "board", "lobby": true, "with_password": true, "expires_in_seconds": 3600});
    let created = http(server.http, "POST", rooms, &json_body, &body.to_string());
    assert_eq!(created.status, 201, "{}", created.body);
    let c = created.json();
    assert_eq!(c["room"]["name"], "board");
    assert_eq!(c["room"]["lobby"], true);
    assert_eq!(c["room"]["password"], true);
    assert!(c["room"]["expires_at"].as_i64().unwrap() > c["room"]["created_at"].as_i64().unwrap());
    let moderator_password = c["moderator_password"].as_str().unwrap().to_owned();
    assert!(moderator_password.len() >= 16);
    assert!(c["room_password"].as_str().unwrap().len() >= 16);

    let again = http(server.http, "POST", rooms, &json_body, &body.to_string());
    assert_eq!(again.status, 409);
    assert_eq!(again.json()["code"], "room_exists");
    let bad = http(
        server.http,
        "POST",
        rooms,
        &json_body,
        &json!({"name": "no spaces"}).to_string(),
    );
    assert_eq!(bad.status, 400);
    let unknown_field = http(
        server.http,
        "POST",
        rooms,
        &json_body,
        &json!({"name": "x", "password": "chosen"}).to_string(),
    );
    assert_eq!(unknown_field.status, 400);

    let list = get(&server, rooms);
    assert_eq!(list.status, 200);
    let listed = list.json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["board"]);
    assert!(!list.body.contains("argon2") && !list.body.contains(&moderator_password));

    // The created room is a real persistent room: its moderator password makes a moderator.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ws = connect(&server).await;
        let msg = json!({"type": "join", "version": 1, "room": "board", "name": "Chair", "password": moderator_password});
        send(&mut ws, msg.to_string()).await;
        let welcome = recv_type(&mut ws, "welcome").await;
        assert_eq!(welcome["moderator"], true);
        assert_eq!(welcome["settings"]["persistent"], true);
    });

    let deleted = http(server.http, "DELETE", "/api/v1/rooms/board", &auth(), "");
    assert_eq!(deleted.status, 204);
    let gone = http(server.http, "DELETE", "/api/v1/rooms/board", &auth(), "");
    assert_eq!(gone.status, 404);
    assert_eq!(get(&server, rooms).json(), json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_meetings_show_counts_only_and_can_be_ended() {
    let server = Server::start(&["--admin-token", TOKEN]);
    let mut ws = connect(&server).await;
    send(&mut ws, join("standup", "Alice Example")).await;
    let welcome = recv_type(&mut ws, "welcome").await;
    let alice_id = welcome["participant_id"].as_str().unwrap().to_owned();

    let mut cfg = ParticipantConfig::new(server.http, "standup", "Bob Example");
    cfg.duration = Duration::from_secs(120);
    let bob = tokio::spawn(run_participant(cfg));

    // Bob publishes audio and video: two tracks, two participants.
    let addr = server.http;
    let deadline = Instant::now() + Duration::from_secs(30);
    let meetings = loop {
        let m =
            tokio::task::spawn_blocking(move || http(addr, "GET", "/api/v1/meetings", &auth(), ""))
                .await
                .unwrap();
        assert_eq!(m.status, 200);
        if m.json() == json!([{"room": "standup", "participants": 2, "tracks": 2}]) {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "meeting never showed: {}",
            m.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for private in ["Alice", "Bob", alice_id.as_str(), "127.0.0.1"] {
        assert!(
            !meetings.body.contains(private),
            "{private} in {}",
            meetings.body
        );
    }

    let end = |path: &'static str| {
        tokio::task::spawn_blocking(move || http(addr, "DELETE", path, &auth(), ""))
    };
    assert_eq!(end("/api/v1/meetings/standup").await.unwrap().status, 204);
    let closed = recv_type(&mut ws, "closed").await;
    assert_eq!(closed["reason"], "meeting_ended");
    assert!(recv(&mut ws).await.is_none(), "the WebSocket closes");
    let bob = tokio::time::timeout(Duration::from_secs(30), bob)
        .await
        .expect("the str0m participant is closed too")
        .unwrap();
    assert!(
        bob.is_err(),
        "the meeting ended under the str0m participant"
    );

    assert_eq!(end("/api/v1/meetings/standup").await.unwrap().status, 404);
    let m = tokio::task::spawn_blocking(move || http(addr, "GET", "/api/v1/meetings", &auth(), ""))
        .await
        .unwrap();
    assert_eq!(m.json(), json!([]));
}

#[test]
fn openapi_document_lists_exactly_the_routes_that_exist() {
    let server = Server::start(&["--admin-token", TOKEN]);
    // The document is public (it holds no secret).
    let doc = http(server.http, "GET", "/api/v1/openapi.json", &[], "");
    assert_eq!(doc.status, 200);
    let doc: Value = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let methods = ["get", "post", "put", "patch", "delete"];
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in methods {
            if item.get(m).is_some() {
                documented.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    let expected: BTreeSet<(String, String)> = [
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/rooms"),
        ("POST", "/api/v1/rooms"),
        ("DELETE", "/api/v1/rooms/{name}"),
        ("GET", "/api/v1/meetings"),
        ("DELETE", "/api/v1/meetings/{room}"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(documented, expected);

    // Every documented operation exists, and every other method on a documented path does not.
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = path.replace("{name}", "nope").replace("{room}", "nope");
        for m in methods {
            let m = m.to_uppercase();
            let headers = [auth()[0], ("Content-Type", "application/json")];
            let res = http(server.http, &m, &concrete, &headers, "{}");
            if documented.contains(&(m.clone(), path.clone())) {
                assert_ne!(res.status, 405, "{m} {path} is documented but not routed");
                // 404 here may only be the operation's own answer (no such room), a problem body.
                if res.status == 404 {
                    assert!(res.body.contains("\"code\""), "{m} {path}: {}", res.body);
                }
            } else {
                assert_eq!(res.status, 405, "{m} {path} is routed but not documented");
            }
        }
    }
    assert_eq!(get(&server, "/api/v1/other").status, 404);
}

/// Schemathesis (PyPI) generates requests from the served document and checks every answer
/// against it. It runs when the test environment has it (`.ci/run` installs it in tests/.venv).
#[test]
fn schemathesis_finds_the_api_true_to_its_document() {
    let bin =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/.venv/bin/schemathesis");
    if !bin.exists() {
        eprintln!("skipped: no schemathesis in tests/.venv (run .ci/run)");
        return;
    }
    let server = Server::start(&["--admin-token", TOKEN]);
    // Its example database and reports go to a scratch directory, not the working tree.
    let scratch = common::Scratch::new("schemathesis");
    let out = std::process::Command::new(bin)
        .current_dir(scratch.path())
        .args([
            "run",
            &format!("http://{}/api/v1/openapi.json", server.http),
        ])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--max-examples", "30", "--seed", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
