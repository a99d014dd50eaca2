//! Synthetic media shaped like a browser's: Opus-like audio at 50 packets/s with the audio-level
//! header extension, and VP8-like video at 30 frames/s packetized to at most 1,200-byte payloads
//! with a larger keyframe every few seconds. Payloads carry the format of
//! [`conclave_client::payload`]: a VP8 payload descriptor, a counter and the send time.
//!
//! With [`VideoShape::clip`], video is instead a real VP8 clip (`media/clip-180p.ivf`: 320x180,
//! 30 frames/s, a keyframe every 90 frames, about 140 kbit/s, made with `vpxenc --codec=vp8
//! --end-usage=cbr --target-bitrate=150 --kf-max-dist=90 --error-resilient=1` from a moving test
//! pattern) sent in a loop, so that browsers in the room decode and show it like a camera's
//! lowest simulcast layer. Its counter and send time go after the frame's last partition, where
//! the decoder does not look.
//!
//! Like people in a meeting, publishers can talk in turns ([`Turns`]): while silent, audio is
//! sent as a browser with Opus DTX does (one packet of silence every 400 ms). Video stops while
//! nobody receives it (`publish_layers`) and restarts with a keyframe.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Largest RTP payload, as browsers packetize for a 1,200-byte MTU budget.
pub const MAX_PAYLOAD: usize = 1200;
pub const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
/// 32 kbit/s at 50 packets/s.
pub const AUDIO_PAYLOAD: usize = 80;
pub const FPS: u32 = 30;
/// A keyframe is this many times a delta frame (camera video at these rates is typically 3–6x).
const KEYFRAME_FACTOR: usize = 4;
/// Opus DTX while silent: one packet per this many 20 ms frames.
const DTX_EVERY: u64 = 20;
/// The audio level of silence (RFC 6464: -127 dBov).
const SILENCE: i8 = -127;

/// Talking in turns: of `of` publishers, the one whose `index` comes up talks for one `turn`,
/// counted from `epoch`.
#[derive(Debug, Clone, Copy)]
pub struct Turns {
    pub index: usize,
    pub of: usize,
    pub turn: Duration,
    pub epoch: Instant,
}

impl Turns {
    pub fn talking(&self, now: Instant) -> bool {
        let k = now.saturating_duration_since(self.epoch).as_nanos() / self.turn.as_nanos().max(1);
        (k % self.of.max(1) as u128) as usize == self.index
    }
}

/// The VP8 clip (IVF container).
static CLIP_IVF: &[u8] = include_bytes!("../media/clip-180p.ivf");

/// The clip's frames, in order; the first is a keyframe.
fn clip() -> &'static [&'static [u8]] {
    static FRAMES: std::sync::OnceLock<Vec<&'static [u8]>> = std::sync::OnceLock::new();
    FRAMES.get_or_init(|| {
        // IVF: a header (its length at bytes 6..8), then frames of a 12-byte header (size, time)
        // and the frame.
        let mut frames = Vec::new();
        let mut at = u16::from_le_bytes([CLIP_IVF[6], CLIP_IVF[7]]) as usize;
        while at + 12 <= CLIP_IVF.len() {
            let size =
                u32::from_le_bytes(CLIP_IVF[at..at + 4].try_into().expect("4 bytes")) as usize;
            let Some(frame) = CLIP_IVF.get(at + 12..at + 12 + size) else {
                break;
            };
            frames.push(frame);
            at += 12 + size;
        }
        frames
    })
}

/// Counter and send time after a frame (see the module documentation).
const TRAILER: usize = 16;

/// The shape of one video stream.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct VideoShape {
    pub kbps: u32,
    pub keyframe_every: Duration,
    /// Send the real VP8 clip instead (its own rate and keyframe interval).
    pub clip: bool,
}

impl VideoShape {
    /// The clip's average bit rate, in kbit/s.
    pub fn clip_kbps() -> u32 {
        let bytes: usize = clip().iter().map(|f| f.len() + TRAILER).sum();
        (bytes as f64 * 8.0 / (clip().len() as f64 / FPS as f64) / 1000.0) as u32
    }

    /// Bytes of one delta frame.
    fn frame_bytes(&self) -> usize {
        (self.kbps as usize * 1000 / 8 / FPS as usize).max(100)
    }

    /// Payload sizes of one frame, split evenly as browsers do.
    pub fn packets(&self, keyframe: bool) -> (usize, usize) {
        let bytes = self.frame_bytes() * if keyframe { KEYFRAME_FACTOR } else { 1 };
        let n = bytes.div_ceil(MAX_PAYLOAD);
        (n, bytes.div_ceil(n))
    }

    /// Average payload bytes per video packet.
    pub fn avg_packet_bytes(&self) -> f64 {
        let kbps = if self.clip {
            Self::clip_kbps()
        } else {
            self.kbps
        };
        kbps as f64 * 1000.0 / 8.0 / self.packets_per_second().max(1e-9)
    }

    /// Average packets per second including keyframes.
    pub fn packets_per_second(&self) -> f64 {
        if self.clip {
            let packets: usize = clip().iter().map(|f| clip_packets(f.len()).0).sum();
            return packets as f64 * FPS as f64 / clip().len() as f64;
        }
        let frames_per_key = (self.keyframe_every.as_secs_f64() * FPS as f64).max(1.0);
        let (d, _) = self.packets(false);
        let (k, _) = self.packets(true);
        (d as f64 * (frames_per_key - 1.0) + k as f64) / frames_per_key * FPS as f64
    }
}

/// Packets and payload bytes per packet for a clip frame (with its trailer and a one-byte VP8
/// payload descriptor in each packet).
fn clip_packets(frame: usize) -> (usize, usize) {
    let bytes = frame + TRAILER;
    let n = bytes.div_ceil(MAX_PAYLOAD - 1);
    (n, bytes.div_ceil(n))
}

/// One packet to write: which stream, RTP fields, payload.
pub struct SynthPacket {
    pub video: bool,
    pub seq: u64,
    pub ts: u32,
    pub marker: bool,
    pub audio_level: Option<i8>,
    pub payload: Vec<u8>,
}

/// The sending state of one publisher.
pub struct Source {
    video: Option<VideoShape>,
    video_on: bool,
    audio: bool,
    turns: Option<Turns>,
    /// 20 ms audio frames so far (sent or not: the RTP clock runs through silence).
    audio_frame: u64,
    next_audio: Instant,
    next_video: Instant,
    audio_seq: u64,
    video_seq: u64,
    frame: u64,
    keyframe_wanted: bool,
    /// Next frame of the clip, and clip frames sent.
    clip_at: usize,
    clip_frames: u64,
}

impl Source {
    pub fn new(
        now: Instant,
        audio: bool,
        video: Option<VideoShape>,
        phase: Duration,
        turns: Option<Turns>,
    ) -> Self {
        // Publishers start at different phases so their frames do not all leave at once.
        let frame = Duration::from_secs(1) / FPS;
        let modulo = |d: Duration, m: Duration| {
            Duration::from_nanos((d.as_nanos() % m.as_nanos().max(1)) as u64)
        };
        Self {
            video,
            video_on: true,
            audio,
            turns,
            audio_frame: 0,
            next_audio: now + modulo(phase, AUDIO_INTERVAL),
            next_video: now + modulo(phase, frame),
            audio_seq: 0,
            video_seq: 0,
            frame: 0,
            keyframe_wanted: true,
            clip_at: 0,
            clip_frames: 0,
        }
    }

    pub fn request_keyframe(&mut self) {
        self.keyframe_wanted = true;
    }

    /// Send video or not (the server says whether anyone receives it); it restarts with a
    /// keyframe.
    pub fn set_video_on(&mut self, on: bool) {
        if on && !self.video_on {
            self.keyframe_wanted = true;
        }
        self.video_on = on;
    }

    /// When the next packet is due.
    pub fn next_due(&self) -> Instant {
        match (self.audio, self.video.is_some()) {
            (true, true) => self.next_audio.min(self.next_video),
            (false, true) => self.next_video,
            _ => self.next_audio,
        }
    }

    /// Everything due by `now`, appended to `out`. After a long stall, sends at most one interval's
    /// worth rather than a burst.
    pub fn due(&mut self, now: Instant, out: &mut Vec<SynthPacket>) {
        if self.audio && now >= self.next_audio {
            self.next_audio = (self.next_audio + AUDIO_INTERVAL).max(now - AUDIO_INTERVAL / 2);
            self.audio_frame += 1;
            let talking = self.turns.is_none_or(|t| t.talking(now));
            if talking || self.audio_frame.is_multiple_of(DTX_EVERY) {
                self.audio_seq += 1;
                // A speaker's level wanders between -25 and -55 dBov.
                let level = if talking {
                    -25 - (self.audio_seq % 31) as i8
                } else {
                    SILENCE
                };
                let len = if talking { AUDIO_PAYLOAD } else { 24 };
                out.push(SynthPacket {
                    video: false,
                    seq: self.audio_seq,
                    ts: (self.audio_frame as u32).wrapping_mul(960),
                    marker: false,
                    audio_level: Some(level),
                    payload: conclave_client::payload(len, None, self.audio_seq as u32),
                });
            }
        }
        let Some(shape) = self.video else {
            return;
        };
        if now < self.next_video {
            return;
        }
        let interval = Duration::from_secs(1) / FPS;
        self.next_video = (self.next_video + interval).max(now - interval / 2);
        self.frame += 1;
        if !self.video_on {
            return;
        }
        let ts = (self.frame as u32).wrapping_mul(90_000 / FPS);
        if shape.clip {
            self.clip_frame(ts, out);
            return;
        }
        let every = (shape.keyframe_every.as_secs_f64() * FPS as f64).max(1.0) as u64;
        let keyframe = self.keyframe_wanted || self.frame % every == 1;
        self.keyframe_wanted = false;
        let (n, size) = shape.packets(keyframe);
        for i in 0..n {
            self.video_seq += 1;
            out.push(SynthPacket {
                video: true,
                seq: self.video_seq,
                ts,
                marker: i + 1 == n,
                audio_level: None,
                payload: conclave_client::payload(
                    size,
                    Some((i == 0, keyframe)),
                    self.video_seq as u32,
                ),
            });
        }
    }
}

impl Source {
    /// The clip's next frame (its first, a keyframe, when one was asked for), with the
    /// trailer, in packets of at most [`MAX_PAYLOAD`] bytes.
    fn clip_frame(&mut self, ts: u32, out: &mut Vec<SynthPacket>) {
        let frames = clip();
        if self.keyframe_wanted {
            self.clip_at = 0;
            self.keyframe_wanted = false;
        }
        let frame = frames[self.clip_at % frames.len()];
        self.clip_at = (self.clip_at + 1) % frames.len();
        self.clip_frames += 1;
        let mut data = Vec::with_capacity(frame.len() + TRAILER);
        data.extend_from_slice(frame);
        let trailer = conclave_client::payload(0, None, self.clip_frames as u32);
        data.extend_from_slice(&trailer[..TRAILER]);
        let (n, size) = clip_packets(frame.len());
        for (i, chunk) in data.chunks(size).enumerate() {
            self.video_seq += 1;
            // VP8 payload descriptor: S (start of partition) on the first packet.
            let mut payload = Vec::with_capacity(chunk.len() + 1);
            payload.push(if i == 0 { 0x10 } else { 0x00 });
            payload.extend_from_slice(chunk);
            out.push(SynthPacket {
                video: true,
                seq: self.video_seq,
                ts,
                marker: i + 1 == n,
                audio_level: None,
                payload,
            });
        }
    }
}

/// Counter and send time of a clip frame, from the payload of its last packet.
pub fn parse_trailer(payload: &[u8]) -> Option<(u32, u64)> {
    let at = payload.len().checked_sub(TRAILER)?;
    conclave_client::parse_payload(&payload[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_is_vp8_at_the_lowest_layers_rate_and_carries_counters() {
        let frames = clip();
        assert_eq!(frames.len(), 90);
        // VP8 frame tag: bit 0 clear on a keyframe, then the keyframe start code.
        assert_eq!(frames[0][0] & 1, 0);
        assert_eq!(&frames[0][3..6], &[0x9d, 0x01, 0x2a]);
        assert!(frames[1..].iter().all(|f| f[0] & 1 == 1));
        assert!((100..200).contains(&VideoShape::clip_kbps()));
        let shape = VideoShape {
            kbps: 0,
            keyframe_every: Duration::from_secs(3),
            clip: true,
        };
        let t0 = Instant::now();
        let mut s = Source::new(t0, false, Some(shape), Duration::ZERO, None);
        let mut out = Vec::new();
        s.due(t0, &mut out);
        // The keyframe, split into packets; the descriptor marks the first.
        assert!(out.len() > 1 && out.iter().all(|p| p.payload.len() <= MAX_PAYLOAD));
        assert_eq!(out[0].payload[0], 0x10);
        assert_eq!(out[0].payload[1] & 1, 0);
        let last = out.last().expect("packets");
        assert!(last.marker);
        assert_eq!(parse_trailer(&last.payload).map(|(c, _)| c), Some(1));
        let body: usize = out.iter().map(|p| p.payload.len() - 1).sum();
        assert_eq!(body, frames[0].len() + TRAILER);
    }

    #[test]
    fn layer_shapes() {
        let k = Duration::from_secs(3);
        let top = VideoShape {
            kbps: 2500,
            keyframe_every: k,
            clip: false,
        };
        let (n, size) = top.packets(false);
        assert_eq!((n, size), (9, 1158));
        assert!(top.packets(true).1 <= MAX_PAYLOAD);
        let low = VideoShape {
            kbps: 150,
            keyframe_every: k,
            clip: false,
        };
        assert_eq!(low.packets(false).0, 1);
        assert!((top.packets_per_second() - 280.0).abs() < 10.0);
    }

    #[test]
    fn paces_audio_and_video() {
        let t0 = Instant::now();
        let shape = VideoShape {
            kbps: 500,
            keyframe_every: Duration::from_secs(3),
            clip: false,
        };
        let mut s = Source::new(t0, true, Some(shape), Duration::ZERO, None);
        let mut out = Vec::new();
        let mut t = t0;
        while t < t0 + Duration::from_secs(1) {
            s.due(t, &mut out);
            t += Duration::from_millis(1);
        }
        let audio = out.iter().filter(|p| !p.video).count();
        let frames = out.iter().filter(|p| p.video && p.marker).count();
        assert!((49..=51).contains(&audio), "{audio}");
        assert!((29..=31).contains(&frames), "{frames}");
        assert!(out.iter().all(|p| p.payload.len() <= MAX_PAYLOAD));
    }

    #[test]
    fn silent_in_others_turns_and_video_only_when_wanted() {
        let t0 = Instant::now();
        let shape = VideoShape {
            kbps: 150,
            keyframe_every: Duration::from_secs(3),
            clip: false,
        };
        let turns = Turns {
            index: 1,
            of: 2,
            turn: Duration::from_secs(1),
            epoch: t0,
        };
        let mut s = Source::new(t0, true, Some(shape), Duration::ZERO, Some(turns));
        s.set_video_on(false);
        let mut out = Vec::new();
        let run = |s: &mut Source, from: Duration, to: Duration, out: &mut Vec<SynthPacket>| {
            let mut t = t0 + from;
            while t < t0 + to {
                s.due(t, out);
                t += Duration::from_millis(1);
            }
        };
        // First second: the other one's turn, and nobody watches.
        run(&mut s, Duration::ZERO, Duration::from_secs(1), &mut out);
        let audio = out.iter().filter(|p| !p.video).count();
        assert!((2..=3).contains(&audio), "{audio}");
        assert!(
            out.iter()
                .all(|p| !p.video && p.audio_level == Some(SILENCE))
        );
        out.clear();
        // Second second: talking, and watched: video starts with a keyframe.
        s.set_video_on(true);
        run(
            &mut s,
            Duration::from_secs(1),
            Duration::from_secs(2),
            &mut out,
        );
        let audio: Vec<_> = out.iter().filter(|p| !p.video).collect();
        assert!(audio.len() >= 49, "{}", audio.len());
        assert!(audio.iter().all(|p| p.audio_level.is_some_and(|l| l > -60)));
        let first_video = out.iter().find(|p| p.video).expect("video");
        assert!(first_video.payload[1] & 1 == 0, "starts with a keyframe");
    }
}
