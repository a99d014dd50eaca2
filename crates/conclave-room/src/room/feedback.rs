//! What each receiver reports, kept for the next allocation: the tiles its client draws, its
//! transport's downlink estimate (smoothed and as it stands), how long media waits in its pacer,
//! and the loss it measured. The allocation in `allocation.rs` turns these into layers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::allocation::{OVERFILLED, RANDOM_LOSS};
use super::{Pid, Room};

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
