//! Test-only tap: with the `tap` cargo feature and `CONCLAVE_TAP_DIR` set, the server writes every
//! signaling frame it receives and a sample of the RTP payloads it forwards to files there, so a
//! test can prove what the server sees under end-to-end encryption. Release builds are made
//! without the feature: then these functions are empty and compiled away.

#[cfg(not(feature = "tap"))]
pub fn signaling_in(_text: &str) {}

#[cfg(not(feature = "tap"))]
pub fn media(_video: bool, _red: bool, _payload: &[u8]) {}

#[cfg(feature = "tap")]
pub use imp::{media, signaling_in};

#[cfg(feature = "tap")]
mod imp {
    use std::fs::File;
    use std::io::Write;
    use std::sync::{Mutex, OnceLock};

    /// Most payloads recorded per kind: enough for the proof, bounded for long test runs.
    const MAX_PER_KIND: usize = 4000;

    struct Tap {
        signaling: File,
        media: File,
        counts: [usize; 2],
    }

    fn tap() -> Option<&'static Mutex<Tap>> {
        static TAP: OnceLock<Option<Mutex<Tap>>> = OnceLock::new();
        TAP.get_or_init(|| {
            let dir = std::path::PathBuf::from(std::env::var_os("CONCLAVE_TAP_DIR")?);
            std::fs::create_dir_all(&dir).ok()?;
            Some(Mutex::new(Tap {
                signaling: File::create(dir.join("signaling.jsonl")).ok()?,
                media: File::create(dir.join("media.jsonl")).ok()?,
                counts: [0, 0],
            }))
        })
        .as_ref()
    }

    /// One inbound signaling text frame, as a JSON string on its own line.
    pub fn signaling_in(text: &str) {
        let Some(t) = tap() else { return };
        let mut t = t.lock().expect("tap lock");
        let line = serde_json::to_string(text).expect("strings serialize");
        let _ = writeln!(t.signaling, "{line}");
    }

    /// One RTP payload the SFU received for forwarding: every audio packet (`red`: wrapped in
    /// RED), and for video every packet that starts a frame (where the codec header and the
    /// SFrame header are) plus every fourth other packet.
    pub fn media(video: bool, red: bool, payload: &[u8]) {
        let Some(t) = tap() else { return };
        let mut t = t.lock().expect("tap lock");
        let k = usize::from(video);
        if t.counts[k] >= MAX_PER_KIND {
            return;
        }
        let starts_frame = payload.first().is_some_and(|b| b & 0x17 == 0x10);
        t.counts[k] += 1;
        if video && !starts_frame && t.counts[k] % 4 != 0 {
            return;
        }
        let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
        let kind = match (video, red) {
            (true, _) => "video",
            (false, true) => "red",
            (false, false) => "audio",
        };
        let _ = writeln!(t.media, r#"{{"kind":"{kind}","payload":"{hex}"}}"#);
    }
}
