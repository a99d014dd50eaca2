//! Active speaker detection from the audio levels packets carry (RFC 6464 header extension), so it
//! works on end-to-end encrypted audio: the payload is never read.
//!
//! Each tick, every audio publisher contributes the share of its packets since the last tick that
//! carried speech. Scores are smoothed, and a challenger takes the floor only when clearly louder
//! for several ticks in a row, so a cough or a door does not switch the speaker view.

use std::collections::BTreeMap;

use crate::room::Pid;

/// Smoothed share of speech packets from which a publisher counts as speaking.
const SPEAKING: f32 = 0.2;
/// How much more a challenger must score than the current speaker.
const MARGIN: f32 = 0.15;
/// Consecutive ticks a challenger must lead before it becomes the active speaker.
const TICKS_TO_TAKE_OVER: u8 = 2;

#[derive(Debug, Default)]
pub struct SpeakerDetector {
    scores: BTreeMap<Pid, f32>,
    current: Option<Pid>,
    challenger: Option<(Pid, u8)>,
}

impl SpeakerDetector {
    /// One tick with each audio publisher's share of speech packets since the last (0 to 1).
    /// Publishers not listed are forgotten.
    pub fn tick(&mut self, shares: &[(Pid, f32)]) {
        for &(pid, share) in shares {
            let s = self.scores.entry(pid).or_insert(0.0);
            *s = *s * 0.5 + share.clamp(0.0, 1.0) * 0.5;
        }
        self.scores
            .retain(|pid, _| shares.iter().any(|(p, _)| p == pid));
        if self.current.is_some_and(|c| !self.scores.contains_key(&c)) {
            self.current = None;
        }
        let best = self
            .scores
            .iter()
            .filter(|(_, s)| **s >= SPEAKING)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(p, s)| (*p, *s));
        let Some((best, best_score)) = best else {
            self.challenger = None;
            return;
        };
        if Some(best) == self.current {
            self.challenger = None;
            return;
        }
        let current_score = self
            .current
            .and_then(|c| self.scores.get(&c))
            .copied()
            .unwrap_or(0.0);
        if best_score < current_score + MARGIN {
            self.challenger = None;
            return;
        }
        let n = match self.challenger {
            Some((p, n)) if p == best => n + 1,
            _ => 1,
        };
        if n >= TICKS_TO_TAKE_OVER || self.current.is_none() {
            self.current = Some(best);
            self.challenger = None;
        } else {
            self.challenger = Some((best, n));
        }
    }

    /// The active speaker, if anyone has spoken.
    pub fn current(&self) -> Option<Pid> {
        self.current
    }

    /// A participant left.
    pub fn forget(&mut self, pid: Pid) {
        self.scores.remove(&pid);
        if self.current == Some(pid) {
            self.current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Pid = Pid(1);
    const B: Pid = Pid(2);

    #[test]
    fn first_speaker_takes_the_floor_and_silence_keeps_it() {
        let mut d = SpeakerDetector::default();
        d.tick(&[(A, 0.0), (B, 0.0)]);
        assert_eq!(d.current(), None);
        d.tick(&[(A, 1.0), (B, 0.0)]);
        assert_eq!(d.current(), Some(A));
        // Everyone silent: the last speaker stays (the speaker view does not go blank).
        for _ in 0..10 {
            d.tick(&[(A, 0.0), (B, 0.0)]);
        }
        assert_eq!(d.current(), Some(A));
    }

    #[test]
    fn a_cough_does_not_switch_but_talking_does() {
        let mut d = SpeakerDetector::default();
        for _ in 0..4 {
            d.tick(&[(A, 0.8), (B, 0.0)]);
        }
        assert_eq!(d.current(), Some(A));
        // One loud tick from B while A keeps talking.
        d.tick(&[(A, 0.8), (B, 1.0)]);
        d.tick(&[(A, 0.8), (B, 0.0)]);
        assert_eq!(d.current(), Some(A));
        // A stops, B talks: B takes over after a few ticks.
        let mut ticks = 0;
        while d.current() != Some(B) {
            d.tick(&[(A, 0.0), (B, 0.9)]);
            ticks += 1;
            assert!(ticks < 10, "B never took over");
        }
        assert!(ticks >= 2);
    }

    #[test]
    fn leaving_speaker_is_forgotten() {
        let mut d = SpeakerDetector::default();
        d.tick(&[(A, 1.0)]);
        assert_eq!(d.current(), Some(A));
        d.tick(&[(B, 0.0)]);
        assert_eq!(d.current(), None);
    }
}
