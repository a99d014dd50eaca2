//! Tracks, receive slots and forwarding: which track goes to which slot, the per-packet hot path,
//! keyframe requests, and the `subscriptions` each participant is told.

use std::time::Instant;

use conclave_proto::{Kind, ServerMessage, Subscription};

use super::allocation::AVAILABLE_FOR;
use super::{Forward, MAX_LAYERS, Output, PacketIn, Pid, Published, Room, Slot, Track, TrackKey};
use crate::mid::Mid;
use crate::munger::{Munger, SeqTs};

/// Audio packets at least this loud (in -dBov) count as speech: normal speech is around -20 to
/// -40 dBov, room noise and a muted microphone far below.
const SPEECH_LEVEL: i8 = -50;

impl Room {
    /// Block or unblock forwarding of a participant's tracks of one kind.
    /// (Screen shares are stopped separately.)
    pub(crate) fn set_blocked(&mut self, pid: Pid, kind: Kind, blocked: bool) {
        for ((owner, _), t) in self.tracks.iter_mut() {
            if *owner == pid && t.kind == kind && !t.screen {
                t.blocked = blocked;
            }
        }
    }

    /// After an offer was accepted: the participant's published tracks and receive slots, all of
    /// them (not only new ones).
    pub fn set_media(
        &mut self,
        now: Instant,
        pid: Pid,
        published: &[Published],
        slots: &[(Mid, Kind)],
    ) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        if !p.admitted {
            return;
        }
        let (audio_blocked, video_blocked) = (p.audio_blocked, p.video_blocked);
        for &(mid, kind) in slots {
            if !p.slots.iter().any(|s| s.mid == mid) {
                p.slots.push(Slot::new(mid, kind));
            }
        }
        let stale: Vec<TrackKey> = self
            .tracks
            .keys()
            .filter(|(owner, mid)| *owner == pid && !published.iter().any(|p| p.mid == *mid))
            .copied()
            .collect();
        for key in stale {
            self.remove_track(key);
        }
        let mut busy = false;
        for p in published {
            let layer_count = p.layers.clamp(1, MAX_LAYERS as u8);
            if p.screen
                && !self.tracks.contains_key(&(pid, p.mid))
                && self
                    .tracks
                    .iter()
                    .any(|((o, _), t)| *o != pid && t.screen && !t.blocked)
            {
                // One screen share at a time: the second is not forwarded.
                busy = true;
                continue;
            }
            let track = self.tracks.entry((pid, p.mid)).or_insert(Track {
                kind: p.kind,
                blocked: match p.kind {
                    Kind::Audio => audio_blocked,
                    Kind::Video => video_blocked,
                },
                subscribers: Vec::new(),
                layer_count,
                screen: p.screen,
                layers: Default::default(),
                audio_packets: 0,
                speech_packets: 0,
                spoke_at: None,
                red: false,
                publish_sent: None,
                unneeded_since: [None; MAX_LAYERS],
            });
            track.layer_count = layer_count;
        }
        if busy {
            self.outputs.push_back(Output::Signal {
                to: pid,
                msg: ServerMessage::Error {
                    code: conclave_proto::ErrorCode::ScreenShareBusy,
                    message: "someone else is sharing their screen".into(),
                },
            });
        }
        self.update_sharing(pid);
        self.last_tick.get_or_insert(now);
        self.rebalance(now);
    }

    /// Tell everyone when a participant starts or stops sharing their screen.
    pub(crate) fn update_sharing(&mut self, pid: Pid) {
        let sharing = self
            .tracks
            .iter()
            .any(|((o, _), t)| *o == pid && t.screen && !t.blocked);
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        if p.sharing == sharing {
            return;
        }
        p.sharing = sharing;
        let info = p.info();
        self.broadcast(ServerMessage::ParticipantUpdated { participant: info });
    }

    /// Hot path: an RTP packet from `publisher` on its track `mid`. Pushes one [`Forward`] per
    /// receiving slot into `out` (which is cleared first).
    pub fn on_rtp(&mut self, publisher: Pid, mid: Mid, pkt: PacketIn, out: &mut Vec<Forward>) {
        out.clear();
        let Some(track) = self.tracks.get_mut(&(publisher, mid)) else {
            return;
        };
        let layer = pkt.layer.min(track.layer_count - 1);
        let l = &mut track.layers[layer as usize];
        l.bytes += pkt.bytes as u64;
        let appeared = l
            .last_packet
            .is_none_or(|t| pkt.at.saturating_duration_since(t) >= AVAILABLE_FOR);
        l.last_packet = Some(pkt.at);
        if appeared && track.kind == Kind::Video {
            // A layer started (or resumed): receivers waiting for video can get it now rather
            // than at the next tick. Rare, so the full allocation is affordable here.
            self.allocate(pkt.at);
        }
        let Some(track) = self.tracks.get_mut(&(publisher, mid)) else {
            return;
        };
        track.red = pkt.red;
        if let Some(level) = pkt.audio_level {
            track.audio_packets += 1;
            if level >= SPEECH_LEVEL {
                track.speech_packets += 1;
                track.spoke_at = Some(pkt.at);
            }
        }
        if track.blocked {
            return;
        }
        let is_audio = track.kind == Kind::Audio;
        let input = SeqTs {
            seq: pkt.seq,
            ts: pkt.ts,
        };
        for &(sub, idx) in &track.subscribers {
            let Some(slot) = self
                .participants
                .get_mut(&sub)
                .and_then(|p| p.slots.get_mut(idx))
            else {
                continue;
            };
            let mapped = if slot.current == Some(layer) {
                if slot.munger.is_mapped() {
                    slot.munger.map(input)
                } else {
                    Some(slot.munger.start(input))
                }
            } else if slot.target == Some(layer) && (pkt.keyframe || is_audio) {
                // Switch (or start) at a keyframe: the receiver decodes the new layer at once,
                // and the munger keeps numbering continuous.
                slot.current = Some(layer);
                Some(slot.munger.start(input))
            } else {
                continue;
            };
            if let Some(o) = mapped {
                out.push(Forward {
                    to: sub,
                    mid: slot.mid,
                    out: o,
                    vp8: pkt.vp8.map(|ids| slot.munger.rewrite_vp8(o, ids)),
                });
            }
        }
    }

    /// A subscriber asked for a keyframe on its slot `mid` (it lost a picture).
    pub fn on_keyframe_request(&mut self, now: Instant, subscriber: Pid, mid: Mid) {
        let found = self
            .participants
            .get(&subscriber)
            .and_then(|p| p.slots.iter().find(|s| s.mid == mid))
            .and_then(|s| Some((s.track?, s.current.or(s.target)?)));
        if let Some((key, layer)) = found {
            self.request_keyframe(now, key, layer);
        }
    }

    /// Slots waiting for a keyframe: (track, layer) pairs, possibly repeated.
    pub(crate) fn waiting_layers(&self) -> impl Iterator<Item = (TrackKey, u8)> + '_ {
        self.tracks
            .iter()
            .filter(|(_, t)| t.kind == Kind::Video)
            .flat_map(move |(key, t)| {
                t.subscribers.iter().filter_map(move |(sub, idx)| {
                    let slot = self.participants.get(sub)?.slots.get(*idx)?;
                    let target = slot.target?;
                    (slot.current != Some(target)).then_some((*key, target))
                })
            })
    }

    pub(crate) fn request_keyframe(&mut self, now: Instant, key: TrackKey, layer: u8) {
        let interval = self.config.keyframe_interval;
        let Some(track) = self.tracks.get_mut(&key) else {
            return;
        };
        if track.kind != Kind::Video {
            return;
        }
        let Some(l) = track.layers.get_mut(layer as usize) else {
            return;
        };
        if l.last_keyframe_request
            .is_some_and(|at| now < at + interval)
        {
            return;
        }
        l.last_keyframe_request = Some(now);
        self.outputs.push_back(Output::RequestKeyframe {
            publisher: key.0,
            mid: key.1,
            layer,
        });
    }

    /// End all tracks the participant publishes and all its receive slots.
    pub(crate) fn clear_media(&mut self, pid: Pid) {
        let owned: Vec<TrackKey> = self
            .tracks
            .keys()
            .filter(|(o, _)| *o == pid)
            .copied()
            .collect();
        for key in owned {
            self.remove_track(key);
        }
        if let Some(p) = self.participants.get_mut(&pid) {
            for slot in p.slots.drain(..) {
                if let Some(track) = slot.track.and_then(|k| self.tracks.get_mut(&k)) {
                    track.subscribers.retain(|(sub, _)| *sub != pid);
                }
            }
        }
    }

    pub(crate) fn remove_track(&mut self, key: TrackKey) {
        let Some(track) = self.tracks.remove(&key) else {
            return;
        };
        for (sub, idx) in track.subscribers {
            if let Some(slot) = self
                .participants
                .get_mut(&sub)
                .and_then(|p| p.slots.get_mut(idx))
            {
                slot.unbind();
            }
        }
    }

    /// Membership or media changed: re-run the allocation (slots, layers) at once.
    pub(crate) fn rebalance(&mut self, now: Instant) {
        self.allocate(now);
    }

    pub(crate) fn send_subscriptions(&mut self, pid: Pid) {
        let p = &self.participants[&pid];
        let slots = p.wanted_slots;
        let subscriptions = p
            .slots
            .iter()
            .filter_map(|s| {
                let (publisher, _) = s.track?;
                Some(Subscription {
                    mid: s.mid.as_str().to_owned(),
                    participant_id: self.participants.get(&publisher)?.id.clone(),
                    kind: s.kind,
                    screen: self.tracks.get(&s.track?).is_some_and(|t| t.screen),
                })
            })
            .collect();
        let msg = ServerMessage::Subscriptions {
            slots,
            subscriptions,
        };
        let p = self.participants.get_mut(&pid).expect("pid from map");
        if p.last_subscriptions.as_ref() != Some(&msg) {
            p.last_subscriptions = Some(msg.clone());
            self.outputs.push_back(Output::Signal { to: pid, msg });
        }
    }
}

impl Slot {
    fn new(mid: Mid, kind: Kind) -> Self {
        let ts_gap = match kind {
            Kind::Audio => 960,
            Kind::Video => 3000,
        };
        Self {
            mid,
            kind,
            track: None,
            munger: Munger::new(ts_gap),
            current: None,
            target: None,
            cap: MAX_LAYERS as u8 - 1,
            lowered_at: None,
            short_since: None,
        }
    }

    /// Stop carrying any track; the next one starts a new source.
    pub(crate) fn unbind(&mut self) {
        self.track = None;
        self.current = None;
        self.target = None;
        self.lowered_at = None;
        self.short_since = None;
        self.munger.reset_source();
    }
}
