//! Random identifiers and secrets.

use rand::Rng;

/// `len` random characters from a 32-letter alphabet (5 bits each).
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Opaque participant id: carries nothing about the person or their address.
pub fn participant_id() -> String {
    format!("p{}", random_token(12))
}

/// Resume secret: 26 characters, about 130 bits.
pub fn resume_token() -> String {
    random_token(26)
}
