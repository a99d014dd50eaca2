//! Configuration: built-in defaults < config file < environment < command line.
//!
//! Each setting is declared once, as a field of a group struct (one file per group, one TOML table
//! per group) that is both a flattened clap `Args` (flag and environment variable) and a serde
//! struct (file key). Every field is an `Option`: `None` means "not given at this layer". The
//! layers are merged field by field; the built-in defaults are `deploy/conclave.toml` itself,
//! embedded, so the commented example is always exactly what an empty configuration means.
//! Adding a setting or a group: see `docs/configuration.md`.

mod api;
mod auth;
mod ice;
mod log;
mod media;
mod metrics;
mod server;
mod tls;

use std::cell::Cell;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

pub use api::ApiSettings;
pub use auth::AuthSettings;
pub use ice::IceSettings;
pub use log::{LogFormat, LogSettings};
pub use media::{LayerSelection, MediaSettings};
pub use metrics::MetricsSettings;
pub use server::{AdhocRooms, ServerSettings};
pub use tls::TlsSettings;

/// The built-in defaults: the commented example configuration.
pub const DEFAULTS: &str = include_str!("../../../../deploy/conclave.toml");

/// Every settings group, one TOML table each. Add a group here with one flattened field.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[command(flatten)]
    #[serde(default)]
    pub server: ServerSettings,
    #[command(flatten)]
    #[serde(default)]
    pub tls: TlsSettings,
    #[command(flatten)]
    #[serde(default)]
    pub auth: AuthSettings,
    #[command(flatten)]
    #[serde(default)]
    pub log: LogSettings,
    #[command(flatten)]
    #[serde(default)]
    pub metrics: MetricsSettings,
    #[command(flatten)]
    #[serde(default)]
    pub media: MediaSettings,
    #[command(flatten)]
    #[serde(default)]
    pub ice: IceSettings,
    #[command(flatten)]
    #[serde(default)]
    pub api: ApiSettings,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A key in the file is unknown, or its value has the wrong type or form.
    #[error("{file}: `{key}`: {message}")]
    Key {
        file: String,
        key: String,
        message: String,
    },
    /// A value that parsed but cannot work (missing file, contradicting settings).
    #[error("`{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// `CONCLAVE_…` variables besides the settings' own.
const OTHER_VARIABLES: &[&str] = &[
    "CONCLAVE_CONFIG",
    "CONCLAVE_MODERATOR_PASSWORD",
    "CONCLAVE_ROOM_PASSWORD",
    // Test builds with the `tap` feature only.
    "CONCLAVE_TAP_DIR",
    // Test builds with the `fault` feature only.
    "CONCLAVE_FAULT",
];

/// `CONCLAVE_…` environment variables that are no setting (a typo, or a setting of another
/// version). Warned about, not refused: tools around the server may use the prefix too.
pub fn unknown_env_vars() -> Vec<String> {
    use clap::CommandFactory;
    let cmd = crate::cli::Cli::command();
    let known: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .chain(OTHER_VARIABLES.iter().map(|s| s.to_string()))
        .collect();
    let mut unknown: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("CONCLAVE_") && !known.contains(k))
        .collect();
    unknown.sort();
    unknown
}

/// A setting that has a built-in default: after merging it is always set.
pub trait Defaulted<T> {
    fn value(&self) -> T;
}

impl<T: Clone> Defaulted<T> for Option<T> {
    fn value(&self) -> T {
        self.clone()
            .expect("deploy/conclave.toml gives every setting read with value() its default")
    }
}

/// Merge the layers: `cli` holds what the command line and the environment gave (clap already
/// prefers a flag over its environment variable), `file` the config file, if any.
pub fn load(cli: &Settings, file: Option<&Path>) -> Result<Settings, ConfigError> {
    let defaults = parse("built-in defaults", DEFAULTS)?;
    let mut merged = to_json(&defaults);
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        overlay(
            &mut merged,
            to_json(&parse(&path.display().to_string(), &text)?),
        );
    }
    overlay(&mut merged, to_json(cli));
    serde_path_to_error::deserialize(merged).map_err(|e| ConfigError::Key {
        file: "merged settings".into(),
        key: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Parse one TOML layer, naming the offending key on error.
fn parse(file: &str, text: &str) -> Result<Settings, ConfigError> {
    let de = toml::de::Deserializer::parse(text).map_err(|e| ConfigError::Key {
        file: file.to_owned(),
        key: "(syntax)".into(),
        message: e.to_string(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let message = e.inner().message().to_owned();
        let line = e
            .inner()
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        ConfigError::Key {
            file: match line {
                Some(l) => format!("{file} line {l}"),
                None => file.to_owned(),
            },
            key,
            message,
        }
    })
}

fn to_json(s: &Settings) -> Value {
    serde_json::to_value(s).expect("settings serialize to JSON")
}

/// Set every non-null leaf of `top` over `base`.
fn overlay(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(slot) => overlay(slot, v),
                    None if !v.is_null() => {
                        b.insert(k, v);
                    }
                    None => {}
                }
            }
        }
        (_, Value::Null) => {}
        (b, t) => *b = t,
    }
}

impl Settings {
    /// Everything that can be checked before binding anything, so the server never starts
    /// half-configured.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.candidate_ips()?;
        self.ice
            .to_reach()
            .validate()
            .map_err(|e| invalid("ice", e))?;
        self.api
            .to_args()
            .check()
            .map_err(|e| invalid("api.admin_token", e))?;
        let tls = &self.tls;
        match (&tls.cert, &tls.key, tls.self_signed.unwrap_or(false)) {
            (Some(_), Some(_), true) => {
                return Err(invalid(
                    "tls.self_signed",
                    "cannot be combined with tls.cert and tls.key: choose one",
                ));
            }
            (Some(_), None, _) => {
                return Err(invalid("tls.key", "tls.cert is set: give its private key"));
            }
            (None, Some(_), _) => {
                return Err(invalid("tls.cert", "tls.key is set: give its certificate"));
            }
            (Some(c), Some(k), false) => {
                readable("tls.cert", c)?;
                readable("tls.key", k)?;
                pem_files(c, k)?;
            }
            _ => {}
        }
        let auth = &self.auth;
        if let Some(s) = &auth.jwt_secret {
            if s.0.len() < 32 {
                return Err(invalid("auth.jwt_secret", "must be at least 32 characters"));
            }
            if auth.jwt_public_key.is_some() {
                return Err(invalid(
                    "auth.jwt_public_key",
                    "cannot be combined with auth.jwt_secret: choose one",
                ));
            }
        }
        if let Some(p) = &auth.jwt_public_key {
            readable("auth.jwt_public_key", p)?;
        }
        if self.server.workers == Some(0) {
            return Err(invalid("server.workers", "must be at least 1"));
        }
        if let Some(level) = &self.log.level {
            tracing_subscriber::EnvFilter::try_new(level).map_err(|e| {
                invalid(
                    "log.level",
                    format!("not a log filter like `info` or `conclave=debug,warn`: {e}"),
                )
            })?;
        }
        if let (Some(m), Some(l)) = (self.metrics.listen, self.server.listen)
            && m == l
        {
            return Err(invalid(
                "metrics.listen",
                "must differ from server.listen (leave it unset and set metrics.enabled to serve /metrics there)",
            ));
        }
        Ok(())
    }

    /// The address put into ICE candidates.
    /// The addresses put into ICE candidates (the media port is the udp port).
    pub fn candidate_ips(&self) -> Result<Vec<IpAddr>, ConfigError> {
        let udp = self.server.udp.value();
        if let Some(a) = self.server.announce {
            if self
                .server
                .public_ip
                .as_ref()
                .is_some_and(|v| !v.is_empty())
            {
                return Err(invalid(
                    "server.announce",
                    "cannot be combined with server.public_ip: choose one",
                ));
            }
            if a.ip().is_unspecified() || a.port() == 0 {
                return Err(invalid(
                    "server.announce",
                    format!("{a}: give the address and port browsers send media to"),
                ));
            }
            return Ok(vec![a.ip()]);
        }
        let given = self.server.public_ip.clone().unwrap_or_default();
        if !given.is_empty() {
            let mut ips = given;
            ips.dedup();
            if let Some(bad) = ips
                .iter()
                .find(|ip| ip.is_unspecified() || ip.is_multicast())
            {
                return Err(invalid(
                    "server.public_ip",
                    format!("{bad} is not an address browsers can reach"),
                ));
            }
            if udp.is_ipv4() && ips.iter().any(|ip| ip.is_ipv6()) {
                return Err(invalid(
                    "server.public_ip",
                    format!(
                        "server.udp {udp} is IPv4 only; bind [::]:{} to serve IPv6 addresses too",
                        udp.port()
                    ),
                ));
            }
            return Ok(ips);
        }
        if udp.ip().is_unspecified() {
            return Err(invalid(
                "server.public_ip",
                format!(
                    "server.udp {udp} binds to all interfaces: give the address browsers reach \
                     (--public-ip, CONCLAVE_PUBLIC_IP)"
                ),
            ));
        }
        Ok(vec![udp.ip()])
    }

    pub fn worker_count(&self) -> usize {
        self.server
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    /// TLS is served from files or a generated certificate.
    pub fn tls_enabled(&self) -> bool {
        self.tls.cert.is_some() || self.tls.self_signed.unwrap_or(false)
    }

    /// The effective configuration as TOML, secrets redacted, unset keys as comments.
    pub fn to_redacted_toml(&self) -> String {
        REDACT.with(|r| r.set(true));
        let json = to_json(self);
        REDACT.with(|r| r.set(false));
        let mut out = String::new();
        let Value::Object(groups) = json else {
            unreachable!("settings are a struct")
        };
        for (group, keys) in groups {
            out.push_str(&format!("[{group}]\n"));
            if let Value::Object(keys) = keys {
                for (k, v) in keys {
                    match toml_literal(&v) {
                        Some(lit) => out.push_str(&format!("{k} = {lit}\n")),
                        None => out.push_str(&format!("# {k} = (not set)\n")),
                    }
                }
            }
            out.push('\n');
        }
        out
    }
}

fn toml_literal(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => toml::Value::String(s.clone()).to_string(),
        other => other.to_string(),
    })
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

fn readable(key: &'static str, path: &Path) -> Result<(), ConfigError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
}

/// The certificate file holds at least one PEM certificate and the key file a PEM private key.
fn pem_files(cert: &Path, key: &Path) -> Result<(), ConfigError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid("tls.cert", format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(invalid(
            "tls.cert",
            format!("{}: no PEM certificate in it", cert.display()),
        ));
    }
    PrivateKeyDer::from_pem_file(key).map_err(|e| {
        invalid(
            "tls.key",
            format!("{}: no PEM private key: {e}", key.display()),
        )
    })?;
    Ok(())
}

thread_local! {
    /// Set while `config check` serializes the settings for display.
    static REDACT: Cell<bool> = const { Cell::new(false) };
}

/// A secret setting. Its `Debug` never shows it; `config check` prints it redacted. (Merging the
/// layers serializes settings, so plain serialization must keep the value.)
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if REDACT.with(Cell::get) {
            s.serialize_str("(redacted)")
        } else {
            s.serialize_str(&self.0)
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_set_what_the_code_reads() {
        let s = load(&Settings::default(), None).unwrap();
        assert_eq!(s.server.listen.value().to_string(), "127.0.0.1:8080");
        assert_eq!(s.server.udp.value().to_string(), "127.0.0.1:40000");
        s.server.data_dir.value();
        s.server.reconnect_grace.value();
        s.server.adhoc_rooms.value();
        s.server.drain_timeout.value();
        s.log.format.value();
        s.metrics.enabled.value();
        s.tls.self_signed.value();
        s.validate().unwrap();
    }

    #[test]
    fn example_documents_every_flag() {
        use clap::CommandFactory;
        let cmd = crate::cli::Cli::command();
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                let env = env.to_str().unwrap();
                if env == "CONCLAVE_CONFIG" {
                    continue;
                }
                assert!(
                    DEFAULTS.contains(env),
                    "deploy/conclave.toml does not document {env}"
                );
            }
        }
    }

    #[test]
    fn layers_merge_field_by_field() {
        let mut base = serde_json::json!({"a": {"x": 1, "y": 2}, "b": {"z": null}});
        overlay(
            &mut base,
            serde_json::json!({"a": {"x": null, "y": 3}, "b": {"z": 4}}),
        );
        assert_eq!(
            base,
            serde_json::json!({"a": {"x": 1, "y": 3}, "b": {"z": 4}})
        );
    }

    #[test]
    fn secrets_are_redacted_for_display_only() {
        let mut s = Settings::default();
        s.auth.jwt_secret = Some(Secret("x".repeat(40)));
        assert!(!s.to_redacted_toml().contains(&"x".repeat(40)));
        assert!(to_json(&s).to_string().contains(&"x".repeat(40)));
        assert!(!format!("{s:?}").contains(&"x".repeat(40)));
    }
}
