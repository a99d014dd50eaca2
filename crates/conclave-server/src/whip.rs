//! WHIP (RFC 9725) to publish into a room and WHEP to watch one, so OBS Studio, GStreamer or any
//! other WebRTC sender or player can take part without the web client.
//!
//! An HTTP session is a participant like any other, created the way signaling creates one
//! (`Command::Join`, then `Command::Offer`, the answer arriving on the participant's events
//! channel). A small task per session holds that channel: it ends the session on `DELETE`, when
//! the room drops the participant (meeting ended, removed, transport failed), or when the
//! transport never connects. Such a participant is media-only: it never moderates, cannot
//! encrypt end to end (so it needs a room that allows that), and is shown to everyone as not
//! encrypted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use conclave_proto::{ErrorCode, ServerMessage, validate_display_name, validate_room_name};
use conclave_room::{Access, StoredSettings};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::AppState;
use crate::access::unix_now;
use crate::api::{bearer, problem};
use crate::auth::TokenError;
use crate::media::{Command, ConnId, JoinSpec};

/// Largest SDP offer accepted. Browsers' offers with many m-lines stay well below.
const MAX_OFFER_BYTES: usize = 64 * 1024;
/// How long the room has to answer an offer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// A session whose transport has not connected by then is ended: nothing else would notice a
/// client that never sends a packet.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Connection ids of HTTP sessions, apart from the WebSocket ones for easier reading of state.
const CONN_BASE: u64 = 1 << 62;

/// Publish (WHIP) or watch (WHEP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Publish,
    Watch,
}

impl Direction {
    fn prefix(self) -> &'static str {
        match self {
            Direction::Publish => "whip",
            Direction::Watch => "whep",
        }
    }

    /// Name shown when the token carries none.
    fn default_name(self) -> &'static str {
        match self {
            Direction::Publish => "Stream",
            Direction::Watch => "Viewer",
        }
    }
}

/// Live HTTP sessions by their (unguessable) id.
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    max: usize,
}

struct Session {
    room: String,
    direction: Direction,
    stop: oneshot::Sender<()>,
}

impl Sessions {
    pub fn new(max: usize) -> Self {
        Self {
            live: Mutex::new(HashMap::new()),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.live.lock().expect("sessions lock")
    }
}

/// `POST /whip/<room>`, `POST /whep/<room>`, and `DELETE`/`PATCH` on their session URLs.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{delete, post};
    axum::Router::new()
        .route("/whip/{room}", post(whip_post))
        .route(
            "/whip/{room}/{session}",
            delete(whip_delete).patch(patch_not_supported),
        )
        .route("/whep/{room}", post(whep_post))
        .route(
            "/whep/{room}/{session}",
            delete(whep_delete).patch(patch_not_supported),
        )
}

async fn whip_post(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(state, room, headers, body, Direction::Publish).await
}

async fn whep_post(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(state, room, headers, body, Direction::Watch).await
}

async fn whip_delete(
    State(state): State<AppState>,
    Path((room, id)): Path<(String, String)>,
) -> Response {
    delete(&state, &room, &id, Direction::Publish)
}

async fn whep_delete(
    State(state): State<AppState>,
    Path((room, id)): Path<(String, String)>,
) -> Response {
    delete(&state, &room, &id, Direction::Watch)
}

/// Trickle ICE and ICE restarts are not supported: the offer must carry its candidates (RFC 9725
/// §4.3.1 lets a server answer 405 then).
async fn patch_not_supported() -> Response {
    let mut res = problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "trickle_not_supported",
        "this server does not take trickled candidates or ICE restarts; send a complete offer",
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE"));
    res
}

fn delete(state: &AppState, room: &str, id: &str, direction: Direction) -> Response {
    let mut live = state.sessions.lock();
    let matches = live
        .get(id)
        .is_some_and(|s| s.room == room && s.direction == direction);
    if !matches {
        return SessionError::NoSuchSession.into_response();
    }
    let session = live.remove(id).expect("checked above");
    let _ = session.stop.send(());
    StatusCode::OK.into_response()
}

async fn create(
    state: AppState,
    room: String,
    headers: HeaderMap,
    body: Bytes,
    direction: Direction,
) -> Response {
    match try_create(&state, &room, &headers, &body, direction).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

async fn try_create(
    state: &AppState,
    room: &str,
    headers: &HeaderMap,
    body: &Bytes,
    direction: Direction,
) -> Result<Response, SessionError> {
    let is_sdp = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
        });
    if !is_sdp {
        return Err(SessionError::ContentType);
    }
    if body.len() > MAX_OFFER_BYTES {
        return Err(SessionError::TooLarge);
    }
    let offer = std::str::from_utf8(body)
        .map_err(|_| SessionError::InvalidSdp("the offer is not UTF-8 text".into()))?;
    if validate_room_name(room).is_err() {
        return Err(SessionError::InvalidRoom);
    }
    let grant = authorize(state, room, headers)?;
    if state.sessions.lock().len() >= state.sessions.max {
        return Err(SessionError::TooMany);
    }
    let stored = state.store.get_room(room, unix_now()).await.map_err(|e| {
        tracing::error!(error = %e, "storage read failed");
        SessionError::Unavailable
    })?;

    static NEXT_CONN: AtomicU64 = AtomicU64::new(CONN_BASE);
    let conn = ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed));
    let (events_tx, mut events) = mpsc::unbounded_channel::<ServerMessage>();
    let name = grant
        .name
        .filter(|n| validate_display_name(n).is_ok())
        .unwrap_or_else(|| direction.default_name().to_owned());
    let spec = JoinSpec {
        name,
        sealed_name: None,
        encrypts: false,
        resume: None,
        access: Access {
            host: true,
            media_only: true,
            ..Access::default()
        },
        stored: stored.map(|s| StoredSettings {
            lobby: s.lobby,
            password_hash: s.password_hash,
        }),
        conn,
        events: events_tx,
    };
    let (reply, rx) = oneshot::channel();
    state
        .media
        .send(
            room,
            Command::Join {
                room: room.to_owned(),
                spec,
                reply,
            },
        )
        .map_err(|_| SessionError::Unavailable)?;
    let joined = rx
        .await
        .map_err(|_| SessionError::Unavailable)?
        .map_err(|(code, message)| {
            let message = match code {
                ErrorCode::E2eeRequired => "this meeting is end-to-end encrypted and a WHIP/WHEP client cannot encrypt; a moderator can allow participants who cannot encrypt".into(),
                _ => message,
            };
            SessionError::Refused { code, message }
        })?;
    let pid = joined.pid;
    // Until the session task holds the participant, any way out of here (an error, or the client
    // hanging up, which drops this future) takes it out of the room again.
    let mut guard = LeaveOnDrop {
        state,
        room,
        pid,
        conn,
        armed: true,
    };
    if joined.waiting {
        return Err(SessionError::Lobby);
    }

    let sent = state.media.send(
        room,
        Command::Offer {
            room: room.to_owned(),
            pid,
            conn,
            sdp: offer.to_owned(),
            screen_mid: None,
        },
    );
    if sent.is_err() {
        return Err(SessionError::Unavailable);
    }
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
        while let Some(msg) = events.recv().await {
            match msg {
                ServerMessage::Answer { sdp } => return Ok(sdp),
                ServerMessage::Error { message, .. } => {
                    return Err(SessionError::InvalidSdp(message));
                }
                ServerMessage::Closed { .. } => return Err(SessionError::Unavailable),
                _ => {}
            }
        }
        Err(SessionError::Unavailable)
    })
    .await
    .unwrap_or(Err(SessionError::Unavailable));
    let answer = answer?;
    if direction == Direction::Publish {
        // What the stream sends, so tiles show its camera and microphone as on.
        let _ = state.media.send(
            room,
            Command::MediaState {
                room: room.to_owned(),
                pid,
                conn,
                audio: has_media(offer, "audio"),
                video: has_media(offer, "video"),
            },
        );
    }

    let id = crate::ids::random_token(26);
    let (stop, stopped) = oneshot::channel();
    state.sessions.lock().insert(
        id.clone(),
        Session {
            room: room.to_owned(),
            direction,
            stop,
        },
    );
    guard.armed = false;
    tokio::spawn(run_session(
        state.clone(),
        id.clone(),
        room.to_owned(),
        pid,
        conn,
        events,
        stopped,
    ));
    tracing::info!(kind = direction.prefix(), "HTTP media session started");
    let location = format!("/{}/{room}/{id}", direction.prefix());
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, location),
        ],
        answer,
    )
        .into_response())
}

/// Takes a participant out of its room when dropped, unless disarmed.
struct LeaveOnDrop<'a> {
    state: &'a AppState,
    room: &'a str,
    pid: conclave_room::Pid,
    conn: ConnId,
    armed: bool,
}

impl Drop for LeaveOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.state.media.send(
                self.room,
                Command::Leave {
                    room: self.room.to_owned(),
                    pid: self.pid,
                    conn: self.conn,
                },
            );
        }
    }
}

/// Who may publish or watch: a join token for the room in `Authorization: Bearer`.
fn authorize(
    state: &AppState,
    room: &str,
    headers: &HeaderMap,
) -> Result<crate::auth::TokenGrant, SessionError> {
    let verifier = state
        .tokens
        .as_ref()
        .ok_or(SessionError::TokensNotEnabled)?;
    let token = bearer(headers).ok_or(SessionError::NoToken)?;
    verifier.verify(token, room).map_err(|e| match e {
        TokenError::WrongRoom => SessionError::WrongRoom,
        e => SessionError::InvalidToken(e.to_string()),
    })
}

/// Why a session was not started (or not found), as the client is told.
#[derive(Debug, Error)]
pub enum SessionError {
    #[error("the offer must be sent as application/sdp")]
    ContentType,
    #[error("the offer is larger than {MAX_OFFER_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    InvalidSdp(String),
    #[error("not a room name: use 1 to 64 letters, digits, '-' or '_'")]
    InvalidRoom,
    #[error("WHIP and WHEP need join tokens, which are not enabled on this server")]
    TokensNotEnabled,
    #[error("send a join token for this room as Authorization: Bearer <token>")]
    NoToken,
    #[error("{0}")]
    InvalidToken(String),
    #[error("the token is for another room")]
    WrongRoom,
    #[error("this server has as many WHIP/WHEP sessions as it takes; try again later")]
    TooMany,
    #[error(
        "this room has a lobby, and a WHIP/WHEP client cannot wait in it; a moderator can turn the lobby off"
    )]
    Lobby,
    /// The room refused the participant (`e2ee_required`, `room_locked`, …).
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    #[error("the server cannot take this session right now")]
    Unavailable,
    #[error("no such session")]
    NoSuchSession,
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            SessionError::ContentType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_content_type"),
            SessionError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            SessionError::InvalidSdp(_) => (StatusCode::BAD_REQUEST, "invalid_sdp"),
            SessionError::InvalidRoom => (StatusCode::NOT_FOUND, "invalid_room"),
            SessionError::TokensNotEnabled => (StatusCode::FORBIDDEN, "tokens_not_enabled"),
            SessionError::NoToken | SessionError::InvalidToken(_) => {
                (StatusCode::UNAUTHORIZED, "invalid_token")
            }
            SessionError::WrongRoom => (StatusCode::FORBIDDEN, "wrong_room"),
            SessionError::TooMany => (StatusCode::SERVICE_UNAVAILABLE, "too_many_sessions"),
            SessionError::Lobby => (StatusCode::FORBIDDEN, "lobby"),
            SessionError::Refused {
                code: ErrorCode::RoomFull | ErrorCode::LobbyFull | ErrorCode::Unavailable,
                ..
            } => (StatusCode::SERVICE_UNAVAILABLE, "refused"),
            SessionError::Refused { .. } => (StatusCode::FORBIDDEN, "refused"),
            SessionError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            SessionError::NoSuchSession => (StatusCode::NOT_FOUND, "no_such_session"),
        };
        // The room's refusals carry the code signaling clients get (`e2ee_required`, …).
        let code = match &self {
            SessionError::Refused { code, .. } => error_code_name(*code),
            _ => code.to_owned(),
        };
        let mut res = problem(status, &code, self.to_string());
        let h = res.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, SessionError::TooMany) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        res
    }
}

/// The protocol's name of an error code (`e2ee_required`), as signaling clients see it.
fn error_code_name(code: ErrorCode) -> String {
    match serde_json::to_value(code) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "refused".into(),
    }
}

/// The offer has an m-line of this kind that sends.
fn has_media(sdp: &str, kind: &str) -> bool {
    let mut in_kind = false;
    let mut sends = false;
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            if in_kind && sends {
                return true;
            }
            in_kind = m.starts_with(kind);
            sends = true;
        } else if in_kind && (line.starts_with("a=recvonly") || line.starts_with("a=inactive")) {
            sends = false;
        }
    }
    in_kind && sends
}

/// Holds the participant's events channel for the session's life.
async fn run_session(
    state: AppState,
    id: String,
    room: String,
    pid: conclave_room::Pid,
    conn: ConnId,
    mut events: mpsc::UnboundedReceiver<ServerMessage>,
    mut stopped: oneshot::Receiver<()>,
) {
    let connect_deadline = tokio::time::sleep(CONNECT_TIMEOUT);
    tokio::pin!(connect_deadline);
    let mut checked = false;
    let leave = |state: &AppState| {
        let _ = state.media.send(
            &room,
            Command::Leave {
                room: room.clone(),
                pid,
                conn,
            },
        );
    };
    loop {
        tokio::select! {
            _ = &mut stopped => {
                leave(&state);
                break;
            }
            // The room dropped the participant: meeting ended, removed, or its transport ended.
            event = events.recv() => if event.is_none() { break },
            _ = &mut connect_deadline, if !checked => {
                checked = true;
                let (reply, rx) = oneshot::channel();
                let asked = state.media.send(&room, Command::Connected { room: room.clone(), pid, reply });
                let connected = asked.is_ok() && rx.await.unwrap_or(false);
                if !connected {
                    leave(&state);
                    break;
                }
            }
        }
    }
    state.sessions.lock().remove(&id);
    tracing::info!("HTTP media session ended");
}

#[cfg(test)]
mod tests {
    use super::has_media;

    #[test]
    fn media_kinds_of_an_offer() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n";
        assert!(has_media(sdp, "audio"));
        assert!(has_media(sdp, "video"));
        let audio_only = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=inactive\r\n";
        assert!(has_media(audio_only, "audio"));
        assert!(!has_media(audio_only, "video"));
    }
}
