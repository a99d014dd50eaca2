//! Panic containment in a media worker. A worker thread carries many rooms; a panic that ended
//! it would end all of them. Remote input reaches deep into str0m (SDP, RTP, RTCP, DTLS), and a
//! bug there that a participant's packets can trigger must cost that participant its transport,
//! not the server its meetings.
//!
//! Two rings:
//! - **A participant**: every call into a participant's transport, and the handling of what it
//!   reports, runs under [`peer`] (or [`Peer::guarded`]). A panic marks that participant's
//!   transport failed; the worker closes it and the participant's signaling connection, and the
//!   client reconnects with its resume token to a fresh transport. The rest of the room goes on.
//! - **A room**: anything else that panics while a room is handled (the room core itself) closes
//!   that room; its participants' clients reconnect and open it afresh. Other rooms go on.
//!
//! Catching costs nothing until something panics (no code runs on the way in). State left
//! behind by a panic is never used again: a failed transport is dropped unpolled, a failed room
//! is dropped whole.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use conclave_room::Pid;
use str0m::Input;

use super::peer::Peer;
use super::worker::RoomHost;

thread_local! {
    /// A participant's transport failed since the worker last looked: it then looks for which.
    static FAILED: Cell<bool> = const { Cell::new(false) };
}

/// Whether a transport failed since the last call.
pub(super) fn take_failed() -> bool {
    FAILED.with(|f| f.replace(false))
}

impl Peer {
    /// Run `f` on this participant's transport; `None` if it panicked (or had already failed).
    pub(super) fn guarded<T>(&mut self, f: impl FnOnce(&mut Peer) -> T) -> Option<T> {
        if self.failed {
            return None;
        }
        match catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(v) => Some(v),
            Err(_) => {
                self.fail();
                None
            }
        }
    }

    /// Give the transport the time (str0m needs it to let written media out and to run its
    /// timers), inside the participant's ring; an error ends the transport.
    pub(super) fn give_time(&mut self, now: Instant) {
        if let Some(Err(_)) = self.guarded(|p| p.rtc.handle_input(Input::Timeout(now))) {
            self.dead = true;
        }
    }

    /// Let out the media written to the transport since it last had the time, without the rest
    /// of a timeout (str0m's `release_written`): its timers run when they are due, as the
    /// transport's next timeout asks. Where str0m cannot (with a bandwidth estimator, a stream
    /// not yet started), the whole time is given.
    pub(super) fn release_written(&mut self, now: Instant) {
        match self.guarded(|p| p.rtc.release_written(now)) {
            Some(true) | None => {}
            Some(false) => self.give_time(now),
        }
    }

    fn fail(&mut self) {
        self.failed = true;
        self.dead = true;
        self.next_timeout = None;
        FAILED.with(|f| f.set(true));
    }
}

/// Run `f`, which handles participant `pid` of the room (its transport and what it reported);
/// a panic in it fails that participant's transport.
pub(super) fn peer(host: &mut RoomHost, pid: Pid, f: impl FnOnce(&mut RoomHost)) {
    if host.peers.get(&pid).is_some_and(|p| p.failed) {
        return;
    }
    if catch_unwind(AssertUnwindSafe(|| f(host))).is_err()
        && let Some(p) = host.peers.get_mut(&pid)
    {
        p.fail();
    }
}

/// Run `f`; `false` if it panicked.
pub(super) fn room<W>(w: &mut W, f: impl FnOnce(&mut W)) -> bool {
    catch_unwind(AssertUnwindSafe(|| f(w))).is_ok()
}
