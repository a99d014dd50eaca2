//! Driving a Janus VideoRoom (HTTP API, no trickle) with the same simulated participants, so both
//! servers are measured by one tool. One Janus session per room carries every handle of that
//! room; one long-poll loop per session routes events to handles by their `sender`.
//!
//! Janus uses one peer connection to publish and one to subscribe, so a participant that both
//! publishes and receives is two peer connections here (Conclave uses one).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::LoadError;
use crate::http;
use crate::media::{Cmd, MediaHandle};

/// How long to wait for one Janus event before giving up on a handle.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

type Routes = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Value>>>>;

/// One Janus session, shared by every handle of a room.
#[derive(Clone)]
pub struct Session {
    addr: SocketAddr,
    id: u64,
    routes: Routes,
    transactions: Arc<AtomicU64>,
}

/// A published feed: its Janus id.
#[derive(Debug, Clone, Copy)]
pub struct Feed(pub u64);

impl Session {
    /// Create a session and start its long-poll loop, which runs until `stop` turns true.
    pub async fn create(addr: SocketAddr, stop: watch::Receiver<bool>) -> Result<Self, LoadError> {
        let s = Self {
            addr,
            id: 0,
            routes: Arc::default(),
            transactions: Arc::default(),
        };
        let r = s.post("/janus", json!({"janus": "create"})).await?;
        let id = r["data"]["id"]
            .as_u64()
            .ok_or_else(|| LoadError::Signaling(format!("create session: {r}")))?;
        let s = Self { id, ..s };
        tokio::spawn(s.clone().long_poll(stop));
        Ok(s)
    }

    async fn post(&self, path: &str, mut body: Value) -> Result<Value, LoadError> {
        let t = self.transactions.fetch_add(1, Ordering::Relaxed);
        body["transaction"] = json!(format!("t{t}"));
        let text = http::request(self.addr, "POST", path, Some(&body.to_string())).await?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| LoadError::Signaling(e.to_string()))?;
        if v["janus"] == "error" {
            return Err(LoadError::Refused(v["error"].to_string()));
        }
        Ok(v)
    }

    async fn long_poll(self, mut stop: watch::Receiver<bool>) {
        let path = format!("/janus/{}?maxev=20", self.id);
        loop {
            let req = http::request(self.addr, "GET", &path, None);
            let text = tokio::select! {
                _ = stop.changed() => return,
                r = req => r,
            };
            let Ok(text) = text else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let events = match v {
                Value::Array(a) => a,
                other => vec![other],
            };
            let routes = self.routes.lock().expect("routes lock");
            for ev in events {
                if let Some(tx) = ev["sender"].as_u64().and_then(|h| routes.get(&h)) {
                    let _ = tx.send(ev);
                }
            }
        }
    }

    /// Attach a VideoRoom handle; events for it arrive on the returned receiver.
    pub async fn attach(&self) -> Result<Handle, LoadError> {
        let r = self
            .post(
                &format!("/janus/{}", self.id),
                json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
            )
            .await?;
        let id = r["data"]["id"]
            .as_u64()
            .ok_or_else(|| LoadError::Signaling(format!("attach: {r}")))?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes.lock().expect("routes lock").insert(id, tx);
        Ok(Handle {
            session: self.clone(),
            id,
            events: rx,
        })
    }

    /// Create a room for `publishers` publishers.
    pub async fn create_room(&self, room: u64, publishers: usize) -> Result<(), LoadError> {
        let h = self.attach().await?;
        let body = json!({
            "request": "create",
            "room": room,
            "publishers": publishers.max(1),
            // No bitrate cap and no periodic keyframe requests: the same forwarding work as
            // Conclave does.
            "bitrate": 0,
            "fir_freq": 0,
            "audiocodec": "opus",
            "videocodec": "vp8",
            "audiolevel_ext": true,
            "notify_joining": false,
        });
        let r = h.message(body, None).await?;
        match r["plugindata"]["data"]["videoroom"].as_str() {
            Some("created") => Ok(()),
            _ => Err(LoadError::Refused(format!("create room: {r}"))),
        }
    }
}

pub struct Handle {
    session: Session,
    id: u64,
    events: mpsc::UnboundedReceiver<Value>,
}

impl Handle {
    async fn message(&self, body: Value, jsep: Option<Value>) -> Result<Value, LoadError> {
        let mut msg = json!({"janus": "message", "body": body});
        if let Some(j) = jsep {
            msg["jsep"] = j;
        }
        let path = format!("/janus/{}/{}", self.session.id, self.id);
        self.session.post(&path, msg).await
    }

    /// The next plugin event carrying `jsep` (an SDP), skipping others (`webrtcup`, `media`...).
    async fn event_with_jsep(&mut self) -> Result<Value, LoadError> {
        loop {
            let ev = tokio::time::timeout(EVENT_TIMEOUT, self.events.recv())
                .await
                .map_err(|_| LoadError::Signaling("no answer from Janus".into()))?
                .ok_or(LoadError::MediaGone)?;
            if let Some(err) = ev["plugindata"]["data"].get("error") {
                return Err(LoadError::Refused(err.to_string()));
            }
            if ev.get("jsep").is_some() {
                return Ok(ev);
            }
        }
    }

    /// Join `room` as a publisher with the offer of the participant in `slot`; returns its feed.
    pub async fn publish(
        mut self,
        room: u64,
        name: &str,
        media: &MediaHandle,
        slot: usize,
    ) -> Result<Feed, LoadError> {
        let (tx, rx) = oneshot::channel();
        media.send(Cmd::Offer {
            slot,
            add_audio: 0,
            add_video: 0,
            reply: tx,
        });
        let offer = rx
            .await
            .map_err(|_| LoadError::MediaGone)??
            .ok_or_else(|| LoadError::Signaling("nothing to publish".into()))?;
        let body = json!({
            "request": "joinandconfigure",
            "room": room,
            "ptype": "publisher",
            "display": name,
        });
        // Simulcast layers are offered lowest first, as browsers list the web client's; Janus
        // assumes highest first unless told.
        let jsep = json!({"type": "offer", "sdp": offer, "trickle": false, "rid_order": "lmh"});
        self.message(body, Some(jsep)).await?;
        let ev = self.event_with_jsep().await?;
        let feed = ev["plugindata"]["data"]["id"]
            .as_u64()
            .ok_or_else(|| LoadError::Signaling(format!("joined without id: {ev}")))?;
        let sdp = ev["jsep"]["sdp"].as_str().unwrap_or_default().to_owned();
        let (tx, rx) = oneshot::channel();
        media.send(Cmd::Answer {
            slot,
            sdp,
            reply: tx,
        });
        rx.await.map_err(|_| LoadError::MediaGone)??;
        Ok(Feed(feed))
    }

    /// Subscribe the participant in `slot` to `feeds` (one peer connection for all of them).
    pub async fn subscribe(
        mut self,
        room: u64,
        feeds: &[Feed],
        media: &MediaHandle,
        slot: usize,
    ) -> Result<(), LoadError> {
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f.0})).collect();
        let body = json!({
            "request": "join",
            "room": room,
            "ptype": "subscriber",
            "streams": streams,
        });
        self.message(body, None).await?;
        let ev = self.event_with_jsep().await?;
        let sdp = ev["jsep"]["sdp"].as_str().unwrap_or_default().to_owned();
        let (tx, rx) = oneshot::channel();
        media.send(Cmd::AcceptOffer {
            slot,
            sdp,
            reply: tx,
        });
        let answer = rx.await.map_err(|_| LoadError::MediaGone)??;
        let jsep = json!({"type": "answer", "sdp": answer, "trickle": false});
        self.message(json!({"request": "start"}), Some(jsep))
            .await?;
        Ok(())
    }
}
