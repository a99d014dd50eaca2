use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rtp_::Bitrate;

/// Time window for averaging estimate changes.
const ESTIMATE_WINDOW: Duration = Duration::from_secs(3);

type TimeBitrate = (Instant, Bitrate);

const TOLERANCE: f64 = 0.05;

/// Smooths BWE estimates by averaging over a time window.
pub struct EstimateSmoother {
    estimates: VecDeque<TimeBitrate>,
    /// Sum of the estimates in the window, in whole bit/s: kept as they come and go, because
    /// the delay-based estimate moves at nearly every timeout, the window holds hundreds of
    /// values, and summing them at every poll cost ~3% of a forwarding server's CPU.
    sum_bps: u64,
    maybe_emit: bool,
    emitted: Option<Bitrate>,
}

impl EstimateSmoother {
    pub fn new() -> Self {
        Self {
            estimates: VecDeque::new(),
            sum_bps: 0,
            maybe_emit: false,
            emitted: None,
        }
    }

    /// Record a new estimate and update the smoothed average.
    pub fn record(&mut self, now: Instant, estimate: Bitrate) {
        // Did value change from previous?
        let do_update = self.estimates.back().map(|b| b.1) != Some(estimate);

        if do_update {
            self.maybe_emit = true;
            self.estimates.push_back((now, estimate));
            self.sum_bps += whole_bps(estimate);
        }

        // Remove entries older than the window.
        while let Some((time, _)) = self.estimates.front() {
            if now.duration_since(*time) > ESTIMATE_WINDOW {
                // Keep last entry
                if self.estimates.len() == 1 {
                    break;
                }

                self.maybe_emit = true;
                if let Some((_, gone)) = self.estimates.pop_front() {
                    self.sum_bps -= whole_bps(gone);
                }
            } else {
                break;
            }
        }
    }

    /// Poll for an estimate to emit. Returns Some only when there's a new value to emit.
    pub fn poll(&mut self) -> Option<Bitrate> {
        if !self.maybe_emit {
            return None;
        }

        if self.estimates.is_empty() {
            return None;
        }

        let avg = self.sum_bps as f64 / self.estimates.len() as f64;
        let rate: Bitrate = avg.into();

        // This forces emitting if we have the first ever value, or a last
        // where the rest of the window is gone (estimates stop coming).
        let force = self.estimates.len() == 1 && self.emitted != Some(rate);

        // Emit if we deviate enough from previously emitted.
        let deviate = if let Some(emitted) = self.emitted {
            !in_tolerance(emitted, rate)
        } else {
            true
        };

        self.maybe_emit = false;

        // Are we not to emit?
        if !force && !deviate {
            return None;
        }

        self.emitted = Some(rate);
        Some(rate)
    }
}

/// An estimate to the nearest bit/s (estimates are far below `u64::MAX / 1000`, the most a
/// window could hold without the sum overflowing).
fn whole_bps(b: Bitrate) -> u64 {
    b.as_f64().round() as u64
}

fn in_tolerance(b1: Bitrate, b2: Bitrate) -> bool {
    let min = b1 * (1.0 - TOLERANCE);
    let max = b1 * (1.0 + TOLERANCE);
    b2 > min && b2 < max
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn the_kept_sum_gives_the_mean_of_the_window() {
        // A seeded walk of estimates, some repeated, arriving every 7 to 40 ms: every emitted
        // value is the plain mean of the window (to the bit/s the estimates were rounded to).
        let start = Instant::now();
        let mut smoother = EstimateSmoother::new();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut now = start;
        let mut value = 1_000_000.0_f64;
        let mut emitted = 0;
        for _ in 0..5_000 {
            now += Duration::from_millis(7 + next() % 34);
            if next() % 4 != 0 {
                value = (value * (0.9 + (next() % 1000) as f64 / 5000.0)).clamp(30_000.0, 50e6);
            }
            smoother.record(now, Bitrate::from(value + 0.25));
            let n = smoother.estimates.len() as f64;
            let whole: u64 = smoother.estimates.iter().map(|e| whole_bps(e.1)).sum();
            assert_eq!(smoother.sum_bps, whole);
            let plain: f64 = smoother.estimates.iter().map(|e| e.1.as_f64()).sum::<f64>() / n;
            if let Some(rate) = smoother.poll() {
                emitted += 1;
                assert_eq!(rate.as_f64(), whole as f64 / n);
                assert!(
                    (rate.as_f64() - plain).abs() <= 0.5,
                    "{rate} against {plain}"
                );
            }
        }
        assert!(emitted > 10, "the walk moved enough to emit ({emitted})");
    }
}
