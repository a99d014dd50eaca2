//! One direction of an impaired link, sans-IO: packets and the time go in, packets come out when
//! they are due. No clock is read and no socket touched, so tests drive it with a virtual clock.
//!
//! How to drive a [`Link`]: call [`Link::push`] for every packet that arrives, then
//! [`Link::poll`] until it returns `None`, and call `poll` again no later than
//! [`Link::next_due`]. Times passed in must never go backwards.
//!
//! A packet goes through, in order: random loss, Gilbert–Elliott loss, the rate-capped queue
//! (drop-tail when full; the packet leaves once serialised at the current rate), then the delay
//! with jitter.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::spec::LinkSpec;

/// What happened to the packets of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Lost to random or Gilbert–Elliott loss.
    pub dropped_loss: u64,
    /// Dropped because the rate-capped queue was full.
    pub dropped_queue: u64,
}

impl std::ops::AddAssign for LinkStats {
    fn add_assign(&mut self, o: Self) {
        self.packets_in += o.packets_in;
        self.packets_out += o.packets_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.dropped_loss += o.dropped_loss;
        self.dropped_queue += o.dropped_queue;
    }
}

/// A packet in the delay stage, ordered by when it is due (then by arrival, so equal times keep
/// their order).
struct Delayed<T> {
    due: Instant,
    seq: u64,
    size: usize,
    packet: T,
}

impl<T> PartialEq for Delayed<T> {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl<T> Eq for Delayed<T> {}
impl<T> PartialOrd for Delayed<T> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Delayed<T> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

pub struct Link<T> {
    spec: LinkSpec,
    rng: StdRng,
    start: Instant,
    /// Gilbert–Elliott state.
    bad: bool,
    /// Waiting for the capped link, head first.
    queue: VecDeque<(usize, T)>,
    queued_bytes: usize,
    /// When the head of `queue` began (or begins) serialisation.
    head_start: Instant,
    delayed: BinaryHeap<Reverse<Delayed<T>>>,
    /// Latest due time handed to the delay stage (packets never overtake unless `reorder`).
    last_due: Instant,
    seq: u64,
    stats: LinkStats,
}

impl<T> Link<T> {
    /// A link whose schedule counts from `start`; `seed` makes every random decision repeatable.
    pub fn new(spec: LinkSpec, seed: u64, start: Instant) -> Self {
        Self {
            spec,
            rng: StdRng::seed_from_u64(seed),
            start,
            bad: false,
            queue: VecDeque::new(),
            queued_bytes: 0,
            head_start: start,
            delayed: BinaryHeap::new(),
            last_due: start,
            seq: 0,
            stats: LinkStats::default(),
        }
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    fn rate_at(&self, t: Instant) -> Option<u64> {
        self.spec.rate_at(t.saturating_duration_since(self.start))
    }

    /// A packet of `size` bytes arrives at `now`.
    pub fn push(&mut self, now: Instant, size: usize, packet: T) {
        self.advance(now);
        self.stats.packets_in += 1;
        self.stats.bytes_in += size as u64;
        if self.lost() {
            self.stats.dropped_loss += 1;
            return;
        }
        match self.rate_at(now) {
            None if self.queue.is_empty() => self.delay(now, size, packet),
            rate => {
                // Drop-tail; an empty queue always takes one packet, however large.
                let limit = self.spec.queue_limit(rate.unwrap_or(u64::MAX / 2));
                if !self.queue.is_empty() && self.queued_bytes + size > limit {
                    self.stats.dropped_queue += 1;
                    return;
                }
                if self.queue.is_empty() {
                    self.head_start = now;
                }
                self.queued_bytes += size;
                self.queue.push_back((size, packet));
            }
        }
    }

    fn lost(&mut self) -> bool {
        let mut lost = self.spec.loss > 0.0 && self.rng.random_bool(self.spec.loss);
        if let Some(g) = self.spec.gilbert {
            let flip = if self.bad { g.r } else { g.p };
            if self.rng.random_bool(flip) {
                self.bad = !self.bad;
            }
            lost |= self.bad && self.rng.random_bool(g.bad_loss);
        }
        lost
    }

    /// When the queue's head has been serialised, at the rate in force when it started.
    fn head_done(&self) -> Option<Instant> {
        let (size, _) = self.queue.front()?;
        let Some(rate) = self.rate_at(self.head_start) else {
            return Some(self.head_start);
        };
        let secs = (*size as f64 * 8.0) / rate as f64;
        Some(self.head_start + Duration::from_secs_f64(secs))
    }

    /// Move serialised packets from the queue to the delay stage.
    fn advance(&mut self, now: Instant) {
        while let Some(done) = self.head_done().filter(|d| *d <= now) {
            let (size, packet) = self.queue.pop_front().expect("head_done saw a head");
            self.queued_bytes -= size;
            self.head_start = done;
            self.delay(done, size, packet);
        }
    }

    fn delay(&mut self, sent: Instant, size: usize, packet: T) {
        let mut due = sent + self.spec.delay;
        let j = self.spec.jitter;
        if !j.is_zero() {
            let offset = self.rng.random_range(-j.as_secs_f64()..=j.as_secs_f64());
            due = if offset >= 0.0 {
                due + Duration::from_secs_f64(offset)
            } else {
                due.checked_sub(Duration::from_secs_f64(-offset))
                    .unwrap_or(sent)
                    .max(sent)
            };
        }
        if !self.spec.reorder {
            due = due.max(self.last_due);
        }
        self.last_due = self.last_due.max(due);
        self.seq += 1;
        self.delayed.push(Reverse(Delayed {
            due,
            seq: self.seq,
            size,
            packet,
        }));
    }

    /// The next packet due by `now`, if any.
    pub fn poll(&mut self, now: Instant) -> Option<T> {
        self.advance(now);
        if self.delayed.peek().is_none_or(|Reverse(d)| d.due > now) {
            return None;
        }
        let Reverse(d) = self.delayed.pop().expect("peeked");
        self.stats.packets_out += 1;
        self.stats.bytes_out += d.size as u64;
        Some(d.packet)
    }

    /// When [`Link::poll`] next has something to do.
    pub fn next_due(&self) -> Option<Instant> {
        let delayed = self.delayed.peek().map(|Reverse(d)| d.due);
        match (delayed, self.head_done()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Sends `count` packets of `size` bytes, one every `gap`, and drains the link with a virtual
    /// clock. Returns (sent index, send time, delivery time) for every delivered packet.
    fn run(
        spec: &str,
        seed: u64,
        count: usize,
        size: usize,
        gap: Duration,
    ) -> (Vec<(usize, Duration, Duration)>, LinkStats) {
        let t0 = Instant::now();
        let mut link = Link::new(spec.parse().unwrap(), seed, t0);
        let mut sent_at = Vec::new();
        let mut out = Vec::new();
        let mut now = t0;
        let drain = |link: &mut Link<usize>, until: Instant, out: &mut Vec<(usize, Instant)>| {
            while let Some(due) = link.next_due().filter(|d| *d <= until) {
                while let Some(i) = link.poll(due) {
                    out.push((i, due));
                }
            }
        };
        let mut got = Vec::new();
        for i in 0..count {
            drain(&mut link, now, &mut got);
            link.push(now, size, i);
            sent_at.push(now);
            now += gap;
        }
        drain(&mut link, now + Duration::from_secs(3600), &mut got);
        for (i, at) in got {
            out.push((i, sent_at[i] - t0, at - t0));
        }
        (out, link.stats())
    }

    #[test]
    fn clean_link_passes_everything_at_once() {
        let (out, stats) = run("", 1, 1000, 1000, MS);
        assert_eq!(out.len(), 1000);
        assert!(out.iter().all(|(_, s, d)| s == d));
        assert_eq!(stats.packets_out, 1000);
        assert_eq!(stats.bytes_out, 1_000_000);
    }

    #[test]
    fn delay_is_added_to_every_packet() {
        let (out, _) = run("delay=50ms", 1, 200, 1000, MS);
        assert_eq!(out.len(), 200);
        assert!(out.iter().all(|(_, s, d)| *d - *s == 50 * MS));
    }

    #[test]
    fn jitter_spreads_delay_without_reordering() {
        let (out, _) = run("delay=75ms,jitter=15ms", 7, 5000, 200, 2 * MS);
        let order: Vec<usize> = out.iter().map(|(i, _, _)| *i).collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "no packet overtakes another"
        );
        let delays: Vec<f64> = out
            .iter()
            .map(|(_, s, d)| (*d - *s).as_secs_f64() * 1e3)
            .collect();
        let min = delays.iter().copied().fold(f64::MAX, f64::min);
        let max = delays.iter().copied().fold(0.0, f64::max);
        assert!((60.0 - 1e-6..65.0).contains(&min), "min delay {min}");
        assert!(max > 88.0 && max <= 90.0 + 1e-6, "max delay {max}");
    }

    #[test]
    fn reorder_lets_jitter_reorder() {
        let (out, _) = run("delay=75ms,jitter=15ms,reorder", 7, 2000, 200, MS);
        let order: Vec<usize> = out.iter().map(|(i, _, _)| *i).collect();
        assert!(order.windows(2).any(|w| w[0] > w[1]));
        assert!(out.iter().all(|(_, s, d)| {
            let ms = (*d - *s).as_secs_f64() * 1e3;
            (60.0 - 1e-6..=90.0 + 1e-6).contains(&ms)
        }));
    }

    #[test]
    fn random_loss_matches_configured_rate() {
        let (_, stats) = run("loss=5%", 42, 100_000, 100, MS);
        let rate = stats.dropped_loss as f64 / stats.packets_in as f64;
        assert!((rate - 0.05).abs() < 0.005, "measured {rate}");
        assert_eq!(stats.packets_out + stats.dropped_loss, stats.packets_in);
    }

    /// Mean length of runs of consecutive lost packets.
    fn mean_burst(out: &[(usize, Duration, Duration)], count: usize) -> f64 {
        let mut delivered = vec![false; count];
        for (i, _, _) in out {
            delivered[*i] = true;
        }
        let (mut runs, mut lost, mut prev_lost) = (0, 0, false);
        for d in delivered {
            if !d {
                lost += 1;
                if !prev_lost {
                    runs += 1;
                }
            }
            prev_lost = !d;
        }
        lost as f64 / runs as f64
    }

    #[test]
    fn gilbert_elliott_loss_is_bursty_at_the_configured_mean() {
        let n = 200_000;
        let (out, stats) = run("ge=0.1/0.3/0.8", 3, n, 100, MS);
        let rate = stats.dropped_loss as f64 / n as f64;
        assert!((rate - 0.2).abs() < 0.01, "measured {rate}");
        let (random, _) = run("loss=20%", 3, n, 100, MS);
        let (bursty, independent) = (mean_burst(&out, n), mean_burst(&random, n));
        assert!(
            bursty > 2.0 && independent < 1.4,
            "bursts {bursty} vs {independent}"
        );
    }

    #[test]
    fn rate_cap_is_respected_and_the_queue_is_bounded() {
        // 2 Mbit/s offered (1,000-byte packets every 4 ms) into a 1 Mbit/s cap for 10 s.
        let (out, stats) = run("rate=1M,queue=20k", 5, 2500, 1000, 4 * MS);
        let last = out.last().unwrap().2;
        let bits = stats.bytes_out as f64 * 8.0;
        assert!(bits / last.as_secs_f64() <= 1_000_000.0 + 1.0);
        assert!(bits / 10.0 > 950_000.0, "the link stays busy: {bits}");
        assert!(stats.dropped_queue > 1000);
        assert_eq!(stats.packets_out + stats.dropped_queue, stats.packets_in);
        // Queueing delay never exceeds the queue's drain time (20 kB at 1 Mbit/s = 160 ms).
        let worst = out.iter().map(|(_, s, d)| *d - *s).max().unwrap();
        assert!(worst <= 168 * MS, "worst {worst:?}");
    }

    #[test]
    fn schedule_changes_the_cap_over_time() {
        // 1.6 Mbit/s offered for 60 s; 3 Mbit/s, then 300 kbit/s from 20 s, then 3 Mbit/s from 40 s.
        let (out, _) = run("rate=3M,schedule=20s:300k/40s:3M", 9, 12_000, 1000, 5 * MS);
        let kbps = |from: u64, to: u64| {
            let bytes: usize = out
                .iter()
                .filter(|(_, _, d)| *d >= Duration::from_secs(from) && *d < Duration::from_secs(to))
                .count()
                * 1000;
            bytes as f64 * 8.0 / (to - from) as f64 / 1000.0
        };
        assert!(
            (1500.0..=1700.0).contains(&kbps(5, 19)),
            "before {}",
            kbps(5, 19)
        );
        assert!(kbps(21, 39) <= 301.0, "during {}", kbps(21, 39));
        assert!(kbps(21, 39) > 280.0, "during {}", kbps(21, 39));
        assert!(
            (1500.0..=1700.0).contains(&kbps(45, 59)),
            "after {}",
            kbps(45, 59)
        );
    }

    #[test]
    fn same_seed_same_decisions() {
        let spec = "loss=3%,ge=0.05/0.3/0.5,delay=20ms,jitter=10ms,rate=1M";
        let a = run(spec, 11, 5000, 500, MS);
        let b = run(spec, 11, 5000, 500, MS);
        let c = run(spec, 12, 5000, 500, MS);
        assert_eq!(a, b);
        assert_ne!(a.0, c.0);
    }
}
