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

/// Spare buffers kept per thread at most (~512 KB); more are freed.
const MAX_SPARE: usize = 256;

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
            .with(|spare| spare.borrow_mut().pop())
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

        // A buffer str0m did not make (another capacity) is not kept.
        recycle_datagram(vec![0_u8; 10].into());
        let fresh = take_buffer(10);
        assert_eq!(fresh.capacity(), BUF_CAPACITY);

        // Larger than any pooled buffer: allocated to size.
        assert_eq!(take_buffer(5000).len(), 5000);
    }
}
