//! HTTPS and WSS served by Conclave itself: a generated self-signed certificate, a given
//! certificate, and a certificate renewed on SIGHUP while a meeting's WebSocket stays open.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ws::{recv_type, send};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn trusting(certs: &[&CertificateDer<'static>]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots.add((*c).clone()).unwrap();
    }
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Accepts any certificate: the self-signed test checks the fingerprint itself, as a person
/// trying Conclave on a LAN would.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn trusting_anything() -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth(),
    )
}

async fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the server's certificate")
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn served_fingerprint(s: &TlsStream<TcpStream>) -> String {
    fingerprint(s.get_ref().1.peer_certificates().unwrap()[0].as_ref())
}

/// GET over HTTPS; returns the whole response.
async fn get(mut s: TlsStream<TcpStream>, path: &str) -> String {
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

async fn wss(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>> {
    let s = connect(addr, config).await;
    let url = format!("wss://localhost:{}/ws", addr.port());
    tokio_tungstenite::client_async(url, s).await.unwrap().0
}

struct TestCert {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn make_cert() -> TestCert {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    TestCert {
        cert_pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
        der: ck.cert.der().clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_certificate_with_printed_fingerprint() {
    let server = common::Server::start(&["--tls-self-signed"]);
    let s = connect(server.http, trusting_anything()).await;
    let served = served_fingerprint(&s);
    let log = server.log();
    assert!(
        log.contains(&format!("SHA-256 fingerprint: {served}")),
        "the printed fingerprint is the served certificate's: {served}\n{log}"
    );
    let res = get(s, "/readyz").await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(
        !res.to_ascii_lowercase()
            .contains("strict-transport-security"),
        "no HSTS on a self-signed trial: {res}"
    );
    // Signaling over WSS.
    let mut ws = wss(server.http, trusting_anything()).await;
    send(&mut ws, common::ws::join("tls-trial", "Ann")).await;
    recv_type(&mut ws, "welcome").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_certificate_is_served_and_renewed_on_sighup() {
    let scratch = common::Scratch::new("tls");
    let dir = scratch.path();
    let (cert_path, key_path) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
    let first = make_cert();
    std::fs::write(&cert_path, &first.cert_pem).unwrap();
    std::fs::write(&key_path, &first.key_pem).unwrap();
    let server = common::Server::start(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);

    // Verified against the given certificate, and HSTS because this is real TLS.
    let res = get(connect(server.http, trusting(&[&first.der])).await, "/").await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(
        res.to_ascii_lowercase()
            .contains("strict-transport-security: max-age="),
        "{res}"
    );
    // A meeting over WSS.
    let mut ws = wss(server.http, trusting(&[&first.der])).await;
    send(&mut ws, common::ws::join("tls-renewal", "Ann")).await;
    recv_type(&mut ws, "welcome").await;

    // Renewal: new files, SIGHUP.
    let second = make_cert();
    std::fs::write(&cert_path, &second.cert_pem).unwrap();
    std::fs::write(&key_path, &second.key_pem).unwrap();
    server.signal("HUP");
    let both = trusting(&[&first.der, &second.der]);
    let want = fingerprint(second.der.as_ref());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = connect(server.http, both.clone()).await;
        if served_fingerprint(&s) == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.log().contains("TLS certificate reloaded"));

    // The meeting's WebSocket is still open and answering.
    send(&mut ws, "{}").await;
    let reply = recv_type(&mut ws, "error").await;
    assert_eq!(reply["code"], "bad_message", "{reply}");
}
