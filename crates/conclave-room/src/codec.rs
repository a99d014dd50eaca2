//! The few codec bytes the forwarding core reads: whether an RTP packet starts a keyframe.
//!
//! Only the payload descriptor and the first byte of the VP8 payload header are read; these stay in
//! the clear under end-to-end encryption (the encryption transform leaves them untouched).

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

#[cfg(test)]
mod tests {
    use super::*;

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
