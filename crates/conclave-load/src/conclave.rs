//! Driving one simulated participant through Conclave's signaling (docs/protocol.md): join, offer
//! what it publishes, re-offer with more receive slots whenever the server asks for them, send
//! `view` as the web client does for its layout, and follow `publish_layers`.

use std::net::SocketAddr;
use std::time::Duration;

use conclave_proto::{ClientMessage, PROTOCOL_VERSION, ServerMessage, SlotCounts};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::LoadError;
use crate::media::{Cmd, MediaHandle};
use crate::view::{Layout, Screen};

/// Least time between two `view` messages (the web client sends at most about three a second).
const VIEW_INTERVAL: Duration = Duration::from_millis(300);

/// How a simulated participant behaves in the meeting.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// With a layout it sends `view` for it; without, it receives everyone (up to last-N).
    pub layout: Option<Layout>,
    /// It declares that it cannot encrypt end to end.
    pub plain: bool,
}

/// One participant's signaling; returns when `stop` turns true (after leaving) or on failure.
pub async fn participant(
    server: SocketAddr,
    room: String,
    name: String,
    media: MediaHandle,
    slot: usize,
    behaviour: Behaviour,
    mut stop: watch::Receiver<bool>,
) -> Result<(), LoadError> {
    let Behaviour { layout, plain } = behaviour;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{server}/ws"))
        .await
        .map_err(|e| LoadError::Signaling(e.to_string()))?;
    let join = ClientMessage::Join {
        version: PROTOCOL_VERSION,
        room,
        name,
        resume: None,
        password: None,
        token: None,
        sealed_name: None,
        // A simulated participant never encrypts; declaring it lets encrypting browsers show its
        // video (they pass unencrypted frames through while such a participant is present).
        e2ee: plain.then_some(false),
    };
    ws.send(text(&join)).await.map_err(ws_err)?;
    let mut wanted = SlotCounts::default();
    let mut have = SlotCounts::default();
    let mut offered = false;
    let mut pending = false;
    let mut joined = false;
    let mut screen = layout.map(Screen::new);
    let mut view_sent: Option<Vec<conclave_proto::TileView>> = None;
    let mut view_due: Option<tokio::time::Instant> = None;
    let mut next_view = tokio::time::Instant::now();
    loop {
        if joined
            && view_due.is_none()
            && let Some(s) = &screen
            && view_sent.as_ref() != Some(&s.view())
        {
            view_due = Some(next_view.max(tokio::time::Instant::now()));
        }
        if joined
            && !pending
            && (!offered || have.audio < wanted.audio || have.video < wanted.video)
        {
            let (tx, rx) = oneshot::channel();
            media.send(Cmd::Offer {
                slot,
                add_audio: wanted.audio.saturating_sub(have.audio),
                add_video: wanted.video.saturating_sub(have.video),
                reply: tx,
            });
            let offer = rx.await.map_err(|_| LoadError::MediaGone)??;
            offered = true;
            have.audio = have.audio.max(wanted.audio);
            have.video = have.video.max(wanted.video);
            if let Some(sdp) = offer {
                ws.send(text(&ClientMessage::Offer {
                    sdp,
                    screen_mid: None,
                }))
                .await
                .map_err(ws_err)?;
                pending = true;
            }
        }
        let view_wait = async {
            match view_due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = view_wait => {
                view_due = None;
                next_view = tokio::time::Instant::now() + VIEW_INTERVAL;
                if let Some(s) = &screen {
                    let tiles = s.view();
                    ws.send(text(&ClientMessage::View { tiles: tiles.clone() }))
                        .await
                        .map_err(ws_err)?;
                    view_sent = Some(tiles);
                }
            }
            _ = stop.changed() => {
                let _ = ws.send(text(&ClientMessage::Leave)).await;
                let _ = ws.close(None).await;
                return Ok(());
            }
            msg = ws.next() => {
                let Some(msg) = msg else {
                    return Err(LoadError::Signaling("server closed the connection".into()));
                };
                let Message::Text(t) = msg.map_err(ws_err)? else { continue };
                let m: ServerMessage = serde_json::from_str(t.as_str())
                    .map_err(|e| LoadError::Signaling(e.to_string()))?;
                match m {
                    ServerMessage::Welcome { participant_id, participants, .. } => {
                        joined = true;
                        if let Some(s) = screen.as_mut() {
                            for p in participants {
                                s.joined(p.id);
                            }
                            s.set_me(participant_id);
                        }
                    }
                    ServerMessage::ParticipantJoined { participant } => {
                        if let Some(s) = screen.as_mut() {
                            s.joined(participant.id);
                        }
                    }
                    ServerMessage::ParticipantLeft { participant_id } => {
                        if let Some(s) = screen.as_mut() {
                            s.left(&participant_id);
                        }
                    }
                    ServerMessage::ActiveSpeaker { participant_id } => {
                        if let Some(s) = screen.as_mut() {
                            s.set_speaker(participant_id);
                        }
                    }
                    ServerMessage::PublishLayers { mid, active } => {
                        media.send(Cmd::PublishLayers { slot, mid, active });
                    }
                    ServerMessage::Answer { sdp } => {
                        let (tx, rx) = oneshot::channel();
                        media.send(Cmd::Answer { slot, sdp, reply: tx });
                        rx.await.map_err(|_| LoadError::MediaGone)??;
                        pending = false;
                    }
                    ServerMessage::Subscriptions { slots, .. } => wanted = slots,
                    ServerMessage::Error { code, message } => {
                        return Err(LoadError::Refused(format!("{code:?}: {message}")));
                    }
                    _ => {}
                }
            }
        }
    }
}

fn text(m: &ClientMessage) -> Message {
    Message::text(serde_json::to_string(m).expect("protocol messages serialize"))
}

fn ws_err(e: tokio_tungstenite::tungstenite::Error) -> LoadError {
    LoadError::Signaling(e.to_string())
}
