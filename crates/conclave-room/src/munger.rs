//! Rewriting of sequence numbers and timestamps so that a receive slot is one continuous RTP stream
//! even when the track it carries changes (a participant leaves and the slot is reused, a publisher
//! reconnects, later a simulcast layer switch).

/// RTP sequence number and timestamp of one packet, as received (extended sequence number) or as
/// to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqTs {
    pub seq: u64,
    pub ts: u32,
}

/// Per-slot rewriting state.
#[derive(Debug, Clone)]
pub struct Munger {
    /// Last packet sent on this slot, if any.
    last_out: Option<SeqTs>,
    /// Active mapping: first input packet of the current source and what it maps to.
    mapping: Option<Mapping>,
    /// Timestamp step inserted between two sources, so the receiver sees time advance.
    ts_gap: u32,
}

#[derive(Debug, Clone, Copy)]
struct Mapping {
    first_in: SeqTs,
    first_out: SeqTs,
}

impl Munger {
    /// `ts_gap`: RTP time units between the last packet of one source and the first of the next
    /// (one video frame at 90 kHz is 3000; 20 ms of Opus is 960).
    pub fn new(ts_gap: u32) -> Self {
        Self {
            last_out: None,
            mapping: None,
            ts_gap,
        }
    }

    /// Forget the current source; the next packet passed to [`Munger::start`] begins a new one.
    pub fn reset_source(&mut self) {
        self.mapping = None;
    }

    /// Whether a source is mapped.
    pub fn is_mapped(&self) -> bool {
        self.mapping.is_some()
    }

    /// Begin a new source at this packet (the first one forwarded from it) and return its output.
    pub fn start(&mut self, input: SeqTs) -> SeqTs {
        let first_out = match self.last_out {
            // Sequence numbers start at 1: the ROC stays 0 so no out-of-band signalling is needed.
            None => SeqTs {
                seq: 1,
                ts: input.ts,
            },
            Some(last) => SeqTs {
                seq: last.seq + 1,
                ts: last.ts.wrapping_add(self.ts_gap),
            },
        };
        self.mapping = Some(Mapping {
            first_in: input,
            first_out,
        });
        self.note_out(first_out);
        first_out
    }

    /// Map a packet of the current source. `None` when no source is mapped or the packet predates
    /// the start of the current source (it would collide with numbers already used).
    pub fn map(&mut self, input: SeqTs) -> Option<SeqTs> {
        let m = self.mapping?;
        if input.seq < m.first_in.seq {
            return None;
        }
        let out = SeqTs {
            seq: m.first_out.seq + (input.seq - m.first_in.seq),
            ts: m
                .first_out
                .ts
                .wrapping_add(input.ts.wrapping_sub(m.first_in.ts)),
        };
        self.note_out(out);
        Some(out)
    }

    fn note_out(&mut self, out: SeqTs) {
        match self.last_out {
            Some(last) if last.seq >= out.seq => {}
            _ => self.last_out = Some(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(seq: u64, ts: u32) -> SeqTs {
        SeqTs { seq, ts }
    }

    #[test]
    fn continuous_across_sources() {
        let mut m = Munger::new(3000);
        assert_eq!(m.map(st(500, 10)), None);
        assert_eq!(m.start(st(500, 10)), st(1, 10));
        assert_eq!(m.map(st(501, 3010)), st(2, 3010).into());
        // Reordered packet from before the start is refused.
        assert_eq!(m.map(st(499, 0)), None);
        // A retransmitted/reordered packet within the source maps consistently.
        assert_eq!(m.map(st(500, 10)), st(1, 10).into());
        // New source with unrelated numbers continues after the last output.
        m.reset_source();
        assert!(!m.is_mapped());
        assert_eq!(m.start(st(70_000, u32::MAX - 5)), st(3, 3010 + 3000));
        // Timestamp wraps in the input: output keeps advancing by the same amount.
        assert_eq!(m.map(st(70_001, 2994)), st(4, 6010 + 3000).into());
    }
}
