//! Establishing what a joiner proved (token, password) before the join reaches the room. The
//! expensive and slow parts (storage, argon2) happen here, never on a media thread.

use std::net::IpAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use conclave_proto::ErrorCode;
use conclave_room::{Access, StoredSettings};
use tokio::sync::oneshot;

use crate::AppState;
use crate::auth::{self, MAX_PASSWORD_CHARS, ThrottleKey};
use crate::media::Command;
use crate::signaling::{Refusal, refuse};

/// What signaling learned about a joiner.
pub struct Prepared {
    pub access: Access,
    pub stored: Option<StoredSettings>,
    pub token_name: Option<String>,
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn unavailable() -> Refusal {
    refuse(
        ErrorCode::Unavailable,
        "the server cannot take this meeting right now",
        true,
    )
}

pub async fn prepare(
    state: &AppState,
    room: &str,
    peer_ip: IpAddr,
    password: Option<String>,
    token: Option<String>,
) -> Result<Prepared, Refusal> {
    let now = Instant::now();
    let source = ThrottleKey::Source(peer_ip);
    if let Err(wait) = state.knocks.check(now, std::slice::from_ref(&source)) {
        return Err(too_many(wait));
    }
    let mut access = Access::default();
    let mut token_name = None;
    if let Some(t) = token {
        let verifier = state.tokens.as_ref().ok_or_else(|| {
            refuse(
                ErrorCode::InvalidToken,
                "join tokens are not enabled on this server",
                true,
            )
        })?;
        let grant = verifier
            .verify(&t, room)
            .map_err(|e| refuse(ErrorCode::InvalidToken, e.to_string(), true))?;
        access.host = true;
        access.moderator = grant.moderator;
        token_name = grant.name;
    }
    let stored = state.store.get_room(room, unix_now()).await.map_err(|e| {
        tracing::error!(error = %e, "storage read failed");
        unavailable()
    })?;

    if let Some(pw) = password.filter(|p| !p.is_empty()) {
        let keys = [ThrottleKey::Room(room.to_owned()), source.clone()];
        state.throttle.check(now, &keys).map_err(too_many)?;
        if pw.chars().count() > MAX_PASSWORD_CHARS {
            state.throttle.failure(now, &keys);
            return Err(refuse(
                ErrorCode::WrongPassword,
                "that password is wrong",
                true,
            ));
        }
        // The live room's password (moderators may have changed it), else the stored one.
        let (tx, rx) = oneshot::channel();
        state
            .media
            .send(
                room,
                Command::Peek {
                    room: room.to_owned(),
                    reply: tx,
                },
            )
            .map_err(|_| unavailable())?;
        let live = rx.await.map_err(|_| unavailable())?;
        let room_hash = match live {
            Some(h) => h,
            None => stored.as_ref().and_then(|s| s.password_hash.clone()),
        };
        let moderator_hash = stored
            .as_ref()
            .and_then(|s| s.moderator_password_hash.clone());
        if room_hash.is_some() || moderator_hash.is_some() {
            let rh = room_hash.clone();
            let (is_moderator, room_ok) = tokio::task::spawn_blocking(move || {
                let m = moderator_hash
                    .as_deref()
                    .is_some_and(|h| auth::verify_password(&pw, h));
                let r = !m && rh.as_deref().is_some_and(|h| auth::verify_password(&pw, h));
                (m, r)
            })
            .await
            .map_err(|_| unavailable())?;
            if is_moderator {
                access.moderator = true;
            } else if room_ok {
                access.password_hash = room_hash;
            } else {
                state.throttle.failure(now, &keys);
                return Err(refuse(
                    ErrorCode::WrongPassword,
                    "that password is wrong",
                    true,
                ));
            }
            state.throttle.success(&source);
        }
    }
    let stored = stored.map(|s| StoredSettings {
        lobby: s.lobby,
        password_hash: s.password_hash,
    });
    Ok(Prepared {
        access,
        stored,
        token_name,
    })
}

/// Count a knock from this source; many in a short time are refused for a while.
pub fn knocked(state: &AppState, peer_ip: IpAddr) {
    state
        .knocks
        .failure(Instant::now(), &[ThrottleKey::Source(peer_ip)]);
}

pub async fn hash_new_password(password: String) -> Result<String, Refusal> {
    let n = password.chars().count();
    if n == 0 || n > MAX_PASSWORD_CHARS || password.chars().any(char::is_control) {
        return Err(refuse(
            ErrorCode::BadMessage,
            format!(
                "a password has 1 to {MAX_PASSWORD_CHARS} characters and no control characters"
            ),
            false,
        ));
    }
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|_| unavailable())?
        .map_err(|_| unavailable())
}

fn too_many(wait: std::time::Duration) -> Refusal {
    refuse(
        ErrorCode::TooManyAttempts,
        format!(
            "too many attempts; try again in {} seconds",
            wait.as_secs().max(1)
        ),
        true,
    )
}
