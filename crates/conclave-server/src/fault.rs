//! Test-only fault injection: with the `fault` cargo feature and `CONCLAVE_FAULT` set, the server
//! panics once at a chosen place, so a test can show that the panic costs only what it should
//! (`media/contain.rs`). Release builds are made without the feature: then these functions are
//! empty and compiled away.
//!
//! `CONCLAVE_FAULT=transport:NAME`: the transport of the participant named NAME panics on the
//! 100th RTP packet it publishes. `CONCLAVE_FAULT=room:ROOM`: the second join to room ROOM
//! panics in the worker.

/// A participant's armed fault, kept with its transport.
#[derive(Debug, Default)]
pub struct Armed {
    #[cfg(feature = "fault")]
    packets_left: Option<u32>,
}

#[cfg(not(feature = "fault"))]
impl Armed {
    pub fn on_rtp(&mut self) {}
}

#[cfg(not(feature = "fault"))]
pub fn joining(_room: &str, _name: &str, _participants: usize) -> bool {
    false
}

#[cfg(not(feature = "fault"))]
pub fn arm(_room: &str, _pid: u32) {}

#[cfg(not(feature = "fault"))]
pub fn transport(_room: &str, _pid: u32) -> Armed {
    Armed::default()
}

#[cfg(feature = "fault")]
pub use imp::{arm, joining, transport};

#[cfg(feature = "fault")]
impl Armed {
    pub fn on_rtp(&mut self) {
        if let Some(left) = &mut self.packets_left {
            if *left == 0 {
                self.packets_left = None;
                panic!("injected fault: a participant's transport");
            }
            *left -= 1;
        }
    }
}

#[cfg(feature = "fault")]
mod imp {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::Armed;

    /// Packets a faulty transport publishes before it panics.
    const PACKETS_BEFORE: u32 = 100;

    enum Fault {
        Transport(String),
        Room(String),
    }

    fn fault() -> Option<Fault> {
        let v = std::env::var("CONCLAVE_FAULT").ok()?;
        let (kind, name) = v.split_once(':')?;
        match kind {
            "transport" => Some(Fault::Transport(name.to_owned())),
            "room" => Some(Fault::Room(name.to_owned())),
            _ => None,
        }
    }

    /// Each fault fires once: a participant that reconnects, or a room opened again, works.
    static FIRED: AtomicBool = AtomicBool::new(false);
    static ARMED: Mutex<Option<(String, u32)>> = Mutex::new(None);

    /// A participant named `name` joins `room`, where `participants` are already: whether its
    /// transport is to fail ([`arm`] it once joined). The room fault fires here.
    pub fn joining(room: &str, name: &str, participants: usize) -> bool {
        match fault() {
            Some(Fault::Transport(n)) => n == name && !FIRED.swap(true, Ordering::SeqCst),
            Some(Fault::Room(r))
                if r == room && participants >= 1 && !FIRED.swap(true, Ordering::SeqCst) =>
            {
                panic!("injected fault: a room");
            }
            _ => false,
        }
    }

    pub fn arm(room: &str, pid: u32) {
        *ARMED.lock().expect("fault lock") = Some((room.to_owned(), pid));
    }

    /// The fault for a new transport of participant `pid` in `room`.
    pub fn transport(room: &str, pid: u32) -> Armed {
        let mut armed = ARMED.lock().expect("fault lock");
        if armed.as_ref().is_some_and(|(r, p)| r == room && *p == pid) {
            *armed = None;
            return Armed {
                packets_left: Some(PACKETS_BEFORE),
            };
        }
        Armed::default()
    }
}
