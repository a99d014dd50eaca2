//! The server's life after start: serving, draining (SIGTERM: meetings go on for a while, new
//! joins are refused, `/readyz` says 503), closing (every connection ends).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Serving,
    /// Meetings continue for at most `deadline_s` more seconds.
    Draining {
        deadline_s: u64,
    },
    Closing,
}

pub struct Lifecycle {
    phase: watch::Sender<Phase>,
    /// Signaling connections with a joined participant.
    sessions: AtomicUsize,
    idle: Notify,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            phase: watch::channel(Phase::Serving).0,
            sessions: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    pub fn accepting(&self) -> bool {
        self.phase() == Phase::Serving
    }

    pub fn drain(&self, timeout: Duration) {
        self.phase.send_if_modified(|p| {
            let change = *p == Phase::Serving;
            if change {
                *p = Phase::Draining {
                    deadline_s: timeout.as_secs(),
                };
            }
            change
        });
    }

    pub fn close(&self) {
        self.phase.send_replace(Phase::Closing);
    }

    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Count a joined participant's connection until the guard drops.
    pub fn session(self: &Arc<Self>) -> SessionGuard {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        SessionGuard(self.clone())
    }

    /// Resolves once no participant is connected.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.sessions() == 0 {
                return;
            }
            notified.await;
        }
    }
}

pub struct SessionGuard(Arc<Lifecycle>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.0.sessions.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
