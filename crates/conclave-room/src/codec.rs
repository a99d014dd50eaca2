//! The few codec bytes the forwarding core reads: whether an RTP packet starts a keyframe, and
//! where a redundant audio packet's primary block is.
//!
//! Only the payload descriptor and the first byte of the VP8 payload header are read; these stay in
//! the clear under end-to-end encryption (the encryption transform leaves them untouched). H.264
//! comes only from publishers that do not encrypt (WHIP encoders such as OBS Studio); its NAL
//! unit headers are read. RED block headers (RFC 2198) are read where they are in the clear.

use std::ops::Range;

/// The primary block of a RED payload (RFC 2198): its payload type and where its bytes are.
///
/// A RED payload is a chain of 4-byte headers for the redundant blocks (F bit set: payload type,
/// 14-bit timestamp offset, 10-bit length), one byte for the primary (F bit clear: payload type),
/// then the blocks' bytes in the same order; the primary takes what is left. `None` when the
/// headers run past the end or the redundant blocks are longer than the payload.
pub fn red_primary(payload: &[u8]) -> Option<(u8, Range<usize>)> {
    let mut i = 0;
    let mut redundant = 0usize;
    loop {
        let &h = payload.get(i)?;
        if h & 0x80 == 0 {
            let start = i + 1 + redundant;
            return (start <= payload.len()).then_some((h & 0x7f, start..payload.len()));
        }
        let len = payload.get(i + 2..i + 4)?;
        redundant += usize::from(len[0] & 0x03) << 8 | usize::from(len[1]);
        i += 4;
    }
}

/// Does this VP8 RTP payload (RFC 7741) start a keyframe?
///
/// True only for the first packet of a keyframe (`S=1`, partition 0, `P=0`), which is the packet
/// at which a receiver can start decoding.
pub fn vp8_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let extended = b0 & 0x80 != 0;
    let start = b0 & 0x10 != 0;
    let partition = b0 & 0x07;
    if !start || partition != 0 {
        return false;
    }
    let mut i = 1;
    if extended {
        let Some(&x) = payload.get(i) else {
            return false;
        };
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: one byte, or two when its M bit is set.
            let Some(&p) = payload.get(i) else {
                return false;
            };
            i += if p & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    match payload.get(i) {
        // Inverse key frame flag: 0 means keyframe.
        Some(&h) => h & 0x01 == 0,
        None => false,
    }
}

/// Does this H.264 RTP payload (RFC 6184) start a picture a receiver can decode from: a sequence
/// parameter set (encoders send it right before an IDR picture) or an IDR slice?
pub fn h264_starts_keyframe(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    let starts = |nal: u8| matches!(nal & 0x1f, IDR | SPS);
    let Some(&b0) = payload.first() else {
        return false;
    };
    match b0 & 0x1f {
        // STAP-A: 16-bit size, then a NAL unit, repeated.
        24 => {
            let mut i = 1;
            while let (Some(&hi), Some(&lo)) = (payload.get(i), payload.get(i + 1)) {
                let size = usize::from(hi) << 8 | usize::from(lo);
                match payload.get(i + 2) {
                    Some(&nal) if size > 0 => {
                        if starts(nal) {
                            return true;
                        }
                    }
                    _ => return false,
                }
                i += 2 + size;
            }
            false
        }
        // FU-A: the first fragment (S bit) of an IDR slice.
        28 => payload
            .get(1)
            .is_some_and(|&fu| fu & 0x80 != 0 && starts(fu)),
        1..=23 => starts(b0),
        _ => false,
    }
}

/// Give a RED payload's blocks of payload type `from` the payload type `to`, in place: the block
/// headers name the codec in the sender's numbering, and a receiver may number it differently.
/// False when the headers run past the end (nothing is changed then).
pub fn red_renumber(payload: &mut [u8], from: u8, to: u8) -> bool {
    if red_primary(payload).is_none() {
        return false;
    }
    let mut i = 0;
    while let Some(h) = payload.get_mut(i) {
        let last = *h & 0x80 == 0;
        if *h & 0x7f == from {
            *h = (*h & 0x80) | (to & 0x7f);
        }
        if last {
            break;
        }
        i += 4;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_renumbering() {
        // Redundant block of PT 111, then of PT 13 (comfort noise), primary 111.
        let mut red = [
            0x80 | 111,
            0,
            0,
            1,
            0x80 | 13,
            0,
            0,
            1,
            111,
            0xaa,
            0xbb,
            0xcc,
        ];
        assert!(red_renumber(&mut red, 111, 109));
        assert_eq!(
            red,
            [
                0x80 | 109,
                0,
                0,
                1,
                0x80 | 13,
                0,
                0,
                1,
                109,
                0xaa,
                0xbb,
                0xcc
            ]
        );
        let mut bad = [0x80 | 111, 0, 0];
        assert!(!red_renumber(&mut bad, 111, 109));
        assert_eq!(bad, [0x80 | 111, 0, 0]);
    }

    #[test]
    fn red_primary_block() {
        // One redundant block (PT 111, offset 960, 3 bytes), primary PT 111 with 4 bytes.
        let red = [
            0x80 | 111,
            (960u16 >> 6) as u8,
            ((960u16 & 0x3f) << 2) as u8,
            3,
            111,
            1,
            2,
            3,
            9,
            8,
            7,
            6,
        ];
        let (pt, range) = red_primary(&red).unwrap();
        assert_eq!(pt, 111);
        assert_eq!(&red[range], &[9, 8, 7, 6]);
        // No redundancy: just the primary header (as after a silence).
        assert_eq!(red_primary(&[111, 5, 6]), Some((111, 1..3)));
        // An empty primary is allowed.
        assert_eq!(red_primary(&[111]), Some((111, 1..1)));
        // A 10-bit length: 0x3ff bytes of redundancy, which the payload must hold.
        let mut long = vec![0x80 | 111, 0, 0x03, 0xff, 111];
        long.extend(std::iter::repeat_n(0u8, 0x3ff + 2));
        assert_eq!(red_primary(&long).map(|(_, r)| r.len()), Some(2));
        long.truncate(5 + 0x3ff - 1);
        assert_eq!(red_primary(&long), None, "redundant block past the end");
        // Truncated headers never panic.
        for len in 0..red.len() {
            let got = red_primary(&red[..len]);
            if len < 5 + 3 {
                assert_eq!(got, None, "{len}");
            }
        }
        assert_eq!(red_primary(&[]), None);
        assert_eq!(red_primary(&[0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn h264_keyframe_detection() {
        assert!(h264_starts_keyframe(&[0x67, 0x42])); // SPS
        assert!(h264_starts_keyframe(&[0x65, 0x88])); // IDR slice
        assert!(!h264_starts_keyframe(&[0x41, 0x9a])); // non-IDR slice
        assert!(!h264_starts_keyframe(&[0x68, 0xce])); // PPS alone
        // STAP-A with SPS and PPS.
        assert!(h264_starts_keyframe(&[
            0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68
        ]));
        // STAP-A with a PPS and a non-IDR slice only.
        assert!(!h264_starts_keyframe(&[
            0x78, 0x00, 0x01, 0x68, 0x00, 0x01, 0x41
        ]));
        // FU-A: first fragment of an IDR slice, then a middle one.
        assert!(h264_starts_keyframe(&[0x7c, 0x85, 0x00]));
        assert!(!h264_starts_keyframe(&[0x7c, 0x05, 0x00]));
        // Truncated input never panics.
        for len in 0..8 {
            let _ = h264_starts_keyframe(&[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68][..len]);
        }
        assert!(!h264_starts_keyframe(&[0x78, 0xff, 0xff]));
    }

    #[test]
    fn vp8_keyframe_detection() {
        // Minimal descriptor, S=1, PID=0; payload header P=0.
        assert!(vp8_starts_keyframe(&[0x10, 0x00, 0x9d, 0x01, 0x2a]));
        // Same but P=1 (interframe).
        assert!(!vp8_starts_keyframe(&[0x10, 0x01]));
        // Not the start of a partition.
        assert!(!vp8_starts_keyframe(&[0x00, 0x00]));
        // Extended: I with 15-bit picture id, L, T: then header.
        assert!(vp8_starts_keyframe(&[
            0x90, 0xe0, 0x81, 0x23, 0x05, 0x20, 0x10
        ]));
        assert!(!vp8_starts_keyframe(&[
            0x90, 0xe0, 0x81, 0x23, 0x05, 0x20, 0x11
        ]));
        // Truncated input never panics.
        for len in 0..7 {
            let _ = vp8_starts_keyframe(&[0x90, 0xe0, 0x81, 0x23, 0x05, 0x20, 0x10][..len]);
        }
        assert!(!vp8_starts_keyframe(&[]));
    }
}
