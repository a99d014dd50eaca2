//! Which worker runs each room. A new room goes to the worker with the fewest participants, so
//! two large meetings on a two-core server run on both cores rather than, by chance, on one. A
//! room stays on its worker for as long as it is live there, and a little longer: its place is
//! forgotten only when that worker has ended it and no command for it is still on the way, so
//! the next join cannot open a second copy of the room on another worker.
//!
//! Every command to a room is numbered as it is sent. A worker that no longer has the room after
//! command `n` releases the place with `n`; the release counts only if `n` is the last number
//! sent. A later command, still queued, keeps the place, and the worker releases again after it
//! if that command did not open the room anew.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use prometheus_client::metrics::gauge::Gauge;

/// Where live rooms run (see the module's documentation).
pub struct Placement {
    rooms: Mutex<HashMap<String, Placed>>,
    /// Each worker's participants as it last counted them (lobbies included).
    participants: Vec<Gauge>,
}

#[derive(Debug, Clone, Copy)]
struct Placed {
    worker: usize,
    /// Commands sent to the room on this worker so far: the last one's number.
    sent: u64,
}

impl Placement {
    /// `participants`: one gauge per worker, which that worker keeps up to date.
    pub fn new(participants: Vec<Gauge>) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            participants,
        }
    }

    /// Route one command to `room`: `send(worker, number)` hands it to the worker, under the
    /// lock, so that numbers reach each worker in order.
    pub fn route<T>(&self, room: &str, send: impl FnOnce(usize, u64) -> T) -> T {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if !rooms.contains_key(room) {
            let worker = self.least_loaded(&rooms);
            rooms.insert(room.to_owned(), Placed { worker, sent: 0 });
        }
        let placed = rooms.get_mut(room).expect("inserted above");
        placed.sent += 1;
        send(placed.worker, placed.sent)
    }

    /// `worker` has no live `room` after the command numbered `last`: forget where it was,
    /// unless a later command is on its way there.
    pub fn release(&self, room: &str, worker: usize, last: u64) {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if rooms
            .get(room)
            .is_some_and(|p| p.worker == worker && p.sent == last)
        {
            rooms.remove(room);
        }
    }

    /// The worker for a new room: the fewest participants, then the fewest rooms placed (a
    /// worker counts its participants only now and then, and many rooms may open at once).
    fn least_loaded(&self, rooms: &HashMap<String, Placed>) -> usize {
        let workers = self.participants.len().max(1);
        let mut placed = vec![0usize; workers];
        for p in rooms.values() {
            if let Some(n) = placed.get_mut(p.worker) {
                *n += 1;
            }
        }
        (0..workers)
            .min_by_key(|&w| {
                let people = self.participants.get(w).map_or(0, |g| g.get().max(0));
                (people, placed[w], w)
            })
            .unwrap_or(0)
    }

    #[cfg(test)]
    fn worker_of(&self, room: &str) -> Option<usize> {
        let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        rooms.get(room).map(|p| p.worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(workers: usize) -> Placement {
        Placement::new((0..workers).map(|_| Gauge::default()).collect())
    }

    #[test]
    fn new_rooms_go_to_the_least_loaded_worker() {
        let p = placement(2);
        assert_eq!(p.route("a", |w, n| (w, n)), (0, 1));
        assert_eq!(
            p.route("b", |w, n| (w, n)),
            (1, 1),
            "rooms spread as they open"
        );
        assert_eq!(
            p.route("a", |w, n| (w, n)),
            (0, 2),
            "a room stays where it is"
        );
        // Worker 1 now carries more people: the next room goes to worker 0.
        p.participants[1].set(30);
        p.participants[0].set(4);
        assert_eq!(p.route("c", |w, _| w), 0);
        assert_eq!(p.route("d", |w, _| w), 0, "people count before rooms");
    }

    #[test]
    fn a_room_keeps_its_worker_while_a_command_is_on_the_way() {
        let p = placement(2);
        let (w, first) = p.route("a", |w, n| (w, n));
        // A second command is sent before the worker has handled the first, which ended the
        // room (a refused join, say): the place holds, so the second opens it on that worker.
        let (w2, second) = p.route("a", |w, n| (w, n));
        assert_eq!(w2, w);
        p.release("a", w, first);
        assert_eq!(p.worker_of("a"), Some(w));
        // Others arrive meanwhile: the load elsewhere does not move the room.
        p.participants[w].set(100);
        assert_eq!(p.route("a", |w, _| w), w);
        let third = second + 1;
        // The worker ends the room after the last command sent: the place is forgotten.
        p.release("a", w, third);
        assert_eq!(p.worker_of("a"), None);
        // Opened again, it goes to the least loaded worker.
        assert_eq!(p.route("a", |w, _| w), 1 - w);
    }

    #[test]
    fn a_release_from_another_worker_or_a_stale_number_is_ignored() {
        let p = placement(3);
        let (w, n) = p.route("a", |w, n| (w, n));
        p.release("a", (w + 1) % 3, n);
        p.release("a", w, n + 5);
        assert_eq!(p.worker_of("a"), Some(w));
        p.release("a", w, n);
        assert_eq!(p.worker_of("a"), None);
        p.release("a", w, n);
        assert_eq!(p.worker_of("a"), None, "releasing twice is harmless");
    }
}
