//! The opaque relay: targeted and broadcast delivery inside one room, `from` set by the room.

use std::time::Instant;

use conclave_proto::{ParticipantId, ServerMessage};
use conclave_room::{Access, JoinRequest, Output, Pid, Room, RoomConfig};

fn join(room: &mut Room, name: &str) -> Pid {
    let req = JoinRequest {
        id: ParticipantId(format!("id-{name}")),
        resume_token: format!("token-{name}"),
        resume: None,
        name: "-".into(),
        sealed_name: None,
        encrypts: true,
        access: Access::default(),
    };
    room.join(Instant::now(), req).unwrap().pid
}

fn relays(room: &mut Room) -> Vec<(Pid, String, String)> {
    std::iter::from_fn(|| room.poll_output())
        .filter_map(|o| match o {
            Output::Signal {
                to,
                msg: ServerMessage::Relay { from, data },
            } => Some((to, from.0, data)),
            _ => None,
        })
        .collect()
}

#[test]
fn relay_targets_one_or_everyone_else() {
    let mut room = Room::new("r", RoomConfig::default(), None);
    let a = join(&mut room, "a");
    let b = join(&mut room, "b");
    let c = join(&mut room, "c");
    relays(&mut room);

    room.relay(a, Some(&ParticipantId("id-b".into())), "x1".into());
    assert_eq!(relays(&mut room), vec![(b, "id-a".into(), "x1".into())]);

    room.relay(b, None, "x2".into());
    let mut got = relays(&mut room);
    got.sort();
    assert_eq!(
        got,
        vec![
            (a, "id-b".into(), "x2".into()),
            (c, "id-b".into(), "x2".into())
        ]
    );

    // Unknown target, or oneself: nothing is delivered.
    room.relay(a, Some(&ParticipantId("id-zz".into())), "x3".into());
    room.relay(a, Some(&ParticipantId("id-a".into())), "x4".into());
    assert!(relays(&mut room).is_empty());

    // After leaving, relays to the leaver are dropped and the leaver cannot send.
    room.leave(Instant::now(), c);
    relays(&mut room);
    room.relay(a, Some(&ParticipantId("id-c".into())), "x5".into());
    room.relay(c, None, "x6".into());
    assert!(relays(&mut room).is_empty());
}

#[test]
fn knockers_neither_send_nor_receive_relays() {
    let mut room = Room::new("r", RoomConfig::default(), None);
    let a = join(&mut room, "a");
    room.moderate(
        Instant::now(),
        a,
        conclave_room::ModeratorCommand::SetLobby(true),
    )
    .unwrap();
    let k = join(&mut room, "k");
    relays(&mut room);
    room.relay(a, None, "secret".into());
    room.relay(a, Some(&ParticipantId("id-k".into())), "secret".into());
    assert!(relays(&mut room).is_empty(), "nothing reaches the lobby");
    room.relay(k, None, "spam".into());
    assert!(
        relays(&mut room).is_empty(),
        "the lobby cannot speak to the meeting"
    );
}
