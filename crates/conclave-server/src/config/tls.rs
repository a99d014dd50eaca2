//! `[tls]`: serve HTTPS and WSS directly, from certificate files or a generated certificate.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain (e.g. certbot's fullchain.pem). Reloaded on SIGHUP.
    #[arg(
        id = "tls_cert",
        long = "tls-cert",
        env = "CONCLAVE_TLS_CERT",
        value_name = "FILE"
    )]
    pub cert: Option<PathBuf>,

    /// PEM private key for the certificate (e.g. certbot's privkey.pem). Reloaded on SIGHUP.
    #[arg(
        id = "tls_key",
        long = "tls-key",
        env = "CONCLAVE_TLS_KEY",
        value_name = "FILE"
    )]
    pub key: Option<PathBuf>,

    /// Generate a self-signed certificate at start (for a quick trial on a LAN; browsers warn).
    #[arg(
        id = "tls_self_signed",
        long = "tls-self-signed",
        env = "CONCLAVE_TLS_SELF_SIGNED",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub self_signed: Option<bool>,
}
