//! Who receives what: every tick (and on every membership or view change) each participant's
//! receive slots are bound to the tracks it should get (last-N), and each video slot gets the
//! simulcast layer that fits the tile it is drawn in and the participant's downlink estimate.
//! Publishers are told which layers anyone needs, and the active speaker is re-evaluated.
//!
//! Layer choice follows the usual SFU allocation (LiveKit, Jitsi): first every wanted video gets
//! its lowest layer, most important first, as long as the estimate allows; then they are raised
//! one layer at a time in the same order. Raising needs 25 % headroom (resuming a paused video
//! 10 %) and is held off for a while after a slot was lowered, so a wobbling estimate does not
//! make the picture flap. Lowering happens at once. While a receiver could take more than its
//! estimate allows, the estimator is asked to probe (see [`PROBE_EVERY`]), so the estimate climbs
//! back in a few probes rather than at the estimator's slow additive pace.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use conclave_proto::{Kind, ServerMessage, SlotCounts};

use super::{MAX_LAYERS, Output, Pid, Room, Track, TrackKey};

/// How layers are chosen for receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerPolicy {
    /// By tile size and downlink estimate (the default).
    #[default]
    Auto,
    /// Always the highest layer the publisher sends, whatever the receiver can take: the
    /// behaviour of an SFU without simulcast, kept for comparison measurements.
    Highest,
}

/// A layer counts as sent if a packet of it arrived this recently.
pub(crate) const AVAILABLE_FOR: Duration = Duration::from_millis(1000);
/// ...unless it has been silent this long while another layer of the same track kept coming:
/// the publisher stopped it (a browser drops simulcast layers when its uplink estimate falls),
/// and its receivers would see a frozen picture until they switch. Longer than a frame
/// interval at the lowest frame rates a camera layer is sent at, with room for a busy
/// publisher's encoder to stall a little.
const STOPPED_AFTER: Duration = Duration::from_millis(500);
/// After lowering a slot's layer (or pausing it), wait this long before raising (resuming) it.
/// Longer is steadier under an estimate that wobbles (random loss makes it dip and recover);
/// shorter recovers sooner from a real but brief drop. Every switch costs a keyframe, and
/// receivers were measured to stall for seconds after some switches up, so steadiness wins.
const HOLD_AFTER_LOWER: Duration = Duration::from_secs(4);
/// While a receiver gets less than it wants because of its estimate, ask its estimator to probe
/// this often: it raises the desired bitrate above the estimate for one allocation, which makes
/// an estimator that probes on demand (str0m's, like libwebrtc's) send a short padding burst at
/// up to twice its estimate and adopt what got through. More often finds capacity sooner after
/// a cap lifts; but each probe is a burst of padding into a link that may really be full (a few
/// kilobytes: a good part of a small drop-tail queue), so while probes find nothing the interval
/// doubles, up to PROBE_EVERY_MAX, and it is back to PROBE_EVERY once the estimate rises.
/// The longest interval is how late a lifted cap may be noticed: at 20 s, recovering from
/// 300 kbit/s to 3 Mbit/s took up to 27 s.
const PROBE_EVERY: Duration = Duration::from_secs(2);
const PROBE_EVERY_MAX: Duration = Duration::from_secs(8);
/// The estimator's current (unsmoothed) estimate is used instead of the smoothed one when it is
/// below this share of it (percent): a collapse, acted on within a second. Not above: at a cap
/// the estimate saws between the cap and 85 % of it, and following each dip would pause and
/// lower videos the smoothed estimate still has room for. Nor while the last second lost at
/// least OVERFILLED of what was sent: then the link is overfilled for sure, and the smoothed
/// estimate was seen to stay at its last value for seconds (a 3 Mbit/s link capped to 300
/// kbit/s: 358 kbit/s smoothed against 174–195 unsmoothed, 40 % lost, both videos kept).
const COLLAPSE_PCT: u64 = 50;
/// The current estimate is used instead of the smoothed one when two samples in a row (a second
/// apart) are at least this share of it (percent), and then the lower of the two: a rise the
/// estimator has confirmed, typically by a probe, that the smoothed estimate (a plain mean of the
/// values of the last 3 s) would follow only as the older values leave its window. A receiver
/// joining a meeting of 20 had its estimate at 94–104 Mbit/s from 3 s after its join while the
/// smoothed one stayed at 12–14 Mbit/s for 3 s more, holding it to lower layers. Far above, not
/// just above: at a cap the current estimate saws within 15 % around the smoothed one.
const RISE_PCT: u64 = 150;
pub(super) const OVERFILLED: f32 = RANDOM_LOSS.end;
/// When paced media has waited this long in a receiver's transport, what the room sends does
/// not fit the estimate as it stands, whatever the smoothed estimate says: the budget is then
/// what lets the pacer empty its queue within DRAIN_WITHIN (see `drain_budget`). An estimator
/// that took a moment of delay for congestion (a receiver's busy machine reading late) drops to
/// 85 % of what got through, a little below what is sent, and climbs back over seconds; below
/// COLLAPSE_PCT's threshold that changed no layer, and the difference queued in the pacer:
/// in a 20-person meeting whose receivers stopped reading for 150 ms, their estimates fell
/// from 80–100 to 40–45 Mbit/s against 51 sent, and video arrived up to 0.66 s late for
/// seconds. A keyframe or a probe waits a few milliseconds there, not this long.
const PACER_DELAY_LIMIT: Duration = Duration::from_millis(100);
const DRAIN_WITHIN: Duration = Duration::from_millis(500);
/// The transport's pacing rate, in percent of its estimate (str0m's pacing factor).
const PACING_PCT: u64 = 110;
/// A layer nobody needs is paused at the publisher after this long.
const PAUSE_AFTER: Duration = Duration::from_secs(3);
/// How far the lowest layers of the wanted videos may go over the budget (percent of it) before
/// a playing video is paused. Pausing freezes a tile, and measured layer rates jitter by a few
/// percent from tick to tick; but the transport paces at only a tenth above its estimate, so
/// more than that would wait in its pacer queue (latency) rather than reach the receiver.
const LOWEST_KEEP_PCT: u64 = 110;
/// A playing video is paused only when its lowest layer has not fitted for this long. An
/// estimator that sees a moment of congestion (or a busy machine's jitter) drops its estimate to
/// 85 % of what got through, below what is being sent, and regains it only after a probe or
/// seconds of growth; pausing on that would freeze a tile for nothing. Under a real cap the
/// estimate stays low and the video is paused this much later, meanwhile queueing a little.
const PAUSE_AFTER_SHORT: Duration = Duration::from_secs(2);
/// A video paused for the budget resumes only with this much (percent of what it needs), and
/// after the hold: each resume waits for a keyframe, so pausing and resuming at the edge
/// would freeze it again and again. With pausing at LOWEST_KEEP_PCT the two are 21 % apart.
/// Not more: at a 500 kbit/s cap the estimate saws between 425 and 500 kbit/s, two 180p videos
/// and two microphones need 430, and at 125 % a video once paused never came back.
const RESUME_PCT: u64 = 110;
/// A video paused this long resumes as soon as it fits, without RESUME_PCT's headroom. Through
/// a tight link the estimate can hover just under the headroom for good (through a 500 kbit/s
/// cap: 350–430 kbit/s where a second 180p video resumed only at 440) although the link carries
/// both videos (receivers that got both had 440–450 kbit/s). Flapping stays bounded: a video
/// paused again waits this long once more.
const RESUME_PLAIN_AFTER: Duration = Duration::from_secs(10);
/// Audio redundancy returns with this much headroom (percent of what it and the lowest video
/// layers need).
const RED_ON_PCT: u64 = 125;
/// Losses in this range (share of packets, over a second) look random rather than like a full
/// link: a link overfilled through a drop-tail queue loses what exceeds it (tens of percent when
/// a video too many is sent), an adapted one next to nothing. Loss-based estimators (str0m's,
/// like libwebrtc's) still hold their estimate far down under such random loss, and the pacer
/// then holds media to that estimate. So when the estimate stays below even the lowest layers of
/// what a receiver wants while its losses are in this range, its estimator is restarted at that
/// rate, at most every RESET_EVERY; for twice that after a restart nothing is raised (the
/// restart's probes overshoot, and the estimate falls back within seconds): under random loss
/// the lowest layers keep flowing, steadily, rather than switching up and down.
/// The losses must have looked random for RANDOM_FOR in a row: a link at its cap loses packets
/// now and then too (a probe, a keyframe), not every second.
pub(super) const RANDOM_LOSS: std::ops::Range<f32> = 0.01..0.10;
const RANDOM_FOR: Duration = Duration::from_secs(3);
const RESET_EVERY: Duration = Duration::from_secs(5);
/// An estimate can also stick below the lowest layers with nothing lost. A loss-based estimator
/// (str0m's, like libwebrtc's) lets its estimate grow only a little above what is acknowledged,
/// so while the room sends only what fits, only a probe can raise it. Through a 500 kbit/s cap
/// (three browsers) one receiver's estimate stayed at 344 kbit/s for 59 s, just under the 380
/// its second video and two microphones needed, while the room asked for a probe every few
/// seconds: it saw that person's video only after 75 s. (str0m's probe controller could keep a
/// stale "loss-limited" cause at an unchanged estimate and refuse to probe, which holds it like
/// that; the vendored copy no longer does, see its PATCHES.md.) As a safety net, when the
/// estimate has stayed below the lowest layers this long with under RANDOM_LOSS's share lost,
/// the estimator is restarted from what they need (with RESUME_PCT's headroom), which sends
/// them. If the link cannot carry that, the estimate falls back within seconds and the wait
/// until the next restart doubles, up to STARVED_FOR_MAX.
pub(super) const STARVED_FOR: Duration = Duration::from_secs(6);
const STARVED_FOR_MAX: Duration = Duration::from_secs(48);
/// Budget kept for each audio track received (Opus with headers, FEC).
const AUDIO_BPS: u64 = 50_000;
/// ...and for one received with redundancy (RED): the previous frame rides along with each
/// packet, about doubling the payload.
const RED_AUDIO_BPS: u64 = 90_000;
/// Redundancy costs what could carry a video. When the lowest layers of the wanted videos and
/// the audio with redundancy no longer fit the estimate (at a 500 kbit/s cap, two microphones
/// with RED took as much as two 180p videos: 14 freezes a minute), the participant gets the
/// primary audio blocks alone after RED_OFF_AFTER, before a playing video would be paused
/// (PAUSE_AFTER_SHORT). Not under heavy loss (at least OVERFILLED): with 20 % bursty loss
/// the estimate is low too, and there redundancy is what keeps speech intelligible (audible
/// concealment 14 % with it, 28 % without). Redundancy comes back after the hold once it fits
/// with RED_ON_PCT headroom, or once heavy loss has lasted RANDOM_FOR. An estimator that took
/// a busy machine's start-up jitter for congestion can sit low for the first seconds of a call
/// too (down to 300 kbit/s on an idle loopback): redundancy is withheld for those seconds,
/// which costs nothing audible where nothing is lost.
const RED_OFF_AFTER: Duration = Duration::from_secs(1);
/// Speech this recent counts as speaking now. When several talk at once (or have noisy
/// microphones), ranking them by their very last packet would reshuffle the last-N every tick
/// (new slots, keyframes, `subscriptions` to everyone); as equals they keep their join order.
const SPEAKING_NOW: Duration = Duration::from_secs(2);

/// What may be sent to a receiver whose pacer holds media that has waited `waited`, for its
/// queue to empty within DRAIN_WITHIN: the queue holds about `waited` of the pacing rate, and
/// drains at the pacing rate less what is sent. Never below half the estimate: a queue that old
/// is emptied by the pacer's own limit too, and lower would drop layers for nothing.
fn drain_budget(estimate_bps: u64, waited: Duration) -> u64 {
    let pace = estimate_bps.saturating_mul(PACING_PCT) / 100;
    let left = DRAIN_WITHIN.saturating_sub(waited).as_micros() as u64;
    let budget = pace.saturating_mul(left) / DRAIN_WITHIN.as_micros() as u64;
    budget.max(estimate_bps / 2)
}

/// The highest layer worth sending to a tile drawn `height` device pixels high: layers are
/// about 180p, 360p and 720p, and a layer is used up to 1.5 times its height.
pub fn cap_for_height(height: u32) -> u8 {
    match height {
        0..=270 => 0,
        271..=540 => 1,
        _ => 2,
    }
}

/// Bitrate assumed for a layer before it has been measured.
fn nominal_bps(layer_count: u8, layer: u8) -> u64 {
    if layer_count <= 1 {
        return 1_000_000;
    }
    [150_000, 500_000, 1_500_000][layer.min(2) as usize]
}

impl Track {
    fn available(&self, now: Instant, layer: u8) -> bool {
        if layer >= self.layer_count {
            return false;
        }
        let Some(at) = self.layers[layer as usize].last_packet else {
            return false;
        };
        let silent = now.saturating_duration_since(at);
        silent < STOPPED_AFTER
            || (silent < AVAILABLE_FOR
                && !self.layers[..self.layer_count as usize]
                    .iter()
                    .filter_map(|l| l.last_packet)
                    .any(|other| other > at + STOPPED_AFTER))
    }

    /// The lowest layer being sent, preferring those up to `cap`.
    fn lowest(&self, now: Instant, cap: u8) -> Option<u8> {
        (0..=cap)
            .find(|l| self.available(now, *l))
            .or_else(|| (cap..self.layer_count).find(|l| self.available(now, *l)))
    }

    fn rate(&self, layer: u8) -> u64 {
        match self.layers[layer as usize].bps {
            0 => nominal_bps(self.layer_count, layer),
            bps => bps,
        }
    }
}

/// Whether any layer of the track is being sent (a pause for lack of anything to forward is
/// not a lowering).
fn any_layer_sent(t: &Track, now: Instant) -> bool {
    (0..t.layer_count).any(|l| t.available(now, l))
}

impl Room {
    /// The active speaker, if anyone has spoken.
    pub fn active_speaker(&self) -> Option<Pid> {
        self.speaker.current()
    }

    /// Periodic work: measure layer bitrates, find the active speaker, re-run the allocation.
    pub(crate) fn tick(&mut self, now: Instant) {
        let dt = self
            .last_tick
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.last_tick = Some(now);
        let mut shares = Vec::new();
        for ((owner, _), t) in self.tracks.iter_mut() {
            if dt > Duration::ZERO {
                for l in t.layers.iter_mut() {
                    if l.bytes > 0 {
                        let bps = (l.bytes as f64 * 8.0 / dt.as_secs_f64()) as u64;
                        l.bps = if l.bps == 0 {
                            bps
                        } else {
                            (l.bps * 4 + bps) / 5
                        };
                        l.bytes = 0;
                    }
                }
            }
            if t.kind == Kind::Audio {
                let share = if t.audio_packets == 0 {
                    0.0
                } else {
                    t.speech_packets as f32 / t.audio_packets as f32
                };
                shares.push((*owner, share));
                t.audio_packets = 0;
                t.speech_packets = 0;
            }
        }
        shares.sort_by_key(|(p, _)| *p);
        let before = self.speaker.current();
        self.speaker.tick(&shares);
        self.announce_speaker(before);
        self.allocate(now);
    }

    /// Tell everyone when the active speaker changed.
    pub(crate) fn announce_speaker(&mut self, before: Option<Pid>) {
        let now_speaking = self.speaker.current();
        if now_speaking == before {
            return;
        }
        let participant_id =
            now_speaking.and_then(|p| self.participants.get(&p).map(|x| x.id.clone()));
        self.broadcast(ServerMessage::ActiveSpeaker { participant_id });
    }

    /// Bind slots and choose layers for every participant, then tell publishers which layers
    /// are needed and participants what they receive.
    pub(crate) fn allocate(&mut self, now: Instant) {
        self.allocate_only(now, None);
    }

    /// [`Room::allocate`] for one participant (`Some`) or everyone (`None`).
    pub(super) fn allocate_only(&mut self, now: Instant, only: Option<Pid>) {
        let admitted = self.admitted();
        let mut by_owner: BTreeMap<Pid, Vec<TrackKey>> = BTreeMap::new();
        let mut spoke: HashMap<Pid, Instant> = HashMap::new();
        for (key, t) in &self.tracks {
            by_owner.entry(key.0).or_default().push(*key);
            if let Some(at) = t.spoke_at {
                spoke.insert(key.0, at);
            }
        }
        for keys in by_owner.values_mut() {
            keys.sort();
        }
        // Without a view, the most recent speakers come first (those speaking now in join
        // order), then everyone in join order.
        let recency = |p: &Pid| {
            spoke.get(p).map(|at| {
                if now.saturating_duration_since(*at) < SPEAKING_NOW {
                    now
                } else {
                    *at
                }
            })
        };
        let mut by_recency = admitted.clone();
        by_recency.sort_by(|a, b| recency(b).cmp(&recency(a)).then(a.cmp(b)));
        let mut keyframes = Vec::new();
        let subs: Vec<Pid> = match only {
            Some(pid) => admitted.iter().copied().filter(|p| *p == pid).collect(),
            None => admitted.clone(),
        };
        for &sub in &subs {
            self.allocate_for(now, sub, &by_owner, &by_recency, &mut keyframes);
        }
        self.update_publish_layers(now);
        for pid in subs {
            self.send_subscriptions(pid);
        }
        if !keyframes.is_empty() {
            // Only a layer choice makes a slot wait for a keyframe.
            self.may_wait.set(true);
        }
        for (key, layer) in keyframes {
            self.request_keyframe(now, key, layer);
        }
    }

    fn allocate_for(
        &mut self,
        now: Instant,
        sub: Pid,
        by_owner: &BTreeMap<Pid, Vec<TrackKey>>,
        by_recency: &[Pid],
        keyframes: &mut Vec<(TrackKey, u8)>,
    ) {
        let Some(p) = self.participants.get(&sub) else {
            return;
        };
        let tracks = &self.tracks;
        let of_kind = |owner: Pid, kind: Kind| {
            by_owner
                .get(&owner)
                .into_iter()
                .flatten()
                .copied()
                .filter(move |k| tracks[k].kind == kind)
        };
        // Wanted video, most important first, with the highest layer worth sending. A screen
        // share comes first for everyone, whatever they show.
        let mut video: Vec<(TrackKey, u8)> = tracks
            .iter()
            .filter(|(k, t)| t.screen && !t.blocked && k.0 != sub)
            .map(|(k, _)| (*k, MAX_LAYERS as u8 - 1))
            .collect();
        let screens = video.len();
        match &p.view {
            Some(view) => {
                for &(owner, height) in view {
                    if owner != sub && !video[screens..].iter().any(|(k, _)| k.0 == owner) {
                        video.extend(
                            of_kind(owner, Kind::Video)
                                .filter(|k| !tracks[k].screen)
                                .map(|k| (k, cap_for_height(height))),
                        );
                    }
                }
            }
            None => {
                for &owner in by_recency {
                    if owner != sub {
                        video.extend(
                            of_kind(owner, Kind::Video)
                                .filter(|k| !tracks[k].screen)
                                .map(|k| (k, MAX_LAYERS as u8 - 1)),
                        );
                    }
                }
            }
        }
        video.truncate(screens + self.config.last_n);
        let mut audio: Vec<TrackKey> = by_recency
            .iter()
            .filter(|o| **o != sub)
            .flat_map(|o| of_kind(*o, Kind::Audio))
            .collect();
        audio.truncate(self.config.audio_last_n);
        let estimate = p
            .estimate
            .map(|e| match (p.estimate_now, p.estimate_before) {
                (Some(now_bps), _)
                    if now_bps * 100 < e * COLLAPSE_PCT
                        || (now_bps < e && p.loss.is_some_and(|l| l >= OVERFILLED)) =>
                {
                    now_bps
                }
                (Some(now_bps), Some(before))
                    if now_bps.min(before).saturating_mul(100) >= e.saturating_mul(RISE_PCT) =>
                {
                    now_bps.min(before)
                }
                _ => e,
            })
            .map(|e| match p.pacer {
                Some((waited, now_bps)) if waited >= PACER_DELAY_LIMIT => {
                    e.min(drain_budget(now_bps, waited))
                }
                _ => e,
            });
        let policy = self.config.layer_policy;
        let red_tracks = audio.iter().filter(|k| tracks[k].red).count() as u64;
        let audio_bps = |red: bool| {
            AUDIO_BPS * audio.len() as u64
                + u64::from(red) * (RED_AUDIO_BPS - AUDIO_BPS) * red_tracks
        };
        // What the lowest layers of the wanted videos need.
        let video_floor: u64 = video
            .iter()
            .filter_map(|(key, cap)| {
                let t = &tracks[key];
                t.lowest(now, (*cap).min(t.layer_count - 1))
                    .map(|l| t.rate(l))
            })
            .sum();
        let floor_red = video_floor + audio_bps(true);

        let p = self.participants.get_mut(&sub).expect("checked above");
        if let (LayerPolicy::Auto, Some(e), true) = (policy, estimate, red_tracks > 0) {
            let switch = if !p.red_off {
                if floor_red > e && p.heavy_loss_since.is_none() {
                    let since = *p.red_short_since.get_or_insert(now);
                    now >= since + RED_OFF_AFTER
                } else {
                    p.red_short_since = None;
                    false
                }
            } else {
                p.red_switched_at
                    .is_none_or(|at| now >= at + HOLD_AFTER_LOWER)
                    && (floor_red * RED_ON_PCT <= e * 100
                        || p.heavy_loss_since.is_some_and(|at| now >= at + RANDOM_FOR))
            };
            if switch {
                p.red_off = !p.red_off;
                p.red_switched_at = Some(now);
                p.red_short_since = None;
                self.outputs.push_back(Output::AudioRedundancy {
                    to: sub,
                    on: !p.red_off,
                });
            }
        }
        let audio_now = audio_bps(red_tracks > 0 && !p.red_off);
        let budget = estimate.map(|e| e.saturating_sub(audio_now));
        p.wanted_slots = SlotCounts {
            audio: audio.len() as u32,
            video: video.len() as u32,
        };
        // Unbind what is no longer wanted, then bind what is wanted and not yet bound.
        for (idx, slot) in p.slots.iter_mut().enumerate() {
            let Some(key) = slot.track else { continue };
            let wanted = match slot.kind {
                Kind::Video => video.iter().any(|(k, _)| *k == key),
                Kind::Audio => audio.contains(&key),
            };
            if !wanted {
                if let Some(t) = self.tracks.get_mut(&key) {
                    t.subscribers.retain(|s| *s != (sub, idx));
                }
                slot.unbind();
            }
        }
        let wanted = video.iter().map(|(k, _)| *k).chain(audio.iter().copied());
        for key in wanted {
            if p.slots.iter().any(|s| s.track == Some(key)) {
                continue;
            }
            let kind = self.tracks[&key].kind;
            let Some(idx) = p
                .slots
                .iter()
                .position(|s| s.kind == kind && s.track.is_none())
            else {
                continue;
            };
            let slot = &mut p.slots[idx];
            slot.unbind();
            slot.track = Some(key);
            if kind == Kind::Audio {
                slot.target = Some(0);
            }
            self.tracks
                .get_mut(&key)
                .expect("key from map")
                .subscribers
                .push((sub, idx));
        }

        // Layers: lowest for each, most important first, while the budget allows...
        let mut entries: Vec<(usize, TrackKey, u8, Option<u8>)> = Vec::new();
        let mut used = 0u64;
        // Unlimited, the participant would get redundancy too.
        let mut desired = audio_bps(red_tracks > 0);
        // Some video (or the audio redundancy) gets less than it could because of the budget
        // (not because it is held).
        let mut short = p.red_off && red_tracks > 0;
        // What the lowest layers of every wanted video and the audio need.
        let floor = video_floor + audio_now;
        for (i, &(key, cap)) in video.iter().enumerate() {
            let Some(idx) = p.slots.iter().position(|s| s.track == Some(key)) else {
                continue;
            };
            let slot = &p.slots[idx];
            let t = &self.tracks[&key];
            let cap = cap.min(t.layer_count - 1);
            desired += t.rate(cap);
            // A playing video keeps its lowest layer with a little leeway (LOWEST_KEEP_PCT), a new
            // one starts when it fits, and one paused for the budget resumes only after the hold
            // and with headroom (RESUME_PCT).
            let flowing = slot.target.is_some();
            let paused = !flowing && slot.lowered_at.is_some();
            let held = slot
                .lowered_at
                .is_some_and(|at| now < at + HOLD_AFTER_LOWER);
            let resume_pct = if slot
                .lowered_at
                .is_some_and(|at| now >= at + RESUME_PLAIN_AFTER)
            {
                100
            } else {
                RESUME_PCT
            };
            let choice = match policy {
                LayerPolicy::Highest => (0..t.layer_count).rev().find(|l| t.available(now, *l)),
                LayerPolicy::Auto => {
                    let lowest = t.lowest(now, cap);
                    let fits = |l: u8| {
                        budget.is_none_or(|b| {
                            let need = (used + t.rate(l)) * 100;
                            if flowing {
                                need <= b * LOWEST_KEEP_PCT
                            } else if paused {
                                !held && need * resume_pct / 100 <= b * 100
                            } else {
                                need <= b * 100
                            }
                        })
                    };
                    let mut choice = lowest.filter(|l| {
                        // The most important video always gets something, and so does a track
                        // without simulcast: there is nothing lower to switch to, and stopping
                        // it on an estimate would do more harm than sending it.
                        i == 0 || t.layer_count == 1 || fits(*l)
                    });
                    short |= lowest.is_some() && choice.is_none() && !held;
                    // A playing video is paused only once the budget has been short for it
                    // for a while (see PAUSE_AFTER_SHORT).
                    let slot = &mut p.slots[idx];
                    if flowing && lowest.is_some() && choice.is_none() {
                        let since = *slot.short_since.get_or_insert(now);
                        if now < since + PAUSE_AFTER_SHORT {
                            choice = lowest;
                        }
                    } else {
                        slot.short_since = None;
                    }
                    choice
                }
            };
            if let Some(l) = choice {
                used += t.rate(l);
            }
            entries.push((idx, key, cap, choice));
        }
        // ...then raise them one layer at a time in the same order. Not while the estimator is
        // settling after a restart for random loss: its first probes overshoot and the estimate
        // falls back within seconds, and raising on them would switch layers up and down.
        let settling = p.reset_at.is_some_and(|at| now < at + 2 * RESET_EVERY);
        if policy == LayerPolicy::Auto {
            for (idx, key, cap, choice) in entries.iter_mut() {
                let Some(mut l) = *choice else { continue };
                let t = &self.tracks[key];
                let slot = &p.slots[*idx];
                while let Some(next) = (l + 1..=*cap).find(|n| t.available(now, *n)) {
                    let raising = slot.current.is_none_or(|c| next > c);
                    if raising
                        && (settling
                            || slot
                                .lowered_at
                                .is_some_and(|at| now < at + HOLD_AFTER_LOWER))
                    {
                        break;
                    }
                    let extra = t.rate(next).saturating_sub(t.rate(l));
                    let need = if raising {
                        (used + extra) * 5 / 4
                    } else {
                        used + extra
                    };
                    if budget.is_some_and(|b| need > b) {
                        short |= raising;
                        break;
                    }
                    used += extra;
                    l = next;
                }
                *choice = Some(l);
            }
        }
        for (idx, key, cap, choice) in entries {
            let slot = &mut p.slots[idx];
            slot.cap = cap;
            if slot.target == choice {
                continue;
            }
            let lowered = match (slot.current, choice) {
                (Some(c), Some(n)) => n < c,
                // Paused for the budget (not for want of anything sent).
                (Some(_), None) => any_layer_sent(&self.tracks[&key], now),
                _ => false,
            };
            if lowered {
                slot.lowered_at = Some(now);
            }
            slot.target = choice;
            match choice {
                None => slot.current = None,
                Some(n) if slot.current != Some(n) => keyframes.push((key, n)),
                Some(_) => {}
            }
        }
        // An estimate held below the lowest layers by random-looking loss, or stuck there with
        // nothing lost: restart it.
        let below_floor = policy == LayerPolicy::Auto && estimate.is_some_and(|e| e < floor);
        if below_floor && p.loss.is_some_and(|l| l < RANDOM_LOSS.start) {
            p.starved_since.get_or_insert(now);
        } else {
            p.starved_since = None;
        }
        let starved_for = p.starved_for;
        let starved = p.starved_since.is_some_and(|at| now >= at + starved_for);
        if below_floor
            && (starved || p.random_loss_since.is_some_and(|at| now >= at + RANDOM_FOR))
            && p.reset_at.is_none_or(|at| now >= at + RESET_EVERY)
        {
            if starved {
                // Doubled while restarts follow each other (the link cannot carry the floor).
                let recent = p
                    .starved_reset_at
                    .is_some_and(|at| now < at + STARVED_FOR_MAX);
                p.starved_for = if recent {
                    (starved_for * 2).min(STARVED_FOR_MAX)
                } else {
                    STARVED_FOR
                };
                p.starved_reset_at = Some(now);
                p.starved_since = None;
            }
            // A starved one restarts with the headroom a paused video needs to resume (the
            // measured layer rates jitter; at exactly the floor the video might not start).
            let bps = if starved {
                floor * RESUME_PCT / 100
            } else {
                floor
            };
            p.reset_at = Some(now);
            // Until the estimator reports again, budget what it restarts from.
            p.estimate = Some(bps);
            p.estimate_now = Some(bps);
            p.estimate_before = None;
            self.outputs
                .push_back(Output::ResetEstimate { to: sub, bps });
        }
        // Let the bandwidth estimator probe towards what would be sent without limits. An
        // estimator probes when the desired rate rises above its estimate, not while it stays
        // put: while the budget holds something back, raise it briefly every PROBE_EVERY (25 %
        // above, as raising needs that headroom) and take it back at the next allocation.
        let probe =
            short && budget.is_some() && p.probed_at.is_none_or(|at| now >= at + p.probe_every);
        let bps = if probe { desired * 5 / 4 } else { desired };
        let changed = bps.abs_diff(p.desired_sent) * 10 > p.desired_sent;
        if probe || p.probing || changed {
            if probe {
                let e = estimate.unwrap_or(0);
                p.probe_every = if p.probed_at.is_none() || e > p.probed_from * 11 / 10 {
                    PROBE_EVERY
                } else {
                    (p.probe_every * 2).min(PROBE_EVERY_MAX)
                };
                p.probed_at = Some(now);
                p.probed_from = e;
            }
            p.probing = probe;
            p.desired_sent = bps;
            self.outputs
                .push_back(Output::DesiredBitrate { to: sub, bps });
        }
    }

    /// Tell publishers which layers of their video anyone needs. A layer is turned on at once
    /// when needed, and off only after [`PAUSE_AFTER`] unneeded.
    fn update_publish_layers(&mut self, now: Instant) {
        for (key, t) in self.tracks.iter_mut() {
            if t.kind != Kind::Video {
                continue;
            }
            let mut needed = [false; MAX_LAYERS];
            for &(sub, idx) in &t.subscribers {
                let Some(slot) = self.participants.get(&sub).and_then(|p| p.slots.get(idx)) else {
                    continue;
                };
                match slot.target {
                    // Nothing flowing yet: everything up to the cap may be wanted.
                    None => needed[..=slot.cap as usize].fill(true),
                    Some(target) => {
                        needed[target as usize] = true;
                        // One layer up stays on so the receiver can be raised when it can take it.
                        if target < slot.cap {
                            needed[target as usize + 1] = true;
                        }
                    }
                }
                if let Some(c) = slot.current {
                    needed[c as usize] = true;
                }
                // The lowest layer stays on for anyone subscribed: when a receiver's downlink
                // collapses it can drop to it at the next keyframe instead of freezing.
                needed[0] = true;
            }
            let lc = t.layer_count as usize;
            let mut active = [false; MAX_LAYERS];
            for l in 0..lc {
                if needed[l] {
                    t.unneeded_since[l] = None;
                    active[l] = true;
                } else {
                    let since = *t.unneeded_since[l].get_or_insert(now);
                    active[l] = now < since + PAUSE_AFTER;
                }
            }
            let sent = t.publish_sent.unwrap_or([true; MAX_LAYERS]);
            if active[..lc] != sent[..lc] {
                t.publish_sent = Some(active);
                self.outputs.push_back(Output::Signal {
                    to: key.0,
                    msg: ServerMessage::PublishLayers {
                        mid: key.1.as_str().to_owned(),
                        active: active[..lc].to_vec(),
                    },
                });
            }
        }
    }
}
