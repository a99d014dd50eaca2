//! What one direction of a link does to packets, parsed from a compact text form such as
//! `delay=75ms,jitter=15ms,loss=5%,ge=0.1/0.3/0.8,rate=3M,queue=30k,schedule=20s:300k/40s:3M`.

use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SpecError {
    #[error(
        "unknown setting '{0}' (known: delay, jitter, reorder, loss, ge, rate, queue, schedule)"
    )]
    UnknownKey(String),
    #[error("'{0}' is not a duration like 75ms or 2s")]
    Duration(String),
    #[error("'{0}' is not a probability like 5% or 0.05")]
    Probability(String),
    #[error("'{0}' is not a bit rate like 300k or 3M (bits per second)")]
    Rate(String),
    #[error("'{0}' is not a size like 30k (bytes)")]
    Size(String),
    #[error("ge takes p/r/loss-in-bad-state, e.g. ge=0.1/0.3/0.8; got '{0}'")]
    Gilbert(String),
    #[error("schedule takes time:rate steps in order, e.g. schedule=20s:300k/40s:3M; got '{0}'")]
    Schedule(String),
}

/// Gilbert–Elliott two-state loss: bursts of loss while in the bad state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gilbert {
    /// Chance per packet to move from the good state to the bad one.
    pub p: f64,
    /// Chance per packet to move from the bad state back to the good one.
    pub r: f64,
    /// Chance a packet is lost while in the bad state (none are lost in the good state).
    pub bad_loss: f64,
}

impl Gilbert {
    /// Long-run share of packets lost: time in the bad state times its loss.
    pub fn mean_loss(&self) -> f64 {
        if self.p + self.r == 0.0 {
            return 0.0;
        }
        self.bad_loss * self.p / (self.p + self.r)
    }
}

/// One direction's impairments. The default passes every packet through untouched.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinkSpec {
    /// Added to every packet.
    pub delay: Duration,
    /// Each packet's delay is uniform in `delay ± jitter` (never below zero).
    pub jitter: Duration,
    /// Let jitter reorder packets. Off: a packet never overtakes an earlier one, as on most
    /// real paths (jitter then delays followers instead).
    pub reorder: bool,
    /// Independent random loss per packet.
    pub loss: f64,
    pub gilbert: Option<Gilbert>,
    /// Bit rate cap in bits per second; `None` is unlimited.
    pub rate: Option<u64>,
    /// Most bytes waiting for the capped link before new packets are dropped (drop-tail).
    /// Default: 200 ms at the current rate, at least 8 kB.
    pub queue: Option<usize>,
    /// Rate changes over time: from each offset (since the link started) on, this rate.
    pub schedule: Vec<(Duration, u64)>,
}

impl LinkSpec {
    /// The rate cap in force `since` the link started.
    pub fn rate_at(&self, since: Duration) -> Option<u64> {
        self.schedule
            .iter()
            .rev()
            .find(|(at, _)| *at <= since)
            .map(|(_, r)| *r)
            .or(self.rate)
    }

    /// Queue limit in bytes for a link running at `rate`.
    pub fn queue_limit(&self, rate: u64) -> usize {
        self.queue
            .unwrap_or_else(|| ((rate / 8) as usize / 5).max(8_000))
    }
}

impl FromStr for LinkSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut spec = LinkSpec::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            match key {
                "delay" => spec.delay = duration(value)?,
                "jitter" => spec.jitter = duration(value)?,
                "reorder" => spec.reorder = true,
                "loss" => spec.loss = probability(value)?,
                "ge" => spec.gilbert = Some(gilbert(value)?),
                "rate" => spec.rate = Some(rate(value)?),
                "queue" => spec.queue = Some(size(value)?),
                "schedule" => spec.schedule = schedule(value)?,
                _ => return Err(SpecError::UnknownKey(key.to_owned())),
            }
        }
        Ok(spec)
    }
}

fn number_and_unit(s: &str) -> Option<(f64, &str)> {
    let i = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(i);
    Some((n.parse().ok()?, unit))
}

pub fn duration(s: &str) -> Result<Duration, SpecError> {
    let err = || SpecError::Duration(s.to_owned());
    let (n, unit) = number_and_unit(s).ok_or_else(err)?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        _ => return Err(err()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| err())
}

fn probability(s: &str) -> Result<f64, SpecError> {
    let err = || SpecError::Probability(s.to_owned());
    let v = match s.strip_suffix('%') {
        Some(pct) => pct.parse::<f64>().map_err(|_| err())? / 100.0,
        None => s.parse::<f64>().map_err(|_| err())?,
    };
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(err())
    }
}

fn scaled(s: &str) -> Option<u64> {
    let (n, unit) = number_and_unit(s)?;
    let mult = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        _ => return None,
    };
    let v = n * mult;
    (v >= 1.0 && v < u64::MAX as f64).then_some(v as u64)
}

fn rate(s: &str) -> Result<u64, SpecError> {
    scaled(s).ok_or_else(|| SpecError::Rate(s.to_owned()))
}

fn size(s: &str) -> Result<usize, SpecError> {
    scaled(s)
        .map(|v| v as usize)
        .ok_or_else(|| SpecError::Size(s.to_owned()))
}

fn gilbert(s: &str) -> Result<Gilbert, SpecError> {
    let parts: Vec<&str> = s.split('/').collect();
    let [p, r, h] = parts[..] else {
        return Err(SpecError::Gilbert(s.to_owned()));
    };
    let g = |v: &str| probability(v).map_err(|_| SpecError::Gilbert(s.to_owned()));
    Ok(Gilbert {
        p: g(p)?,
        r: g(r)?,
        bad_loss: g(h)?,
    })
}

fn schedule(s: &str) -> Result<Vec<(Duration, u64)>, SpecError> {
    let err = || SpecError::Schedule(s.to_owned());
    let mut steps = Vec::new();
    for step in s.split('/') {
        let (at, r) = step.split_once(':').ok_or_else(err)?;
        let at = duration(at).map_err(|_| err())?;
        if steps.last().is_some_and(|(prev, _)| *prev >= at) {
            return Err(err());
        }
        steps.push((at, rate(r).map_err(|_| err())?));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_setting() {
        let s: LinkSpec =
            "delay=75ms,jitter=15ms,loss=5%,ge=0.1/0.3/0.8,rate=3M,queue=30k,schedule=20s:300k/40s:3M"
                .parse()
                .unwrap();
        assert_eq!(s.delay, Duration::from_millis(75));
        assert_eq!(s.jitter, Duration::from_millis(15));
        assert!(!s.reorder);
        assert!((s.loss - 0.05).abs() < 1e-12);
        let g = s.gilbert.unwrap();
        assert!((g.mean_loss() - 0.2).abs() < 1e-9);
        assert_eq!(s.rate, Some(3_000_000));
        assert_eq!(s.queue, Some(30_000));
        assert_eq!(s.rate_at(Duration::from_secs(5)), Some(3_000_000));
        assert_eq!(s.rate_at(Duration::from_secs(25)), Some(300_000));
        assert_eq!(s.rate_at(Duration::from_secs(45)), Some(3_000_000));
        assert_eq!("".parse::<LinkSpec>().unwrap(), LinkSpec::default());
        assert!("reorder".parse::<LinkSpec>().unwrap().reorder);
    }

    #[test]
    fn rejects_bad_settings() {
        assert_eq!(
            "speed=1".parse::<LinkSpec>(),
            Err(SpecError::UnknownKey("speed".into()))
        );
        assert!("loss=120%".parse::<LinkSpec>().is_err());
        assert!("delay=5".parse::<LinkSpec>().is_err());
        assert!("rate=fast".parse::<LinkSpec>().is_err());
        assert!("ge=0.1/0.3".parse::<LinkSpec>().is_err());
        assert!("schedule=40s:3M/20s:300k".parse::<LinkSpec>().is_err());
    }
}
