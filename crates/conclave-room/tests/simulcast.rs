//! Simulcast layer choice, last-N and publisher layer pausing, driven with a virtual clock and a
//! simulated publisher sending three layers (about 150, 500 and 1,500 kbit/s) at 30 frames/s.

use std::time::{Duration, Instant};

use conclave_proto::{Kind, ParticipantId, ServerMessage};
use conclave_room::{
    Access, Forward, JoinRequest, LayerPolicy, Mid, Output, PacketIn, PictureId, Pid, Published,
    Room, RoomConfig, Vp8Ids,
};

fn mid(s: &str) -> Mid {
    Mid::new(s).unwrap()
}

/// Bytes per frame of each layer at 30 frames/s.
const FRAME_BYTES: [u32; 3] = [625, 2_083, 6_250];
const FRAME: Duration = Duration::from_micros(33_333);

struct Sim {
    room: Room,
    now: Instant,
    seq: [u64; 3],
    /// Each layer numbers its VP8 pictures on its own (15-bit PictureID, TL0PICIDX).
    picture_id: [u16; 3],
    ts: u32,
    frame: u64,
    /// Layers the publisher currently sends (it obeys `publish_layers`).
    sending: [bool; 3],
}

impl Sim {
    fn new(config: RoomConfig) -> Self {
        Self {
            room: Room::new("sim", config, None),
            now: Instant::now(),
            seq: [1000, 2000, 3000],
            picture_id: [100, 20_000, 32_760],
            ts: 0,
            frame: 0,
            sending: [true; 3],
        }
    }

    fn join(&mut self, name: &str) -> Pid {
        let req = JoinRequest {
            id: ParticipantId(format!("id-{name}")),
            resume_token: format!("token-{name}"),
            resume: None,
            name: name.into(),
            sealed_name: None,
            encrypts: true,
            access: Access::default(),
        };
        self.room.join(self.now, req).unwrap().pid
    }

    /// Publish a camera with `layers` simulcast layers (mid 1), optionally a screen (mid 9), and
    /// offer `slots` video receive slots (mids 20..).
    fn media(&mut self, pid: Pid, layers: u8, screen: bool, slots: usize) {
        let mut published = vec![Published {
            mid: mid("1"),
            kind: Kind::Video,
            layers,
            screen: false,
        }];
        if screen {
            published.push(Published {
                mid: mid("9"),
                kind: Kind::Video,
                layers: 1,
                screen: true,
            });
        }
        let slots: Vec<(Mid, Kind)> = (0..slots)
            .map(|i| (mid(&(20 + i).to_string()), Kind::Video))
            .collect();
        self.room.set_media(self.now, pid, &published, &slots);
    }

    /// The estimator's smoothed and unsmoothed estimates agree on `bps`.
    fn steady_estimate(&mut self, pid: Pid, bps: u64) {
        self.room.set_estimate(pid, bps);
        self.room.set_estimate_now(pid, bps);
    }

    /// Alice publishes three layers; Bob offers one video receive slot (and publishes too).
    fn alice_and_bob(&mut self) -> (Pid, Pid) {
        let a = self.join("alice");
        let b = self.join("bob");
        self.media(a, 3, false, 1);
        self.media(b, 3, false, 1);
        (a, b)
    }

    /// A viewer with two video receive slots, and Alice and Carol publishing three layers.
    fn viewer_alice_carol(&mut self) -> (Pid, Pid, Pid) {
        let viewer = self.join("viewer");
        let a = self.join("alice");
        let c = self.join("carol");
        self.media(viewer, 3, false, 2);
        self.media(a, 3, false, 2);
        self.media(c, 3, false, 2);
        (viewer, a, c)
    }

    /// `viewer` shows Alice and Carol as thumbnails: each wants only the lowest layer.
    fn thumbnails(&mut self, viewer: Pid) {
        self.room.set_view(
            self.now,
            viewer,
            &[
                (ParticipantId("id-alice".into()), 180),
                (ParticipantId("id-carol".into()), 180),
            ],
        );
    }

    /// One frame of every layer being sent, from `publisher`; a keyframe every `gop` frames.
    /// Returns what was forwarded, with the layer each forward came from.
    fn frame(&mut self, publisher: Pid, gop: u64) -> Vec<(Forward, u8)> {
        let key = self.frame.is_multiple_of(gop);
        let mut all = Vec::new();
        for layer in 0..3u8 {
            if !self.sending[layer as usize] {
                continue;
            }
            let bytes = FRAME_BYTES[layer as usize];
            let pid = &mut self.picture_id[layer as usize];
            *pid = (*pid + 1) % (1 << 15);
            let vp8 = Vp8Ids {
                picture_id: Some(PictureId {
                    value: *pid,
                    wide: true,
                }),
                tl0_pic_idx: Some((*pid as u8).wrapping_add(layer * 60)),
                key_idx: None,
            };
            let packets = bytes.div_ceil(1200);
            for p in 0..packets {
                self.seq[layer as usize] += 1;
                let pkt = PacketIn {
                    seq: self.seq[layer as usize],
                    ts: self.ts,
                    keyframe: key && p == 0,
                    layer,
                    bytes: bytes / packets + 60,
                    audio_level: None,
                    red: false,
                    vp8: Some(vp8),
                    at: self.now,
                };
                let mut out = Vec::new();
                self.room.on_rtp(publisher, mid("1"), pkt, &mut out);
                all.extend(out.into_iter().map(|f| (f, layer)));
            }
        }
        self.ts = self.ts.wrapping_add(3000);
        self.frame += 1;
        self.now += FRAME;
        if self.room.poll_timeout().is_some_and(|t| t <= self.now) {
            self.room.handle_timeout(self.now);
        }
        all
    }

    /// Run `secs` of video; returns the layer received by `sub` in the last second (the most
    /// frequent one) and everything the room said.
    fn run(&mut self, publisher: Pid, sub: Pid, secs: f64, gop: u64) -> (Option<u8>, Vec<Output>) {
        let frames = (secs * 30.0) as usize;
        let mut outputs = Vec::new();
        let mut counts = [0usize; 3];
        for i in 0..frames {
            let f = self.frame(publisher, gop);
            if i + 30 >= frames {
                for (fw, layer) in f.iter().filter(|(fw, _)| fw.to == sub) {
                    let _ = fw;
                    counts[*layer as usize] += 1;
                }
            }
            while let Some(o) = self.room.poll_output() {
                if let Output::Signal {
                    to,
                    msg: ServerMessage::PublishLayers { active, .. },
                } = &o
                    && *to == publisher
                {
                    for (i, a) in active.iter().enumerate() {
                        self.sending[i] = *a;
                    }
                }
                outputs.push(o);
            }
        }
        let best = (0..3u8)
            .filter(|l| counts[*l as usize] > 0)
            .max_by_key(|l| counts[*l as usize]);
        (best, outputs)
    }
}

#[test]
fn receiver_gets_top_layer_with_enough_bandwidth_and_switches_down_and_up_at_keyframes() {
    let mut s = Sim::new(RoomConfig::default());
    let (a, b) = s.alice_and_bob();
    s.room.set_estimate(b, 5_000_000);
    let (layer, _) = s.run(a, b, 6.0, 60);
    assert_eq!(layer, Some(2), "plenty of bandwidth: 720p");

    // The downlink collapses to 400 kbit/s: down to the lowest layer.
    s.room.set_estimate(b, 400_000);
    let (layer, _) = s.run(a, b, 4.0, 60);
    assert_eq!(layer, Some(0));
    // 900 kbit/s: the middle layer fits, but not right after a drop (no flapping).
    s.room.set_estimate(b, 900_000);
    let (layer, _) = s.run(a, b, 1.0, 60);
    assert_eq!(layer, Some(0), "held down for a while after lowering");
    let (layer, _) = s.run(a, b, 6.0, 60);
    assert_eq!(layer, Some(1));
    // Recovered: back to the top.
    s.room.set_estimate(b, 5_000_000);
    let (layer, _) = s.run(a, b, 8.0, 60);
    assert_eq!(layer, Some(2));
}

#[test]
fn numbering_stays_continuous_across_layer_switches() {
    let mut s = Sim::new(RoomConfig::default());
    let (a, b) = s.alice_and_bob();
    let mut last: Option<(u64, Vp8Ids)> = None;
    let mut layers_seen = [false; 3];
    for step in 0..4 {
        s.room
            .set_estimate(b, if step % 2 == 0 { 5_000_000 } else { 300_000 });
        for _ in 0..(6 * 30) {
            for (f, layer) in s.frame(a, 45) {
                if f.to != b {
                    continue;
                }
                layers_seen[layer as usize] = true;
                let vp8 = f.vp8.expect("VP8 numbering forwarded");
                if let Some((seq, prev)) = last {
                    assert_eq!(f.out.seq, seq + 1, "a gap or a repeat in what bob receives");
                    // Each layer numbers its pictures differently; Bob sees one sequence:
                    // the same picture (its next packet) or the next one.
                    let (p, q) = (
                        vp8.picture_id.unwrap().value,
                        prev.picture_id.unwrap().value,
                    );
                    let (t, u) = (vp8.tl0_pic_idx.unwrap(), prev.tl0_pic_idx.unwrap());
                    if p != q {
                        assert_eq!(p, (q + 1) % (1 << 15), "a PictureID jump");
                        assert_eq!(t, u.wrapping_add(1), "a TL0PICIDX jump");
                    } else {
                        assert_eq!(t, u);
                    }
                    assert_eq!(vp8.key_idx, None, "absent fields stay absent");
                }
                last = Some((f.out.seq, vp8));
            }
            while s.room.poll_output().is_some() {}
        }
    }
    assert!(
        layers_seen[0] && layers_seen[2],
        "switched between 180p and 720p"
    );
}

#[test]
fn small_tile_gets_a_small_layer_and_unneeded_layers_are_paused() {
    let mut s = Sim::new(RoomConfig::default());
    let (a, b) = s.alice_and_bob();
    s.room.set_estimate(b, 10_000_000);
    // Bob shows Alice as a 180-pixel thumbnail.
    s.room
        .set_view(s.now, b, &[(ParticipantId("id-alice".into()), 180)]);
    let (layer, outputs) = s.run(a, b, 6.0, 60);
    assert_eq!(layer, Some(0), "a thumbnail never gets 720p");
    // Nobody needs Alice's 360p and 720p: she is told to pause them.
    let told: Vec<&Vec<bool>> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Signal {
                to,
                msg: ServerMessage::PublishLayers { active, .. },
            } if *to == a => Some(active),
            _ => None,
        })
        .collect();
    assert_eq!(
        told.last().map(|v| v.as_slice()),
        Some(&[true, false, false][..])
    );
    assert_eq!(s.sending, [true, false, false]);
    // Bob enlarges the tile: the layer is resumed and received.
    s.room
        .set_view(s.now, b, &[(ParticipantId("id-alice".into()), 720)]);
    let (layer, _) = s.run(a, b, 6.0, 60);
    assert!(s.sending[2]);
    assert_eq!(layer, Some(2));
    // Bob hides Alice (another page): nothing forwarded, and after a while Alice sends no video
    // at all, as nobody else watches.
    s.room.set_view(s.now, b, &[]);
    let (layer, _) = s.run(a, b, 5.0, 60);
    assert_eq!(layer, None);
    assert_eq!(s.sending, [false, false, false]);
}

#[test]
fn highest_policy_always_forwards_the_top_layer() {
    let config = RoomConfig {
        layer_policy: LayerPolicy::Highest,
        ..Default::default()
    };
    let mut s = Sim::new(config);
    let (a, b) = s.alice_and_bob();
    s.room.set_estimate(b, 300_000);
    s.room
        .set_view(s.now, b, &[(ParticipantId("id-alice".into()), 180)]);
    let (layer, _) = s.run(a, b, 4.0, 60);
    assert_eq!(layer, Some(2));
}

#[test]
fn last_n_limits_forwarded_video_and_screen_share_comes_first() {
    let config = RoomConfig {
        last_n: 2,
        ..Default::default()
    };
    let mut s = Sim::new(config);
    let viewer = s.join("viewer");
    let others: Vec<Pid> = (0..4).map(|i| s.join(&format!("p{i}"))).collect();
    s.media(viewer, 3, false, 4);
    for (i, p) in others.iter().enumerate() {
        s.media(*p, 3, i == 3, 4);
    }
    let outputs: Vec<Output> = std::iter::from_fn(|| s.room.poll_output()).collect();
    let subs = outputs
        .iter()
        .rev()
        .find_map(|o| match o {
            Output::Signal {
                to,
                msg:
                    ServerMessage::Subscriptions {
                        slots,
                        subscriptions,
                    },
            } if *to == viewer => Some((*slots, subscriptions.clone())),
            _ => None,
        })
        .expect("viewer told what it receives");
    // Two cameras (last-N) plus the screen share, which never counts against it.
    assert_eq!(subs.0.video, 3);
    assert_eq!(subs.1.iter().filter(|s| s.screen).count(), 1);
    assert_eq!(
        subs.1.iter().find(|s| s.screen).unwrap().participant_id,
        ParticipantId("id-p3".into())
    );
}

#[test]
fn several_talking_at_once_keep_their_audio_slots() {
    let config = RoomConfig {
        audio_last_n: 2,
        ..Default::default()
    };
    let mut s = Sim::new(config);
    let listener = s.join("listener");
    let talkers: Vec<Pid> = (0..4).map(|i| s.join(&format!("t{i}"))).collect();
    let audio_slots: Vec<(Mid, Kind)> = (0..2)
        .map(|i| (mid(&(40 + i).to_string()), Kind::Audio))
        .collect();
    s.room.set_media(s.now, listener, &[], &audio_slots);
    for t in &talkers {
        let published = [Published {
            mid: mid("2"),
            kind: Kind::Audio,
            layers: 1,
            screen: false,
        }];
        s.room.set_media(s.now, *t, &published, &audio_slots);
    }
    // Four microphones above the speech level at once for 3 s, their packets arriving in an
    // order that changes (as jitter and packet timing do).
    let mut told = 0;
    for step in 0..150u64 {
        for (i, t) in talkers.iter().enumerate() {
            let pkt = PacketIn {
                seq: step + 1,
                ts: (step as u32) * 960,
                keyframe: false,
                layer: 0,
                bytes: 120,
                audio_level: Some(-30),
                red: false,
                at: s.now + Duration::from_millis(5 * ((i as u64 + step) % 4)),
                vp8: None,
            };
            let mut out = Vec::new();
            s.room.on_rtp(*t, mid("2"), pkt, &mut out);
        }
        s.now += Duration::from_millis(20);
        if s.room.poll_timeout().is_some_and(|t| t <= s.now) {
            s.room.handle_timeout(s.now);
        }
        let outputs: Vec<Output> = std::iter::from_fn(|| s.room.poll_output()).collect();
        if step >= 50 {
            told += outputs
                .iter()
                .filter(|o| {
                    matches!(o, Output::Signal { to, msg: ServerMessage::Subscriptions { .. } }
                        if *to == listener)
                })
                .count();
        }
    }
    assert_eq!(
        told, 0,
        "the listener's audio slots stay with the same talkers"
    );
}
/// Frames from several publishers at once (see [`Sim::frame`]); forwards to `sub` by publisher.
fn frames_to(s: &mut Sim, publishers: &[Pid], sub: Pid, gop: u64) -> Vec<Pid> {
    let mut got = Vec::new();
    for &p in publishers {
        // Every publisher sends the same frame at the same instant.
        let (now, ts, frame) = (s.now, s.ts, s.frame);
        let f = s.frame(p, gop);
        if publishers.last() != Some(&p) {
            (s.now, s.ts, s.frame) = (now, ts, frame);
        }
        if f.iter().any(|(fw, _)| fw.to == sub) {
            got.push(p);
        }
    }
    got
}

/// One frame from each publisher; the layers `sub` received.
fn frames_to_layers(s: &mut Sim, publishers: &[Pid], sub: Pid) -> Vec<u8> {
    let mut got = Vec::new();
    for &p in publishers {
        let (now, ts, frame) = (s.now, s.ts, s.frame);
        let f = s.frame(p, 30);
        if publishers.last() != Some(&p) {
            (s.now, s.ts, s.frame) = (now, ts, frame);
        }
        got.extend(f.iter().filter(|(fw, _)| fw.to == sub).map(|(_, l)| *l));
    }
    while s.room.poll_output().is_some() {}
    got
}

/// A viewer showing Alice and Carol as thumbnails (each wants only the lowest layer, about
/// 165 kbit/s with headers), after 3 s of both playing with room to spare.
fn two_thumbnails_playing() -> (Sim, (Pid, Pid, Pid)) {
    let mut s = Sim::new(RoomConfig::default());
    let (viewer, a, c) = s.viewer_alice_carol();
    s.thumbnails(viewer);
    s.room.set_estimate(viewer, 600_000);
    carol_frames(&mut s, (viewer, a, c), 3);
    (s, (viewer, a, c))
}

/// `secs` of frames from Alice and Carol to `viewer`; how many of Carol's reached it.
fn carol_frames(s: &mut Sim, (viewer, a, c): (Pid, Pid, Pid), secs: usize) -> usize {
    let mut carol_frames = 0;
    for _ in 0..(secs * 30) {
        if frames_to(s, &[a, c], viewer, 30).contains(&c) {
            carol_frames += 1;
        }
        while s.room.poll_output().is_some() {}
    }
    carol_frames
}

#[test]
fn an_estimate_wobbling_at_the_edge_does_not_pause_and_resume_a_video() {
    let mut s = Sim::new(RoomConfig::default());
    let (viewer, a, c) = s.viewer_alice_carol();
    // Two thumbnails: each wants only the lowest layer (about 165 kbit/s with headers).
    s.thumbnails(viewer);
    s.room.set_estimate(viewer, 600_000);
    for _ in 0..(4 * 30) {
        frames_to(&mut s, &[a, c], viewer, 30);
        while s.room.poll_output().is_some() {}
    }
    // A little less than both need (measured rates jitter): both keep playing rather than one
    // freezing.
    s.room.set_estimate(viewer, 315_000);
    for _ in 0..(3 * 30) {
        let got = frames_to(&mut s, &[a, c], viewer, 30);
        assert_eq!(got, [a, c]);
        while s.room.poll_output().is_some() {}
    }
    // The estimate wobbles around where the second would be paused: at most one pause, no
    // pausing and resuming every time it crosses.
    let mut starts = 0;
    let mut carol_was = true;
    for i in 0..(10 * 30) {
        if i % 8 == 0 {
            let e = if (i / 8) % 2 == 0 { 290_000 } else { 340_000 };
            s.room.set_estimate(viewer, e);
        }
        let got = frames_to(&mut s, &[a, c], viewer, 30);
        let carol = got.contains(&c);
        if carol && !carol_was {
            starts += 1;
        }
        carol_was = carol;
        assert!(got.contains(&a), "the first tile always plays");
        while s.room.poll_output().is_some() {}
    }
    assert!(starts <= 1, "carol's video resumed {starts} times");
    // Far too little for both: the less important one is paused, the first keeps playing.
    s.room.set_estimate(viewer, 150_000);
    let mut got = Vec::new();
    for _ in 0..(3 * 30) {
        got = frames_to(&mut s, &[a, c], viewer, 30);
        while s.room.poll_output().is_some() {}
    }
    assert_eq!(got, [a]);
}

#[test]
fn a_video_paused_at_the_edge_gets_its_chance_once_it_fits_for_long_enough() {
    let (mut s, who) = two_thumbnails_playing();
    let viewer = who.0;
    let run = |s: &mut Sim, secs| carol_frames(s, who, secs);
    // A lasting cap: carol's video is paused.
    s.room.set_estimate(viewer, 250_000);
    run(&mut s, 3);
    assert_eq!(run(&mut s, 1), 0, "paused under the cap");
    // The estimate recovers to just above what both need, but not with the headroom a resume
    // asks for at first (a link at its edge, as through a 500 kbit/s cap): carol stays paused
    // for a while...
    s.room.set_estimate(viewer, 345_000);
    assert_eq!(run(&mut s, 4), 0, "no resume at once without headroom");
    // ...and once paused for long, she gets her chance, and keeps playing while it fits.
    run(&mut s, 6);
    assert!(run(&mut s, 4) >= 115, "resumed and playing");
}

#[test]
fn a_receiver_held_below_what_it_wants_asks_for_probes_until_it_gets_it() {
    let mut s = Sim::new(RoomConfig::default());
    let (a, b) = s.alice_and_bob();
    s.room.set_estimate(b, 5_000_000);
    s.run(a, b, 4.0, 30);
    // The cap comes down: the estimate follows, bob gets the lowest layer.
    s.room.set_estimate(b, 300_000);
    let (layer, outputs) = s.run(a, b, 8.0, 30);
    assert_eq!(layer, Some(0));
    let desired: Vec<u64> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::DesiredBitrate { to, bps } if *to == b => Some(*bps),
            _ => None,
        })
        .collect();
    // Bob wants 720p: the desired rate is raised above what it settles at now and then (a
    // probe request), not on every tick, and less often while the probes find nothing.
    let base = *desired.iter().min().unwrap();
    let raises = desired.iter().filter(|b| **b > base).count();
    assert!((2..=3).contains(&raises), "probe requests: {desired:?}");
    // A probe found room again: bob goes back up, and with all he wants there are no more.
    s.room.set_estimate(b, 5_000_000);
    s.run(a, b, 6.0, 30);
    let (layer, outputs) = s.run(a, b, 4.0, 30);
    assert_eq!(layer, Some(2));
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::DesiredBitrate { to, .. } if *to == b)),
        "no probing when nothing is held back"
    );
}

#[test]
fn an_unsmoothed_drop_lowers_the_layer_before_the_smoothed_estimate_follows() {
    let mut s = Sim::new(RoomConfig::default());
    let (a, b) = s.alice_and_bob();
    s.steady_estimate(b, 5_000_000);
    let (layer, _) = s.run(a, b, 4.0, 30);
    assert_eq!(layer, Some(2));
    // The estimator's own estimate collapses; its smoothed one still says 5 Mbit/s.
    s.room.set_estimate_now(b, 300_000);
    let (layer, _) = s.run(a, b, 2.0, 30);
    assert_eq!(layer, Some(0));
    // A rise shows only once the smoothed estimate follows.
    s.room.set_estimate_now(b, 5_000_000);
    s.room.set_estimate(b, 400_000);
    let (layer, _) = s.run(a, b, 5.0, 30);
    assert_eq!(layer, Some(0));
}

/// After a probe the estimator's own estimate is far above the smoothed one, which follows only
/// as older values leave its 3-second window: a rise both of two samples a second apart confirm
/// is taken at once, one sample alone or a small rise is not.
#[test]
fn a_rise_two_unsmoothed_samples_confirm_raises_the_layer_before_the_smoothed_estimate() {
    let mut s = Sim::new(RoomConfig::default());
    let (a, b) = s.alice_and_bob();
    s.steady_estimate(b, 400_000);
    let (layer, _) = s.run(a, b, 4.0, 30);
    assert_eq!(layer, Some(0));
    // A third above, more than a sawing estimate at a cap moves: still not followed.
    s.room.set_estimate_now(b, 540_000);
    s.run(a, b, 1.0, 30);
    s.room.set_estimate_now(b, 540_000);
    let (layer, _) = s.run(a, b, 2.0, 30);
    assert_eq!(layer, Some(0));
    // A probe found 5 Mbit/s; the smoothed estimate still says 450 kbit/s. One sample: held.
    s.room.set_estimate(b, 450_000);
    s.room.set_estimate_now(b, 5_000_000);
    let (layer, _) = s.run(a, b, 1.0, 30);
    assert_eq!(layer, Some(0));
    // The next sample a second later agrees: raised, to the lower of the two.
    s.room.set_estimate_now(b, 4_000_000);
    let (layer, _) = s.run(a, b, 2.0, 30);
    assert_eq!(layer, Some(2));
}

/// A receiver's estimator that took a moment of delay for congestion sits a little below what is
/// sent, far from a collapse, while the smoothed estimate still has room: what does not fit then
/// waits in the transport's pacer, and once it has waited long, the layer is lowered so the queue
/// drains; it comes back after the hold once nothing waits.
#[test]
fn media_waiting_long_in_the_pacer_lowers_the_layer_until_the_queue_is_gone() {
    let mut s = Sim::new(RoomConfig::default());
    let (a, b) = s.alice_and_bob();
    s.steady_estimate(b, 2_000_000);
    let (layer, _) = s.run(a, b, 4.0, 30);
    assert_eq!(layer, Some(2));
    // 70 % of the smoothed estimate, below what the top layer needs; a short wait is a burst.
    s.room.set_estimate_now(b, 1_400_000);
    s.room
        .set_pacer_delay(b, Duration::from_millis(40), 1_400_000);
    let (layer, _) = s.run(a, b, 2.0, 30);
    assert_eq!(layer, Some(2), "a short wait in the pacer changes nothing");
    s.room
        .set_pacer_delay(b, Duration::from_millis(180), 1_400_000);
    let (layer, _) = s.run(a, b, 2.0, 30);
    assert_eq!(layer, Some(1), "a long wait lowers the layer");
    // The queue is gone and the estimate is back.
    s.room.set_pacer_delay(b, Duration::ZERO, 2_000_000);
    s.steady_estimate(b, 2_000_000);
    let (layer, _) = s.run(a, b, 6.0, 30);
    assert_eq!(layer, Some(2));
}

#[test]
fn after_queued_video_is_dropped_the_receiver_resumes_at_a_keyframe() {
    let mut s = Sim::new(RoomConfig::default());
    let (a, b) = s.alice_and_bob();
    s.steady_estimate(b, 2_000_000);
    let (layer, _) = s.run(a, b, 4.0, 30);
    assert_eq!(layer, Some(2));
    let last = s
        .frame(a, 1000)
        .into_iter()
        .filter(|(f, _)| f.to == b)
        .map(|(f, _)| f.out.seq)
        .max()
        .expect("bob receives");

    // A wait in the pacer that a capped link's queue gives is sent; a stall's is dropped.
    s.room
        .set_pacer_delay(b, Duration::from_millis(500), 300_000);
    assert!(!s.room.paced_video_stale(s.now, b));
    s.room
        .set_pacer_delay(b, Duration::from_millis(900), 300_000);
    assert!(s.room.paced_video_stale(s.now, b));

    // What waited for Bob was dropped (say 5 packets after `last`): a keyframe is asked for at
    // once, and nothing more reaches him until it comes.
    s.room.video_dropped(s.now, b);
    assert!(
        !s.room.paced_video_stale(s.now, b),
        "what follows a drop is sent (a keyframe too large for the link is dropped once)"
    );
    s.room.set_pacer_delay(b, Duration::ZERO, 2_000_000);
    let asked: Vec<Output> = std::iter::from_fn(|| s.room.poll_output()).collect();
    assert!(
        asked.iter().any(|o| matches!(
            o,
            Output::RequestKeyframe { publisher, layer: 2, .. } if *publisher == a
        )),
        "a keyframe is asked for: {asked:?}"
    );
    s.frame = 1;
    for _ in 0..5 {
        let to_bob = s
            .frame(a, 1000)
            .into_iter()
            .filter(|(f, _)| f.to == b)
            .count();
        assert_eq!(to_bob, 0, "frames that cannot be decoded are not sent");
    }
    // The keyframe: Bob gets it, numbered on from the last packet forwarded to him.
    s.frame = 0;
    let resumed: Vec<u64> = s
        .frame(a, 1000)
        .into_iter()
        .filter(|(f, _)| f.to == b)
        .map(|(f, _)| f.out.seq)
        .collect();
    assert_eq!(resumed.first(), Some(&(last + 1)));
    let (layer, _) = s.run(a, b, 2.0, 30);
    assert_eq!(layer, Some(2), "and plays on");
}

#[test]
fn under_heavy_loss_a_moderate_unsmoothed_drop_counts_too() {
    let mut s = Sim::new(RoomConfig::default());
    let (a, b) = s.alice_and_bob();
    s.steady_estimate(b, 1_000_000);
    let (layer, _) = s.run(a, b, 4.0, 30);
    assert_eq!(layer, Some(1));
    // Down to 51 %, a little below what layer 1 needs: at a cap the estimate saws far, so
    // without losses this is not followed...
    s.room.set_estimate_now(b, 510_000);
    let (layer, _) = s.run(a, b, 2.0, 30);
    assert_eq!(layer, Some(1));
    // ...but with a fifth of the packets lost, the link is overfilled for sure.
    s.room.set_downlink_loss(s.now, b, 0.2);
    let (layer, _) = s.run(a, b, 2.0, 30);
    assert_eq!(layer, Some(0));
}

#[test]
fn a_layer_the_publisher_stops_is_left_for_a_lower_one_at_once() {
    let mut s = Sim::new(RoomConfig::default());
    let (a, b) = s.alice_and_bob();
    s.room.set_estimate(b, 5_000_000);
    let (layer, _) = s.run(a, b, 4.0, 10);
    assert_eq!(layer, Some(2));
    // Alice's browser stops sending 720p (its uplink estimate fell); her 360p goes on.
    s.sending[2] = false;
    let mut gap = 0;
    let mut longest = 0;
    for _ in 0..30 {
        let got = s.frame(a, 10).iter().any(|(f, _)| f.to == b);
        gap = if got { 0 } else { gap + 1 };
        longest = longest.max(gap);
        while s.room.poll_output().is_some() {}
    }
    // Bob switches at the next keyframe of 360p (every 10 frames here) after noticing: well
    // under the second a stopped layer otherwise still counts as sent.
    assert!(longest <= 20, "bob got nothing for {longest} frames");
    assert_eq!(gap, 0, "bob receives 360p");
}

#[test]
fn a_brief_estimate_collapse_does_not_pause_a_video_a_lasting_one_does() {
    let (mut s, who) = two_thumbnails_playing();
    let viewer = who.0;
    let run = |s: &mut Sim, secs| carol_frames(s, who, secs);
    // A moment of congestion: the estimate falls to 85 % of what got through, then a probe
    // brings it back a second later. Carol's thumbnail plays on.
    s.room.set_estimate(viewer, 280_000);
    let during = run(&mut s, 1);
    s.room.set_estimate(viewer, 600_000);
    let after = run(&mut s, 2);
    assert!(during >= 25 && after >= 55, "{during} {after}");
    // A lasting cap: the less important video is paused after a while.
    s.room.set_estimate(viewer, 200_000);
    run(&mut s, 3);
    assert_eq!(run(&mut s, 2), 0);
}

#[test]
fn an_estimate_held_down_by_random_loss_is_restarted_but_not_one_held_by_a_full_link() {
    let mut s = Sim::new(RoomConfig::default());
    let (viewer, a, c) = s.viewer_alice_carol();
    s.room.set_estimate(viewer, 2_000_000);
    let resets = |s: &mut Sim, secs: usize| {
        let mut at = Vec::new();
        for _ in 0..(secs * 30) {
            frames_to(s, &[a, c], viewer, 30);
            while let Some(o) = s.room.poll_output() {
                if let Output::ResetEstimate { to, bps } = o
                    && to == viewer
                {
                    at.push(bps);
                }
            }
        }
        at
    };
    resets(&mut s, 3);
    // 5 % of packets lost at random, and the estimator holds its estimate at a third of what
    // the two lowest layers need: restarted, from about what they need, at most every 5 s.
    s.room.set_downlink_loss(s.now, viewer, 0.05);
    s.room.set_estimate(viewer, 112_000);
    // Once the losses have looked random for a few seconds.
    let mut got = resets(&mut s, 2);
    assert!(got.is_empty(), "{got:?}");
    got.extend(resets(&mut s, 2));
    assert_eq!(got.len(), 1, "{got:?}");
    for _ in 0..8 {
        got.extend(resets(&mut s, 1));
        // The restarted estimator probes far up, then falls back; nothing is raised meanwhile.
        s.steady_estimate(viewer, 5_000_000);
        for _ in 0..36 {
            let frames = frames_to_layers(&mut s, &[a, c], viewer);
            assert!(frames.iter().all(|l| *l == 0), "raised to {frames:?}");
        }
        // Held down again: its current estimate as well as the smoothed one.
        s.steady_estimate(viewer, 112_000);
    }
    // Every 5 s at most (over about 22 s).
    assert!((3..=5).contains(&got.len()), "{got:?}");
    assert!(
        got.iter().all(|bps| (300_000..600_000).contains(bps)),
        "{got:?}"
    );
    // A full link loses much more (what exceeds it) or, once adapted, nothing: left alone.
    for loss in [0.3, 0.0] {
        s.room.set_downlink_loss(s.now, viewer, loss);
        assert!(resets(&mut s, 6).is_empty());
    }
}

/// A loss-based estimator lets its estimate grow only a little above what gets through and does
/// not probe while that estimate holds it: stuck just below what two thumbnails need, with
/// nothing lost, the second video would never start. The estimator is restarted from what they
/// need, and the second video plays; where the link cannot carry it, the restarts come ever
/// further apart.
#[test]
fn an_estimate_stuck_below_the_lowest_layers_with_nothing_lost_is_restarted() {
    let mut s = Sim::new(RoomConfig::default());
    let (viewer, a, c) = s.viewer_alice_carol();
    s.thumbnails(viewer);
    s.steady_estimate(viewer, 250_000);
    s.room.set_downlink_loss(s.now, viewer, 0.0);
    // A second of frames: how many of Carol's reached the viewer, and its estimator restarts.
    let second = |s: &mut Sim| {
        let mut carol = 0;
        let mut resets = Vec::new();
        for _ in 0..30 {
            if frames_to(s, &[a, c], viewer, 30).contains(&c) {
                carol += 1;
            }
            while let Some(o) = s.room.poll_output() {
                if let Output::ResetEstimate { to, bps } = o
                    && to == viewer
                {
                    resets.push(bps);
                }
            }
        }
        (carol, resets)
    };
    for _ in 0..5 {
        let (carol, resets) = second(&mut s);
        assert_eq!((carol, resets.len()), (0, 0), "only Alice fits at first");
    }
    let mut restarted = None;
    for _ in 0..3 {
        let (_, resets) = second(&mut s);
        restarted = restarted.or(resets.first().copied());
    }
    let bps = restarted.expect("restarted after about 6 s");
    assert!((300_000..600_000).contains(&bps), "from {bps}");
    // The link carries that: Carol's video starts (at her next keyframe).
    s.steady_estimate(viewer, bps);
    second(&mut s);
    let (carol, _) = second(&mut s);
    assert!(carol >= 25, "Carol plays: {carol} frames");

    // Another viewer's link cannot carry it: each restart's estimate falls back at once.
    s.steady_estimate(viewer, 250_000);
    let mut at = Vec::new();
    for t in 0..100 {
        let (_, resets) = second(&mut s);
        if !resets.is_empty() {
            at.push(t);
            s.steady_estimate(viewer, 250_000);
        }
    }
    let gaps: Vec<i32> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!((3..=5).contains(&at.len()), "restarts at {at:?}");
    assert!(
        gaps.windows(2).all(|g| g[1] > g[0]) && gaps.last().is_some_and(|g| *g >= 24),
        "ever further apart: {at:?}"
    );
}

#[test]
fn audio_redundancy_is_withheld_before_a_video_would_be_paused_and_returns_with_headroom() {
    let mut s = Sim::new(RoomConfig::default());
    let viewer = s.join("viewer");
    let a = s.join("alice");
    let c = s.join("carol");
    let slots: Vec<(Mid, Kind)> = [("20", Kind::Video), ("21", Kind::Video)]
        .into_iter()
        .chain([("40", Kind::Audio), ("41", Kind::Audio)])
        .map(|(m, k)| (mid(m), k))
        .collect();
    let published = [
        Published {
            mid: mid("1"),
            kind: Kind::Video,
            layers: 3,
            screen: false,
        },
        Published {
            mid: mid("2"),
            kind: Kind::Audio,
            layers: 1,
            screen: false,
        },
    ];
    s.room.set_media(s.now, viewer, &[], &slots);
    for p in [a, c] {
        s.room.set_media(s.now, p, &published, &slots);
    }
    // Two thumbnails (about 165 kbit/s each with headers) and two microphones with RED.
    s.thumbnails(viewer);
    let mut audio_seq = 0;
    // Seconds of media; what the viewer was told about redundancy, and whether both videos
    // played in the last second.
    let mut run = |s: &mut Sim, secs: usize| {
        let mut told = Vec::new();
        let mut both = 0;
        for i in 0..(secs * 30) {
            audio_seq += 1;
            for p in [a, c] {
                let pkt = PacketIn {
                    seq: audio_seq,
                    ts: audio_seq as u32 * 960,
                    keyframe: false,
                    layer: 0,
                    bytes: 220,
                    audio_level: Some(-40),
                    red: true,
                    at: s.now,
                    vp8: None,
                };
                s.room.on_rtp(p, mid("2"), pkt, &mut Vec::new());
            }
            let got = frames_to(s, &[a, c], viewer, 30);
            if i + 30 >= secs * 30 && got == [a, c] {
                both += 1;
            }
            while let Some(o) = s.room.poll_output() {
                if let Output::AudioRedundancy { to, on } = o {
                    assert_eq!(to, viewer);
                    told.push(on);
                }
            }
        }
        (told, both)
    };
    s.room.set_estimate(viewer, 1_000_000);
    assert_eq!(run(&mut s, 3), (vec![], 30), "room for everything");
    // A cap: the thumbnails and plain audio fit, with redundancy they do not.
    s.room.set_estimate(viewer, 480_000);
    let (told, _) = run(&mut s, 2);
    assert_eq!(told, [false], "redundancy withheld after a second");
    assert_eq!(run(&mut s, 4), (vec![], 30), "both videos keep playing");
    // Redundancy would fit again, but without headroom: it stays off.
    s.room.set_estimate(viewer, 560_000);
    assert_eq!(run(&mut s, 5), (vec![], 30));
    s.room.set_estimate(viewer, 700_000);
    assert_eq!(run(&mut s, 1), (vec![true], 30), "back with headroom");
    // Heavy loss (bursty): the estimate is low too, but there redundancy is what keeps speech
    // intelligible, so it stays.
    s.room.set_estimate(viewer, 480_000);
    for _ in 0..5 {
        s.room.set_downlink_loss(s.now, viewer, 0.2);
        assert_eq!(run(&mut s, 1).0, Vec::<bool>::new());
    }
    // Losses end with the estimate still low: withheld; heavy loss for a while: back.
    s.room.set_downlink_loss(s.now, viewer, 0.0);
    assert_eq!(run(&mut s, 2).0, [false]);
    let mut told = Vec::new();
    for _ in 0..5 {
        s.room.set_downlink_loss(s.now, viewer, 0.2);
        told.extend(run(&mut s, 1).0);
    }
    assert_eq!(
        told,
        [true],
        "heavy loss for seconds brings redundancy back"
    );
}
