//! Tracks, receive slots and forwarding: which track goes to which slot, the per-packet hot path,
//! keyframe requests, and the `subscriptions` each participant is told.

use std::time::Instant;

use conclave_proto::{Kind, ServerMessage, SlotCounts, Subscription};

use super::{Forward, Output, PacketIn, Pid, Room, Slot, Track, TrackKey};
use crate::mid::Mid;
use crate::munger::{Munger, SeqTs};

impl Room {
    /// Block or unblock forwarding of a participant's tracks of one kind.
    pub(crate) fn set_blocked(&mut self, pid: Pid, kind: Kind, blocked: bool) {
        for ((owner, _), t) in self.tracks.iter_mut() {
            if *owner == pid && t.kind == kind {
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
        published: &[(Mid, Kind)],
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
            .filter(|(owner, mid)| *owner == pid && !published.iter().any(|(m, _)| m == mid))
            .copied()
            .collect();
        for key in stale {
            self.remove_track(key);
        }
        for &(mid, kind) in published {
            self.tracks.entry((pid, mid)).or_insert(Track {
                kind,
                blocked: match kind {
                    Kind::Audio => audio_blocked,
                    Kind::Video => video_blocked,
                },
                subscribers: Vec::new(),
                last_keyframe_request: None,
            });
        }
        self.rebalance(now);
    }

    /// Hot path: an RTP packet from `publisher` on its track `mid`. Pushes one [`Forward`] per
    /// receiving slot into `out` (which is cleared first).
    pub fn on_rtp(&mut self, publisher: Pid, mid: Mid, pkt: PacketIn, out: &mut Vec<Forward>) {
        out.clear();
        let Some(track) = self.tracks.get(&(publisher, mid)) else {
            return;
        };
        if track.blocked {
            return;
        }
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
            let mapped = if slot.waiting_keyframe {
                if !pkt.keyframe {
                    continue;
                }
                slot.waiting_keyframe = false;
                Some(slot.munger.start(input))
            } else if slot.munger.is_mapped() {
                slot.munger.map(input)
            } else {
                Some(slot.munger.start(input))
            };
            if let Some(o) = mapped {
                out.push(Forward {
                    to: sub,
                    mid: slot.mid,
                    out: o,
                });
            }
        }
    }

    /// A subscriber asked for a keyframe on its slot `mid` (it lost a picture).
    pub fn on_keyframe_request(&mut self, now: Instant, subscriber: Pid, mid: Mid) {
        let key = self
            .participants
            .get(&subscriber)
            .and_then(|p| p.slots.iter().find(|s| s.mid == mid))
            .and_then(|s| s.track);
        if let Some(key) = key {
            self.request_keyframe(now, key);
        }
    }

    pub(crate) fn has_waiting_subscriber(&self, key: TrackKey) -> bool {
        self.tracks.get(&key).is_some_and(|t| {
            t.subscribers.iter().any(|(sub, idx)| {
                self.participants
                    .get(sub)
                    .and_then(|p| p.slots.get(*idx))
                    .is_some_and(|s| s.waiting_keyframe)
            })
        })
    }

    pub(crate) fn request_keyframe(&mut self, now: Instant, key: TrackKey) {
        let interval = self.config.keyframe_interval;
        let Some(track) = self.tracks.get_mut(&key) else {
            return;
        };
        if track.kind != Kind::Video {
            return;
        }
        if track
            .last_keyframe_request
            .is_some_and(|at| now < at + interval)
        {
            return;
        }
        track.last_keyframe_request = Some(now);
        self.outputs.push_back(Output::RequestKeyframe {
            publisher: key.0,
            mid: key.1,
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
                slot.track = None;
                slot.waiting_keyframe = false;
                slot.munger.reset_source();
            }
        }
    }

    /// Bind every unbound track to a free slot of each other participant, then tell each
    /// participant whose view changed.
    pub(crate) fn rebalance(&mut self, now: Instant) {
        let mut keys: Vec<TrackKey> = self.tracks.keys().copied().collect();
        keys.sort();
        let mut kf_needed = Vec::new();
        for key in keys {
            let kind = self.tracks[&key].kind;
            for (pid, p) in self.participants.iter_mut() {
                if *pid == key.0 || !p.admitted || p.slots.iter().any(|s| s.track == Some(key)) {
                    continue;
                }
                let Some(idx) = p
                    .slots
                    .iter()
                    .position(|s| s.kind == kind && s.track.is_none())
                else {
                    continue;
                };
                let slot = &mut p.slots[idx];
                slot.track = Some(key);
                slot.munger.reset_source();
                slot.waiting_keyframe = kind == Kind::Video;
                self.tracks
                    .get_mut(&key)
                    .expect("key from map")
                    .subscribers
                    .push((*pid, idx));
                if kind == Kind::Video {
                    kf_needed.push(key);
                }
            }
        }
        let pids: Vec<Pid> = self
            .participants
            .iter()
            .filter(|(_, p)| p.admitted)
            .map(|(pid, _)| *pid)
            .collect();
        for pid in pids {
            self.send_subscriptions(pid);
        }
        // A new subscriber needs a picture now; within the rate limit, handle_timeout repeats it.
        for key in kf_needed {
            self.request_keyframe(now, key);
        }
    }

    pub(crate) fn send_subscriptions(&mut self, pid: Pid) {
        let mut slots = SlotCounts::default();
        for ((owner, _), t) in &self.tracks {
            if *owner == pid {
                continue;
            }
            match t.kind {
                Kind::Audio => slots.audio += 1,
                Kind::Video => slots.video += 1,
            }
        }
        let p = &self.participants[&pid];
        let subscriptions = p
            .slots
            .iter()
            .filter_map(|s| {
                let (publisher, _) = s.track?;
                Some(Subscription {
                    mid: s.mid.as_str().to_owned(),
                    participant_id: self.participants.get(&publisher)?.id.clone(),
                    kind: s.kind,
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
            waiting_keyframe: false,
        }
    }
}
