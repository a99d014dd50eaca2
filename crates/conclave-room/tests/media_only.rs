//! Media-only participants (WHIP publishers, WHEP viewers): never moderators, gone when their
//! transport ends.

use std::time::Instant;

use conclave_proto::{ClosedReason, ParticipantId, ServerMessage};
use conclave_room::{Access, JoinRequest, ModeratorCommand, Output, Pid, Room, RoomConfig};

fn req(name: &str, access: Access, encrypts: bool) -> JoinRequest {
    JoinRequest {
        id: ParticipantId(format!("id-{name}")),
        resume_token: format!("resume-{name}"),
        resume: None,
        name: name.into(),
        sealed_name: None,
        encrypts,
        access,
    }
}

fn media_only() -> Access {
    Access {
        host: true,
        // A moderator token does not make a media endpoint a moderator.
        moderator: true,
        media_only: true,
        ..Access::default()
    }
}

fn drain(room: &mut Room) -> Vec<Output> {
    std::iter::from_fn(|| room.poll_output()).collect()
}

#[test]
fn media_only_needs_unencrypted_allowed_and_never_moderates() {
    let now = Instant::now();
    let mut room = Room::new("r", RoomConfig::default(), None);
    let e = room.join(now, req("obs", media_only(), false)).unwrap_err();
    assert_eq!(e, conclave_room::JoinError::E2eeRequired);

    let chair = room
        .join(now, req("chair", Access::default(), true))
        .unwrap();
    room.moderate(now, chair.pid, ModeratorCommand::SetE2eeRequired(false))
        .unwrap();
    let obs = room.join(now, req("obs", media_only(), false)).unwrap();
    let out = drain(&mut room);
    let welcomed_as = out.iter().find_map(|o| match o {
        Output::Signal {
            to,
            msg: ServerMessage::Welcome { moderator, .. },
        } if *to == obs.pid => Some(*moderator),
        _ => None,
    });
    assert_eq!(welcomed_as, Some(false));
    assert!(
        room.moderate(
            now,
            chair.pid,
            ModeratorCommand::SetModerator(obs.id.clone(), true)
        )
        .is_ok()
    );
    assert!(!out_has_role(&drain(&mut room), obs.pid));

    // The last person leaves: the role does not pass to the media endpoint.
    room.leave(now, chair.pid);
    assert!(!out_has_role(&drain(&mut room), obs.pid));
}

fn out_has_role(out: &[Output], pid: Pid) -> bool {
    out.iter().any(|o| {
        matches!(o, Output::Signal { to, msg: ServerMessage::Role { moderator: true } } if *to == pid)
    })
}

#[test]
fn media_only_leaves_when_transport_ends_and_end_meeting_closes_all() {
    let now = Instant::now();
    let mut room = Room::new("r", RoomConfig::default(), None);
    let chair = room
        .join(now, req("chair", Access::default(), true))
        .unwrap();
    room.moderate(now, chair.pid, ModeratorCommand::SetE2eeRequired(false))
        .unwrap();
    let obs = room.join(now, req("obs", media_only(), false)).unwrap();
    drain(&mut room);
    room.transport_closed(now, obs.pid);
    let out = drain(&mut room);
    assert!(out.contains(&Output::Removed { pid: obs.pid }));
    assert!(out.iter().any(|o| matches!(o, Output::Signal { to, msg: ServerMessage::ParticipantLeft { .. } } if *to == chair.pid)));

    room.end_meeting();
    let out = drain(&mut room);
    assert!(out.contains(&Output::Signal {
        to: chair.pid,
        msg: ServerMessage::Closed {
            reason: ClosedReason::MeetingEnded
        }
    }));
    assert!(room.is_empty());
}
