//! Who is in the room: joining (passwords, host and encryption requirements, the lobby),
//! coming back with a resume token, being admitted, leaving and being removed, and who
//! moderates when the last moderator goes.

use std::time::Instant;

use conclave_proto::{PROTOCOL_VERSION, ParticipantId, ServerMessage};
use thiserror::Error;

use super::{Output, Participant, Pid, Room, knock_id};

/// A request to enter the room.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Fresh opaque id, used if this is a new participant.
    pub id: ParticipantId,
    /// Fresh resume token, used if this is a new participant.
    pub resume_token: String,
    /// Token from an earlier `welcome`, to come back as the same participant.
    pub resume: Option<String>,
    pub name: String,
    /// Encrypted display name, shown only to moderators' clients in a knock.
    pub sealed_name: Option<String>,
    /// The client encrypts end to end.
    pub encrypts: bool,
    /// What the joiner proved before reaching the room.
    pub access: Access,
}

/// What a joiner proved; checked by the caller (passwords, tokens), judged by the room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// A moderator token, or a persistent room's moderator password.
    pub moderator: bool,
    /// Holds a valid join token.
    pub host: bool,
    /// The room password hash the joiner's password was verified against, if it was.
    pub password_hash: Option<String>,
    /// A media-only endpoint (WHIP publisher, WHEP viewer) rather than a person at a client. It
    /// has no signaling to moderate or reconnect with: it is never given the moderator role, and
    /// it leaves when its media transport ends.
    pub media_only: bool,
}

/// A room's stored settings, used when the room is created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredSettings {
    pub lobby: bool,
    pub password_hash: Option<String>,
}

/// A successful join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub pid: Pid,
    pub id: ParticipantId,
    /// An existing participant came back; its old transport must be replaced.
    pub resumed: bool,
    /// Waiting in the lobby: not in the meeting until admitted.
    pub waiting: bool,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum JoinError {
    #[error("the room is full")]
    Full,
    #[error("this meeting is locked")]
    Locked,
    #[error("this meeting needs a password")]
    PasswordRequired,
    #[error("the password is wrong")]
    WrongPassword,
    #[error("only an authenticated host can open this meeting")]
    HostRequired,
    #[error("you were removed from this meeting")]
    Removed,
    #[error("too many people are waiting in the lobby")]
    LobbyFull,
    #[error(
        "this meeting is end-to-end encrypted and your browser cannot encrypt; a moderator can allow unencrypted participants"
    )]
    E2eeRequired,
}

impl Room {
    /// Admit a participant, or resume one whose connection dropped. Emits `welcome` to it and
    /// `participant_joined` to the others.
    pub fn join(&mut self, now: Instant, req: JoinRequest) -> Result<Joined, JoinError> {
        if let Some(token) = &req.resume {
            if self
                .banned
                .iter()
                .any(|b| constant_time_eq(b.as_bytes(), token.as_bytes()))
            {
                return Err(JoinError::Removed);
            }
            let found = self
                .participants
                .iter()
                .find(|(_, p)| constant_time_eq(p.resume_token.as_bytes(), token.as_bytes()))
                .map(|(pid, _)| *pid);
            if let Some(pid) = found {
                return Ok(self.resume(now, pid, req.name));
            }
        }
        let media_only = req.access.media_only;
        let moderator = req.access.moderator && !media_only;
        if self.participants.is_empty()
            && !self.settings.persistent
            && self.config.adhoc_requires_host
            && !req.access.host
        {
            return Err(JoinError::HostRequired);
        }
        if !moderator && !req.encrypts && self.settings.e2ee_required {
            return Err(JoinError::E2eeRequired);
        }
        if !moderator {
            if self.settings.locked {
                return Err(JoinError::Locked);
            }
            if let Some(hash) = &self.settings.password_hash {
                match &req.access.password_hash {
                    None => return Err(JoinError::PasswordRequired),
                    Some(h) if h != hash => return Err(JoinError::WrongPassword),
                    Some(_) => {}
                }
            }
        }
        let waiting = self.settings.lobby && !moderator;
        if waiting
            && self.participants.values().filter(|p| !p.admitted).count() >= self.config.max_knocks
        {
            return Err(JoinError::LobbyFull);
        }
        if self.participants.len() >= self.config.max_participants {
            return Err(JoinError::Full);
        }
        let pid = Pid(self.next_pid);
        self.next_pid += 1;
        // In an ad-hoc room the first participant leads; in a persistent one only those who
        // proved it.
        let first = !self.settings.persistent && !self.participants.values().any(|p| p.admitted);
        let participant = Participant {
            id: req.id.clone(),
            name: req.name,
            audio: false,
            video: false,
            resume_token: req.resume_token,
            lost_at: None,
            slots: Vec::new(),
            last_subscriptions: None,
            moderator: moderator || (first && !waiting && !media_only),
            admitted: false,
            audio_blocked: false,
            video_blocked: false,
            sealed_name: req.sealed_name,
            encrypts: req.encrypts,
            view: None,
            estimate: None,
            estimate_now: None,
            estimate_before: None,
            pacer: None,
            video_dropped_at: None,
            loss: None,
            reset_at: None,
            random_loss_since: None,
            heavy_loss_since: None,
            starved_since: None,
            starved_for: super::allocation::STARVED_FOR,
            starved_reset_at: None,
            desired_sent: 0,
            probed_at: None,
            probing: false,
            probe_every: std::time::Duration::ZERO,
            probed_from: 0,
            wanted_slots: Default::default(),
            sharing: false,
            media_only,
            red_off: false,
            red_short_since: None,
            red_switched_at: None,
        };
        self.participants.insert(pid, participant);
        if waiting {
            self.outputs.push_back(Output::Signal {
                to: pid,
                msg: ServerMessage::LobbyWaiting,
            });
            let knock = ServerMessage::Knock {
                knock_id: knock_id(pid),
                name: self.participants[&pid].name.clone(),
                sealed_name: self.participants[&pid].sealed_name.clone(),
            };
            self.tell_moderators(knock);
        } else {
            self.admit(now, pid);
        }
        Ok(Joined {
            pid,
            id: req.id,
            resumed: false,
            waiting,
        })
    }

    fn resume(&mut self, now: Instant, pid: Pid, name: String) -> Joined {
        // The client comes back with a new peer connection: its old tracks and slots end.
        self.clear_media(pid);
        let p = self.participants.get_mut(&pid).expect("caller found it");
        p.lost_at = None;
        p.name = name;
        p.last_subscriptions = None;
        let id = p.id.clone();
        let waiting = !p.admitted;
        if waiting {
            self.outputs.push_back(Output::Signal {
                to: pid,
                msg: ServerMessage::LobbyWaiting,
            });
        } else {
            let info = p.info();
            self.outputs.push_back(Output::Admitted { pid });
            self.welcome(pid);
            self.broadcast_except(pid, ServerMessage::ParticipantUpdated { participant: info });
            self.rebalance(now);
        }
        Joined {
            pid,
            id,
            resumed: true,
            waiting,
        }
    }

    /// Bring a participant into the meeting: welcome it, tell the others.
    pub(crate) fn admit(&mut self, now: Instant, pid: Pid) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        if p.admitted {
            return;
        }
        p.admitted = true;
        let info = p.info();
        self.outputs.push_back(Output::Admitted { pid });
        self.welcome(pid);
        if info.moderator {
            self.send_knocks(pid);
        }
        self.broadcast_except(pid, ServerMessage::ParticipantJoined { participant: info });
        self.rebalance(now);
    }

    fn welcome(&mut self, pid: Pid) {
        let p = &self.participants[&pid];
        let msg = ServerMessage::Welcome {
            version: PROTOCOL_VERSION,
            participant_id: p.id.clone(),
            resume: p.resume_token.clone(),
            room: self.name.clone(),
            participants: self
                .participants
                .iter()
                .filter(|(other, o)| **other != pid && o.admitted)
                .map(|(_, o)| o.info())
                .collect(),
            moderator: p.moderator,
            settings: self.settings.public(),
            // Transport details are the signaling layer's to add; the room core knows none.
            ice_servers: Vec::new(),
            ice_transport_policy: None,
        };
        self.outputs.push_back(Output::Signal { to: pid, msg });
        if let Some(speaker) = self
            .speaker
            .current()
            .and_then(|s| self.participants.get(&s))
        {
            let msg = ServerMessage::ActiveSpeaker {
                participant_id: Some(speaker.id.clone()),
            };
            self.outputs.push_back(Output::Signal { to: pid, msg });
        }
    }

    /// The participant left on purpose: gone at once.
    pub fn leave(&mut self, now: Instant, pid: Pid) {
        self.remove(now, pid);
    }

    /// The participant's signaling connection dropped: keep it for the reconnect grace period.
    pub fn connection_lost(&mut self, now: Instant, pid: Pid) {
        match self.participants.get_mut(&pid) {
            // A knock ends with its connection.
            Some(p) if !p.admitted => self.remove(now, pid),
            Some(p) => {
                p.lost_at.get_or_insert(now);
            }
            None => {}
        }
    }

    /// The participant's media transport ended (ICE failed or closed): its tracks and slots end,
    /// the participant stays.
    /// A media-only participant cannot negotiate again, so it leaves.
    pub fn transport_closed(&mut self, now: Instant, pid: Pid) {
        if self.participants.get(&pid).is_some_and(|p| p.media_only) {
            self.remove(now, pid);
            return;
        }
        self.clear_media(pid);
        self.update_sharing(pid);
        self.rebalance(now);
    }

    pub(crate) fn remove(&mut self, now: Instant, pid: Pid) {
        if !self.participants.contains_key(&pid) {
            return;
        }
        self.clear_media(pid);
        let p = self.participants.remove(&pid).expect("checked above");
        self.outputs.push_back(Output::Removed { pid });
        if !p.admitted {
            self.tell_moderators(ServerMessage::KnockResolved {
                knock_id: knock_id(pid),
            });
            return;
        }
        self.broadcast_except(
            pid,
            ServerMessage::ParticipantLeft {
                participant_id: p.id,
            },
        );
        self.ensure_moderator(now);
        let speaker = self.speaker.current();
        self.speaker.forget(pid);
        self.announce_speaker(speaker);
        self.rebalance(now);
    }

    /// An ad-hoc room whose last moderator left passes the role to whoever has been there
    /// longest, so lobby knocks and moderation never go unanswered.
    fn ensure_moderator(&mut self, _now: Instant) {
        if self.settings.persistent
            || self
                .participants
                .values()
                .any(|p| p.admitted && p.moderator)
        {
            return;
        }
        let Some((&pid, _)) = self
            .participants
            .iter()
            .find(|(_, p)| p.admitted && !p.media_only)
        else {
            return;
        };
        self.set_moderator_role(pid, true);
    }

    pub(crate) fn set_moderator_role(&mut self, pid: Pid, moderator: bool) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        if p.moderator == moderator || (moderator && p.media_only) {
            return;
        }
        p.moderator = moderator;
        let info = p.info();
        self.outputs.push_back(Output::Signal {
            to: pid,
            msg: ServerMessage::Role { moderator },
        });
        self.broadcast_except(pid, ServerMessage::ParticipantUpdated { participant: info });
        if moderator {
            self.send_knocks(pid);
        }
    }

    /// A new moderator sees who is waiting.
    fn send_knocks(&mut self, to: Pid) {
        let knocks: Vec<ServerMessage> = self
            .participants
            .iter()
            .filter(|(_, k)| !k.admitted)
            .map(|(kp, k)| ServerMessage::Knock {
                knock_id: knock_id(*kp),
                name: k.name.clone(),
                sealed_name: k.sealed_name.clone(),
            })
            .collect();
        for msg in knocks {
            self.outputs.push_back(Output::Signal { to, msg });
        }
    }
}

/// Compare secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
