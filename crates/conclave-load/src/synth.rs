//! Synthetic media shaped like a browser's: Opus-like audio at 50 packets/s with the audio-level
//! header extension, and VP8-like video at 30 frames/s packetized to at most 1,200-byte payloads
//! with a larger keyframe every few seconds, as one stream or as three simulcast layers at
//! Chrome's rates. Payloads carry the format of [`conclave_client::payload`]: a VP8 payload
//! descriptor and header (a keyframe's with the VP8 start code), a counter and the send time.
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

/// Simulcast layers as Chrome sends a 720p camera (about 150, 500 and 2,500 kbit/s), as
/// fractions of the top layer's rate, lowest first (the order the offer lists them in).
const SIMULCAST_SHARES: [(u32, u32); 3] = [(3, 50), (1, 5), (1, 1)];

/// The shape of one video stream.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct VideoShape {
    pub kbps: u32,
    pub keyframe_every: Duration,
    /// Send the real VP8 clip instead (its own rate and keyframe interval).
    pub clip: bool,
    /// Send three simulcast layers, `kbps` being the top one's rate (see [`Self::layers`]).
    pub simulcast: bool,
}

impl VideoShape {
    /// One stream of `kbps` (no simulcast).
    pub fn single(kbps: u32, keyframe_every: Duration) -> Self {
        Self {
            kbps,
            keyframe_every,
            clip: false,
            simulcast: false,
        }
    }

    /// The streams sent, lowest first: with simulcast three, at Chrome's rates scaled to the top
    /// layer's; otherwise this one. Receivers get one of them (the top one unless a server
    /// chooses otherwise), so the expected rates of a report follow `self`.
    pub fn layers(&self) -> Vec<VideoShape> {
        if self.layer_count() == 1 {
            return vec![Self {
                simulcast: false,
                ..*self
            }];
        }
        SIMULCAST_SHARES
            .iter()
            .map(|(num, den)| Self::single(self.kbps * num / den, self.keyframe_every))
            .collect()
    }

    /// How many streams [`Self::layers`] gives, without building them.
    pub fn layer_count(&self) -> usize {
        if self.simulcast && !self.clip {
            SIMULCAST_SHARES.len()
        } else {
            1
        }
    }

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
    /// The simulcast layer (index into [`VideoShape::layers`]); 0 for audio.
    pub layer: usize,
    pub seq: u64,
    pub ts: u32,
    pub marker: bool,
    pub audio_level: Option<i8>,
    pub payload: Vec<u8>,
}

/// The sending state of one publisher.
pub struct Source {
    video: Option<VideoShape>,
    /// Per layer of the video, lowest first: its shape, whether it is sent (someone receives
    /// it), whether its next frame is a keyframe, and its last sequence number.
    layers: Vec<Layer>,
    audio: bool,
    turns: Option<Turns>,
    /// 20 ms audio frames so far (sent or not: the RTP clock runs through silence).
    audio_frame: u64,
    next_audio: Instant,
    next_video: Instant,
    audio_seq: u64,
    frame: u64,
    /// Next frame of the clip, and clip frames sent.
    clip_at: usize,
    clip_frames: u64,
}

struct Layer {
    shape: VideoShape,
    on: bool,
    keyframe_wanted: bool,
    seq: u64,
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
        let layers = video
            .iter()
            .flat_map(VideoShape::layers)
            .map(|shape| Layer {
                shape,
                on: true,
                keyframe_wanted: true,
                seq: 0,
            })
            .collect();
        Self {
            video,
            layers,
            audio,
            turns,
            audio_frame: 0,
            next_audio: now + modulo(phase, AUDIO_INTERVAL),
            next_video: now + modulo(phase, frame),
            audio_seq: 0,
            frame: 0,
            clip_at: 0,
            clip_frames: 0,
        }
    }

    /// A keyframe on one layer (`Some`), or on all.
    pub fn request_keyframe(&mut self, layer: Option<usize>) {
        for (i, l) in self.layers.iter_mut().enumerate() {
            if layer.is_none_or(|w| w == i) {
                l.keyframe_wanted = true;
            }
        }
    }

    /// Send video or not (the server says whether anyone receives it); it restarts with a
    /// keyframe.
    pub fn set_video_on(&mut self, on: bool) {
        let all = vec![on; self.layers.len()];
        self.set_layers_on(&all);
    }

    /// Which layers to send, lowest first (the server's `publish_layers`); a layer not listed is
    /// off. A single stream is sent if any layer is wanted (the server counts layers per track,
    /// whatever was published). A layer that restarts starts with a keyframe.
    pub fn set_layers_on(&mut self, on: &[bool]) {
        let single = self.layers.len() == 1;
        for (i, l) in self.layers.iter_mut().enumerate() {
            let now_on = if single {
                on.iter().any(|a| *a)
            } else {
                on.get(i).copied().unwrap_or(false)
            };
            if now_on && !l.on {
                l.keyframe_wanted = true;
            }
            l.on = now_on;
        }
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
                    layer: 0,
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
        let ts = (self.frame as u32).wrapping_mul(90_000 / FPS);
        if shape.clip {
            if self.layers[0].on {
                self.clip_frame(ts, out);
            }
            return;
        }
        let every = (shape.keyframe_every.as_secs_f64() * FPS as f64).max(1.0) as u64;
        for (index, layer) in self.layers.iter_mut().enumerate() {
            if !layer.on {
                continue;
            }
            let keyframe = layer.keyframe_wanted || self.frame % every == 1;
            layer.keyframe_wanted = false;
            let (n, size) = layer.shape.packets(keyframe);
            for i in 0..n {
                layer.seq += 1;
                out.push(SynthPacket {
                    video: true,
                    layer: index,
                    seq: layer.seq,
                    ts,
                    marker: i + 1 == n,
                    audio_level: None,
                    payload: conclave_client::payload(
                        size,
                        Some((i == 0, keyframe)),
                        crate::count::layer_counter(index, layer.seq),
                    ),
                });
            }
        }
    }
}

impl Source {
    /// The clip's next frame (its first, a keyframe, when one was asked for), with the
    /// trailer, in packets of at most [`MAX_PAYLOAD`] bytes.
    fn clip_frame(&mut self, ts: u32, out: &mut Vec<SynthPacket>) {
        let frames = clip();
        let layer = &mut self.layers[0];
        if layer.keyframe_wanted {
            self.clip_at = 0;
            layer.keyframe_wanted = false;
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
            layer.seq += 1;
            // VP8 payload descriptor: S (start of partition) on the first packet.
            let mut payload = Vec::with_capacity(chunk.len() + 1);
            payload.push(if i == 0 { 0x10 } else { 0x00 });
            payload.extend_from_slice(chunk);
            out.push(SynthPacket {
                video: true,
                layer: 0,
                seq: layer.seq,
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
            simulcast: false,
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
        let top = VideoShape::single(2500, k);
        let (n, size) = top.packets(false);
        assert_eq!((n, size), (9, 1158));
        assert!(top.packets(true).1 <= MAX_PAYLOAD);
        let low = VideoShape::single(150, k);
        assert_eq!(low.packets(false).0, 1);
        assert!((top.packets_per_second() - 280.0).abs() < 10.0);
    }

    #[test]
    fn simulcast_sends_three_layers_at_chromes_rates() {
        let t0 = Instant::now();
        let shape = VideoShape {
            simulcast: true,
            ..VideoShape::single(2500, Duration::from_secs(3))
        };
        let rates: Vec<u32> = shape.layers().iter().map(|l| l.kbps).collect();
        assert_eq!(rates, [150, 500, 2500]);
        let mut s = Source::new(t0, false, Some(shape), Duration::ZERO, None);
        let second = |s: &mut Source, from: u64| {
            let mut out = Vec::new();
            for ms in from..from + 1000 {
                s.due(t0 + Duration::from_millis(ms), &mut out);
            }
            out
        };
        let out = second(&mut s, 0);
        for (layer, kbps) in [(0, 150), (1, 500), (2, 2500)] {
            let bytes: usize = out
                .iter()
                .filter(|p| p.layer == layer)
                .map(|p| p.payload.len())
                .sum();
            // The first frame of each is a keyframe (4x), so a little above the rate.
            let sent = bytes * 8 / 1000;
            assert!(sent >= kbps && sent < kbps * 6 / 5, "layer {layer}: {sent}");
            // Each layer numbers its packets on its own, without gaps.
            let seqs: Vec<u64> = out
                .iter()
                .filter(|p| p.layer == layer)
                .map(|p| p.seq)
                .collect();
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
        }
        // The server wants only the lowest layer; later the top one again, which restarts
        // with a keyframe while the lowest does not.
        s.set_layers_on(&[true, false, false]);
        let out = second(&mut s, 1000);
        assert!(out.iter().all(|p| p.layer == 0));
        s.set_layers_on(&[true, false, true]);
        let out = second(&mut s, 2000);
        let first = |layer| out.iter().find(|p| p.layer == layer).expect("sent");
        assert_eq!(
            first(2).payload[1] & 1,
            0,
            "top layer restarts with a keyframe"
        );
        assert_eq!(
            first(0).payload[1] & 1,
            1,
            "lowest layer goes on with delta frames"
        );
        assert!(out.iter().all(|p| p.layer != 1));
    }

    #[test]
    fn paces_audio_and_video() {
        let t0 = Instant::now();
        let shape = VideoShape::single(500, Duration::from_secs(3));
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
        let shape = VideoShape::single(150, Duration::from_secs(3));
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
