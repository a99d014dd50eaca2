//! Moderator commands. The room enforces them: a participant who is not a moderator is refused
//! and nothing changes.

use std::time::Instant;

use conclave_proto::{ClosedReason, Kind, ModeratedAction, ParticipantId, ServerMessage};
use thiserror::Error;

use crate::room::{Output, Pid, Room, knock_id};

/// What a moderator asks for. Passwords arrive already hashed: hashing is too slow for the
/// thread that forwards media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeratorCommand {
    Mute(ParticipantId),
    MuteAll,
    StopVideo(ParticipantId),
    StopScreenShare(ParticipantId),
    Remove(ParticipantId),
    SetModerator(ParticipantId, bool),
    Lock(bool),
    SetLobby(bool),
    SetPasswordHash(Option<String>),
    Admit(String),
    Deny(String),
    EndMeeting,
    SetE2eeRequired(bool),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModerationError {
    #[error("only moderators can do that")]
    NotModerator,
    #[error("no such participant in this meeting")]
    UnknownParticipant,
}

impl Room {
    /// Carry out a moderator command from `by`.
    pub fn moderate(
        &mut self,
        now: Instant,
        by: Pid,
        cmd: ModeratorCommand,
    ) -> Result<(), ModerationError> {
        if !self
            .participants
            .get(&by)
            .is_some_and(|p| p.admitted && p.moderator)
        {
            return Err(ModerationError::NotModerator);
        }
        match cmd {
            ModeratorCommand::Mute(id) => {
                let target = self.member(&id)?;
                self.block(target, Kind::Audio);
            }
            ModeratorCommand::MuteAll => {
                let targets: Vec<Pid> = self
                    .participants
                    .iter()
                    .filter(|(pid, p)| **pid != by && p.admitted && !p.moderator)
                    .map(|(pid, _)| *pid)
                    .collect();
                for t in targets {
                    self.block(t, Kind::Audio);
                }
            }
            ModeratorCommand::StopVideo(id) => {
                let target = self.member(&id)?;
                self.block(target, Kind::Video);
            }
            ModeratorCommand::StopScreenShare(id) => {
                let target = self.member(&id)?;
                for ((owner, _), t) in self.tracks.iter_mut() {
                    if *owner == target && t.screen {
                        t.blocked = true;
                    }
                }
                self.outputs.push_back(Output::Signal {
                    to: target,
                    msg: ServerMessage::Moderated {
                        action: ModeratedAction::ScreenStopped,
                    },
                });
                self.update_sharing(target);
                self.rebalance(now);
            }
            ModeratorCommand::Remove(id) => {
                let target = self.member(&id)?;
                let token = self.participants[&target].resume_token.clone();
                self.banned.insert(token);
                self.outputs.push_back(Output::Signal {
                    to: target,
                    msg: ServerMessage::Closed {
                        reason: ClosedReason::Removed,
                    },
                });
                self.remove(now, target);
            }
            ModeratorCommand::SetModerator(id, moderator) => {
                let target = self.member(&id)?;
                self.set_moderator_role(target, moderator);
            }
            ModeratorCommand::Lock(locked) => {
                self.settings.locked = locked;
                self.settings_changed(false);
            }
            ModeratorCommand::SetLobby(enabled) => {
                self.settings.lobby = enabled;
                self.settings_changed(true);
                if !enabled {
                    // Nobody is left waiting for a lobby that no longer exists.
                    let waiting: Vec<Pid> = self
                        .participants
                        .iter()
                        .filter(|(_, p)| !p.admitted)
                        .map(|(pid, _)| *pid)
                        .collect();
                    for pid in waiting {
                        self.tell_moderators(ServerMessage::KnockResolved {
                            knock_id: knock_id(pid),
                        });
                        self.admit(now, pid);
                    }
                }
            }
            ModeratorCommand::SetE2eeRequired(required) => {
                self.settings.e2ee_required = required;
                self.settings_changed(false);
            }
            ModeratorCommand::SetPasswordHash(hash) => {
                self.settings.password_hash = hash;
                self.settings_changed(true);
            }
            ModeratorCommand::Admit(knock) => {
                let pid = self.knocker(&knock)?;
                self.tell_moderators(ServerMessage::KnockResolved { knock_id: knock });
                self.admit(now, pid);
            }
            ModeratorCommand::Deny(knock) => {
                let pid = self.knocker(&knock)?;
                self.outputs.push_back(Output::Signal {
                    to: pid,
                    msg: ServerMessage::Closed {
                        reason: ClosedReason::Denied,
                    },
                });
                self.remove(now, pid);
            }
            ModeratorCommand::EndMeeting => self.end_meeting(),
        }
        Ok(())
    }

    /// End the meeting for everyone (a moderator's command, or the operator's): each
    /// participant is told `closed` and removed.
    pub fn end_meeting(&mut self) {
        let all: Vec<Pid> = self.participants.keys().copied().collect();
        for pid in &all {
            self.outputs.push_back(Output::Signal {
                to: *pid,
                msg: ServerMessage::Closed {
                    reason: ClosedReason::MeetingEnded,
                },
            });
        }
        self.tracks.clear();
        self.participants.clear();
        for pid in all {
            self.outputs.push_back(Output::Removed { pid });
        }
    }

    /// An admitted participant by id.
    fn member(&self, id: &ParticipantId) -> Result<Pid, ModerationError> {
        self.participants
            .iter()
            .find(|(_, p)| p.admitted && &p.id == id)
            .map(|(pid, _)| *pid)
            .ok_or(ModerationError::UnknownParticipant)
    }

    /// A participant waiting in the lobby, by knock id.
    fn knocker(&self, knock: &str) -> Result<Pid, ModerationError> {
        self.participants
            .iter()
            .find(|(pid, p)| !p.admitted && knock_id(**pid) == knock)
            .map(|(pid, _)| *pid)
            .ok_or(ModerationError::UnknownParticipant)
    }

    fn block(&mut self, target: Pid, kind: Kind) {
        let p = self.participants.get_mut(&target).expect("caller found it");
        let action = match kind {
            Kind::Audio => {
                p.audio = false;
                p.audio_blocked = true;
                ModeratedAction::Muted
            }
            Kind::Video => {
                p.video = false;
                p.video_blocked = true;
                ModeratedAction::VideoStopped
            }
        };
        let info = p.info();
        self.set_blocked(target, kind, true);
        self.outputs.push_back(Output::Signal {
            to: target,
            msg: ServerMessage::Moderated { action },
        });
        self.broadcast_except(
            target,
            ServerMessage::ParticipantUpdated { participant: info },
        );
    }

    fn settings_changed(&mut self, stored: bool) {
        let msg = ServerMessage::Settings {
            settings: self.settings.public(),
        };
        self.broadcast(msg);
        if stored && self.settings.persistent {
            self.outputs.push_back(Output::SaveSettings {
                lobby: self.settings.lobby,
                password_hash: self.settings.password_hash.clone(),
            });
        }
    }
}
