//! Start the real `conclave` binary on free loopback ports for a test.
#![allow(dead_code)] // each test binary uses a different part

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub http: SocketAddr,
    pub udp: SocketAddr,
    child: Child,
    pub log_path: std::path::PathBuf,
    /// Holds the log (and the data directory, unless the test gave one); removed after the
    /// server has stopped, kept when the test fails.
    _scratch: Scratch,
}

/// A directory of one test's files under the system's temporary directory: removed when
/// dropped, or kept (and its path printed) when the test is failing, for the server's log.
pub struct Scratch(std::path::PathBuf);

impl Scratch {
    pub fn new(what: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "conclave-{what}-{}-{}",
            std::process::id(),
            next_id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for the failing test: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Server {
    pub fn start(extra: &[&str]) -> Self {
        let ip = std::net::Ipv4Addr::LOCALHOST.into();
        Self::start_bound(None, ip, ip, &[], extra)
    }

    /// Start with a given data directory (to keep stored rooms across restarts).
    pub fn start_with_data(data_dir: &std::path::Path, extra: &[&str]) -> Self {
        let ip = std::net::Ipv4Addr::LOCALHOST.into();
        Self::start_bound(Some(data_dir), ip, ip, &[], extra)
    }

    /// Start on IPv6 loopback only (`::1`).
    pub fn start_v6(extra: &[&str]) -> Self {
        let ip = std::net::Ipv6Addr::LOCALHOST.into();
        Self::start_bound(None, ip, ip, &[], extra)
    }

    /// Start with extra environment variables (test-build switches such as `CONCLAVE_FAULT`).
    pub fn start_with_env(env: &[(&str, &str)], extra: &[&str]) -> Self {
        let ip = std::net::Ipv4Addr::LOCALHOST.into();
        Self::start_bound(None, ip, ip, env, extra)
    }

    /// HTTP on IPv4 loopback, media on one dual-stack socket (`[::]`) announcing 127.0.0.1 and ::1.
    pub fn start_dual_stack(extra: &[&str]) -> Self {
        let mut args = vec!["--public-ip", "127.0.0.1", "--public-ip", "::1"];
        args.extend_from_slice(extra);
        Self::start_bound(
            None,
            std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::Ipv6Addr::UNSPECIFIED.into(),
            &[],
            &args,
        )
    }

    /// Without `data_dir`, the server's data lives in the scratch directory with its log.
    fn start_bound(
        data_dir: Option<&std::path::Path>,
        ip: std::net::IpAddr,
        media_ip: std::net::IpAddr,
        env: &[(&str, &str)],
        extra: &[&str],
    ) -> Self {
        let http = free_tcp_addr(ip);
        // The media port doubles as the default ICE-TCP port.
        let udp = free_udp_addr(media_ip);
        let scratch = Scratch::new("test");
        let data_dir = data_dir.map_or_else(|| scratch.join("data"), |d| d.to_owned());
        let log_path = scratch.join("server.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_conclave"))
            .args(["--listen", &http.to_string(), "--udp", &udp.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start conclave");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(http).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            http,
            udp,
            child,
            log_path,
            _scratch: scratch,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The server's process id (for its CPU time and memory in `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal (`TERM`, `INT`, `HUP`) to the server.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([&format!("-{sig}"), &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Send SIGTERM (what systemd sends) and wait for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait_exit()
    }

    /// Wait for the process to exit after a signal.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running (it must never die from client input).
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// Whether `port` was not handed to another server of this test process yet. A free port is
/// found by binding port 0 and letting go, so two servers starting at once can be offered the
/// same one; the media socket binds with `SO_REUSEPORT`, so both would get it and share each
/// other's datagrams (and one would lose its ICE-TCP listener).
fn claim_port(port: u16) -> bool {
    static CLAIMED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut claimed = CLAIMED.lock().unwrap();
    if claimed.contains(&port) {
        return false;
    }
    claimed.push(port);
    true
}

/// A free TCP port on `ip` that no other server of this test process was given.
pub fn free_tcp_addr(ip: std::net::IpAddr) -> SocketAddr {
    loop {
        let a = TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap();
        if claim_port(a.port()) {
            return a;
        }
    }
}

/// A free UDP port on `ip` that no other server of this test process was given.
pub fn free_udp_addr(ip: std::net::IpAddr) -> SocketAddr {
    loop {
        let a = UdpSocket::bind((ip, 0)).unwrap().local_addr().unwrap();
        if claim_port(a.port()) {
            return a;
        }
    }
}

fn next_id() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Run `conclave <args>` (e.g. `rooms add`) to completion; returns (success, stdout+stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A raw HTTP/1.1 GET; returns the whole response (headers and body).
pub fn http_get(addr: SocketAddr, path_and_query: &str) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    buf
}

/// An HTTP response, as read by [`http`].
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`, so the body ends with it).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw WebSocket signaling client for tests that speak the protocol by hand.
pub mod ws {
    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use serde_json::{Value, json};
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

    use super::Server;

    pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

    pub async fn connect(server: &Server) -> Ws {
        tokio_tungstenite::connect_async(format!("ws://{}/ws", server.http))
            .await
            .unwrap()
            .0
    }

    /// Any stream a WebSocket runs over (plain TCP, or TLS in the HTTPS tests).
    pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {}
    impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Io for T {}

    pub async fn send<S: Io>(ws: &mut WebSocketStream<S>, text: impl Into<String>) {
        ws.send(Message::text(text.into())).await.unwrap();
    }

    /// Next JSON message, or None when the server closed the connection.
    pub async fn recv<S: Io>(ws: &mut WebSocketStream<S>) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .expect("server answers")?;
            match msg {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Skip messages until one of the given type arrives.
    pub async fn recv_type<S: Io>(ws: &mut WebSocketStream<S>, ty: &str) -> Value {
        loop {
            let m = recv(ws)
                .await
                .unwrap_or_else(|| panic!("closed while waiting for {ty}"));
            if m["type"] == ty {
                return m;
            }
        }
    }

    pub async fn expect_error<S: Io>(ws: &mut WebSocketStream<S>, code: &str) -> Value {
        let m = recv(ws).await.expect("an error reply");
        assert_eq!(m["type"], "error", "{m}");
        assert_eq!(m["code"], code, "{m}");
        assert!(!m["message"].as_str().unwrap().is_empty());
        m
    }

    pub fn join(room: &str, name: &str) -> String {
        json!({"type": "join", "version": 1, "room": room, "name": name}).to_string()
    }
}
