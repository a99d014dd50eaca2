//! Spare send buffers, kept per thread.
//!
//! Every encrypted RTP packet needs an owned buffer ([`DatagramSend`]). Allocating and
//! freeing one per packet (~1.2 KB, above the C allocator's per-thread cache) costs a few
//! percent of a busy forwarding server's CPU. An application that is done with a datagram
//! (it has been written to the socket) can hand it back with [`recycle_datagram`]; the next
//! packet encrypted on the same thread reuses it. Handing buffers back is optional.

use std::cell::RefCell;

use super::{DATAGRAM_MAX_PACKET_SIZE, DatagramSend};

/// Every pooled buffer has this capacity, so any of them fits any packet.
const BUF_CAPACITY: usize = DATAGRAM_MAX_PACKET_SIZE;

/// Spare buffers kept per thread at most (~4 MB). One packet forwarded to 200 receivers is 200
/// datagrams in flight, and a video frame several times that: with fewer spares, most buffers
/// were freed after the send and allocated (and zeroed) again for the next frame.
const MAX_SPARE: usize = 2048;

/// Spares looked at (from the most recently returned) for one already as long as the packet.
const LOOK_FOR_LONG: usize = 4;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Hands a sent datagram's buffer back for reuse by the next packet encrypted on this thread.
pub fn recycle_datagram(datagram: DatagramSend) {
    let buf: Vec<u8> = datagram.into();
    if buf.capacity() != BUF_CAPACITY {
        return;
    }
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < MAX_SPARE {
            spare.push(buf);
        }
    });
}

/// A buffer of `len` bytes whose contents are unspecified (zeroes or a former packet's bytes):
/// for a caller that overwrites all of them. A spare buffer is reused as it is, so only the
/// bytes beyond its old length need zeroing, not the whole packet.
pub(crate) fn take_buffer(len: usize) -> Vec<u8> {
    let mut buf = if len <= BUF_CAPACITY {
        SPARE
            .with(|spare| {
                // A spare last used for a short packet (audio) needs zeroing up to `len`. Of
                // the last few, take the shortest that is long enough (keeping the long ones
                // for long packets), or else the longest.
                let mut spare = spare.borrow_mut();
                let n = spare.len();
                // Key: whether it needs zeroing, then by how much it is too long or too short.
                let best = (n.saturating_sub(LOOK_FOR_LONG)..n)
                    .min_by_key(|&i| (spare[i].len() < len, spare[i].len().abs_diff(len)))?;
                Some(spare.swap_remove(best))
            })
            .unwrap_or_else(|| Vec::with_capacity(BUF_CAPACITY))
    } else {
        Vec::with_capacity(len)
    };
    buf.truncate(len);
    buf.resize(len, 0);
    buf
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_recycled_buffer_is_reused_and_foreign_ones_are_not_kept() {
        let buf = take_buffer(1200);
        assert_eq!(buf.len(), 1200);
        let ptr = buf.as_ptr();
        recycle_datagram(buf.into());
        let shorter = take_buffer(1000);
        assert_eq!(shorter.as_ptr(), ptr, "the spare buffer is reused");
        assert_eq!(shorter.len(), 1000);
        recycle_datagram(shorter.into());
        let longer = take_buffer(1300);
        assert_eq!(longer.as_ptr(), ptr);
        assert_eq!(longer.len(), 1300);

        // Of the spares, a long packet gets one that was long already and a short packet the
        // shortest that fits, so neither needs zeroing.
        let (long, short) = (take_buffer(1200), take_buffer(100));
        let (long_ptr, short_ptr) = (long.as_ptr(), short.as_ptr());
        recycle_datagram(long.into());
        recycle_datagram(short.into());
        let audio = take_buffer(80);
        assert_eq!(audio.as_ptr(), short_ptr);
        recycle_datagram(audio.into());
        let video = take_buffer(1100);
        assert_eq!(video.as_ptr(), long_ptr);

        // A buffer str0m did not make (another capacity) is not kept.
        recycle_datagram(vec![0_u8; 10].into());
        let fresh = take_buffer(10);
        assert_eq!(fresh.capacity(), BUF_CAPACITY);

        // Larger than any pooled buffer: allocated to size.
        assert_eq!(take_buffer(5000).len(), 5000);
    }
}
