//! Reaching participants behind restrictive networks: ICE-TCP on the media server, TURN (built in
//! or external), and the short-lived TURN credentials handed out in `welcome`.
//!
//! Credentials follow the TURN REST API scheme that coturn's `use-auth-secret` implements:
//! `username = "<expiry-unix-seconds>:<opaque>"`, `password = base64(HMAC-SHA1(secret, username))`.
//! The server and the TURN server share only the secret; nothing is stored per participant.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use conclave_proto::{IceServer, IceTransportPolicy};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use thiserror::Error;

/// Settings for ICE-TCP and TURN, as the `[ice]` configuration group gives them.
#[derive(Debug, Clone)]
pub struct ReachArgs {
    pub ice_tcp: Option<IceTcp>,
    pub turn_listen: Option<SocketAddr>,
    pub turn_urls: Vec<String>,
    pub turn_secret: Option<String>,
    pub turn_credential_ttl: u64,
    pub ice_transport_policy: Policy,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    All,
    Relay,
}

/// `--ice-tcp`: an address or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum IceTcp {
    Off,
    At(SocketAddr),
}

impl TryFrom<String> for IceTcp {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<IceTcp> for String {
    fn from(v: IceTcp) -> String {
        match v {
            IceTcp::Off => "off".into(),
            IceTcp::At(a) => a.to_string(),
        }
    }
}

impl FromStr for IceTcp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        s.parse()
            .map(Self::At)
            .map_err(|_| format!("'{s}' is neither HOST:PORT nor off"))
    }
}

/// Where ICE-TCP listens, if anywhere, and whether failing to bind it is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpPlan {
    Off,
    /// Given explicitly: failing to bind stops the server.
    Required(SocketAddr),
    /// The default: failing to bind (the port is taken) leaves UDP alone working.
    BestEffort(SocketAddr),
}

impl ReachArgs {
    pub fn tcp_plan(&self, udp: SocketAddr) -> TcpPlan {
        match self.ice_tcp {
            Some(IceTcp::Off) => TcpPlan::Off,
            Some(IceTcp::At(a)) => TcpPlan::Required(a),
            None => TcpPlan::BestEffort(udp),
        }
    }

    /// Refuse settings that cannot work, before anything is bound or created.
    pub fn validate(&self) -> Result<(), String> {
        let builtin = self.turn_listen.is_some();
        if !builtin && !self.turn_urls.is_empty() && self.turn_secret.is_none() {
            return Err(
                "--turn-url needs the TURN server's shared secret: set CONCLAVE_TURN_SECRET".into(),
            );
        }
        if self.turn_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err("the TURN secret must be at least 16 characters".into());
        }
        if self.ice_transport_policy == Policy::Relay && !builtin && self.turn_urls.is_empty() {
            return Err(
                "--ice-transport-policy relay needs a TURN server (--turn-listen or --turn-url)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The ICE servers and policy every `welcome` carries; errors name the missing setting.
    pub fn ice_config(
        &self,
        turn_public: &[SocketAddr],
        generated_secret: Option<&str>,
    ) -> Result<IceConfig, String> {
        let mut urls = self.turn_urls.clone();
        if urls.is_empty() {
            for a in turn_public {
                urls.push(format!("turn:{a}?transport=udp"));
                urls.push(format!("turn:{a}?transport=tcp"));
            }
        }
        let secret = self.turn_secret.as_deref().or(generated_secret);
        let turn = match (urls.is_empty(), secret) {
            (true, _) => None,
            (false, None) => {
                return Err(
                    "--turn-url needs the TURN server's shared secret: set CONCLAVE_TURN_SECRET"
                        .into(),
                );
            }
            (false, Some(s)) if s.len() < 16 => {
                return Err("the TURN secret must be at least 16 characters".into());
            }
            (false, Some(s)) => Some(TurnCredentials {
                urls,
                secret: s.to_owned(),
                ttl: Duration::from_secs(self.turn_credential_ttl.max(60)),
            }),
        };
        if self.ice_transport_policy == Policy::Relay && turn.is_none() {
            return Err(
                "--ice-transport-policy relay needs a TURN server (--turn-listen or --turn-url)"
                    .into(),
            );
        }
        Ok(IceConfig {
            turn,
            policy: match self.ice_transport_policy {
                Policy::All => None,
                Policy::Relay => Some(IceTransportPolicy::Relay),
            },
        })
    }
}

/// What signaling adds to each `welcome`.
#[derive(Debug, Clone, Default)]
pub struct IceConfig {
    pub turn: Option<TurnCredentials>,
    pub policy: Option<IceTransportPolicy>,
}

impl IceConfig {
    /// Fresh credentials for one participant.
    pub fn ice_servers(&self) -> Vec<IceServer> {
        let Some(t) = &self.turn else {
            return Vec::new();
        };
        let (username, credential) = t.mint(SystemTime::now());
        vec![IceServer {
            urls: t.urls.clone(),
            username: Some(username),
            credential: Some(credential),
        }]
    }
}

/// Mints (and, for the built-in server, checks) TURN REST API credentials.
#[derive(Clone)]
pub struct TurnCredentials {
    pub urls: Vec<String>,
    secret: String,
    ttl: Duration,
}

impl std::fmt::Debug for TurnCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnCredentials")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("username is not <expiry>:<opaque>")]
    Malformed,
    #[error("credential expired")]
    Expired,
}

impl TurnCredentials {
    pub fn new(secret: &str, ttl: Duration) -> Self {
        Self {
            urls: Vec::new(),
            secret: secret.to_owned(),
            ttl,
        }
    }

    /// A username valid for `ttl` from `now` and its password. The opaque part is random, so
    /// the TURN server learns nothing about who the participant is.
    pub fn mint(&self, now: SystemTime) -> (String, String) {
        let expiry = unix(now) + self.ttl.as_secs();
        let opaque: u64 = rand::random();
        let username = format!("{expiry}:{opaque:016x}");
        let password = password(&self.secret, &username);
        (username, password)
    }

    /// The password for `username` if it has not expired at `now` (what a TURN server checks).
    pub fn password_for(&self, username: &str, now: SystemTime) -> Result<String, CredentialError> {
        let (expiry, _) = username.split_once(':').ok_or(CredentialError::Malformed)?;
        let expiry: u64 = expiry.parse().map_err(|_| CredentialError::Malformed)?;
        if expiry <= unix(now) {
            return Err(CredentialError::Expired);
        }
        Ok(password(&self.secret, username))
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// base64(HMAC-SHA1(secret, username)), as coturn computes it.
pub fn password(secret: &str, username: &str) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// A random secret for the built-in TURN server when none is configured: it lives only in this
/// process, so credentials die with it.
pub fn random_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    BASE64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_matches_openssl() {
        // `echo -n 1334700000:alice | openssl dgst -sha1 -hmac north -binary | base64`
        assert_eq!(
            password("north", "1334700000:alice"),
            "0n11jGEm33ihVnuxz8N2tq6bPLU="
        );
    }

    #[test]
    fn ice_tcp_values() {
        assert_eq!("off".parse::<IceTcp>(), Ok(IceTcp::Off));
        assert_eq!(
            "[::1]:40000".parse::<IceTcp>(),
            Ok(IceTcp::At("[::1]:40000".parse().unwrap()))
        );
        assert!("40000".parse::<IceTcp>().is_err());
    }
}
