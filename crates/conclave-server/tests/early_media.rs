//! A receiver's transport-wide feedback must count media that reaches it before it has applied
//! the answer to its own offer.
//!
//! Every join renegotiates the others' receive slots: the participant offers more of them, the
//! server answers and forwards the new video at once, and the first packets arrive before the
//! participant has applied the answer. A browser takes them (it matches them by MID as soon as
//! its offer is set); str0m, which the load generator and other native clients use, could not
//! map them and left them out of its feedback. The server then saw them as lost, its loss-based
//! estimate of that participant's downlink collapsed at every join (to a few hundred kbit/s, for
//! seconds, on loopback), and the videos it sent waited in its pacer for up to two seconds.
//!
//! Two str0m peers in one process, on a virtual clock, datagrams handed across directly: the
//! "participant" offers receive-only video, the "server" answers and sends.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

const TICK: Duration = Duration::from_millis(1);
const FRAME_INTERVAL: Duration = Duration::from_millis(33);
/// Two packets a frame: about 500 kbit/s a video.
const FRAME_BYTES: usize = 2000;

struct Peer {
    rtc: Rtc,
    addr: SocketAddr,
    connected: bool,
    /// Media frames received, by mid.
    frames: Vec<Mid>,
    /// Egress loss fractions reported, with when.
    losses: Vec<(Instant, f32)>,
}

impl Peer {
    fn new(rtc: Rtc, addr: &str) -> Self {
        let addr: SocketAddr = addr.parse().unwrap();
        let mut rtc = rtc;
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        Self {
            rtc,
            addr,
            connected: false,
            frames: vec![],
            losses: vec![],
        }
    }

    /// Everything the peer has to say until its next timeout: datagrams for the other peer.
    fn drain(&mut self) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
        let mut out = vec![];
        loop {
            match self.rtc.poll_output().expect("poll_output") {
                Output::Timeout(_) => return out,
                Output::Transmit(t) => out.push((t.source, t.destination, t.contents.to_vec())),
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(d)) => self.frames.push(d.mid),
                Output::Event(Event::PeerStats(s)) => {
                    if let Some(l) = s.egress_loss_fraction {
                        self.losses.push((s.timestamp, l));
                    }
                }
                Output::Event(_) => {}
            }
        }
    }

    fn receive(&mut self, now: Instant, (src, dst, data): (SocketAddr, SocketAddr, Vec<u8>)) {
        assert_eq!(dst, self.addr);
        let r = Receive::new(Protocol::Udp, src, dst, &data).expect("datagram");
        self.rtc
            .handle_input(Input::Receive(now, r))
            .expect("handle_input");
    }
}

struct Call {
    now: Instant,
    participant: Peer,
    server: Peer,
    next_frame: Instant,
    frame: u32,
}

impl Call {
    /// One millisecond: timeouts, the server's video frames on `sending`, every datagram
    /// delivered at once.
    fn tick(&mut self, sending: &[Mid]) {
        self.now += TICK;
        let now = self.now;
        for p in [&mut self.participant, &mut self.server] {
            p.rtc.handle_input(Input::Timeout(now)).expect("timeout");
        }
        if self.server.connected && now >= self.next_frame {
            self.next_frame = now + FRAME_INTERVAL;
            self.frame += 1;
            let rtp_time = MediaTime::from_90khz(u64::from(self.frame) * 3000);
            for mid in sending {
                let writer = self.server.rtc.writer(*mid).expect("writer");
                let pt = writer
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Vp8)
                    .expect("VP8")
                    .pt();
                writer
                    .write(pt, now, rtp_time, vec![0x10; FRAME_BYTES])
                    .expect("write");
            }
        }
        loop {
            let to_server = self.participant.drain();
            let to_participant = self.server.drain();
            if to_server.is_empty() && to_participant.is_empty() {
                break;
            }
            for d in to_server {
                self.server.receive(now, d);
            }
            for d in to_participant {
                self.participant.receive(now, d);
            }
        }
    }

    fn run(&mut self, d: Duration, sending: &[Mid]) {
        let until = self.now + d;
        while self.now < until {
            self.tick(sending);
        }
    }

    /// The participant offers one more receive-only video; the server answers.
    fn offer_video(&mut self) -> (Mid, SdpPendingOffer, SdpAnswer) {
        let mut api = self.participant.rtc.sdp_api();
        let mid = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().expect("offer");
        let answer = self
            .server
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("answer");
        (mid, pending, answer)
    }
}

fn call() -> Call {
    let now = Instant::now();
    let participant = Rtc::builder().build(now);
    let server = Rtc::builder()
        .enable_bwe(Some(Bitrate::kbps(1500)))
        .set_stats_interval(Some(Duration::from_millis(200)))
        .build(now);
    Call {
        now,
        participant: Peer::new(participant, "10.0.0.1:5000"),
        server: Peer::new(server, "10.0.0.2:6000"),
        next_frame: now,
        frame: 0,
    }
}

#[test]
fn media_before_the_answer_is_not_reported_lost() {
    let mut c = call();
    let (first, pending, answer) = c.offer_video();
    c.participant
        .rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .expect("accept answer");
    c.run(Duration::from_secs(2), &[first]);
    assert!(c.participant.connected && c.server.connected, "connected");
    assert!(c.participant.frames.contains(&first), "first video arrives");

    // A renegotiation: the server sends the new video at once, and its answer takes 300 ms to
    // reach the participant.
    let (second, pending, answer) = c.offer_video();
    let renegotiated = c.now;
    c.run(Duration::from_millis(300), &[first, second]);
    c.participant
        .rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .expect("accept answer");
    c.run(Duration::from_secs(2), &[first, second]);

    assert!(
        c.participant.frames.contains(&second),
        "second video arrives"
    );
    let after: Vec<f32> = c
        .server
        .losses
        .iter()
        .filter(|(t, _)| *t > renegotiated)
        .map(|(_, l)| *l)
        .collect();
    assert!(!after.is_empty(), "the server reported its downlink loss");
    let worst = after.iter().copied().fold(0.0, f32::max);
    assert!(
        worst < 0.01,
        "nothing was lost, yet the server's feedback showed up to {:.0} % lost",
        worst * 100.0
    );
}
