//! Conclave's sans-IO room core.
//!
//! A [`Room`] knows its participants, the tracks they publish, and the receive slots each has
//! offered; it decides which track goes to which slot ([`Subscription`](conclave_proto::Subscription)),
//! what every participant is told, when a publisher must send a keyframe, and how every forwarded
//! RTP packet is renumbered (sequence numbers, timestamps, VP8 picture numbering). It never reads
//! a clock or touches a socket: time comes in as an [`Instant`](std::time::Instant), decisions
//! come out as values.
//!
//! # How it is driven
//! 1. Feed inputs: [`Room::join`], [`Room::set_media`], [`Room::on_rtp`], [`Room::on_keyframe_request`],
//!    [`Room::media_state`], [`Room::leave`], [`Room::connection_lost`], [`Room::transport_closed`],
//!    and [`Room::handle_timeout`] when [`Room::poll_timeout`] is due.
//! 2. After each input, drain [`Room::poll_output`] until it returns `None`.
//!
//! [`Room::on_rtp`] is the hot path: it returns its forwarding decisions in a caller-owned buffer
//! and allocates nothing.
#![forbid(unsafe_code)]

pub mod codec;
mod mid;
mod moderation;
pub mod munger;
mod room;
mod speaker;

pub use mid::Mid;
pub use moderation::{ModerationError, ModeratorCommand};
pub use munger::{PictureId, SeqTs, Vp8Ids};
pub use room::{
    Access, Forward, JoinError, JoinRequest, Joined, LayerPolicy, MAX_LAYERS, Output, PacketIn,
    Pid, Published, Room, RoomConfig, StoredSettings, cap_for_height,
};
