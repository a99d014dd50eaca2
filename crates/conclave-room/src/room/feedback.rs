//! What each receiver reports, kept for the next allocation: the tiles its client draws, its
//! transport's downlink estimate (smoothed and as it stands), how long media waits in its pacer,
//! and the loss it measured. The allocation in `allocation.rs` turns these into layers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use conclave_proto::Kind;

use super::allocation::{OVERFILLED, RANDOM_LOSS};
use super::{Pid, Room};

/// Video that waited this long in a receiver's pacer is no longer worth sending (see
/// [`Room::paced_video_stale`]). When a receiver's estimate falls (a collapse, or a moment of
/// delay taken for congestion) what was sent at the old rate stays in its pacer, which drains it
/// at the new rate over up to 2 s: the picture lagged by as much (`docs/benchmarks.md`, fifteenth
/// round). Lowering layers (from 100 ms of wait, `PACER_DELAY_LIMIT`) stops new media from
/// adding to the queue, not what is in it; dropping it and resuming at a keyframe does.
const STALE_PACED_VIDEO: Duration = Duration::from_millis(700);
/// Least time between two drops for one receiver: what follows a drop (a keyframe) is sent.
const DROP_INTERVAL: Duration = Duration::from_secs(2);

impl Room {
    /// What the client shows: publishers (by id) and drawn heights, most important first.
    /// Unknown ids are ignored.
    pub fn set_view(
        &mut self,
        now: Instant,
        pid: Pid,
        tiles: &[(conclave_proto::ParticipantId, u32)],
    ) {
        let ids: HashMap<&conclave_proto::ParticipantId, Pid> =
            self.participants.iter().map(|(p, x)| (&x.id, *p)).collect();
        let view: Vec<(Pid, u32)> = tiles
            .iter()
            .filter_map(|(id, h)| Some((*ids.get(id)?, *h)))
            .collect();
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        if p.view.as_ref() == Some(&view) {
            return;
        }
        p.view = Some(view);
        // Only this participant's view changed: clients send it on every layout change, so a
        // large room must not re-run everyone's allocation for it.
        self.allocate_only(now, Some(pid));
    }

    /// The participant's downlink bandwidth estimate, from its transport. Used at the next tick.
    pub fn set_estimate(&mut self, pid: Pid, bps: u64) {
        if let Some(p) = self.participants.get_mut(&pid) {
            p.estimate = Some(bps);
        }
    }

    /// The estimator's current estimate before smoothing, when the transport has a sample of it
    /// (the smoothed one from [`Room::set_estimate`] trails a sudden drop by seconds). Until the
    /// next sample, when it is far below the smoothed one (see `COLLAPSE_PCT`) it is the budget:
    /// a collapse is acted on at once. A rise counts once two samples in a row are far above the
    /// smoothed estimate (see `RISE_PCT`), else as fast as the smoothed estimate follows.
    pub fn set_estimate_now(&mut self, pid: Pid, bps: u64) {
        if let Some(p) = self.participants.get_mut(&pid) {
            p.estimate_before = p.estimate_now.replace(bps);
        }
    }

    /// How long media has waited in the participant's transport pacer (its oldest paced packet)
    /// and the estimator's estimate as it stands, both as of `now`; for transports that pace
    /// to an estimate, before each [`Room::handle_timeout`]. While the wait exceeds
    /// `PACER_DELAY_LIMIT`, the allocation budgets what drains the queue.
    pub fn set_pacer_delay(&mut self, pid: Pid, waited: Duration, estimate_bps: u64) {
        if let Some(p) = self.participants.get_mut(&pid) {
            p.pacer = Some((waited, estimate_bps));
        }
    }

    /// Whether the video waiting in the participant's transport pacer should be dropped (then
    /// [`Room::video_dropped`]): it has waited `STALE_PACED_VIDEO` (as last given to
    /// [`Room::set_pacer_delay`]), and none was dropped for `DROP_INTERVAL`, so what follows a
    /// drop (a keyframe) is always sent: a keyframe too large for a slow link is dropped at most
    /// once, and by then the allocation has lowered the layer for the wait.
    pub fn paced_video_stale(&self, now: Instant, pid: Pid) -> bool {
        self.participants.get(&pid).is_some_and(|p| {
            p.pacer
                .is_some_and(|(waited, _)| waited >= STALE_PACED_VIDEO)
                && p.video_dropped_at.is_none_or(|t| now >= t + DROP_INTERVAL)
        })
    }

    /// The video waiting in the participant's transport to be sent was dropped: it had waited
    /// so long behind a collapsed downlink that it was no longer worth sending. What follows it
    /// cannot be decoded without it, so each of the participant's video slots stops, asks for a
    /// keyframe of its layer, and resumes there (numbering continuous after what was dropped:
    /// the receiver sees the dropped packets as lost).
    pub fn video_dropped(&mut self, now: Instant, pid: Pid) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        p.video_dropped_at = Some(now);
        let mut resume = Vec::new();
        for slot in p.slots.iter_mut().filter(|s| s.kind == Kind::Video) {
            if slot.current.take().is_none() {
                continue;
            }
            if let (Some(track), Some(layer)) = (slot.track, slot.target) {
                resume.push((track, layer));
            }
        }
        if resume.is_empty() {
            return;
        }
        self.may_wait.set(true);
        for (track, layer) in resume {
            self.request_keyframe(now, track, layer);
        }
    }

    /// The share (0 to 1) of packets sent to the participant that were lost, over the last
    /// second, as its transport measured it.
    pub fn set_downlink_loss(&mut self, now: Instant, pid: Pid, fraction: f32) {
        if let Some(p) = self.participants.get_mut(&pid) {
            p.loss = Some(fraction);
            if RANDOM_LOSS.contains(&fraction) {
                p.random_loss_since.get_or_insert(now);
            } else {
                p.random_loss_since = None;
            }
            if fraction >= OVERFILLED {
                p.heavy_loss_since.get_or_insert(now);
            } else {
                p.heavy_loss_since = None;
            }
        }
    }
}
