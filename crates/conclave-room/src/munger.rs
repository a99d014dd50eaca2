//! Rewriting of sequence numbers, timestamps and VP8 picture numbering so that a receive slot is
//! one continuous RTP stream even when the track it carries changes (a simulcast layer switch, a
//! participant leaves and the slot is reused, a publisher reconnects).

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
    /// VP8 picture numbering, continued across sources like the sequence numbers.
    vp8: Vp8Numbering,
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
            vp8: Vp8Numbering::default(),
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
        self.vp8.new_source();
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

    /// Renumber the VP8 payload descriptor of a packet just mapped to `out` by [`Munger::start`]
    /// or [`Munger::map`]. Each simulcast layer (each source) numbers its pictures on its own;
    /// the receiver must see one sequence, or its decoder takes the jump for lost pictures. The
    /// first picture of a new source follows the last one sent, and the rest of the source keeps
    /// that offset, so reordered and retransmitted packets get the same numbers every time.
    pub fn rewrite_vp8(&mut self, out: SeqTs, ids: Vp8Ids) -> Vp8Ids {
        self.vp8.rewrite(out.seq, ids)
    }

    fn note_out(&mut self, out: SeqTs) {
        match self.last_out {
            Some(last) if last.seq >= out.seq => {}
            _ => self.last_out = Some(out),
        }
    }
}

/// A VP8 PictureID (RFC 7741 section 4.2), 7 or 15 bits wide on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureId {
    pub value: u16,
    /// Carried in 15 bits (two bytes, M bit set); else in 7.
    pub wide: bool,
}

/// The picture numbering fields of a VP8 payload descriptor, each present or not; read from an
/// incoming packet, or to be written into an outgoing one (same fields, same widths).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vp8Ids {
    pub picture_id: Option<PictureId>,
    /// Index of the last picture of temporal layer 0.
    pub tl0_pic_idx: Option<u8>,
    /// Key index (5 bits): changes at every keyframe.
    pub key_idx: Option<u8>,
}

/// Moduli of the three fields; the PictureID is computed in 15 bits whatever its width, which
/// keeps a 7-bit one continuous too (128 divides 32768).
const PICTURE_ID_MOD: u32 = 1 << 15;
const KEY_IDX_MOD: u8 = 1 << 5;

/// Per-slot VP8 renumbering: last values sent, and the offsets of the current source. An offset
/// is fixed at the first packet of a source that carries its field.
#[derive(Debug, Clone, Default)]
struct Vp8Numbering {
    /// Output sequence number of the newest packet the `last_*` values come from.
    last_seq: Option<u64>,
    last_picture_id: Option<u16>,
    last_tl0: Option<u8>,
    last_key_idx: Option<u8>,
    picture_id_offset: Option<u32>,
    tl0_offset: Option<u8>,
    key_idx_offset: Option<u8>,
}

impl Vp8Numbering {
    fn new_source(&mut self) {
        self.picture_id_offset = None;
        self.tl0_offset = None;
        self.key_idx_offset = None;
    }

    fn rewrite(&mut self, seq: u64, ids: Vp8Ids) -> Vp8Ids {
        let picture_id = ids.picture_id.map(|p| {
            let value = u32::from(p.value) % PICTURE_ID_MOD;
            let offset = *self.picture_id_offset.get_or_insert_with(|| {
                // The first picture of a source follows the last one sent; nothing sent yet:
                // keep the publisher's numbers.
                self.last_picture_id.map_or(0, |last| {
                    (u32::from(last) + 1 + PICTURE_ID_MOD - value) % PICTURE_ID_MOD
                })
            });
            let modulus = if p.wide { PICTURE_ID_MOD } else { 1 << 7 };
            PictureId {
                value: ((value + offset) % modulus) as u16,
                wide: p.wide,
            }
        });
        let tl0_pic_idx = ids.tl0_pic_idx.map(|t| {
            let offset = *self.tl0_offset.get_or_insert_with(|| {
                self.last_tl0
                    .map_or(0, |last| last.wrapping_add(1).wrapping_sub(t))
            });
            t.wrapping_add(offset)
        });
        let key_idx = ids.key_idx.map(|k| {
            let k = k % KEY_IDX_MOD;
            let offset = *self.key_idx_offset.get_or_insert_with(|| {
                self.last_key_idx
                    .map_or(0, |last| (last + 1 + KEY_IDX_MOD - k) % KEY_IDX_MOD)
            });
            (k + offset) % KEY_IDX_MOD
        });
        // Only the newest packet sets what the next source continues from: a late retransmission
        // of an older picture must not pull the numbering back.
        if self.last_seq.is_none_or(|last| seq >= last) {
            self.last_seq = Some(seq);
            if let Some(p) = picture_id {
                self.last_picture_id = Some(p.value);
            }
            if tl0_pic_idx.is_some() {
                self.last_tl0 = tl0_pic_idx;
            }
            if key_idx.is_some() {
                self.last_key_idx = key_idx;
            }
        }
        Vp8Ids {
            picture_id,
            tl0_pic_idx,
            key_idx,
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

    fn wide(value: u16) -> Option<PictureId> {
        Some(PictureId { value, wide: true })
    }

    /// One VP8 packet of a source: picture `pid`, TL0PICIDX `tl0`, KEYIDX `key`.
    fn ids(picture_id: Option<PictureId>, tl0: u8, key: u8) -> Vp8Ids {
        Vp8Ids {
            picture_id,
            tl0_pic_idx: Some(tl0),
            key_idx: Some(key),
        }
    }

    /// A publisher's simulcast layer: its own numbering of sequence, timestamp and pictures.
    struct Layer {
        seq: u64,
        ts: u32,
        picture_id: u16,
        tl0: u8,
        key: u8,
        wide: bool,
    }

    impl Layer {
        /// The next picture, in two packets; a keyframe changes the key index.
        fn picture(&mut self, keyframe: bool) -> [(SeqTs, Vp8Ids); 2] {
            let modulus = if self.wide { 1 << 15 } else { 1 << 7 };
            self.picture_id = (self.picture_id + 1) % modulus;
            self.tl0 = self.tl0.wrapping_add(1);
            if keyframe {
                self.key = (self.key + 1) % 32;
            }
            self.ts = self.ts.wrapping_add(3000);
            let pid = Some(PictureId {
                value: self.picture_id,
                wide: self.wide,
            });
            let mut packet = || {
                self.seq += 1;
                (st(self.seq, self.ts), ids(pid, self.tl0, self.key))
            };
            [packet(), packet()]
        }
    }

    #[test]
    fn vp8_numbering_continuous_across_many_switches() {
        // Unrelated numbering per layer, one close to the 15-bit wrap, one 7-bit.
        let mut layers = [
            Layer {
                seq: 100,
                ts: 7,
                picture_id: 32_700,
                tl0: 250,
                key: 30,
                wide: true,
            },
            Layer {
                seq: 60_000,
                ts: u32::MAX - 9000,
                picture_id: 5,
                tl0: 9,
                key: 3,
                wide: true,
            },
            Layer {
                seq: 9,
                ts: 1 << 31,
                picture_id: 120,
                tl0: 77,
                key: 0,
                wide: false,
            },
        ];
        let mut m = Munger::new(3000);
        let mut current = None;
        let mut last: Option<Vp8Ids> = None;
        let mut switches = 0;
        // A fixed pseudo-random walk over the layers, switching at keyframes.
        let mut state = 12345u32;
        for frame in 0..3000 {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let target = ((state >> 16) % 3) as usize;
            let switch = frame % 7 == 0 && current != Some(target);
            let mut pictures: Vec<_> = layers.iter_mut().map(|l| l.picture(switch)).collect();
            let layer = if switch {
                target
            } else {
                current.unwrap_or(target)
            };
            if switch {
                switches += 1;
                current = Some(layer);
                m.reset_source();
            }
            let first_packet = pictures.remove(layer);
            for (i, (input, vp8)) in first_packet.into_iter().enumerate() {
                let out = if switch && i == 0 {
                    m.start(input)
                } else {
                    m.map(input).expect("packet of the current source")
                };
                let got = m.rewrite_vp8(out, vp8);
                if let Some(prev) = last {
                    let p = got.picture_id.unwrap();
                    let q = prev.picture_id.unwrap();
                    let modulus = if p.wide { 1 << 15 } else { 1 << 7 };
                    if i == 0 {
                        // A new picture: exactly one more than the last, whatever the layer.
                        assert_eq!(p.value, (q.value + 1) % modulus, "frame {frame}");
                        assert_eq!(got.tl0_pic_idx, prev.tl0_pic_idx.map(|t| t.wrapping_add(1)));
                        let key_step = u8::from(switch);
                        assert_eq!(got.key_idx, prev.key_idx.map(|k| (k + key_step) % 32));
                    } else {
                        assert_eq!(got, prev, "packets of one picture share its numbers");
                    }
                }
                last = Some(got);
            }
        }
        assert!(switches > 100);
    }

    #[test]
    fn vp8_numbering_wraps_in_15_and_7_bits() {
        let mut m = Munger::new(3000);
        let a = m.start(st(10, 0));
        assert_eq!(
            m.rewrite_vp8(a, ids(wide(32_767), 255, 31)),
            ids(wide(32_767), 255, 31)
        );
        let b = m.map(st(11, 3000)).unwrap();
        assert_eq!(m.rewrite_vp8(b, ids(wide(0), 0, 0)), ids(wide(0), 0, 0));
        // Switch to a source whose numbers are far away: continues at 1.
        m.reset_source();
        let c = m.start(st(500, 90_000));
        assert_eq!(
            m.rewrite_vp8(c, ids(wide(20_000), 3, 7)),
            ids(wide(1), 1, 1)
        );
        let d = m.map(st(501, 93_000)).unwrap();
        assert_eq!(
            m.rewrite_vp8(d, ids(wide(20_001), 4, 7)),
            ids(wide(2), 2, 1)
        );

        // 7-bit PictureIDs wrap at 128, and a switch continues in 7 bits.
        let short = |value| Some(PictureId { value, wide: false });
        let mut m = Munger::new(3000);
        let a = m.start(st(1, 0));
        assert_eq!(
            m.rewrite_vp8(a, ids(short(127), 1, 0)).picture_id,
            short(127)
        );
        m.reset_source();
        let b = m.start(st(900, 0));
        assert_eq!(m.rewrite_vp8(b, ids(short(40), 1, 0)).picture_id, short(0));
        let c = m.map(st(901, 3000)).unwrap();
        assert_eq!(m.rewrite_vp8(c, ids(short(41), 2, 0)).picture_id, short(1));
    }

    #[test]
    fn vp8_fields_absent_stay_absent_and_late_packets_keep_their_numbers() {
        let mut m = Munger::new(3000);
        let a = m.start(st(1, 0));
        // Minimal descriptor (no PictureID, TL0PICIDX or KEYIDX): nothing to rewrite.
        assert_eq!(m.rewrite_vp8(a, Vp8Ids::default()), Vp8Ids::default());
        // The fields appear later: the source's first numbers are kept (nothing sent before).
        let b = m.map(st(2, 3000)).unwrap();
        assert_eq!(m.rewrite_vp8(b, ids(wide(50), 8, 2)), ids(wide(50), 8, 2));
        let c = m.map(st(3, 6000)).unwrap();
        assert_eq!(m.rewrite_vp8(c, ids(wide(51), 9, 2)), ids(wide(51), 9, 2));
        // A retransmission of an older packet gets the same numbers as the first time, and does
        // not move where the next source continues from.
        let b2 = m.map(st(2, 3000)).unwrap();
        assert_eq!(m.rewrite_vp8(b2, ids(wide(50), 8, 2)), ids(wide(50), 8, 2));
        m.reset_source();
        let d = m.start(st(7000, 0));
        assert_eq!(
            m.rewrite_vp8(d, ids(wide(9), 200, 17)),
            ids(wide(52), 10, 3)
        );
        // Only the PictureID present: the others stay absent.
        let e = m.map(st(7001, 3000)).unwrap();
        let only = Vp8Ids {
            picture_id: wide(10),
            ..Vp8Ids::default()
        };
        assert_eq!(
            m.rewrite_vp8(e, only),
            Vp8Ids {
                picture_id: wide(53),
                ..Vp8Ids::default()
            }
        );
    }
}
