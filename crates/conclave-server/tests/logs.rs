//! Privacy of the server's output: a scripted meeting with known names, a token and a password,
//! from a client address the server never uses itself, leaves none of them in what the server
//! prints, even with its own modules at debug level.

mod common;

use std::time::Duration;

use common::ws::{Ws, recv_type, send};
use conclave_client::{ParticipantConfig, run_participant};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "log-test-secret-log-test-secret-0123456789";
/// The clients' source address: distinct from the server's own 127.0.0.1.
const CLIENT_IP: &str = "127.0.0.5";

/// A WebSocket from CLIENT_IP, so the server sees that address as the peer.
async fn connect_from_client_ip(server: &common::Server) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{CLIENT_IP}:0").parse().unwrap())
        .unwrap();
    let stream = socket.connect(server.http).await.unwrap();
    let url = format!("ws://{}/ws", server.http);
    let (ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_output_names_no_person_token_password_or_address() {
    audit("human").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_no_person_token_password_or_address() {
    let log = audit("json").await;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}

/// Run the scripted meeting with logs in `format`; returns what the server printed.
async fn audit(format: &str) -> String {
    let server = common::Server::start(&[
        "--jwt-secret",
        SECRET,
        "--log",
        "conclave=debug,conclave_server=debug,warn",
        "--log-format",
        format,
    ]);
    let room = "privacy-audit";
    let names = [
        "Zelda Quokka-Audit",
        "Yusuf Token-Person",
        "Xavier Media-Person",
        "Wanda Knock-Person",
    ];
    let password = "hunter2-correct-horse-zz";
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = json!({"room": room, "exp": exp, "context": {"user": {"name": names[1], "moderator": true}}});
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap();

    // A host by token sets a password and turns the lobby on.
    let mut host = connect_from_client_ip(&server).await;
    send(
        &mut host,
        json!({"type": "join", "version": 1, "room": room, "name": "x", "token": token})
            .to_string(),
    )
    .await;
    recv_type(&mut host, "welcome").await;
    send(
        &mut host,
        json!({"type": "set_password", "password": password}).to_string(),
    )
    .await;
    while recv_type(&mut host, "settings").await["settings"]["password"] != true {}
    // A wrong then a right password, a knock, an admission.
    let mut guest = connect_from_client_ip(&server).await;
    send(&mut guest, json!({"type": "join", "version": 1, "room": room, "name": names[0], "password": "wrong-guess-zz"}).to_string()).await;
    assert_eq!(
        recv_type(&mut guest, "error").await["code"],
        "wrong_password"
    );
    let mut guest = connect_from_client_ip(&server).await;
    send(
        &mut guest,
        json!({"type": "join", "version": 1, "room": room, "name": names[0], "password": password})
            .to_string(),
    )
    .await;
    recv_type(&mut guest, "welcome").await;
    send(
        &mut host,
        json!({"type": "set_lobby", "enabled": true}).to_string(),
    )
    .await;
    let mut knocker = connect_from_client_ip(&server).await;
    send(
        &mut knocker,
        json!({"type": "join", "version": 1, "room": room, "name": names[3], "password": password})
            .to_string(),
    )
    .await;
    recv_type(&mut knocker, "lobby_waiting").await;
    let knock = recv_type(&mut host, "knock").await;
    send(
        &mut host,
        json!({"type": "admit", "knock_id": knock["knock_id"]}).to_string(),
    )
    .await;
    recv_type(&mut knocker, "welcome").await;
    send(
        &mut host,
        json!({"type": "set_lobby", "enabled": false}).to_string(),
    )
    .await;
    // Media from the client address, through ICE, DTLS and SRTP.
    let mut cfg = ParticipantConfig::new(server.http, room, names[2]);
    cfg.bind_ip = CLIENT_IP.parse().unwrap();
    cfg.password = Some(password.into());
    cfg.duration = Duration::from_secs(2);
    let mut other = cfg.clone();
    other.name = "Second Media".into();
    let (a, b) = tokio::join!(run_participant(cfg), run_participant(other));
    assert!(
        a.unwrap().received.values().any(|t| t.packets > 10),
        "media flowed"
    );
    assert!(b.is_ok());
    // A page request with a token and a name in its query string.
    let page = common::http_get(
        server.http,
        &format!("/{room}?name=Zelda%20Quokka-Audit&jwt={token}"),
    );
    assert!(page.starts_with("HTTP/1.1 200"));
    for ws in [&mut host, &mut guest, &mut knocker] {
        let _ = ws.close(None).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = server.log();
    assert!(
        log.contains("participant joined"),
        "the server did log the meeting: {log}"
    );
    for secret in names.iter().copied().chain([
        password,
        "wrong-guess-zz",
        token.as_str(),
        SECRET,
        CLIENT_IP,
        room,
        "jwt=",
    ]) {
        assert!(
            !log.contains(secret),
            "server output contains {secret:?}:\n{log}"
        );
    }
    log
}
