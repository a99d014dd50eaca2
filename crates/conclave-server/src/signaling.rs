//! The WebSocket signaling endpoint: parse and validate client messages, pass them to the media
//! worker that owns the room, and send the worker's messages back.
//!
//! Nothing here logs names, rooms, addresses or message contents.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use conclave_proto::{
    ClientMessage, ErrorCode, MAX_RELAY_BYTES, MAX_SEALED_NAME_CHARS, MAX_VIEW_TILES,
    PROTOCOL_VERSION, ServerMessage, validate_display_name, validate_room_name,
};
use conclave_room::ModeratorCommand;
use tokio::sync::{mpsc, oneshot};

use crate::AppState;
use crate::access;
use crate::lifecycle::{Phase, SessionGuard};
use crate::media::{Command, ConnId, JoinSpec};

/// A client that sends this many bad messages in a row is disconnected.
const MAX_CONSECUTIVE_ERRORS: u32 = 20;
/// Messages a connection may send in one burst, and per second after it. When someone leaves a
/// meeting of 200, every member sends about 200 key relays at once: the burst allows that.
const BURST_MESSAGES: f64 = 1000.0;
const MESSAGES_PER_SECOND: f64 = 200.0;
/// Messages dropped in a row over the rate limit before the connection is closed.
const MAX_DROPPED_IN_A_ROW: u32 = 2000;
/// Server pings this often; a connection silent for three intervals is dead.
const PING_INTERVAL: Duration = Duration::from_secs(10);
/// Frames larger than this close the connection.
const HARD_LIMIT_BYTES: usize = 1024 * 1024;
/// Close codes (RFC 6455 §7.4.1).
const CLOSE_POLICY: u16 = 1008;
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;

pub async fn ws_handler(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    // Frames up to 1 MiB are read so that a 256 KiB+ message gets a clear `too_large` reply;
    // beyond that the connection is closed as hostile.
    ws.max_message_size(HARD_LIMIT_BYTES)
        .max_frame_size(HARD_LIMIT_BYTES)
        .on_upgrade(move |socket| connection(socket, state, peer.ip()))
}

struct Session {
    room: String,
    pid: conclave_room::Pid,
    /// Mirrors the role the room told this participant (`welcome`, `role`); the room enforces
    /// it, this only spares hashing work for commands that will be refused.
    moderator: bool,
    /// Counts this participant until the session ends (drain waits for none to be left).
    _live: SessionGuard,
}

async fn connection(mut socket: WebSocket, state: AppState, peer_ip: IpAddr) {
    static NEXT_CONN: AtomicU64 = AtomicU64::new(1);
    let conn = ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed));
    // The only sender goes to the room with `join`: when the room drops it (removed, meeting
    // ended, resumed on another connection), this connection ends.
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<ServerMessage>();
    let mut events_tx = Some(events_tx);
    let mut session: Option<Session> = None;
    let mut errors = 0u32;
    let mut ping = tokio::time::interval(PING_INTERVAL);
    let mut last_seen = tokio::time::Instant::now();
    let mut left = false;
    let mut limited = 0u32;
    let mut bucket = Bucket {
        tokens: BURST_MESSAGES,
        last: tokio::time::Instant::now(),
    };
    let mut phase = state.lifecycle.subscribe();
    state.metrics.connections.inc();

    loop {
        tokio::select! {
            inbound = socket.recv() => {
                let Some(Ok(msg)) = inbound else { break };
                last_seen = tokio::time::Instant::now();
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Binary(_) => {
                        let reply = error(ErrorCode::BadMessage, "binary frames are not part of the protocol");
                        if send(&mut socket, &reply).await.is_err() { break }
                        continue;
                    }
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                crate::tap::signaling_in(text.as_str());
                if !bucket.take(last_seen) {
                    // One error per flood, not one per dropped message (that would amplify it);
                    // a client that keeps flooding is cut off.
                    limited += 1;
                    if limited == 1 {
                        let reply = error(ErrorCode::RateLimited, "too many messages; slow down");
                        if send(&mut socket, &reply).await.is_err() { break }
                    }
                    if limited > MAX_DROPPED_IN_A_ROW {
                        let _ = close(&mut socket, CLOSE_POLICY, "flooding").await;
                        break;
                    }
                    continue;
                }
                limited = 0;
                match handle_text(&state, conn, peer_ip, &mut events_tx, &mut session, text.as_str()).await {
                    Ok(Flow::Continue) => errors = 0,
                    Ok(Flow::Left) => { left = true; let _ = close(&mut socket, CLOSE_NORMAL, "left").await; break }
                    Err(Refusal { reply, fatal }) => {
                        errors += 1;
                        if send(&mut socket, &reply).await.is_err() { break }
                        if fatal || errors >= MAX_CONSECUTIVE_ERRORS {
                            let _ = close(&mut socket, CLOSE_POLICY, "refused").await;
                            break;
                        }
                    }
                }
            }
            event = events_rx.recv() => {
                // The worker dropped our sender: this participant was removed or resumed elsewhere.
                let Some(mut event) = event else {
                    let _ = close(&mut socket, CLOSE_NORMAL, "ended").await;
                    break;
                };
                // Each welcome gets its own short-lived TURN credentials (the room core knows no
                // transport details).
                if let ServerMessage::Welcome { ice_servers, ice_transport_policy, .. } = &mut event {
                    *ice_servers = state.ice.ice_servers();
                    *ice_transport_policy = state.ice.policy;
                }
                if let (Some(s), ServerMessage::Welcome { moderator, .. } | ServerMessage::Role { moderator }) = (session.as_mut(), &event) {
                    s.moderator = *moderator;
                }
                if send(&mut socket, &event).await.is_err() { break }
            }
            changed = phase.changed() => {
                let now = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Closing };
                match now {
                    Phase::Serving => {}
                    Phase::Draining { deadline_s } => {
                        if session.is_some() && send(&mut socket, &ServerMessage::Draining { deadline_s }).await.is_err() {
                            break;
                        }
                    }
                    Phase::Closing => {
                        let _ = close(&mut socket, CLOSE_GOING_AWAY, "server shutting down").await;
                        break;
                    }
                }
            }
            _ = ping.tick() => {
                if last_seen.elapsed() > PING_INTERVAL * 3 { break }
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() { break }
            }
        }
    }

    state.metrics.connections.dec();
    // A connection that ends without `leave` may come back: the room keeps the participant for
    // the reconnect grace period.
    if let Some(s) = session.take().filter(|_| !left) {
        let room = s.room.clone();
        let _ = state.media.send(
            &room,
            Command::ConnectionLost {
                room: s.room,
                pid: s.pid,
                conn,
            },
        );
    }
}

enum Flow {
    Continue,
    Left,
}

pub(crate) struct Refusal {
    /// Boxed: `Result<_, Refusal>` stays small on the success path.
    reply: Box<ServerMessage>,
    /// Close the connection after replying.
    fatal: bool,
}

fn error(code: ErrorCode, message: impl Into<String>) -> ServerMessage {
    ServerMessage::Error {
        code,
        message: message.into(),
    }
}

pub(crate) fn refuse(code: ErrorCode, message: impl Into<String>, fatal: bool) -> Refusal {
    Refusal {
        reply: Box::new(error(code, message)),
        fatal,
    }
}

async fn handle_text(
    state: &AppState,
    conn: ConnId,
    peer_ip: IpAddr,
    events_tx: &mut Option<mpsc::UnboundedSender<ServerMessage>>,
    session: &mut Option<Session>,
    text: &str,
) -> Result<Flow, Refusal> {
    let msg = ClientMessage::parse(text).map_err(|(code, m)| refuse(code, m, false))?;
    let s = match (msg, session.as_ref()) {
        (
            ClientMessage::Join {
                version,
                room,
                name,
                resume,
                password,
                token,
                sealed_name,
                e2ee,
            },
            None,
        ) => {
            if !state.lifecycle.accepting() {
                state.metrics.joins_refused_draining.inc();
                return Err(refuse(
                    ErrorCode::Draining,
                    "this server is shutting down and takes no new participants; try again in a minute",
                    true,
                ));
            }
            if version != PROTOCOL_VERSION {
                return Err(refuse(
                    ErrorCode::UnsupportedVersion,
                    format!(
                        "this server speaks protocol version {PROTOCOL_VERSION}; reload the page"
                    ),
                    true,
                ));
            }
            validate_room_name(&room)
                .map_err(|e| refuse(ErrorCode::InvalidRoom, e.to_string(), true))?;
            validate_display_name(&name)
                .map_err(|e| refuse(ErrorCode::InvalidName, e.to_string(), true))?;
            if sealed_name.as_ref().is_some_and(|n| {
                n.is_empty()
                    || n.chars().count() > MAX_SEALED_NAME_CHARS
                    || n.chars().any(char::is_control)
            }) {
                return Err(refuse(
                    ErrorCode::InvalidName,
                    format!(
                        "sealed_name must be 1 to {MAX_SEALED_NAME_CHARS} characters without control characters"
                    ),
                    true,
                ));
            }
            if resume.as_ref().is_some_and(|r| r.len() > 64) {
                return Err(refuse(ErrorCode::BadMessage, "resume token too long", true));
            }
            let prepared = access::prepare(state, &room, peer_ip, password, token).await?;
            // A token's name is the identity provider's word; fall back to the typed one.
            let name = prepared
                .token_name
                .filter(|n| validate_display_name(n).is_ok())
                .unwrap_or(name);
            let (reply, rx) = oneshot::channel();
            let spec = JoinSpec {
                name,
                sealed_name,
                encrypts: e2ee.unwrap_or(true),
                resume,
                access: prepared.access,
                stored: prepared.stored,
                conn,
                events: events_tx
                    .take()
                    .expect("no session yet, so the sender is still here"),
            };
            state
                .media
                .send(
                    &room,
                    Command::Join {
                        room: room.clone(),
                        spec,
                        reply,
                    },
                )
                .map_err(|_| refuse(ErrorCode::Unavailable, "media server unavailable", true))?;
            let joined = rx
                .await
                .map_err(|_| refuse(ErrorCode::Unavailable, "media server unavailable", true))?
                .map_err(|(code, m)| refuse(code, m, true))?;
            if joined.waiting {
                access::knocked(state, peer_ip);
            }
            *session = Some(Session {
                room,
                pid: joined.pid,
                moderator: false,
                _live: state.lifecycle.session(),
            });
            return Ok(Flow::Continue);
        }
        (ClientMessage::Join { .. }, Some(_)) => {
            return Err(refuse(
                ErrorCode::AlreadyJoined,
                "already joined on this connection",
                false,
            ));
        }
        (_, None) => return Err(refuse(ErrorCode::NotJoined, "send join first", false)),
        (msg, Some(s)) => (msg, s),
    };
    let (msg, s) = s;
    let (room, pid) = (s.room.clone(), s.pid);
    let cmd = match msg {
        ClientMessage::Join { .. } => unreachable!("handled above"),
        ClientMessage::Offer { sdp, screen_mid } => Command::Offer {
            room,
            pid,
            conn,
            sdp,
            screen_mid,
        },
        ClientMessage::MediaState { audio, video } => Command::MediaState {
            room,
            pid,
            conn,
            audio,
            video,
        },
        ClientMessage::Relay { to, data } => {
            if data.is_empty() || data.len() > MAX_RELAY_BYTES {
                return Err(refuse(
                    ErrorCode::BadMessage,
                    format!("relay data must be 1 to {MAX_RELAY_BYTES} bytes"),
                    false,
                ));
            }
            Command::Relay {
                room,
                pid,
                conn,
                to,
                data,
            }
        }
        ClientMessage::View { tiles } => {
            if tiles.len() > MAX_VIEW_TILES {
                return Err(refuse(
                    ErrorCode::BadMessage,
                    format!("a view has at most {MAX_VIEW_TILES} tiles"),
                    false,
                ));
            }
            Command::View {
                room,
                pid,
                conn,
                tiles: tiles
                    .into_iter()
                    .map(|t| (t.participant_id, t.height))
                    .collect(),
            }
        }
        ClientMessage::Leave => {
            send_cmd(state, s, Command::Leave { room, pid, conn })?;
            *session = None;
            return Ok(Flow::Left);
        }
        ClientMessage::SetPassword { password } => {
            // Hashing costs real CPU: only for moderators, and off the async threads.
            if !s.moderator {
                return Err(refuse(
                    ErrorCode::NotModerator,
                    "only moderators can do that",
                    false,
                ));
            }
            let hash = match password {
                None => None,
                Some(p) => Some(access::hash_new_password(p).await?),
            };
            Command::Moderate {
                room,
                pid,
                conn,
                cmd: ModeratorCommand::SetPasswordHash(hash),
            }
        }
        other => {
            let cmd = match other {
                ClientMessage::Mute { participant_id } => ModeratorCommand::Mute(participant_id),
                ClientMessage::MuteAll => ModeratorCommand::MuteAll,
                ClientMessage::StopVideo { participant_id } => {
                    ModeratorCommand::StopVideo(participant_id)
                }
                ClientMessage::StopScreenShare { participant_id } => {
                    ModeratorCommand::StopScreenShare(participant_id)
                }
                ClientMessage::Remove { participant_id } => {
                    ModeratorCommand::Remove(participant_id)
                }
                ClientMessage::SetModerator {
                    participant_id,
                    moderator,
                } => ModeratorCommand::SetModerator(participant_id, moderator),
                ClientMessage::Lock { locked } => ModeratorCommand::Lock(locked),
                ClientMessage::SetLobby { enabled } => ModeratorCommand::SetLobby(enabled),
                ClientMessage::Admit { knock_id } => ModeratorCommand::Admit(knock_id),
                ClientMessage::Deny { knock_id } => ModeratorCommand::Deny(knock_id),
                ClientMessage::EndMeeting => ModeratorCommand::EndMeeting,
                ClientMessage::SetE2ee { required } => ModeratorCommand::SetE2eeRequired(required),
                _ => unreachable!("every other message is matched above"),
            };
            Command::Moderate {
                room,
                pid,
                conn,
                cmd,
            }
        }
    };
    send_cmd(state, s, cmd)?;
    Ok(Flow::Continue)
}

fn send_cmd(state: &AppState, s: &Session, cmd: Command) -> Result<(), Refusal> {
    state
        .media
        .send(&s.room, cmd)
        .map_err(|_| refuse(ErrorCode::Unavailable, "media server unavailable", true))
}

async fn send(socket: &mut WebSocket, msg: &ServerMessage) -> Result<(), axum::Error> {
    let text = serde_json::to_string(msg).expect("server messages always serialize");
    socket.send(Message::Text(text.into())).await
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) -> Result<(), axum::Error> {
    socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await
}

/// Token bucket for inbound messages.
struct Bucket {
    tokens: f64,
    last: tokio::time::Instant,
}

impl Bucket {
    fn take(&mut self, now: tokio::time::Instant) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * MESSAGES_PER_SECOND;
        self.tokens = (self.tokens + refill).min(BURST_MESSAGES);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
