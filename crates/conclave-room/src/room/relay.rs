//! Opaque relay between participants of one room: the end-to-end encryption layer's only
//! channel through the server. The room routes `data` by participant id and never looks inside.

use conclave_proto::{ParticipantId, ServerMessage};

use super::{Output, Pid, Room};

impl Room {
    /// Deliver `data` from `from` to the participant `to`, or to everyone else when `to` is
    /// `None`. A `to` that is not in the room (it may just have left) is dropped silently; a
    /// participant never receives its own relay.
    pub fn relay(&mut self, from: Pid, to: Option<&ParticipantId>, data: String) {
        // Knockers in the lobby are not part of the meeting: they neither send nor receive.
        let Some(sender) = self.participants.get(&from).filter(|p| p.admitted) else {
            return;
        };
        let msg = ServerMessage::Relay {
            from: sender.id.clone(),
            data,
        };
        match to {
            Some(id) => {
                let target = self
                    .participants
                    .iter()
                    .find(|(pid, p)| **pid != from && p.admitted && p.id == *id)
                    .map(|(pid, _)| *pid);
                if let Some(pid) = target {
                    self.outputs.push_back(Output::Signal { to: pid, msg });
                }
            }
            None => self.broadcast_except(from, msg),
        }
    }
}
