//! What simulated participants count. Every participant counts RTP datagrams by SSRC and sequence
//! number from the clear-text RTP header, which needs no decryption; sampled participants also
//! decrypt and check each payload's counter and send time (see [`Verified`]).

use serde::Serialize;

/// Sequence-number accounting for one received RTP stream.
#[derive(Debug, Clone, Copy)]
struct SeqStream {
    ssrc: u32,
    first: u64,
    max: u64,
    packets: u64,
}

/// Cheap per-participant counters: packets, bytes, and loss from gaps in RTP sequence numbers.
#[derive(Debug, Default, Clone)]
pub struct SeqCounter {
    streams: Vec<SeqStream>,
    /// Media packets (retransmissions and padding not included).
    pub packets: u64,
    pub bytes: u64,
    /// Retransmissions and padding: packets on a retransmission payload type (RFC 4588) or on
    /// the probe SSRC 0. A server's bandwidth probes are sent this way; they are not forwarded
    /// media, so they count neither as forwarded packets nor towards loss.
    pub resent: u64,
    /// Packets that came after one with a higher sequence number of their stream (a receiver's
    /// jitter buffer has to wait for them).
    pub reordered: u64,
}

impl SeqCounter {
    /// Count one RTP datagram (still encrypted: only the header is read). `rtx_pts` are the
    /// retransmission payload types of the connection. True if it carried forwarded media.
    pub fn count(&mut self, datagram: &[u8], rtx_pts: &[u8]) -> bool {
        let Some((ssrc, seq)) = rtp_ssrc_seq(datagram) else {
            return false;
        };
        if ssrc == 0 || rtx_pts.contains(&(datagram[1] & 0x7f)) {
            self.resent += 1;
            return false;
        }
        self.packets += 1;
        self.bytes += datagram.len() as u64;
        // A participant receives few streams: a linear scan beats hashing.
        match self.streams.iter_mut().find(|s| s.ssrc == ssrc) {
            Some(s) => {
                let ext = extend_seq(s.max, seq);
                if ext < s.max {
                    self.reordered += 1;
                }
                s.max = s.max.max(ext);
                s.first = s.first.min(ext);
                s.packets += 1;
            }
            None => {
                // Start well above zero so a slightly reordered first packet cannot underflow.
                let ext = (1 << 32) + seq as u64;
                self.streams.push(SeqStream {
                    ssrc,
                    first: ext,
                    max: ext,
                    packets: 1,
                });
            }
        }
        true
    }

    /// Packets missing from the sequence-number ranges seen.
    pub fn lost(&self) -> u64 {
        self.streams
            .iter()
            .map(|s| (s.max - s.first + 1).saturating_sub(s.packets))
            .sum()
    }

    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    /// Forget everything (start of the measurement window).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// The extended sequence number of `seq` closest to `max`.
fn extend_seq(max: u64, seq: u16) -> u64 {
    let base = max & !0xffff;
    let cand = base | seq as u64;
    if cand + 0x8000 < max {
        cand + 0x10000
    } else if cand > max + 0x8000 && cand >= 0x10000 {
        cand - 0x10000
    } else {
        cand
    }
}

/// Is this datagram RTP (not RTCP, STUN or DTLS)? RFC 7983 demultiplexing plus RFC 5761.
pub fn is_rtp(d: &[u8]) -> bool {
    d.len() >= 12 && (128..=191).contains(&d[0]) && !(192..=223).contains(&d[1])
}

fn rtp_ssrc_seq(d: &[u8]) -> Option<(u32, u16)> {
    if !is_rtp(d) {
        return None;
    }
    let seq = u16::from_be_bytes([d[2], d[3]]);
    let ssrc = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
    Some((ssrc, seq))
}

/// End-to-end checks on decrypted payloads, by the sender's counter inside each payload.
#[derive(Debug, Default, Clone)]
pub struct Verified {
    tracks: Vec<VerifiedTrack>,
    /// One-way latency samples, microseconds.
    pub latencies_us: Vec<u32>,
}

/// A received stream's payloads. A server may switch the stream between a publisher's simulcast
/// layers, whose counters are unrelated, so the counters are checked per run of one layer (a
/// segment): gaps inside a segment are losses; the switch between two is not.
#[derive(Debug, Clone)]
struct VerifiedTrack {
    ssrc: u32,
    /// The current segment: its layer, first counter, the counters seen and how many.
    layer: u32,
    first: u32,
    seen: Vec<u64>,
    unique: u64,
    /// Unique and expected payloads of the segments before the current one.
    done: (u64, u64),
}

impl VerifiedTrack {
    fn new(ssrc: u32, layer: u32, first: u32) -> Self {
        Self {
            ssrc,
            layer,
            first,
            seen: Vec::new(),
            unique: 0,
            done: (0, 0),
        }
    }

    /// (unique, expected) of the current segment: expected up to the highest counter seen.
    fn segment(&self) -> (u64, u64) {
        let last = self
            .seen
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i as u64 * 64 + 63 - w.leading_zeros() as u64);
        (self.unique, last.map_or(0, |l| l + 1))
    }

    /// Close the current segment and start one on `layer` at `first`.
    fn switch(&mut self, layer: u32, first: u32) {
        let (u, e) = self.segment();
        self.done = (self.done.0 + u, self.done.1 + e);
        self.layer = layer;
        self.first = first;
        self.seen.clear();
        self.unique = 0;
    }
}

/// Bits of a payload counter that number packets; the two above them carry the simulcast layer.
const COUNTER_BITS: u32 = 30;
const COUNTER_MASK: u32 = (1 << COUNTER_BITS) - 1;

/// The counter a synthetic payload carries: the layer's packet number, tagged with the layer.
pub fn layer_counter(layer: usize, seq: u64) -> u32 {
    ((layer as u32) << COUNTER_BITS) | (seq as u32 & COUNTER_MASK)
}

impl Verified {
    /// Record one decrypted payload received on stream `ssrc` at `now_us` (Unix microseconds).
    pub fn record(&mut self, ssrc: u32, payload: &[u8], now_us: u64) {
        // Synthetic payloads start with the counter; the VP8 clip's last packets end with it.
        let Some((counter, sent_us)) = conclave_client::parse_payload(payload)
            .or_else(|| crate::synth::parse_trailer(payload))
        else {
            return;
        };
        let (layer, counter) = (counter >> COUNTER_BITS, counter & COUNTER_MASK);
        let t = match self.tracks.iter().position(|t| t.ssrc == ssrc) {
            Some(i) => &mut self.tracks[i],
            None => {
                self.tracks.push(VerifiedTrack::new(ssrc, layer, counter));
                self.tracks.last_mut().expect("pushed")
            }
        };
        if t.layer != layer {
            t.switch(layer, counter);
        }
        if counter < t.first {
            // Older than the window start: ignore rather than rebase.
            return;
        }
        let off = (counter - t.first) as usize;
        let (word, bit) = (off / 64, off % 64);
        if t.seen.len() <= word {
            t.seen.resize(word + 1, 0);
        }
        if t.seen[word] & (1 << bit) != 0 {
            // A repeat: a retransmission of what had arrived, or a server's bandwidth probe
            // made of an old packet. The receiver had the payload already; its age is no delay.
            return;
        }
        t.seen[word] |= 1 << bit;
        t.unique += 1;
        let lat = now_us.saturating_sub(sent_us).min(u32::MAX as u64) as u32;
        self.latencies_us.push(lat);
    }

    /// (unique payloads received, payloads expected from the counters' ranges).
    pub fn totals(&self) -> (u64, u64) {
        self.tracks.iter().fold((0, 0), |(u, e), t| {
            let (su, se) = t.segment();
            (u + t.done.0 + su, e + t.done.1 + se)
        })
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub samples: usize,
    pub p50_us: u32,
    pub p95_us: u32,
    pub p99_us: u32,
    pub max_us: u32,
}

impl Percentiles {
    pub fn of(samples: &mut [u32]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Self {
            samples: samples.len(),
            p50_us: at(0.50),
            p95_us: at(0.95),
            p99_us: at(0.99),
            max_us: samples[samples.len() - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
        let mut d = vec![0x80, 96];
        d.extend_from_slice(&seq.to_be_bytes());
        d.extend_from_slice(&[0; 4]);
        d.extend_from_slice(&ssrc.to_be_bytes());
        d.extend_from_slice(&[0; 20]);
        d
    }

    #[test]
    fn counts_gaps_across_rollover() {
        let mut c = SeqCounter::default();
        for seq in [65530u16, 65531, 65533, 65535, 0, 1, 3] {
            c.count(&rtp(7, seq), &[]);
        }
        c.count(&rtp(8, 10), &[]);
        // Missing: 65532, 65534, 2.
        assert_eq!(c.lost(), 3);
        assert_eq!(c.packets, 8);
        assert_eq!(c.streams(), 2);
    }

    #[test]
    fn counts_packets_that_come_after_a_later_one() {
        let mut c = SeqCounter::default();
        for seq in [65534u16, 0, 65535, 1, 2, 4, 3] {
            c.count(&rtp(7, seq), &[]);
        }
        // 65535 after 0, 3 after 4; nothing missing.
        assert_eq!((c.reordered, c.lost()), (2, 0));
    }

    #[test]
    fn ignores_rtcp_and_stun() {
        let mut c = SeqCounter::default();
        let mut sr = rtp(1, 1);
        sr[1] = 200;
        c.count(&sr, &[]);
        c.count(&[0, 1, 0, 0], &[]);
        assert_eq!(c.packets, 0);
    }

    #[test]
    fn retransmissions_and_probes_are_not_forwarded_media() {
        let mut c = SeqCounter::default();
        let rtx = [97u8];
        assert!(c.count(&rtp(7, 1), &rtx));
        let mut resend = rtp(9, 500);
        resend[1] = 97 | 0x80; // RTX payload type, marker set
        assert!(!c.count(&resend, &rtx));
        assert!(!c.count(&rtp(0, 3), &rtx));
        assert!(c.count(&rtp(7, 2), &rtx));
        assert_eq!((c.packets, c.resent, c.lost(), c.streams()), (2, 2, 0, 1));
    }

    #[test]
    fn verified_counts_unique_and_expected() {
        let mut v = Verified::default();
        for counter in [5u32, 6, 6, 8] {
            let p = conclave_client::payload(100, None, counter);
            v.record(1, &p, conclave_client::unix_micros());
        }
        assert_eq!(v.totals(), (3, 4));
        assert_eq!(v.latencies_us.len(), 3, "a repeat is no latency sample");
    }

    #[test]
    fn a_switch_between_layers_is_not_loss_but_gaps_within_a_layer_are() {
        let mut v = Verified::default();
        // Layer 2 from 100, one lost (102); switched to layer 0 at its 7000; back to layer 2
        // at 300 (what it sent meanwhile was not forwarded), one lost (302).
        let runs = [
            (2, vec![100u64, 101, 103]),
            (0, vec![7000, 7001]),
            (2, vec![300, 301, 303]),
        ];
        for (layer, seqs) in runs {
            for seq in seqs {
                let p = conclave_client::payload(100, None, layer_counter(layer, seq));
                v.record(9, &p, conclave_client::unix_micros());
            }
        }
        assert_eq!(v.totals(), (8, 10));
    }

    #[test]
    fn percentiles() {
        let mut s: Vec<u32> = (1..=100).collect();
        let p = Percentiles::of(&mut s);
        assert_eq!((p.p50_us, p.p99_us, p.max_us), (51, 99, 100));
    }
}
