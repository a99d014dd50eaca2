//! Who gets in, tested against the real server: forged tokens, password guessing, clients that try
//! to skip the lobby, moderator commands from non-moderators, removed participants coming back,
//! persistent rooms from the CLI.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::ws::{connect, expect_error, join, recv, recv_type, send};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const SECRET: &str = "test-secret-that-is-at-least-32-characters-long";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(room: &str) -> Value {
    json!({
        "aud": "conclave", "iss": "lms", "sub": "meet.example.org", "room": room,
        "exp": now() + 600, "nbf": now() - 10,
        "context": {"user": {"name": "Prof. Token", "moderator": "true"}}
    })
}

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn join_with(room: &str, name: &str, extra: Value) -> String {
    let mut m = json!({"type": "join", "version": 1, "room": room, "name": name});
    m.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    m.to_string()
}

/// Join and expect the join to be refused with `code`, then the connection to close.
async fn refused(server: &common::Server, msg: String, code: &str) {
    let mut ws = connect(server).await;
    send(&mut ws, msg).await;
    expect_error(&mut ws, code).await;
    assert!(
        recv(&mut ws).await.is_none(),
        "connection closes after a refused join ({code})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_valid_tokens() {
    let mut server = common::Server::start(&[
        "--jwt-secret",
        SECRET,
        "--jwt-audience",
        "conclave",
        "--jwt-issuer",
        "lms",
    ]);
    let room = "lecture-7";
    let token = |c: &Value| json!({"token": hs256(c, SECRET)});

    // A valid moderator token: admitted as moderator under the token's name.
    let mut prof = connect(&server).await;
    send(
        &mut prof,
        join_with(room, "typed name", token(&claims(room))),
    )
    .await;
    let w = recv_type(&mut prof, "welcome").await;
    assert_eq!(w["moderator"], true);
    let mut student = connect(&server).await;
    send(&mut student, join(room, "Student")).await;
    let w = recv_type(&mut student, "welcome").await;
    assert_eq!(w["participants"][0]["name"], "Prof. Token");
    assert_eq!(w["moderator"], false);

    // Every forgery is refused with invalid_token.
    let mut c = claims(room);
    let forged_signature =
        json!({"token": hs256(&c, "another-secret-another-secret-another-secret")});
    refused(
        &server,
        join_with(room, "Mallory", forged_signature),
        "invalid_token",
    )
    .await;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(c.to_string());
    refused(
        &server,
        join_with(
            room,
            "Mallory",
            json!({"token": format!("{header}.{payload}.")}),
        ),
        "invalid_token",
    )
    .await;
    c["exp"] = json!(now() - 3600);
    refused(
        &server,
        join_with(room, "Mallory", token(&c)),
        "invalid_token",
    )
    .await;
    let mut c = claims(room);
    c["nbf"] = json!(now() + 3600);
    refused(
        &server,
        join_with(room, "Mallory", token(&c)),
        "invalid_token",
    )
    .await;
    let mut c = claims(room);
    c["aud"] = json!("someone-else");
    refused(
        &server,
        join_with(room, "Mallory", token(&c)),
        "invalid_token",
    )
    .await;
    let mut c = claims(room);
    c["iss"] = json!("evil");
    refused(
        &server,
        join_with(room, "Mallory", token(&c)),
        "invalid_token",
    )
    .await;
    refused(
        &server,
        join_with(room, "Mallory", token(&claims("other-room"))),
        "invalid_token",
    )
    .await;
    refused(
        &server,
        join_with(room, "Mallory", json!({"token": "not.a.jwt"})),
        "invalid_token",
    )
    .await;
    // The meeting carried on.
    send(
        &mut prof,
        json!({"type": "lock", "locked": true}).to_string(),
    )
    .await;
    assert_eq!(
        recv_type(&mut student, "settings").await["settings"]["locked"],
        true
    );
    assert!(server.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_key_tokens_and_algorithm_confusion() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let es_pub = format!("{dir}/tests/fixtures/es256-test-public.pem");
    let server = common::Server::start(&["--jwt-public-key", &es_pub]);
    let es_priv = std::fs::read(format!("{dir}/tests/fixtures/es256-test-private.pem")).unwrap();
    let c = claims("webinar");
    let es = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &c,
        &EncodingKey::from_ec_pem(&es_priv).unwrap(),
    )
    .unwrap();
    let mut ws = connect(&server).await;
    send(&mut ws, join_with("webinar", "A", json!({"token": es}))).await;
    assert_eq!(recv_type(&mut ws, "welcome").await["moderator"], true);
    // HS256 signed with the public key as the secret: the classic confusion attack.
    let pem = std::fs::read_to_string(&es_pub).unwrap();
    refused(
        &server,
        join_with("webinar", "M", json!({"token": hs256(&c, &pem)})),
        "invalid_token",
    )
    .await;
    // RS256 with an RSA public key.
    let rs_server = common::Server::start(&[
        "--jwt-public-key",
        &format!("{dir}/tests/fixtures/rs256-test-public.pem"),
    ]);
    let rs_priv = std::fs::read(format!("{dir}/tests/fixtures/rs256-test-private.pem")).unwrap();
    let rs = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &c,
        &EncodingKey::from_rsa_pem(&rs_priv).unwrap(),
    )
    .unwrap();
    let mut ws = connect(&rs_server).await;
    send(&mut ws, join_with("webinar", "A", json!({"token": rs}))).await;
    assert_eq!(recv_type(&mut ws, "welcome").await["moderator"], true);
    // The ES256 token is refused by the RS256 server.
    refused(
        &rs_server,
        join_with("webinar", "M", json!({"token": es_token_for(&es_priv)})),
        "invalid_token",
    )
    .await;
    // A token without tokens configured elsewhere is refused too.
    let plain = common::Server::start(&[]);
    refused(
        &plain,
        join_with("webinar", "M", json!({"token": es_token_unused()})),
        "invalid_token",
    )
    .await;
}

fn es_token_for(key: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims("webinar"),
        &EncodingKey::from_ec_pem(key).unwrap(),
    )
    .unwrap()
}

fn es_token_unused() -> String {
    hs256(&claims("webinar"), SECRET)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_slows_down() {
    let mut server = common::Server::start(&[]);
    let room = "board";
    let mut chair = connect(&server).await;
    send(&mut chair, join(room, "Chair")).await;
    recv_type(&mut chair, "welcome").await;
    send(
        &mut chair,
        json!({"type": "set_password", "password": "s3cret-board-pass"}).to_string(),
    )
    .await;
    assert_eq!(
        recv_type(&mut chair, "settings").await["settings"]["password"],
        true
    );

    refused(&server, join(room, "Guest"), "password_required").await;
    for _ in 0..3 {
        refused(
            &server,
            join_with(room, "Guest", json!({"password": "guess"})),
            "wrong_password",
        )
        .await;
    }
    // The fourth wrong guess is still checked, and then the room slows down: even the right
    // password is refused until the wait is over.
    refused(
        &server,
        join_with(room, "Guest", json!({"password": "guess"})),
        "wrong_password",
    )
    .await;
    refused(
        &server,
        join_with(room, "Guest", json!({"password": "s3cret-board-pass"})),
        "too_many_attempts",
    )
    .await;
    // After the wait, the right password gets in.
    let mut guest = None;
    for _ in 0..40 {
        let mut ws = connect(&server).await;
        send(
            &mut ws,
            join_with(room, "Guest", json!({"password": "s3cret-board-pass"})),
        )
        .await;
        let m = recv(&mut ws).await.unwrap();
        if m["type"] == "welcome" {
            guest = Some(ws);
            break;
        }
        assert_eq!(m["code"], "too_many_attempts", "{m}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        guest.is_some(),
        "the right password works once the wait is over"
    );
    // A non-moderator cannot change the password.
    let mut guest = guest.unwrap();
    send(
        &mut guest,
        json!({"type": "set_password", "password": null}).to_string(),
    )
    .await;
    assert_eq!(
        recv_type(&mut guest, "error").await["code"],
        "not_moderator"
    );
    let log = server.log();
    assert!(
        !log.contains("s3cret-board-pass") && !log.contains("guess"),
        "passwords never reach the log"
    );
    assert!(server.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lobby_cannot_be_skipped() {
    let server = common::Server::start(&[]);
    let room = "clinic";
    let mut host = connect(&server).await;
    send(&mut host, join(room, "Dr. Host")).await;
    assert_eq!(recv_type(&mut host, "welcome").await["moderator"], true);
    send(
        &mut host,
        json!({"type": "set_lobby", "enabled": true}).to_string(),
    )
    .await;
    recv_type(&mut host, "settings").await;

    // A raw client joins and then tries to get media and moderate without being admitted.
    let mut intruder = connect(&server).await;
    send(&mut intruder, join(room, "Intruder")).await;
    assert_eq!(recv(&mut intruder).await.unwrap()["type"], "lobby_waiting");
    let knock = recv_type(&mut host, "knock").await;
    assert_eq!(knock["name"], "Intruder");
    send(
        &mut intruder,
        json!({"type": "offer", "sdp": "v=0\r\n"}).to_string(),
    )
    .await;
    assert_eq!(recv(&mut intruder).await.unwrap()["code"], "not_joined");
    for cmd in [
        json!({"type": "set_lobby", "enabled": false}),
        json!({"type": "admit", "knock_id": knock["knock_id"]}),
    ] {
        send(&mut intruder, cmd.to_string()).await;
        assert_eq!(recv(&mut intruder).await.unwrap()["code"], "not_moderator");
    }
    send(
        &mut intruder,
        json!({"type": "media_state", "audio": true, "video": true}).to_string(),
    )
    .await;
    // Nothing about the meeting reaches the knocker: no participants, no subscriptions.
    let quiet = tokio::time::timeout(Duration::from_millis(700), recv(&mut intruder)).await;
    assert!(quiet.is_err(), "a knocker receives nothing: {quiet:?}");

    send(
        &mut host,
        json!({"type": "deny", "knock_id": knock["knock_id"]}).to_string(),
    )
    .await;
    assert_eq!(
        recv(&mut intruder).await.unwrap(),
        json!({"type": "closed", "reason": "denied"})
    );
    assert!(recv(&mut intruder).await.is_none());
    assert_eq!(
        recv_type(&mut host, "knock_resolved").await["knock_id"],
        knock["knock_id"]
    );

    // Admitted knockers get the meeting.
    let mut guest = connect(&server).await;
    send(&mut guest, join(room, "Patient")).await;
    recv_type(&mut guest, "lobby_waiting").await;
    let knock = recv_type(&mut host, "knock").await;
    send(
        &mut host,
        json!({"type": "admit", "knock_id": knock["knock_id"]}).to_string(),
    )
    .await;
    let w = recv_type(&mut guest, "welcome").await;
    assert_eq!(w["participants"][0]["name"], "Dr. Host");

    // A knock with an end-to-end encrypted name: the server passes it on unread.
    let mut sealed = connect(&server).await;
    send(
        &mut sealed,
        join_with(room, "-", json!({"sealed_name": "opaque-ciphertext-b64"})),
    )
    .await;
    recv_type(&mut sealed, "lobby_waiting").await;
    let knock = recv_type(&mut host, "knock").await;
    assert_eq!(
        (knock["name"].clone(), knock["sealed_name"].clone()),
        (json!("-"), json!("opaque-ciphertext-b64"))
    );
    refused(
        &server,
        join_with(room, "-", json!({"sealed_name": "x".repeat(1025)})),
        "invalid_name",
    )
    .await;

    // Oversized and malformed knocks.
    refused(&server, join(room, &"N".repeat(65)), "invalid_name").await;
    refused(&server, join(room, "bell\u{7}"), "invalid_name").await;
    // A knock flood from one source is cut off.
    let mut refused_flood = false;
    let mut waiting = Vec::new();
    for i in 0..20 {
        let mut ws = connect(&server).await;
        send(&mut ws, join(room, &format!("Flood {i}"))).await;
        match recv(&mut ws).await {
            Some(m) if m["type"] == "lobby_waiting" => waiting.push(ws),
            Some(m) => {
                assert_eq!(m["code"], "too_many_attempts", "{m}");
                refused_flood = true;
                break;
            }
            None => panic!("closed without a reason"),
        }
    }
    assert!(refused_flood, "knocks are rate-limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderator_commands_are_enforced_and_removed_sessions_stay_out() {
    let server = common::Server::start(&[]);
    let room = "council";
    let mut chair = connect(&server).await;
    send(&mut chair, join(room, "Chair")).await;
    recv_type(&mut chair, "welcome").await;
    let mut member = connect(&server).await;
    send(&mut member, join(room, "Member")).await;
    let w = recv_type(&mut member, "welcome").await;
    let (member_id, resume) = (
        w["participant_id"].clone(),
        w["resume"].as_str().unwrap().to_owned(),
    );
    let chair_id = w["participants"][0]["id"].clone();

    for cmd in [
        json!({"type": "mute", "participant_id": chair_id}),
        json!({"type": "mute_all"}),
        json!({"type": "stop_video", "participant_id": chair_id}),
        json!({"type": "remove", "participant_id": chair_id}),
        json!({"type": "set_moderator", "participant_id": member_id, "moderator": true}),
        json!({"type": "lock", "locked": true}),
        json!({"type": "set_lobby", "enabled": true}),
        json!({"type": "set_password", "password": "x"}),
        json!({"type": "end_meeting"}),
    ] {
        send(&mut member, cmd.to_string()).await;
        assert_eq!(
            recv_type(&mut member, "error").await["code"],
            "not_moderator",
            "{cmd}"
        );
    }
    // The chair was not affected by any of it.
    let quiet = tokio::time::timeout(
        Duration::from_millis(500),
        recv_type(&mut chair, "moderated"),
    )
    .await;
    assert!(quiet.is_err());

    send(
        &mut chair,
        json!({"type": "mute", "participant_id": member_id}).to_string(),
    )
    .await;
    assert_eq!(recv_type(&mut member, "moderated").await["action"], "muted");
    send(
        &mut chair,
        json!({"type": "remove", "participant_id": member_id}).to_string(),
    )
    .await;
    assert_eq!(recv_type(&mut member, "closed").await["reason"], "removed");
    assert!(
        recv(&mut member).await.is_none(),
        "the removed participant's connection ends"
    );
    assert_eq!(
        recv_type(&mut chair, "participant_left").await["participant_id"],
        member_id
    );
    // The removed session cannot come straight back.
    let msg =
        json!({"type": "join", "version": 1, "room": room, "name": "Member", "resume": resume});
    refused(&server, msg.to_string(), "removed").await;

    let mut third = connect(&server).await;
    send(&mut third, join(room, "Third")).await;
    recv_type(&mut third, "welcome").await;
    send(&mut chair, json!({"type": "end_meeting"}).to_string()).await;
    assert_eq!(
        recv_type(&mut third, "closed").await["reason"],
        "meeting_ended"
    );
    assert_eq!(
        recv_type(&mut chair, "closed").await["reason"],
        "meeting_ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_room_from_the_cli() {
    let scratch = common::Scratch::new("persist");
    let data = scratch.join("data");
    let d = data.to_str().unwrap();
    let env = [("CONCLAVE_MODERATOR_PASSWORD", "chair-pass-123")];
    let (ok, out) = common::run_cli(&["rooms", "add", "board", "--lobby", "--data-dir", d], &env);
    assert!(ok, "{out}");
    assert!(
        !out.contains("chair-pass-123"),
        "a password from the environment is not echoed"
    );
    let (ok, out) = common::run_cli(&["rooms", "add", "board", "--data-dir", d], &env);
    assert!(!ok && out.contains("already exists"), "{out}");
    let (ok, out) = common::run_cli(&["rooms", "add", "healthz", "--data-dir", d], &env);
    assert!(!ok && out.contains("reserved"), "{out}");
    let (_, list) = common::run_cli(&["rooms", "list", "--data-dir", d], &[]);
    assert!(list.contains("board") && !list.contains("argon2"), "{list}");

    {
        let server = common::Server::start_with_data(&data, &[]);
        // The stored lobby holds the first guest; nobody is moderator by arriving first.
        let mut guest = connect(&server).await;
        send(&mut guest, join("board", "Guest")).await;
        recv_type(&mut guest, "lobby_waiting").await;
        refused(
            &server,
            join_with("board", "Chair", json!({"password": "wrong"})),
            "wrong_password",
        )
        .await;
        let mut chair = connect(&server).await;
        send(
            &mut chair,
            join_with("board", "Chair", json!({"password": "chair-pass-123"})),
        )
        .await;
        let w = recv_type(&mut chair, "welcome").await;
        assert_eq!(w["moderator"], true);
        assert_eq!(w["settings"]["persistent"], true);
        recv_type(&mut chair, "knock").await;
        // Settings changed in the meeting are saved.
        send(
            &mut chair,
            json!({"type": "set_lobby", "enabled": false}).to_string(),
        )
        .await;
        recv_type(&mut guest, "welcome").await;
        send(
            &mut chair,
            json!({"type": "set_password", "password": "guest-pass-456"}).to_string(),
        )
        .await;
        while recv_type(&mut chair, "settings").await["settings"]["password"] != true {}
        // The save happens off the meeting's path; give it a moment before the restart.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // After a restart the stored settings hold.
    let server = common::Server::start_with_data(&data, &[]);
    refused(&server, join("board", "Late"), "password_required").await;
    let mut late = connect(&server).await;
    send(
        &mut late,
        join_with("board", "Late", json!({"password": "guest-pass-456"})),
    )
    .await;
    let w = recv_type(&mut late, "welcome").await;
    assert_eq!(
        (w["moderator"].clone(), w["settings"]["lobby"].clone()),
        (json!(false), json!(false))
    );
    drop(server);
    let (ok, _) = common::run_cli(&["rooms", "remove", "board", "--data-dir", d], &[]);
    assert!(ok);
    let (_, list) = common::run_cli(&["rooms", "list", "--data-dir", d], &[]);
    assert!(list.contains("No persistent rooms"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_only_rooms_wait_for_a_host() {
    let server = common::Server::start(&["--adhoc-rooms", "hosts", "--jwt-secret", SECRET]);
    refused(&server, join("seminar", "Early Student"), "host_required").await;
    let mut host = connect(&server).await;
    let mut c = claims("seminar");
    c.as_object_mut().unwrap().remove("aud");
    c.as_object_mut().unwrap().remove("iss");
    send(
        &mut host,
        join_with("seminar", "Host", json!({"token": hs256(&c, SECRET)})),
    )
    .await;
    recv_type(&mut host, "welcome").await;
    let mut student = connect(&server).await;
    send(&mut student, join("seminar", "Student")).await;
    recv_type(&mut student, "welcome").await;
}

#[test]
fn security_headers_and_privacy_page() {
    let server = common::Server::start(&[
        "--frame-ancestors",
        "https://lms.example.org 'unsafe-inline' javascript:x",
    ]);
    for path in [
        "/",
        "/standup",
        "/healthz",
        "/privacy",
        "/assets/app.js",
        "/no such room",
    ] {
        let res = common::http_get(server.http, &path.replace(' ', "%20")).to_ascii_lowercase();
        assert!(
            res.contains("content-security-policy: default-src 'self'; script-src 'self';"),
            "{path}: {res}"
        );
        assert!(
            res.contains("frame-ancestors https://lms.example.org\r\n"),
            "only plain origins are allowed: {path}"
        );
        assert!(res.contains("referrer-policy: no-referrer"), "{path}");
        assert!(res.contains("x-content-type-options: nosniff"), "{path}");
        assert!(
            res.contains("permissions-policy: camera=(self), microphone=(self)"),
            "{path}"
        );
    }
    let plain = common::Server::start(&[]);
    assert!(common::http_get(plain.http, "/").contains("frame-ancestors 'none'"));
    let en = common::http_get(plain.http, "/privacy");
    assert!(
        en.contains("Privacy on this Conclave server")
            && en.contains("never written to disk or to logs")
    );
    let de = common::http_get(plain.http, "/privacy?lang=de");
    assert!(de.contains("Datenschutz auf diesem Conclave-Server") && de.contains("30 Sekunden"));
}
