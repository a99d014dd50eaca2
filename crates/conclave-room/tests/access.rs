//! Who gets in and what moderators can do, driven with a virtual clock.

use std::time::{Duration, Instant};

use conclave_proto::{ClosedReason, Kind, ModeratedAction, ParticipantId, ServerMessage};
use conclave_room::{
    Access, JoinError, JoinRequest, Mid, ModerationError, ModeratorCommand as Cmd, Output,
    PacketIn, Pid, Published, Room, RoomConfig, StoredSettings,
};

struct H {
    room: Room,
    t0: Instant,
}

fn id(name: &str) -> ParticipantId {
    ParticipantId(format!("id-{name}"))
}

impl H {
    fn adhoc() -> Self {
        Self {
            room: Room::new("r", RoomConfig::default(), None),
            t0: Instant::now(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn try_join(&mut self, name: &str, access: Access) -> Result<conclave_room::Joined, JoinError> {
        let req = JoinRequest {
            id: id(name),
            resume_token: format!("token-{name}"),
            resume: None,
            name: name.into(),
            sealed_name: None,
            encrypts: true,
            access,
        };
        self.room.join(self.at(0), req)
    }

    fn join(&mut self, name: &str) -> Pid {
        self.try_join(name, Access::default()).unwrap().pid
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.room.poll_output()).collect()
    }

    fn cmd(&mut self, by: Pid, c: Cmd) -> Result<(), ModerationError> {
        self.room.moderate(self.at(0), by, c)
    }

    fn publish(&mut self, pid: Pid) {
        let a = [
            Published {
                mid: Mid::new("0").unwrap(),
                kind: Kind::Audio,
                layers: 1,
                screen: false,
            },
            Published {
                mid: Mid::new("1").unwrap(),
                kind: Kind::Video,
                layers: 1,
                screen: false,
            },
        ];
        let slots = [
            (Mid::new("2").unwrap(), Kind::Audio),
            (Mid::new("3").unwrap(), Kind::Video),
        ];
        self.room.set_media(self.at(0), pid, &a, &slots);
    }

    fn audio_forwards(&mut self, from: Pid) -> usize {
        let mut out = Vec::new();
        self.room.on_rtp(
            from,
            Mid::new("0").unwrap(),
            PacketIn {
                seq: 1,
                ts: 0,
                keyframe: false,
                layer: 0,
                bytes: 100,
                audio_level: None,
                red: false,
                vp8: None,
                at: self.at(0),
            },
            &mut out,
        );
        out.len()
    }
}

fn to(out: &[Output], pid: Pid) -> Vec<ServerMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Signal { to, msg } if *to == pid => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

fn welcome_moderator(out: &[Output], pid: Pid) -> Option<bool> {
    to(out, pid).iter().find_map(|m| match m {
        ServerMessage::Welcome { moderator, .. } => Some(*moderator),
        _ => None,
    })
}

#[test]
fn first_participant_of_adhoc_room_moderates_others_cannot() {
    let mut h = H::adhoc();
    let a = h.join("alice");
    let b = h.join("bob");
    let out = h.drain();
    assert_eq!(welcome_moderator(&out, a), Some(true));
    assert_eq!(welcome_moderator(&out, b), Some(false));
    // Every moderator command from Bob is refused and changes nothing.
    for c in [
        Cmd::Mute(id("alice")),
        Cmd::MuteAll,
        Cmd::Lock(true),
        Cmd::SetLobby(true),
        Cmd::Remove(id("alice")),
        Cmd::EndMeeting,
        Cmd::SetModerator(id("bob"), true),
    ] {
        assert_eq!(h.cmd(b, c), Err(ModerationError::NotModerator));
    }
    assert!(h.drain().is_empty());
    assert_eq!(
        h.cmd(a, Cmd::Mute(id("nobody"))),
        Err(ModerationError::UnknownParticipant)
    );
    // Alice grants Bob the role; he is told, and can now lock.
    h.cmd(a, Cmd::SetModerator(id("bob"), true)).unwrap();
    assert!(to(&h.drain(), b).contains(&ServerMessage::Role { moderator: true }));
    h.cmd(b, Cmd::Lock(true)).unwrap();
    assert!(matches!(
        h.try_join("carol", Access::default()),
        Err(JoinError::Locked)
    ));
    // A moderator token still gets in.
    assert!(
        h.try_join(
            "dave",
            Access {
                moderator: true,
                ..Access::default()
            }
        )
        .is_ok()
    );
}

#[test]
fn mute_stops_forwarding_until_the_participant_unmutes() {
    let mut h = H::adhoc();
    let a = h.join("alice");
    let b = h.join("bob");
    h.publish(a);
    h.publish(b);
    h.room.media_state(b, true, true);
    h.drain();
    assert_eq!(h.audio_forwards(b), 1);
    h.cmd(a, Cmd::Mute(id("bob"))).unwrap();
    let out = h.drain();
    assert!(to(&out, b).contains(&ServerMessage::Moderated {
        action: ModeratedAction::Muted
    }));
    assert!(to(&out, a).iter().any(
        |m| matches!(m, ServerMessage::ParticipantUpdated { participant } if !participant.audio)
    ));
    assert_eq!(
        h.audio_forwards(b),
        0,
        "server stops forwarding muted audio"
    );
    // Bob unmutes himself: forwarding resumes.
    h.room.media_state(b, true, true);
    assert_eq!(h.audio_forwards(b), 1);
    // Mute all spares moderators.
    h.cmd(a, Cmd::MuteAll).unwrap();
    assert_eq!(h.audio_forwards(b), 0);
    assert_eq!(h.audio_forwards(a), 1);
    h.cmd(a, Cmd::StopVideo(id("bob"))).unwrap();
    assert!(to(&h.drain(), b).contains(&ServerMessage::Moderated {
        action: ModeratedAction::VideoStopped
    }));
}

#[test]
fn lobby_knock_admit_and_deny() {
    let mut h = H::adhoc();
    let a = h.join("alice");
    h.publish(a);
    h.cmd(a, Cmd::SetLobby(true)).unwrap();
    h.drain();

    let bob = h.try_join("bob", Access::default()).unwrap();
    assert!(bob.waiting);
    let out = h.drain();
    // Bob learns only that he waits; Alice sees his knock; nobody else hears of him yet.
    assert_eq!(to(&out, bob.pid), vec![ServerMessage::LobbyWaiting]);
    assert_eq!(
        to(&out, a),
        vec![ServerMessage::Knock {
            knock_id: "k2".into(),
            name: "bob".into(),
            sealed_name: None,
        }]
    );
    // Media state and tracks of a knocker are ignored.
    h.room.media_state(bob.pid, true, true);
    h.publish(bob.pid);
    assert!(to(&h.drain(), a).is_empty());

    h.cmd(a, Cmd::Admit("k2".into())).unwrap();
    let out = h.drain();
    assert!(out.contains(&Output::Admitted { pid: bob.pid }));
    assert!(to(&out, a).contains(&ServerMessage::KnockResolved {
        knock_id: "k2".into()
    }));
    assert!(
        to(&out, a)
            .iter()
            .any(|m| matches!(m, ServerMessage::ParticipantJoined { .. }))
    );
    assert_eq!(welcome_moderator(&out, bob.pid), Some(false));

    let carol = h.try_join("carol", Access::default()).unwrap();
    h.drain();
    h.cmd(a, Cmd::Deny("k3".into())).unwrap();
    let out = h.drain();
    assert_eq!(
        to(&out, carol.pid),
        vec![ServerMessage::Closed {
            reason: ClosedReason::Denied
        }]
    );
    assert!(out.contains(&Output::Removed { pid: carol.pid }));
    assert!(
        !to(&out, bob.pid)
            .iter()
            .any(|m| matches!(m, ServerMessage::ParticipantLeft { .. })),
        "nobody heard of Carol"
    );
    assert_eq!(
        h.cmd(a, Cmd::Admit("k3".into())),
        Err(ModerationError::UnknownParticipant)
    );

    // A knocker who goes away is withdrawn; turning the lobby off lets the waiting in.
    let dave = h.try_join("dave", Access::default()).unwrap();
    h.room.connection_lost(h.at(10), dave.pid);
    assert!(to(&h.drain(), a).contains(&ServerMessage::KnockResolved {
        knock_id: "k4".into()
    }));
    let erin = h.try_join("erin", Access::default()).unwrap();
    h.drain();
    h.cmd(a, Cmd::SetLobby(false)).unwrap();
    assert!(h.drain().contains(&Output::Admitted { pid: erin.pid }));
}

#[test]
fn passwords_compare_verified_hashes() {
    let mut h = H::adhoc();
    let a = h.join("alice");
    h.cmd(a, Cmd::SetPasswordHash(Some("$argon2id$A".into())))
        .unwrap();
    assert!(h.drain().iter().any(|o| matches!(o, Output::Signal { msg: ServerMessage::Settings { settings }, .. } if settings.password)));
    assert_eq!(
        h.try_join("b", Access::default()).unwrap_err(),
        JoinError::PasswordRequired
    );
    let stale = Access {
        password_hash: Some("$argon2id$OLD".into()),
        ..Access::default()
    };
    assert_eq!(
        h.try_join("b", stale).unwrap_err(),
        JoinError::WrongPassword
    );
    let ok = Access {
        password_hash: Some("$argon2id$A".into()),
        ..Access::default()
    };
    assert!(h.try_join("b", ok).is_ok());
    h.cmd(a, Cmd::SetPasswordHash(None)).unwrap();
    assert!(h.try_join("c", Access::default()).is_ok());
}

#[test]
fn removed_session_cannot_return_and_end_meeting_closes_all() {
    let mut h = H::adhoc();
    let a = h.join("alice");
    let b = h.join("bob");
    let c = h.join("carol");
    h.drain();
    h.cmd(a, Cmd::Remove(id("bob"))).unwrap();
    let out = h.drain();
    assert_eq!(
        to(&out, b),
        vec![ServerMessage::Closed {
            reason: ClosedReason::Removed
        }]
    );
    assert!(out.contains(&Output::Removed { pid: b }));
    let again = JoinRequest {
        id: id("bob2"),
        resume_token: "fresh".into(),
        resume: Some("token-bob".into()),
        name: "bob".into(),
        sealed_name: None,
        encrypts: true,
        access: Access::default(),
    };
    assert_eq!(h.room.join(h.at(5), again).unwrap_err(), JoinError::Removed);

    h.cmd(a, Cmd::EndMeeting).unwrap();
    let out = h.drain();
    for p in [a, c] {
        assert!(to(&out, p).contains(&ServerMessage::Closed {
            reason: ClosedReason::MeetingEnded
        }));
        assert!(out.contains(&Output::Removed { pid: p }));
    }
    assert!(h.room.is_empty());
}

#[test]
fn last_moderator_leaving_passes_the_role_on() {
    let mut h = H::adhoc();
    let a = h.join("alice");
    let b = h.join("bob");
    h.join("carol");
    h.drain();
    h.room.leave(h.at(1), a);
    assert!(to(&h.drain(), b).contains(&ServerMessage::Role { moderator: true }));
}

#[test]
fn persistent_rooms_and_host_only_policy() {
    let stored = StoredSettings {
        lobby: true,
        password_hash: None,
    };
    let mut room = Room::new("board", RoomConfig::default(), Some(stored));
    let req = |n: &str, access: Access| JoinRequest {
        id: id(n),
        resume_token: n.into(),
        resume: None,
        name: n.into(),
        sealed_name: None,
        encrypts: true,
        access,
    };
    let now = Instant::now();
    // Nobody is moderator by arriving first: the guest waits in the stored lobby.
    assert!(
        room.join(now, req("guest", Access::default()))
            .unwrap()
            .waiting
    );
    let m = room
        .join(
            now,
            req(
                "chair",
                Access {
                    moderator: true,
                    ..Access::default()
                },
            ),
        )
        .unwrap();
    assert!(!m.waiting);
    let out: Vec<Output> = std::iter::from_fn(|| room.poll_output()).collect();
    assert_eq!(welcome_moderator(&out, m.pid), Some(true));
    assert!(
        to(&out, m.pid)
            .iter()
            .any(|msg| matches!(msg, ServerMessage::Knock { .. })),
        "new moderator sees who waits"
    );
    room.moderate(now, m.pid, Cmd::SetLobby(false)).unwrap();
    let out: Vec<Output> = std::iter::from_fn(|| room.poll_output()).collect();
    assert!(out.contains(&Output::SaveSettings {
        lobby: false,
        password_hash: None
    }));

    let config = RoomConfig {
        adhoc_requires_host: true,
        ..RoomConfig::default()
    };
    let mut adhoc = Room::new("x", config, None);
    assert_eq!(
        adhoc
            .join(now, req("guest", Access::default()))
            .unwrap_err(),
        JoinError::HostRequired
    );
    assert!(
        adhoc
            .join(
                now,
                req(
                    "host",
                    Access {
                        host: true,
                        ..Access::default()
                    }
                )
            )
            .is_ok()
    );
    assert!(adhoc.join(now, req("guest", Access::default())).is_ok());
}

#[test]
fn clients_that_cannot_encrypt_need_a_moderator_to_allow_them() {
    let mut h = H::adhoc();
    let a = h.join("alice");
    h.drain();
    let plain = |name: &str| JoinRequest {
        id: id(name),
        resume_token: format!("token-{name}"),
        resume: None,
        name: name.into(),
        sealed_name: None,
        encrypts: false,
        access: Access::default(),
    };
    assert_eq!(
        h.room.join(h.at(1), plain("obs")).unwrap_err(),
        JoinError::E2eeRequired
    );
    h.cmd(a, Cmd::SetE2eeRequired(false)).unwrap();
    let out = h.drain();
    assert!(
        to(&out, a)
            .iter()
            .any(|m| matches!(m, ServerMessage::Settings { settings } if !settings.e2ee_required))
    );
    let obs = h.room.join(h.at(2), plain("obs")).unwrap().pid;
    let out = h.drain();
    // Everyone sees that this participant does not encrypt.
    assert!(to(&out, a).iter().any(
        |m| matches!(m, ServerMessage::ParticipantJoined { participant } if !participant.e2ee)
    ));
    assert!(
        to(&out, obs).iter().any(
            |m| matches!(m, ServerMessage::Welcome { settings, .. } if !settings.e2ee_required)
        )
    );
    // Requiring it again keeps who is in, refuses new ones.
    h.cmd(a, Cmd::SetE2eeRequired(true)).unwrap();
    assert_eq!(
        h.room.join(h.at(3), plain("obs2")).unwrap_err(),
        JoinError::E2eeRequired
    );
    assert_eq!(h.room.participant_count(), 2);
    let b = h.join("bob");
    assert_eq!(
        h.cmd(b, Cmd::SetE2eeRequired(false)),
        Err(ModerationError::NotModerator)
    );
}
