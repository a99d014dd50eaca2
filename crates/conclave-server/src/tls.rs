//! TLS for HTTPS/WSS: certificate files (reloaded on SIGHUP) or a generated self-signed
//! certificate for a trial on a LAN.

use std::net::IpAddr;

use axum_server::tls_rustls::RustlsConfig;
use sha2::{Digest, Sha256};

use crate::config::Settings;

/// Where the certificate comes from, for reloading.
pub enum Source {
    Files {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
    },
    SelfSigned,
}

pub struct Tls {
    pub config: RustlsConfig,
    pub source: Source,
}

pub async fn load(s: &Settings) -> Result<Option<Tls>, String> {
    // Exactly one crypto provider for rustls (str0m and the token checks use aws-lc-rs too).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if let (Some(cert), Some(key)) = (&s.tls.cert, &s.tls.key) {
        let config = RustlsConfig::from_pem_file(cert, key)
            .await
            .map_err(|e| format!("`tls.cert`/`tls.key`: cannot use {}: {e}", cert.display()))?;
        return Ok(Some(Tls {
            config,
            source: Source::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
        }));
    }
    if s.tls.self_signed.unwrap_or(false) {
        let (cert_pem, key_pem, fingerprint) = self_signed(s)?;
        let config = RustlsConfig::from_pem(cert_pem.into_bytes(), key_pem.into_bytes())
            .await
            .map_err(|e| format!("self-signed certificate: {e}"))?;
        // Printed, not only logged: whoever starts a trial compares it with the browser's view
        // (not in JSON mode, where every output line must be a JSON object).
        if s.log.format != Some(crate::config::LogFormat::Json) {
            println!("Self-signed TLS certificate, SHA-256 fingerprint: {fingerprint}");
        }
        tracing::info!(%fingerprint, "serving a self-signed TLS certificate");
        return Ok(Some(Tls {
            config,
            source: Source::SelfSigned,
        }));
    }
    Ok(None)
}

impl Tls {
    /// Re-read the certificate files. Open connections keep the session they have.
    pub async fn reload(&self) {
        match &self.source {
            Source::Files { cert, key } => {
                match self.config.reload_from_pem_file(cert, key).await {
                    Ok(()) => tracing::info!("TLS certificate reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one")
                    }
                }
            }
            Source::SelfSigned => {
                tracing::info!("SIGHUP: self-signed certificate kept (nothing to reload)")
            }
        }
    }
}

/// A certificate for localhost, the listen and public addresses. Kept in memory only.
fn self_signed(s: &Settings) -> Result<(String, String, String), String> {
    let mut names = vec!["localhost".to_owned()];
    let ips: Vec<IpAddr> = s
        .server
        .listen
        .map(|a| a.ip())
        .into_iter()
        .chain(s.server.public_ip.iter().flatten().copied())
        .filter(|ip| !ip.is_unspecified())
        .collect();
    names.extend(ips.iter().map(IpAddr::to_string));
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("cannot generate a self-signed certificate: {e}"))?;
    let fingerprint = fingerprint(ck.cert.der());
    Ok((ck.cert.pem(), ck.signing_key.serialize_pem(), fingerprint))
}

/// SHA-256 of a DER certificate as browsers show it: `AB:CD:…`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
