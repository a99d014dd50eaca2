//! One room's state: participants, their receive slots, the tracks they publish, and the timers
//! that drive it. Joining and leaving are in `membership`, who receives which layer in
//! `allocation`, packets and their renumbering in `forwarding`, the end-to-end encryption
//! layer's channel in `relay`.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use conclave_proto::{Kind, ParticipantId, ParticipantInfo, RoomSettings, ServerMessage};

use crate::mid::Mid;
use crate::munger::{Munger, SeqTs, Vp8Ids};

mod allocation;
mod feedback;
mod forwarding;
mod membership;
mod relay;

pub use allocation::{LayerPolicy, cap_for_height};
pub use membership::{Access, JoinError, JoinRequest, Joined, StoredSettings};

/// Most simulcast layers of one video track (low, medium, high), lowest first.
pub const MAX_LAYERS: usize = 3;

/// A participant's handle inside one room. Small and `Copy` for the hot path; the opaque
/// [`ParticipantId`] is what clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(pub u32);

/// Tuning of a room.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// How long a participant whose connection dropped is kept, so it can resume. Longer keeps
    /// more people through a network change; shorter frees a vanished participant's tile sooner.
    pub reconnect_grace: Duration,
    /// Least time between two keyframe requests to one publisher track. Keyframes are large, so
    /// asking too often floods the network; too rarely and a new subscriber waits for video.
    pub keyframe_interval: Duration,
    /// Most participants in one room.
    pub max_participants: usize,
    /// Most joiners waiting in the lobby at once; more are refused (`lobby_full`).
    pub max_knocks: usize,
    /// Only a participant with a valid join token may open a room that is not persistent.
    pub adhoc_requires_host: bool,
    /// Most video tracks forwarded to one participant: the ones it shows (`view`), else the
    /// most recent speakers. Bounds every receiver's downlink and decoding work in big meetings.
    pub last_n: usize,
    /// Most audio tracks forwarded to one participant; when more are published, the most recent
    /// speakers are heard.
    pub audio_last_n: usize,
    /// How simulcast layers are chosen.
    pub layer_policy: LayerPolicy,
    /// How often layer choice, last-N and the active speaker are re-evaluated.
    pub tick: Duration,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            reconnect_grace: Duration::from_secs(30),
            keyframe_interval: Duration::from_millis(500),
            max_participants: 500,
            max_knocks: 50,
            adhoc_requires_host: false,
            last_n: 25,
            audio_last_n: 8,
            layer_policy: LayerPolicy::Auto,
            tick: Duration::from_millis(250),
        }
    }
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this message to this participant's signaling connection.
    Signal { to: Pid, msg: ServerMessage },
    /// Ask the publisher of this track for a keyframe (PLI) on one simulcast layer.
    RequestKeyframe { publisher: Pid, mid: Mid, layer: u8 },
    /// What the allocation would like to send this participant, in bits per second: the
    /// transport's bandwidth estimator probes up towards it.
    DesiredBitrate { to: Pid, bps: u64 },
    /// Restart this participant's downlink estimator from `bps`: its estimate stays below what
    /// the lowest layers need while the losses look random rather than like congestion.
    ResetEstimate { to: Pid, bps: u64 },
    /// Send audio that arrives with redundancy (RED) to this participant with it (`true`), or
    /// as its primary block alone (`false`): its downlink cannot carry the redundancy and the
    /// lowest video layers together. Participants start with redundancy.
    AudioRedundancy { to: Pid, on: bool },
    /// The participant is in the meeting (joined, or admitted from the lobby): create its
    /// media transport.
    Admitted { pid: Pid },
    /// The participant is gone from the room (or its knock ended): drop its transport and
    /// connection.
    Removed { pid: Pid },
    /// A persistent room's settings changed: save them.
    SaveSettings {
        lobby: bool,
        password_hash: Option<String>,
    },
}

/// An incoming RTP packet, reduced to what forwarding decisions need.
#[derive(Debug, Clone, Copy)]
pub struct PacketIn {
    /// Extended (rollover-free) sequence number.
    pub seq: u64,
    pub ts: u32,
    /// The packet starts a keyframe (see [`crate::codec`]); always false for audio.
    pub keyframe: bool,
    /// Simulcast layer, 0 = lowest; 0 for a track without simulcast.
    pub layer: u8,
    /// Bytes on the wire, for measuring each layer's bitrate.
    pub bytes: u32,
    /// Audio level from the header extension, in -dBov (0 loudest, -127 silence).
    pub audio_level: Option<i8>,
    /// Audio carrying a redundant copy of earlier frames (RED, RFC 2198): it costs receivers
    /// about twice plain audio unless they are sent its primary block alone.
    pub red: bool,
    /// Picture numbering of a VP8 packet's payload descriptor (in the clear under end-to-end
    /// encryption: the browser's packetizer writes it after the encryption transform). `None`
    /// for other codecs.
    pub vp8: Option<Vp8Ids>,
    /// Arrival time.
    pub at: Instant,
}

/// A track a participant publishes, as negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub mid: Mid,
    pub kind: Kind,
    /// Simulcast layers offered (1 without simulcast), at most [`MAX_LAYERS`].
    pub layers: u8,
    /// A screen share rather than a camera or microphone.
    pub screen: bool,
}

/// Forward the packet being handled to `to` on its slot `mid`, renumbered as `out` (and, for
/// VP8, its payload descriptor as `vp8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub to: Pid,
    pub mid: Mid,
    pub out: SeqTs,
    pub vp8: Option<Vp8Ids>,
}

#[derive(Debug)]
pub(crate) struct Participant {
    pub(crate) id: ParticipantId,
    pub(crate) name: String,
    pub(crate) audio: bool,
    pub(crate) video: bool,
    pub(crate) resume_token: String,
    /// When the signaling connection dropped, if it has.
    lost_at: Option<Instant>,
    /// Receive slots in the order the client offered them; only appended or cleared.
    slots: Vec<Slot>,
    /// The last `subscriptions` message sent, to send only changes.
    last_subscriptions: Option<ServerMessage>,
    pub(crate) moderator: bool,
    /// False while knocking in the lobby: such a participant is told nothing about the meeting.
    pub(crate) admitted: bool,
    /// A moderator muted the microphone / stopped the camera: not forwarded until the
    /// participant turns it on again.
    pub(crate) audio_blocked: bool,
    pub(crate) video_blocked: bool,
    pub(crate) sealed_name: Option<String>,
    pub(crate) encrypts: bool,
    /// What the client shows (`view`): publishers and drawn heights, most important first.
    pub(crate) view: Option<Vec<(Pid, u32)>>,
    /// Downlink bandwidth estimate (bits per second) from the transport, once there is one.
    pub(crate) estimate: Option<u64>,
    /// The estimator's latest unsmoothed estimate, sampled now and then, and the sample before
    /// it: a collapse counts before the smoothed estimate has followed it, and so does a rise
    /// both samples confirm (see `COLLAPSE_PCT` and `RISE_PCT`).
    pub(crate) estimate_now: Option<u64>,
    pub(crate) estimate_before: Option<u64>,
    /// How long media has waited in the transport's pacer for this participant and the
    /// estimate as it stood then, sampled before each timeout (see `PACER_DELAY_LIMIT`).
    pub(crate) pacer: Option<(Duration, u64)>,
    /// When the video waiting in its transport was last dropped (see `Room::video_dropped`).
    pub(crate) video_dropped_at: Option<Instant>,
    /// Share of packets sent to the participant lost on the way, over the last second, and when
    /// the allocation last had its estimator restarted.
    pub(crate) loss: Option<f32>,
    pub(crate) reset_at: Option<Instant>,
    /// Since when every loss sample has looked random (see `RANDOM_LOSS`), and since when
    /// every one has been above that (heavy).
    pub(crate) random_loss_since: Option<Instant>,
    pub(crate) heavy_loss_since: Option<Instant>,
    /// Since when the estimate has been below the lowest layers with next to nothing lost,
    /// how long that may last before the estimator is restarted, and when it last was for it
    /// (see `STARVED_FOR`).
    pub(crate) starved_since: Option<Instant>,
    pub(crate) starved_for: Duration,
    pub(crate) starved_reset_at: Option<Instant>,
    /// Last `DesiredBitrate` output, to send only changes.
    pub(crate) desired_sent: u64,
    /// When the allocation last asked the estimator to probe (a raised `DesiredBitrate`), and
    /// whether the last output was such a raise (taken back at the next allocation).
    pub(crate) probed_at: Option<Instant>,
    pub(crate) probing: bool,
    /// Time between probe requests now (it grows while probes find nothing), and the estimate
    /// when the last one was made.
    pub(crate) probe_every: std::time::Duration,
    pub(crate) probed_from: u64,
    /// Receive slots the client should have, from the last allocation.
    pub(crate) wanted_slots: conclave_proto::SlotCounts,
    /// Sharing the screen now (a screen track is published and not stopped by a moderator).
    pub(crate) sharing: bool,
    pub(crate) media_only: bool,
    /// Audio redundancy is withheld (see `Output::AudioRedundancy`), since when the budget has
    /// been too small for it, and when it was last switched.
    pub(crate) red_off: bool,
    pub(crate) red_short_since: Option<Instant>,
    pub(crate) red_switched_at: Option<Instant>,
}

impl Participant {
    pub(crate) fn info(&self) -> ParticipantInfo {
        ParticipantInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            audio: self.audio,
            video: self.video,
            moderator: self.moderator,
            e2ee: self.encrypts,
            screen: self.sharing,
        }
    }
}

#[derive(Debug)]
struct Slot {
    mid: Mid,
    kind: Kind,
    track: Option<TrackKey>,
    munger: Munger,
    /// The layer being forwarded now; `None` until the first packet (a keyframe for video).
    current: Option<u8>,
    /// The layer the allocation chose; the slot switches to it at its next keyframe. `None`:
    /// forward nothing (not affordable, or nothing is sent).
    target: Option<u8>,
    /// Highest layer worth sending to this slot (from the drawn tile height).
    cap: u8,
    /// When the allocation last lowered this slot's layer: it goes back up only after a while,
    /// so that a fluctuating estimate does not make the picture flap.
    lowered_at: Option<Instant>,
    /// Since when the budget has been too small for this playing video's lowest layer.
    short_since: Option<Instant>,
}

pub(crate) type TrackKey = (Pid, Mid);

#[derive(Debug)]
pub(crate) struct Track {
    pub(crate) kind: Kind,
    /// A moderator stopped this track; nothing is forwarded.
    pub(crate) blocked: bool,
    /// Subscriber and index of its slot.
    subscribers: Vec<(Pid, usize)>,
    /// Simulcast layers negotiated (1 without simulcast).
    pub(crate) layer_count: u8,
    /// A screen share: shown to everyone, before any camera.
    pub(crate) screen: bool,
    pub(crate) layers: [Layer; MAX_LAYERS],
    /// Audio: packets since the last tick, and how many of them carried speech.
    pub(crate) audio_packets: u32,
    pub(crate) speech_packets: u32,
    /// Audio: last time it carried speech.
    pub(crate) spoke_at: Option<Instant>,
    /// Audio: it arrives with redundancy (RED).
    pub(crate) red: bool,
    /// Video: the layers the publisher was last told to send (`None`: never told, all on).
    pub(crate) publish_sent: Option<[bool; MAX_LAYERS]>,
    /// Video: since when each layer has been unneeded.
    pub(crate) unneeded_since: [Option<Instant>; MAX_LAYERS],
}

/// What is known about one simulcast layer of a track.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Layer {
    /// Bytes received since the last tick.
    pub(crate) bytes: u64,
    /// Smoothed bitrate while it is sent, in bits per second; 0 before it was measured.
    pub(crate) bps: u64,
    pub(crate) last_packet: Option<Instant>,
    pub(crate) last_keyframe_request: Option<Instant>,
}

/// One room: see the crate documentation for how it is driven.
#[derive(Debug)]
pub struct Room {
    name: String,
    config: RoomConfig,
    pub(crate) settings: Settings,
    /// Resume tokens of removed participants: that session cannot come back.
    pub(crate) banned: HashSet<String>,
    next_pid: u32,
    pub(crate) participants: BTreeMap<Pid, Participant>,
    pub(crate) tracks: HashMap<TrackKey, Track>,
    pub(crate) outputs: VecDeque<Output>,
    pub(crate) speaker: crate::speaker::SpeakerDetector,
    /// When the last tick ran (layer rates, allocation, speaker).
    pub(crate) last_tick: Option<Instant>,
    /// Whether some video slot may wait for a keyframe of its target layer. Finding out means
    /// visiting every subscription, and [`Room::poll_timeout`] is asked after every batch of
    /// packets: the scan runs only after a layer choice made a slot wait, until one finds none.
    pub(crate) may_wait: Cell<bool>,
}

impl Room {
    /// `stored`: the settings of a persistent room, `None` for an ad-hoc one.
    pub fn new(
        name: impl Into<String>,
        config: RoomConfig,
        stored: Option<StoredSettings>,
    ) -> Self {
        let settings = Settings {
            locked: false,
            lobby: stored.as_ref().is_some_and(|s| s.lobby),
            password_hash: stored.as_ref().and_then(|s| s.password_hash.clone()),
            persistent: stored.is_some(),
            e2ee_required: true,
        };
        Self {
            name: name.into(),
            config,
            settings,
            banned: HashSet::new(),
            next_pid: 1,
            participants: BTreeMap::new(),
            tracks: HashMap::new(),
            outputs: VecDeque::new(),
            speaker: Default::default(),
            last_tick: None,
            may_wait: Cell::new(false),
        }
    }

    /// No participants left: the room can be dropped.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// The room password's hash, if it has one.
    pub fn password_hash(&self) -> Option<&str> {
        self.settings.password_hash.as_deref()
    }

    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    pub fn track_count(&self) -> usize {
        self.tracks.len()
    }

    /// Next output to act on.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Microphone/camera state changed: tell the others.
    pub fn media_state(&mut self, pid: Pid, audio: bool, video: bool) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        if !p.admitted || (p.audio, p.video) == (audio, video) {
            return;
        }
        p.audio = audio;
        p.video = video;
        // Turning it on again is how a participant lifts a moderator's mute.
        let unblock = [
            (Kind::Audio, audio && p.audio_blocked),
            (Kind::Video, video && p.video_blocked),
        ];
        if audio {
            p.audio_blocked = false;
        }
        if video {
            p.video_blocked = false;
        }
        let info = p.info();
        for (kind, lift) in unblock {
            if lift {
                self.set_blocked(pid, kind, false);
            }
        }
        self.broadcast_except(pid, ServerMessage::ParticipantUpdated { participant: info });
    }

    /// When [`Room::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let grace = self
            .participants
            .values()
            .filter_map(|p| p.lost_at.map(|t| t + self.config.reconnect_grace));
        let keyframes = self.waiting().into_iter().filter_map(|(key, layer)| {
            self.tracks[&key].layers[layer as usize]
                .last_keyframe_request
                .map(|at| at + self.config.keyframe_interval)
        });
        // Layer choice, last-N and the speaker are re-evaluated while there is media.
        let tick = (!self.tracks.is_empty())
            .then_some(self.last_tick)
            .flatten()
            .map(|t| t + self.config.tick);
        grace.chain(keyframes).chain(tick).min()
    }

    /// The layers some subscriber waits for (see `may_wait`).
    fn waiting(&self) -> Vec<(TrackKey, u8)> {
        if !self.may_wait.get() {
            return Vec::new();
        }
        let waiting: Vec<(TrackKey, u8)> = self.waiting_layers().collect();
        self.may_wait.set(!waiting.is_empty());
        waiting
    }

    /// Time passed: expire vanished participants, re-evaluate layers, last-N and the speaker,
    /// repeat keyframe requests still unanswered.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<Pid> = self
            .participants
            .iter()
            .filter(|(_, p)| {
                p.lost_at
                    .is_some_and(|t| now >= t + self.config.reconnect_grace)
            })
            .map(|(pid, _)| *pid)
            .collect();
        for pid in expired {
            self.remove(now, pid);
        }
        if self.last_tick.is_none_or(|t| now >= t + self.config.tick) {
            self.tick(now);
        }
        for (key, layer) in self.waiting() {
            self.request_keyframe(now, key, layer);
        }
    }

    /// Send to every admitted moderator.
    pub(crate) fn tell_moderators(&mut self, msg: ServerMessage) {
        for (pid, p) in &self.participants {
            if p.admitted && p.moderator {
                self.outputs.push_back(Output::Signal {
                    to: *pid,
                    msg: msg.clone(),
                });
            }
        }
    }

    /// Send to every admitted participant but one (knockers learn nothing about the meeting).
    /// Send `msg` to every admitted participant.
    pub(crate) fn broadcast(&mut self, msg: ServerMessage) {
        for (pid, p) in &self.participants {
            if p.admitted {
                self.outputs.push_back(Output::Signal {
                    to: *pid,
                    msg: msg.clone(),
                });
            }
        }
    }

    /// Admitted participants, in join order.
    pub(crate) fn admitted(&self) -> Vec<Pid> {
        self.participants
            .iter()
            .filter(|(_, p)| p.admitted)
            .map(|(pid, _)| *pid)
            .collect()
    }

    pub(crate) fn broadcast_except(&mut self, except: Pid, msg: ServerMessage) {
        for (pid, p) in &self.participants {
            if *pid != except && p.admitted {
                self.outputs.push_back(Output::Signal {
                    to: *pid,
                    msg: msg.clone(),
                });
            }
        }
    }
}

/// A room's live settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) locked: bool,
    pub(crate) lobby: bool,
    /// Opaque to the room: compared, never interpreted.
    pub(crate) password_hash: Option<String>,
    pub(crate) persistent: bool,
    /// Participants who cannot encrypt are refused. A flag the clients follow; the server cannot
    /// see whether media is encrypted, only what clients declare.
    pub(crate) e2ee_required: bool,
}

impl Settings {
    pub(crate) fn public(&self) -> RoomSettings {
        RoomSettings {
            locked: self.locked,
            lobby: self.lobby,
            password: self.password_hash.is_some(),
            persistent: self.persistent,
            e2ee_required: self.e2ee_required,
        }
    }
}

pub(crate) fn knock_id(pid: Pid) -> String {
    format!("k{}", pid.0)
}
