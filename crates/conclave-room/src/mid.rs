//! A media identifier (SDP `a=mid`) as a small `Copy` value, so the hot path never allocates.

use std::fmt;

/// SDP media identifier of at most 16 bytes (the same bound WebRTC stacks use).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mid {
    len: u8,
    bytes: [u8; 16],
}

impl Mid {
    /// `None` when `s` is empty or longer than 16 bytes.
    pub fn new(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > 16 {
            return None;
        }
        let mut bytes = [0; 16];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(Self {
            len: s.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Constructed only from a &str, and the slice ends on the original string's end.
        std::str::from_utf8(&self.bytes[..self.len as usize]).expect("Mid holds valid UTF-8")
    }
}

impl fmt::Debug for Mid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mid({})", self.as_str())
    }
}

impl fmt::Display for Mid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(Mid::new("0").unwrap().as_str(), "0");
        assert_eq!(
            Mid::new("sixteen_bytes_ok").unwrap().as_str(),
            "sixteen_bytes_ok"
        );
        assert!(Mid::new("").is_none());
        assert!(Mid::new("seventeen_bytes_x").is_none());
    }
}
