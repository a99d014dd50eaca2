//! The room core driven with a virtual clock: join, publish, subscribe, forward, keyframes, leave,
//! reconnection.

use std::time::{Duration, Instant};

use conclave_proto::{Kind, ParticipantId, ServerMessage, SlotCounts};
use conclave_room::{
    Access, Forward, JoinRequest, Mid, Output, PacketIn, Pid, Published, Room, RoomConfig, SeqTs,
};

struct Harness {
    room: Room,
    start: Instant,
    /// Latest time used, for packets.
    now: std::cell::Cell<Instant>,
}

fn mid(s: &str) -> Mid {
    Mid::new(s).unwrap()
}

impl Harness {
    fn new() -> Self {
        let start = Instant::now();
        Self {
            room: Room::new("standup", RoomConfig::default(), None),
            start,
            now: std::cell::Cell::new(start),
        }
    }

    fn at(&self, millis: u64) -> Instant {
        let t = self.start + Duration::from_millis(millis);
        self.now.set(self.now.get().max(t));
        t
    }

    fn join(&mut self, t: u64, name: &str) -> Pid {
        let req = JoinRequest {
            id: ParticipantId(format!("id-{name}")),
            resume_token: format!("token-{name}"),
            resume: None,
            name: name.into(),
            sealed_name: None,
            encrypts: true,
            access: Access::default(),
        };
        self.room.join(self.at(t), req).unwrap().pid
    }

    /// Publish mic (mid 0) and camera (mid 1), and offer `n` receive slots of each kind
    /// (mids 2.., audio then video alternating).
    fn publish(&mut self, t: u64, pid: Pid, n: usize) {
        let published = [
            Published {
                mid: mid("0"),
                kind: Kind::Audio,
                layers: 1,
                screen: false,
            },
            Published {
                mid: mid("1"),
                kind: Kind::Video,
                layers: 1,
                screen: false,
            },
        ];
        let slots: Vec<(Mid, Kind)> = (0..n)
            .flat_map(|i| {
                [
                    (mid(&(2 + 2 * i).to_string()), Kind::Audio),
                    (mid(&(3 + 2 * i).to_string()), Kind::Video),
                ]
            })
            .collect();
        self.room.set_media(self.at(t), pid, &published, &slots);
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.room.poll_output()).collect()
    }

    fn rtp(&mut self, from: Pid, m: &str, seq: u64, ts: u32, keyframe: bool) -> Vec<Forward> {
        let mut out = Vec::new();
        let pkt = PacketIn {
            seq,
            ts,
            keyframe,
            layer: 0,
            bytes: 1000,
            audio_level: None,
            red: false,
            vp8: None,
            at: self.now.get(),
        };
        self.room.on_rtp(from, mid(m), pkt, &mut out);
        out
    }
}

fn signals_to(outputs: &[Output], pid: Pid) -> Vec<&ServerMessage> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Signal { to, msg } if *to == pid => Some(msg),
            _ => None,
        })
        .collect()
}

fn last_subscriptions(outputs: &[Output], pid: Pid) -> Option<(SlotCounts, Vec<(String, String)>)> {
    signals_to(outputs, pid)
        .into_iter()
        .rev()
        .find_map(|m| match m {
            ServerMessage::Subscriptions {
                slots,
                subscriptions,
            } => Some((
                *slots,
                subscriptions
                    .iter()
                    .map(|s| (s.mid.clone(), s.participant_id.0.clone()))
                    .collect(),
            )),
            _ => None,
        })
}

#[test]
fn three_participants_receive_each_other() {
    let mut h = Harness::new();
    let a = h.join(0, "alice");
    let out = h.drain();
    assert!(
        matches!(signals_to(&out, a)[0], ServerMessage::Welcome { participants, .. } if participants.is_empty())
    );
    h.publish(10, a, 0);
    let b = h.join(20, "bob");
    let out = h.drain();
    // Alice hears of Bob; Bob is welcomed with Alice in the list and told he needs one slot each.
    assert!(signals_to(&out, a).iter().any(|m| matches!(m, ServerMessage::ParticipantJoined { participant } if participant.name == "bob")));
    assert!(
        matches!(signals_to(&out, b)[0], ServerMessage::Welcome { participants, .. } if participants.len() == 1)
    );
    assert_eq!(
        last_subscriptions(&out, b).unwrap().0,
        SlotCounts { audio: 1, video: 1 }
    );
    h.publish(30, b, 1);
    let out = h.drain();
    // Bob's slots now carry Alice; Alice needs slots for Bob.
    let (_, subs) = last_subscriptions(&out, b).unwrap();
    assert_eq!(
        subs,
        vec![
            ("2".into(), "id-alice".into()),
            ("3".into(), "id-alice".into())
        ]
    );
    assert_eq!(
        last_subscriptions(&out, a).unwrap().0,
        SlotCounts { audio: 1, video: 1 }
    );
    // Alice's camera sends nothing yet: nothing to ask for.
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::RequestKeyframe { .. }))
    );

    let c = h.join(40, "carol");
    h.publish(50, c, 2);
    h.publish(60, a, 2);
    h.publish(60, b, 2);
    let out = h.drain();
    for p in [a, b, c] {
        let (slots, subs) =
            last_subscriptions(&out, p).unwrap_or_else(|| panic!("{p:?} got subscriptions"));
        assert_eq!(slots, SlotCounts { audio: 2, video: 2 });
        assert_eq!(
            subs.len(),
            4,
            "{p:?} receives two audio and two video tracks"
        );
    }

    // Audio flows at once to both others.
    let f = h.rtp(a, "0", 1000, 48_000, false);
    assert_eq!(f.iter().map(|f| f.to).collect::<Vec<_>>(), vec![b, c]);
    assert!(f.iter().all(|f| f.out.seq == 1));
    // Video waits for a keyframe, then flows renumbered from 1. The first packet of Alice's
    // camera makes the server ask her for one.
    h.drain();
    assert!(h.rtp(a, "1", 500, 90_000, false).is_empty());
    assert!(h.drain().contains(&Output::RequestKeyframe {
        publisher: a,
        mid: mid("1"),
        layer: 0,
    }));
    let f = h.rtp(a, "1", 501, 93_000, true);
    assert_eq!(f.len(), 2);
    assert!(f.iter().all(|f| f.out == SeqTs { seq: 1, ts: 93_000 }));
    let f = h.rtp(a, "1", 502, 93_000, false);
    assert!(f.iter().all(|f| f.out.seq == 2));
    // A packet without VP8 numbering (H.264, audio) gets none: its payload goes out untouched.
    assert!(f.iter().all(|f| f.vp8.is_none()));
    // Nobody receives their own media.
    assert!(h.rtp(b, "0", 1, 0, false).iter().all(|f| f.to != b));
    // Unknown track: nothing.
    assert!(h.rtp(a, "9", 1, 0, false).is_empty());
}

#[test]
fn leave_frees_slot_and_reused_slot_stays_continuous() {
    let mut h = Harness::new();
    let a = h.join(0, "alice");
    let b = h.join(0, "bob");
    h.publish(0, a, 1);
    h.publish(0, b, 1);
    h.drain();
    h.rtp(b, "1", 10, 0, true);
    h.rtp(b, "1", 11, 3000, false);
    let f = h.rtp(b, "1", 12, 6000, false);
    assert_eq!(f[0].out, SeqTs { seq: 3, ts: 6000 });
    let slot = f[0].mid;

    h.room.leave(h.at(100), b);
    let out = h.drain();
    assert!(out.contains(&Output::Removed { pid: b }));
    assert!(signals_to(&out, a).iter().any(|m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if participant_id.0 == "id-bob")));
    assert_eq!(
        last_subscriptions(&out, a).unwrap(),
        (SlotCounts::default(), vec![])
    );

    // Dave arrives; Alice's freed slot is reused and the sequence continues after 3.
    let d = h.join(200, "dave");
    h.publish(200, d, 1);
    let out = h.drain();
    assert_eq!(
        last_subscriptions(&out, a).unwrap().1,
        vec![
            ("2".into(), "id-dave".into()),
            ("3".into(), "id-dave".into())
        ]
    );
    let f = h.rtp(d, "1", 40_000, 1_000_000, true);
    assert_eq!(f[0].mid, slot);
    assert_eq!(f[0].out, SeqTs { seq: 4, ts: 9000 });
}

#[test]
fn keyframe_requests_are_rate_limited_and_repeated() {
    let mut h = Harness::new();
    let a = h.join(0, "alice");
    let b = h.join(0, "bob");
    h.publish(0, a, 1);
    h.publish(0, b, 1);
    let kf = |out: &[Output], p: Pid| {
        out.iter()
            .filter(|o| matches!(o, Output::RequestKeyframe { publisher, .. } if *publisher == p))
            .count()
    };
    // Alice's camera starts (not on a keyframe): one request.
    h.drain();
    h.rtp(a, "1", 1, 0, false);
    assert_eq!(kf(&h.drain(), a), 1);
    // A subscriber's PLI within the interval is absorbed.
    h.room.on_keyframe_request(h.at(100), b, mid("3"));
    assert_eq!(kf(&h.drain(), a), 0);
    // Still waiting for the keyframe: the core asks again after the interval (ticks between
    // do not).
    h.room.handle_timeout(h.at(250));
    assert_eq!(kf(&h.drain(), a), 0);
    h.room.handle_timeout(h.at(500));
    assert_eq!(kf(&h.drain(), a), 1);
    // Once the keyframe arrived, no more repeats; a later PLI passes the limit.
    h.at(600);
    h.rtp(a, "1", 2, 3000, true);
    h.at(1900);
    h.rtp(a, "1", 3, 6000, false);
    h.room.handle_timeout(h.at(2000));
    assert_eq!(kf(&h.drain(), a), 0);
    h.room.on_keyframe_request(h.at(2000), b, mid("3"));
    assert_eq!(kf(&h.drain(), a), 1);
    // Audio slots never trigger keyframe requests.
    h.room.on_keyframe_request(h.at(5000), b, mid("2"));
    assert_eq!(kf(&h.drain(), a), 0);
}

#[test]
fn dropped_connection_resumes_within_grace_or_expires() {
    let mut h = Harness::new();
    let a = h.join(0, "alice");
    let b = h.join(0, "bob");
    h.publish(0, a, 1);
    h.publish(0, b, 1);
    h.drain();

    // Bob's connection drops and he comes back within the grace period: same identity, his old
    // tracks end, nobody is told he left.
    h.room.connection_lost(h.at(1000), b);
    h.room.handle_timeout(h.at(20_000));
    assert!(
        !h.drain()
            .iter()
            .any(|o| matches!(o, Output::Removed { .. }))
    );
    let req = JoinRequest {
        id: ParticipantId("fresh".into()),
        resume_token: "fresh-token".into(),
        resume: Some("token-bob".into()),
        name: "bob".into(),
        sealed_name: None,
        encrypts: true,
        access: Access::default(),
    };
    let joined = h.room.join(h.at(20_000), req).unwrap();
    assert!(joined.resumed);
    assert_eq!((joined.pid, joined.id.0.as_str()), (b, "id-bob"));
    let out = h.drain();
    assert!(
        !signals_to(&out, a)
            .iter()
            .any(|m| matches!(m, ServerMessage::ParticipantLeft { .. }))
    );
    assert_eq!(last_subscriptions(&out, a).unwrap().1, vec![]);
    assert!(h.rtp(b, "0", 5, 0, false).is_empty(), "old tracks ended");
    h.publish(20_100, b, 1);
    let out = h.drain();
    assert_eq!(last_subscriptions(&out, a).unwrap().1.len(), 2);

    // A wrong token makes a new participant.
    let req = JoinRequest {
        id: ParticipantId("id-mallory".into()),
        resume_token: "t".into(),
        resume: Some("token-bobx".into()),
        name: "mallory".into(),
        sealed_name: None,
        encrypts: true,
        access: Access::default(),
    };
    assert!(!h.room.join(h.at(20_200), req).unwrap().resumed);

    // Alice vanishes and does not come back: removed when the grace period ends.
    h.room.connection_lost(h.at(30_000), a);
    assert!(h.room.poll_timeout().is_some_and(|t| t <= h.at(60_000)));
    h.room.handle_timeout(h.at(59_999));
    assert!(!h.drain().contains(&Output::Removed { pid: a }));
    h.room.handle_timeout(h.at(60_000));
    let out = h.drain();
    assert!(out.contains(&Output::Removed { pid: a }));
    assert!(signals_to(&out, b).iter().any(|m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if participant_id.0 == "id-alice")));
}

#[test]
fn media_state_changes_reach_others_once() {
    let mut h = Harness::new();
    let a = h.join(0, "alice");
    let b = h.join(0, "bob");
    h.drain();
    h.room.media_state(a, true, false);
    let out = h.drain();
    assert!(signals_to(&out, a).is_empty());
    assert!(
        matches!(signals_to(&out, b)[..], [ServerMessage::ParticipantUpdated { participant }] if participant.audio && !participant.video)
    );
    h.room.media_state(a, true, false);
    assert!(h.drain().is_empty());
}

#[test]
fn full_room_refuses() {
    let mut room = Room::new(
        "r",
        RoomConfig {
            max_participants: 1,
            ..RoomConfig::default()
        },
        None,
    );
    let req = |n: &str| JoinRequest {
        id: ParticipantId(n.into()),
        resume_token: n.into(),
        resume: None,
        name: n.into(),
        sealed_name: None,
        encrypts: true,
        access: Access::default(),
    };
    room.join(Instant::now(), req("a")).unwrap();
    assert!(room.join(Instant::now(), req("b")).is_err());
}

#[test]
fn a_packet_repaired_late_goes_out_with_the_number_it_would_have_had() {
    let mut h = Harness::new();
    let a = h.join(0, "alice");
    let b = h.join(0, "bob");
    h.publish(0, a, 1);
    h.publish(0, b, 1);
    h.drain();
    h.rtp(a, "1", 100, 0, true);
    // 101 is lost on the way to the server; 102 and 103 come first, then the retransmission.
    assert_eq!(h.rtp(a, "1", 102, 3000, false)[0].out.seq, 3);
    assert_eq!(h.rtp(a, "1", 103, 6000, false)[0].out.seq, 4);
    let late = h.rtp(a, "1", 101, 0, false);
    assert_eq!(late.len(), 1, "forwarded, not dropped");
    assert_eq!(late[0].out, SeqTs { seq: 2, ts: 0 });
    // Numbering goes on after the highest one sent.
    assert_eq!(h.rtp(a, "1", 104, 9000, false)[0].out.seq, 5);
}
