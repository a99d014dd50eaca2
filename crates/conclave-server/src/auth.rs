//! Proving who may enter: password hashes (argon2id), join tokens (JWT with the claims Jitsi
//! deployments use), and slowing down guessing. Nothing here logs a secret or an address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use thiserror::Error;

/// Longest password accepted: argon2 hashes anything, but a cap bounds the work per attempt.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// argon2id PHC string for a password.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Constant-time check of a password against a PHC string (argon2's verifier compares in
/// constant time). A malformed stored hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("join tokens are not enabled on this server")]
    NotConfigured,
    #[error("the token is invalid: {0}")]
    Invalid(String),
    #[error("the token is for another room")]
    WrongRoom,
}

/// How join tokens are checked.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub name: Option<String>,
    pub moderator: bool,
}

#[derive(Debug, Deserialize)]
struct Claims {
    room: Option<String>,
    #[serde(default)]
    moderator: Option<Flag>,
    #[serde(default)]
    context: Option<Context>,
}

#[derive(Debug, Deserialize)]
struct Context {
    #[serde(default)]
    user: Option<User>,
}

#[derive(Debug, Deserialize)]
struct User {
    name: Option<String>,
    #[serde(default)]
    moderator: Option<Flag>,
}

/// Jitsi deployments write the moderator flag as `true` or as `"true"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

impl Flag {
    fn is_true(&self) -> bool {
        match self {
            Flag::Bool(b) => *b,
            Flag::Text(t) => t.eq_ignore_ascii_case("true"),
        }
    }
}

#[derive(Debug, Error)]
pub enum TokenConfigError {
    #[error("unusable token key: {0}")]
    Key(String),
}

impl TokenVerifier {
    /// HS256 with a shared secret.
    pub fn hs256(
        secret: &[u8],
        audience: Option<&str>,
        issuer: Option<&str>,
    ) -> Result<Self, TokenConfigError> {
        let key =
            DecodingKey::from_secret(secret).map_err(|e| TokenConfigError::Key(e.to_string()))?;
        Ok(Self::new(key, Algorithm::HS256, audience, issuer))
    }

    /// RS256 or ES256 with a PEM public key (the algorithm follows the key type).
    pub fn public_key(
        pem: &[u8],
        audience: Option<&str>,
        issuer: Option<&str>,
    ) -> Result<Self, TokenConfigError> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self::new(key, Algorithm::RS256, audience, issuer));
        }
        match DecodingKey::from_ec_pem(pem) {
            Ok(key) => Ok(Self::new(key, Algorithm::ES256, audience, issuer)),
            Err(e) => Err(TokenConfigError::Key(e.to_string())),
        }
    }

    fn new(key: DecodingKey, alg: Algorithm, audience: Option<&str>, issuer: Option<&str>) -> Self {
        // Only the configured algorithm is accepted: no `none`, no HS/RS confusion.
        let mut validation = Validation::new(alg);
        validation.validate_nbf = true;
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp"]);
        match audience {
            Some(a) => validation.set_audience(&[a]),
            None => validation.validate_aud = false,
        }
        if let Some(i) = issuer {
            validation.set_issuer(&[i]);
        }
        Self { key, validation }
    }

    /// Check a token for `room`.
    pub fn verify(&self, token: &str, room: &str) -> Result<TokenGrant, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let claims = data.claims;
        match claims.room.as_deref() {
            Some("*") => {}
            Some(r) if r.eq_ignore_ascii_case(room) => {}
            _ => return Err(TokenError::WrongRoom),
        }
        let user = claims.context.and_then(|c| c.user);
        let moderator = claims.moderator.as_ref().is_some_and(Flag::is_true)
            || user
                .as_ref()
                .and_then(|u| u.moderator.as_ref())
                .is_some_and(Flag::is_true);
        Ok(TokenGrant {
            name: user.and_then(|u| u.name),
            moderator,
        })
    }
}

/// Slows down guessing: after a few failures for a key (a room, a source address), further
/// attempts are refused for a while that doubles with each failure. In memory only: source
/// addresses never reach the disk or the logs, and idle entries are forgotten.
pub struct Throttle {
    entries: Mutex<HashMap<ThrottleKey, Entry>>,
    free_failures: u32,
    max_delay: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ThrottleKey {
    Room(String),
    Source(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    blocked_until: Instant,
    last: Instant,
}

/// Entries untouched this long are dropped.
const FORGET_AFTER: Duration = Duration::from_secs(600);

impl Throttle {
    pub fn new(free_failures: u32, max_delay: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            free_failures,
            max_delay,
        }
    }

    /// `Err(wait)` if any of the keys is blocked now.
    pub fn check(&self, now: Instant, keys: &[ThrottleKey]) -> Result<(), Duration> {
        let entries = self.entries.lock().expect("throttle lock");
        let wait = keys
            .iter()
            .filter_map(|k| entries.get(k))
            .map(|e| e.blocked_until.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    pub fn failure(&self, now: Instant, keys: &[ThrottleKey]) {
        let mut entries = self.entries.lock().expect("throttle lock");
        entries.retain(|_, e| now.saturating_duration_since(e.last) < FORGET_AFTER);
        for k in keys {
            let e = entries.entry(k.clone()).or_insert(Entry {
                failures: 0,
                blocked_until: now,
                last: now,
            });
            e.failures += 1;
            e.last = now;
            if e.failures > self.free_failures {
                let exp = (e.failures - self.free_failures - 1).min(16);
                let delay = Duration::from_secs(1u64 << exp).min(self.max_delay);
                e.blocked_until = now + delay;
            }
        }
    }

    /// A success clears the source's record (not the room's: others may still be guessing).
    pub fn success(&self, key: &ThrottleKey) {
        self.entries.lock().expect("throttle lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_roundtrip() {
        let h = hash_password("tuesday board").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("tuesday"));
        assert!(verify_password("tuesday board", &h));
        assert!(!verify_password("tuesday boarD", &h));
        assert!(!verify_password("tuesday board", "not a hash"));
    }

    #[test]
    fn throttle_doubles_then_forgets() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let now = Instant::now();
        let k = [ThrottleKey::Room("r".into())];
        for _ in 0..3 {
            t.failure(now, &k);
            assert!(t.check(now, &k).is_ok(), "first failures are free");
        }
        t.failure(now, &k);
        assert_eq!(t.check(now, &k), Err(Duration::from_secs(1)));
        t.failure(now, &k);
        assert_eq!(t.check(now, &k), Err(Duration::from_secs(2)));
        assert!(t.check(now + Duration::from_secs(2), &k).is_ok());
        for _ in 0..20 {
            t.failure(now, &k);
        }
        assert_eq!(t.check(now, &k), Err(Duration::from_secs(60)), "capped");
        let other = [ThrottleKey::Source("127.0.0.9".parse().unwrap())];
        assert!(t.check(now, &other).is_ok());
    }
}
