//! Conclave signaling protocol.
//!
//! JSON messages over one WebSocket per participant, one variant per message type, tagged by
//! `"type"`. The same types are used by the server, the Rust test clients and (later) the load
//! generator; `docs/protocol.md` documents every message and a test parses its examples.
//!
//! Negotiation rule: the **client is always the SDP offerer**. The server never sends an offer, so
//! there is no glare. When the client needs more receive slots, the server says so in
//! [`ServerMessage::Subscriptions`] and the client re-offers with more `recvonly` transceivers.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

mod validate;

pub use validate::{NameError, RoomNameError, validate_display_name, validate_room_name};

/// Version of this protocol. The client sends it in `join`; a mismatch is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest `join.sealed_name`.
pub const MAX_SEALED_NAME_CHARS: usize = 1024;

/// Largest inbound WebSocket message the server accepts, in bytes.
/// An SDP offer grows by about 3 KB per receive slot; 256 KiB covers a client receiving its
/// last-N videos plus audio with room to spare.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Largest `relay` payload, in bytes.
pub const MAX_RELAY_BYTES: usize = 32 * 1024;

/// Opaque participant identifier, unique within a server process. Never derived from a name or an
/// address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParticipantId(pub String);

impl std::fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Audio,
    Video,
}

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First message on every connection.
    Join {
        /// Must equal [`PROTOCOL_VERSION`].
        version: u32,
        /// Room name: 1–64 of `A–Z a–z 0–9 - _`.
        room: String,
        /// Display name: 1–64 characters, no control characters.
        name: String,
        /// Resume token from an earlier `welcome`, to come back as the same participant after a
        /// dropped connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
        /// Room password, or a persistent room's moderator password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// Signed join token (JWT) from an identity provider or learning platform.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// The display name encrypted with a key from the room secret (end-to-end encryption),
        /// at most [`MAX_SEALED_NAME_CHARS`]. The server passes it to moderators in `knock`
        /// without reading it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sealed_name: Option<String>,
        /// `false` for a client that cannot encrypt end to end (a browser without encoded
        /// transforms, later WHIP ingest). Absent means it can.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        e2ee: Option<bool>,
    },
    /// An SDP offer: the client's sending tracks plus its `recvonly` receive slots.
    Offer {
        sdp: String,
        /// The `mid` of the sending m-line that carries a screen share, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        screen_mid: Option<String>,
    },
    /// The client's microphone and camera state (`true` = on).
    MediaState { audio: bool, video: bool },
    /// Leave the room now (the connection then closes).
    Leave,
    /// An opaque blob for another participant (`to`) or for everyone else in the room (`to`
    /// absent). The server never parses `data`: clients use it for end-to-end encrypted key
    /// exchange and application messages (`docs/e2ee.md`).
    Relay {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<ParticipantId>,
        /// At most [`MAX_RELAY_BYTES`].
        data: String,
    },

    // Moderator commands. A participant who is not a moderator gets `error` `not_moderator`.
    /// Stop forwarding this participant's microphone until they unmute themselves.
    Mute { participant_id: ParticipantId },
    /// Mute everyone except moderators.
    MuteAll,
    /// Stop forwarding this participant's camera until they turn it on again themselves.
    StopVideo { participant_id: ParticipantId },
    /// Stop this participant's screen share.
    StopScreenShare { participant_id: ParticipantId },
    /// Remove this participant; their session cannot rejoin.
    Remove { participant_id: ParticipantId },
    /// Grant or revoke the moderator role.
    SetModerator {
        participant_id: ParticipantId,
        moderator: bool,
    },
    /// Lock the room: nobody new may join (moderators with a password or token still can).
    Lock { locked: bool },
    /// Turn the lobby on or off.
    SetLobby { enabled: bool },
    /// Set (`Some`) or clear (`null`) the room password.
    SetPassword { password: Option<String> },
    /// Let a waiting knocker in.
    Admit { knock_id: String },
    /// Turn a waiting knocker away.
    Deny { knock_id: String },
    /// End the meeting for everyone.
    EndMeeting,
    /// Require end-to-end encryption (the default), or allow participants who cannot encrypt.
    /// Everyone sees the change in `settings`.
    SetE2ee { required: bool },
    /// What the client shows: the participants whose video is visible, most important first,
    /// with the height in device pixels each is drawn at. The server forwards video only for
    /// these (up to its last-N limit) and picks each one's simulcast layer from the height and
    /// the client's downlink. Until a client sends `view`, it gets everyone, up to last-N.
    /// At most [`MAX_VIEW_TILES`] tiles.
    View { tiles: Vec<TileView> },
}

/// Most tiles in one `view`.
pub const MAX_VIEW_TILES: usize = 256;

/// One visible video tile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TileView {
    pub participant_id: ParticipantId,
    /// Drawn height in device pixels (CSS pixels times the device pixel ratio).
    pub height: u32,
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerMessage {
    /// Answer to `join`: who you are and who is already here.
    Welcome {
        version: u32,
        participant_id: ParticipantId,
        /// Secret token to resume this participant after a dropped connection.
        resume: String,
        room: String,
        /// Everyone else already in the room.
        participants: Vec<ParticipantInfo>,
        /// Whether this participant is a moderator.
        moderator: bool,
        settings: RoomSettings,
        /// STUN/TURN servers the client gives its `RTCPeerConnection`, and only these. Empty when
        /// the server has none configured (then the client uses none: no third-party default).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
        /// `relay` when the server wants clients to use TURN only; absent means all candidates.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ice_transport_policy: Option<IceTransportPolicy>,
    },
    /// The lobby is on: the join is waiting for a moderator. Nothing about the meeting is sent
    /// until `welcome` (admitted) or `closed` with reason `denied`.
    LobbyWaiting,
    /// To moderators: someone is waiting in the lobby.
    Knock {
        knock_id: String,
        name: String,
        /// The knocker's encrypted name, when it has the room secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sealed_name: Option<String>,
    },
    /// To moderators: a knock was answered (by anyone) or withdrawn.
    KnockResolved { knock_id: String },
    /// The room's settings changed.
    Settings { settings: RoomSettings },
    /// This participant's own role changed.
    Role { moderator: bool },
    /// A moderator muted this participant's microphone or stopped their camera; the server no
    /// longer forwards it until the participant turns it on again.
    Moderated { action: ModeratedAction },
    /// This participant is out of the room; the connection closes next.
    Closed { reason: ClosedReason },
    /// SDP answer to the client's last offer.
    Answer { sdp: String },
    /// Someone entered the room (or came back after a reconnection with a new identity).
    ParticipantJoined { participant: ParticipantInfo },
    /// Someone's state changed (microphone, camera).
    ParticipantUpdated { participant: ParticipantInfo },
    /// Someone left the room.
    ParticipantLeft { participant_id: ParticipantId },
    /// What the client receives, on which of its receive slots, and how many slots it needs.
    /// Sent in full whenever anything changes.
    Subscriptions {
        /// Receive slots the client should have; if it has fewer, it adds `recvonly`
        /// transceivers and sends a new offer.
        slots: SlotCounts,
        /// Which remote track arrives on which of the client's transceivers (by `mid`).
        subscriptions: Vec<Subscription>,
    },
    /// Something the client sent was refused. The connection stays usable unless stated.
    Error { code: ErrorCode, message: String },
    /// An opaque blob another participant sent with `relay`; `from` is set by the server.
    Relay { from: ParticipantId, data: String },
    /// The server is shutting down (restart, upgrade): the meeting may continue for at most
    /// `deadline_s` seconds, then the connection closes. New joins are refused meanwhile.
    Draining { deadline_s: u64 },
    /// To a publisher: which simulcast layers of its video track (by the client's `mid`, lowest
    /// layer first) someone receives. The client pauses the encodings nobody needs, saving its
    /// CPU and uplink, and resumes them when told.
    PublishLayers { mid: String, active: Vec<bool> },
    /// The participant speaking now (from the audio levels packets carry; works with encrypted
    /// media), or `null` when nobody is.
    ActiveSpeaker {
        participant_id: Option<ParticipantId>,
    },
}

/// A participant as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: ParticipantId,
    pub name: String,
    /// Microphone on.
    pub audio: bool,
    /// Camera on.
    pub video: bool,
    #[serde(default)]
    pub moderator: bool,
    /// This participant encrypts end to end.
    #[serde(default = "yes")]
    pub e2ee: bool,
    /// This participant is sharing their screen.
    #[serde(default)]
    pub screen: bool,
}

fn yes() -> bool {
    true
}

/// One entry of `RTCConfiguration.iceServers`: TURN URLs with short-lived credentials (the TURN
/// REST API scheme: `username` is `<expiry-unix-seconds>:<opaque>`, `credential` is
/// base64(HMAC-SHA1(shared secret, username))).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// `RTCConfiguration.iceTransportPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IceTransportPolicy {
    All,
    Relay,
}

/// Room settings every participant may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettings {
    pub locked: bool,
    pub lobby: bool,
    /// A password is needed to join.
    pub password: bool,
    /// Kept in storage between meetings.
    pub persistent: bool,
    /// Only participants who encrypt end to end may join (the default).
    #[serde(default = "yes")]
    pub e2ee_required: bool,
}

/// What a moderator did to this participant's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeratedAction {
    Muted,
    VideoStopped,
    ScreenStopped,
}

/// Why a participant is out of the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedReason {
    /// A moderator removed them.
    Removed,
    /// A moderator ended the meeting for everyone.
    MeetingEnded,
    /// A moderator turned their knock away.
    Denied,
}

/// Number of receive slots per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotCounts {
    pub audio: u32,
    pub video: u32,
}

/// One remote track delivered on one of the client's transceivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The client's transceiver `mid`.
    pub mid: String,
    pub participant_id: ParticipantId,
    pub kind: Kind,
    /// This video is the participant's screen share, not their camera.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub screen: bool,
}

/// Machine-readable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not valid JSON, or not a known message.
    BadMessage,
    /// Message larger than [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// `join.version` is not [`PROTOCOL_VERSION`].
    UnsupportedVersion,
    InvalidRoom,
    InvalidName,
    /// A message that needs `join` first.
    NotJoined,
    /// `join` sent twice on one connection.
    AlreadyJoined,
    /// The SDP offer could not be parsed or accepted.
    InvalidSdp,
    /// The room cannot take more participants.
    RoomFull,
    /// The server is shutting down or overloaded.
    Unavailable,
    /// The room is locked.
    RoomLocked,
    /// The room needs a password and none was given.
    PasswordRequired,
    /// The password is wrong.
    WrongPassword,
    /// Too many wrong passwords or knocks: wait before trying again.
    TooManyAttempts,
    /// The join token is invalid, expired, or for another room.
    InvalidToken,
    /// Only an authenticated host may open this room, and none is here yet.
    HostRequired,
    /// A moderator command from a participant who is not a moderator.
    NotModerator,
    /// No such participant or knock in this room.
    UnknownParticipant,
    /// This session was removed from the room and cannot come back.
    Removed,
    /// Too many people are waiting in the lobby.
    LobbyFull,
    /// The meeting is end-to-end encrypted and this client cannot encrypt.
    E2eeRequired,
    /// Too many messages in a short time: the message was dropped.
    RateLimited,
    /// The server is shutting down and takes no new participants; try again shortly.
    Draining,
    /// Someone else is sharing their screen: one share at a time.
    ScreenShareBusy,
}

impl ClientMessage {
    /// Parse one inbound text frame, enforcing the size limit.
    pub fn parse(text: &str) -> Result<Self, (ErrorCode, String)> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err((
                ErrorCode::TooLarge,
                format!(
                    "message of {} bytes exceeds {MAX_MESSAGE_BYTES}",
                    text.len()
                ),
            ));
        }
        serde_json::from_str(text).map_err(|e| (ErrorCode::BadMessage, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_roundtrip() {
        let m = ClientMessage::Join {
            version: PROTOCOL_VERSION,
            room: "standup".into(),
            name: "Alice".into(),
            resume: None,
            password: None,
            token: None,
            sealed_name: None,
            e2ee: None,
        };
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(
            s,
            r#"{"type":"join","version":1,"room":"standup","name":"Alice"}"#
        );
        assert_eq!(ClientMessage::parse(&s).unwrap(), m);
    }

    #[test]
    fn rejects_unknown_and_oversized() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"nope"}"#).unwrap_err().0,
            ErrorCode::BadMessage
        );
        assert_eq!(
            ClientMessage::parse("{").unwrap_err().0,
            ErrorCode::BadMessage
        );
        let big = format!(
            r#"{{"type":"offer","sdp":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(
            ClientMessage::parse(&big).unwrap_err().0,
            ErrorCode::TooLarge
        );
    }
}
