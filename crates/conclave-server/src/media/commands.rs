//! Commands from signaling, carried out on the worker that owns the room.

use std::time::Instant;

use conclave_proto::{ErrorCode, ParticipantId, ServerMessage};
use conclave_room::{JoinError, JoinRequest, ModerationError, Pid, Room};

use super::worker::{Conn, RoomHost, Worker};
use super::{Command, ConnId, JoinSpec, Joined, MeetingCounts};
use crate::ids;

impl Worker {
    pub(super) fn command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Join { room, spec, reply } => {
                let result = self.join(now, &room, spec);
                let _ = reply.send(result);
                self.process(&room, now);
            }
            Command::Peek { room, reply } => {
                let live = self
                    .rooms
                    .get(&room)
                    .map(|h| h.core.password_hash().map(str::to_owned));
                let _ = reply.send(live);
            }
            Command::Offer {
                room,
                pid,
                conn,
                sdp,
                screen_mid,
            } => {
                let addrs = self.addrs.clone();
                let Some(host) = self.host(&room, pid, conn) else {
                    return;
                };
                let msg = match host.peers.get_mut(&pid) {
                    None => ServerMessage::Error {
                        code: ErrorCode::NotJoined,
                        message: "waiting in the lobby: no media until a moderator lets you in"
                            .into(),
                    },
                    Some(peer) => {
                        match peer
                            .guarded(|p| p.accept_offer(now, &addrs, &sdp, screen_mid.as_deref()))
                        {
                            Some(Ok(sdp)) => ServerMessage::Answer { sdp },
                            Some(Err(e)) => ServerMessage::Error {
                                code: ErrorCode::InvalidSdp,
                                message: e.to_string(),
                            },
                            // The transport failed on this offer: the drive below closes it
                            // and the connection, and the client reconnects.
                            None => ServerMessage::Error {
                                code: ErrorCode::InvalidSdp,
                                message: "the offer failed on the server".into(),
                            },
                        }
                    }
                };
                host.send(pid, msg);
                host.dirty.push(pid);
                self.process(&room, now);
            }
            Command::MediaState {
                room,
                pid,
                conn,
                audio,
                video,
            } => {
                if let Some(host) = self.host(&room, pid, conn) {
                    host.core.media_state(pid, audio, video);
                    self.process(&room, now);
                }
            }
            Command::Leave { room, pid, conn } => {
                if let Some(host) = self.host(&room, pid, conn) {
                    host.core.leave(now, pid);
                    self.process(&room, now);
                }
            }
            Command::Relay {
                room,
                pid,
                conn,
                to,
                data,
            } => {
                if let Some(host) = self.host(&room, pid, conn) {
                    host.core.relay(pid, to.as_ref(), data);
                    self.process(&room, now);
                }
            }
            Command::View {
                room,
                pid,
                conn,
                tiles,
            } => {
                if let Some(host) = self.host(&room, pid, conn) {
                    host.core.set_view(now, pid, &tiles);
                    self.process(&room, now);
                }
            }
            Command::ConnectionLost { room, pid, conn } => {
                if let Some(host) = self.host(&room, pid, conn) {
                    host.core.connection_lost(now, pid);
                    self.process(&room, now);
                }
            }
            Command::Moderate {
                room,
                pid,
                conn,
                cmd,
            } => {
                if let Some(host) = self.host(&room, pid, conn) {
                    if let Err(e) = host.core.moderate(now, pid, cmd) {
                        let code = match e {
                            ModerationError::NotModerator => ErrorCode::NotModerator,
                            ModerationError::UnknownParticipant => ErrorCode::UnknownParticipant,
                        };
                        host.send(
                            pid,
                            ServerMessage::Error {
                                code,
                                message: e.to_string(),
                            },
                        );
                    }
                    self.process(&room, now);
                }
            }
            Command::Connected { room, pid, reply } => {
                let connected = self
                    .rooms
                    .get(&room)
                    .and_then(|h| h.peers.get(&pid))
                    .is_some_and(|p| !p.dead && p.rtc.is_connected());
                let _ = reply.send(connected);
            }
            Command::Meetings { reply } => {
                let list = self
                    .rooms
                    .iter()
                    .map(|(name, h)| MeetingCounts {
                        room: name.clone(),
                        participants: h.core.participant_count(),
                        tracks: h.core.track_count(),
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Command::EndMeeting { room, reply } => {
                let live = match self.rooms.get_mut(&room) {
                    Some(host) => {
                        host.core.end_meeting();
                        true
                    }
                    None => false,
                };
                let _ = reply.send(live);
                self.process(&room, now);
            }
        }
    }

    /// The room, if `conn` is still the connection of participant `pid` in it.
    fn host(&mut self, room: &str, pid: Pid, conn: ConnId) -> Option<&mut RoomHost> {
        let host = self.rooms.get_mut(room)?;
        host.conns.get(&pid).filter(|c| c.id == conn)?;
        Some(host)
    }

    fn join(
        &mut self,
        now: Instant,
        room: &str,
        spec: JoinSpec,
    ) -> Result<Joined, (ErrorCode, String)> {
        let JoinSpec {
            name,
            sealed_name,
            encrypts,
            resume,
            access,
            stored,
            conn,
            events,
        } = spec;
        let host = self
            .rooms
            .entry(room.to_owned())
            .or_insert_with(|| RoomHost::new(Room::new(room, self.room_config.clone(), stored)));
        let faulty = crate::fault::joining(room, &name, host.core.participant_count());
        let req = JoinRequest {
            id: ParticipantId(ids::participant_id()),
            resume_token: ids::resume_token(),
            resume,
            name,
            sealed_name,
            encrypts,
            access,
        };
        let joined = match host.core.join(now, req) {
            Ok(j) => j,
            Err(e) => {
                if host.core.is_empty() {
                    self.rooms.remove(room);
                }
                let code = match e {
                    JoinError::Full => ErrorCode::RoomFull,
                    JoinError::Locked => ErrorCode::RoomLocked,
                    JoinError::PasswordRequired => ErrorCode::PasswordRequired,
                    JoinError::WrongPassword => ErrorCode::WrongPassword,
                    JoinError::HostRequired => ErrorCode::HostRequired,
                    JoinError::Removed => ErrorCode::Removed,
                    JoinError::LobbyFull => ErrorCode::LobbyFull,
                    JoinError::E2eeRequired => ErrorCode::E2eeRequired,
                };
                return Err((code, e.to_string()));
            }
        };
        // A resumed participant's old transport ends here; replacing its connection drops the
        // old signaling channel, which closes the old WebSocket.
        if faulty {
            crate::fault::arm(room, joined.pid.0);
        }
        let old = host.peers.remove(&joined.pid);
        host.conns.insert(joined.pid, Conn { id: conn, events });
        let participants = host.core.participant_count();
        if let Some(old) = old {
            self.forget_peer(&old);
        }
        tracing::info!(
            worker = self.index,
            participants,
            resumed = joined.resumed,
            waiting = joined.waiting,
            "participant joined"
        );
        Ok(Joined {
            pid: joined.pid,
            id: joined.id,
            waiting: joined.waiting,
        })
    }
}
