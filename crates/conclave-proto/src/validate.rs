//! Validation of names a client chooses.

use thiserror::Error;

/// Paths served by Conclave itself, never rooms.
const RESERVED: &[&str] = &[
    "api",
    "assets",
    "healthz",
    "readyz",
    "metrics",
    "ws",
    "privacy",
    "static",
    "whip",
    "whep",
    "admin",
    "favicon.ico",
    "robots.txt",
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RoomNameError {
    #[error("room name must be 1 to 64 characters")]
    Length,
    #[error("room name may contain only letters, digits, '-' and '_'")]
    Characters,
    #[error("'{0}' is reserved and cannot be a room name")]
    Reserved(String),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("display name must be 1 to 64 characters")]
    Length,
    #[error("display name may not contain control characters")]
    Control,
}

/// Room names: 1–64 ASCII letters, digits, `-`, `_`, not a reserved path.
pub fn validate_room_name(room: &str) -> Result<(), RoomNameError> {
    if room.is_empty() || room.len() > 64 {
        return Err(RoomNameError::Length);
    }
    if !room
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(RoomNameError::Characters);
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(room)) {
        return Err(RoomNameError::Reserved(room.to_owned()));
    }
    Ok(())
}

/// Display names: 1–64 characters (not bytes), not only whitespace, no control characters.
pub fn validate_display_name(name: &str) -> Result<(), NameError> {
    let chars = name.chars().count();
    if chars == 0 || chars > 64 || name.trim().is_empty() {
        return Err(NameError::Length);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        assert!(validate_room_name("standup").is_ok());
        assert!(validate_room_name("Team_42-x").is_ok());
        assert!(validate_room_name(&"a".repeat(64)).is_ok());
        assert_eq!(validate_room_name(""), Err(RoomNameError::Length));
        assert_eq!(
            validate_room_name(&"a".repeat(65)),
            Err(RoomNameError::Length)
        );
        assert_eq!(validate_room_name("a b"), Err(RoomNameError::Characters));
        assert_eq!(validate_room_name("ü"), Err(RoomNameError::Characters));
        assert!(matches!(
            validate_room_name("API"),
            Err(RoomNameError::Reserved(_))
        ));
        assert!(matches!(
            validate_room_name("healthz"),
            Err(RoomNameError::Reserved(_))
        ));
    }

    #[test]
    fn display_names() {
        assert!(validate_display_name("Zoë Müller").is_ok());
        assert!(validate_display_name(&"é".repeat(64)).is_ok());
        assert_eq!(validate_display_name(""), Err(NameError::Length));
        assert_eq!(validate_display_name("   "), Err(NameError::Length));
        assert_eq!(
            validate_display_name(&"x".repeat(65)),
            Err(NameError::Length)
        );
        assert_eq!(validate_display_name("a\nb"), Err(NameError::Control));
        assert_eq!(validate_display_name("a\u{7}"), Err(NameError::Control));
    }
}
