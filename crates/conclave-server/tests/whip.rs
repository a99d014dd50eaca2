//! WHIP and WHEP against the real server, with str0m clients doing the HTTP exchange: who may
//! publish or watch, the refusal while a room requires end-to-end encryption, a publisher shown
//! to the room as an unencrypted participant, a viewer receiving its media, and sessions ending
//! by DELETE or by the client vanishing.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::ws::{connect, recv_type, send};
use common::{HttpResponse, Server, http};
use conclave_client::{new_rtc, payload};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

const SECRET: &str = "whip-test-secret-that-is-at-least-32-characters";

fn token(room: &str, name: Option<&str>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut claims = json!({"room": room, "exp": now + 600});
    if let Some(n) = name {
        claims["context"] = json!({"user": {"name": n}});
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// A WHIP or WHEP client: its str0m stack, socket and pending offer.
struct Client {
    rtc: Rtc,
    socket: UdpSocket,
    pending: Option<SdpPendingOffer>,
    offer: String,
    /// Sending m-lines (audio, video) of a publisher.
    sends: Option<(Mid, Mid)>,
    video_codec: Codec,
}

async fn client(publish: bool) -> Client {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtc = new_rtc(Instant::now(), socket.local_addr().unwrap()).unwrap();
    client_with(rtc, socket, publish, Codec::Vp8)
}

/// A client whose video is H.264 only, as OBS Studio sends it.
async fn h264_client(publish: bool) -> Client {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rtc = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_h264(true)
        .build(Instant::now());
    rtc.add_local_candidate(str0m::Candidate::host(socket.local_addr().unwrap(), "udp").unwrap());
    client_with(rtc, socket, publish, Codec::H264)
}

fn client_with(mut rtc: Rtc, socket: UdpSocket, publish: bool, video_codec: Codec) -> Client {
    let dir = if publish {
        Direction::SendOnly
    } else {
        Direction::RecvOnly
    };
    let mut api = rtc.sdp_api();
    let a = api.add_media(MediaKind::Audio, dir, None, None, None);
    let v = api.add_media(MediaKind::Video, dir, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    Client {
        rtc,
        socket,
        pending: Some(pending),
        offer: offer.to_sdp_string(),
        sends: publish.then_some((a, v)),
        video_codec,
    }
}

async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    bearer: Option<String>,
    sdp: &str,
) -> HttpResponse {
    let (path, sdp) = (path.to_owned(), sdp.to_owned());
    tokio::task::spawn_blocking(move || {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/sdp")];
        if let Some(a) = auth.as_deref() {
            headers.push(("Authorization", a));
        }
        http(addr, "POST", &path, &headers, &sdp)
    })
    .await
    .unwrap()
}

async fn request(addr: std::net::SocketAddr, method: &'static str, path: &str) -> HttpResponse {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || http(addr, method, &path, &[], ""))
        .await
        .unwrap()
}

impl Client {
    fn accept(&mut self, res: &HttpResponse) {
        assert_eq!(res.status, 201, "{}", res.body);
        assert_eq!(res.header("content-type"), Some("application/sdp"));
        let answer = SdpAnswer::from_sdp_string(&res.body).unwrap();
        let pending = self.pending.take().unwrap();
        self.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    }

    /// Run the transport (and send media if publishing) until `stop` fires or `enough` packets
    /// arrived; returns the RTP packets received per kind (audio, video).
    async fn run(&mut self, mut stop: oneshot::Receiver<()>, enough: (u64, u64)) -> (u64, u64) {
        let local = self.socket.local_addr().unwrap();
        let mut buf = vec![0u8; 2048];
        let mut received = (0u64, 0u64);
        let mut connected = false;
        let mut keyframe_wanted = true;
        let mut frame = 0u32;
        let mut seq = (0u64, 0u64);
        let mut next_media = Instant::now();
        loop {
            let next_timeout = loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Transmit(t) => {
                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                    }
                    Output::Timeout(t) => break t,
                    Output::Event(Event::Connected) => connected = true,
                    Output::Event(Event::KeyframeRequest(_)) => keyframe_wanted = true,
                    Output::Event(Event::RtpPacket(p)) => {
                        let kind = self
                            .rtc
                            .direct_api()
                            .stream_rx(&p.header.ssrc)
                            .map(|s| s.mid())
                            .and_then(|mid| self.rtc.media(mid).map(|m| m.kind()));
                        match kind {
                            Some(MediaKind::Audio) => received.0 += 1,
                            Some(MediaKind::Video) => received.1 += 1,
                            None => {}
                        }
                    }
                    Output::Event(_) => {}
                }
            };
            if self.sends.is_none() && received.0 >= enough.0 && received.1 >= enough.1 {
                return received;
            }
            if !self.rtc.is_alive() {
                return received;
            }
            let wake = if connected && self.sends.is_some() {
                next_timeout.min(next_media)
            } else {
                next_timeout
            };
            tokio::select! {
                _ = &mut stop => return received,
                r = self.socket.recv_from(&mut buf) => {
                    let (n, source) = r.unwrap();
                    if let Ok(contents) = buf[..n].try_into() {
                        let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents });
                        let _ = self.rtc.handle_input(input);
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    let _ = self.rtc.handle_input(Input::Timeout(now));
                    if let (true, Some((audio, video))) = (connected, self.sends)
                        && now >= next_media
                    {
                            // One 20 ms audio packet and one small video frame per tick.
                            next_media = now + Duration::from_millis(20);
                            frame += 1;
                            seq.0 += 1;
                            write(&mut self.rtc, audio, Codec::Opus, seq.0, frame.wrapping_mul(960), true, payload(80, None, frame));
                            let key = keyframe_wanted || frame % 50 == 1;
                            keyframe_wanted = false;
                            seq.1 += 1;
                            let data = match self.video_codec {
                            // One NAL unit per frame: an IDR slice or a non-IDR slice.
                            Codec::H264 => [vec![if key { 0x65 } else { 0x41 }], payload(600, None, frame)].concat(),
                            _ => payload(600, Some((true, key)), frame),
                        };
                        write(&mut self.rtc, video, self.video_codec, seq.1, frame.wrapping_mul(1800), true, data);
                    }
                }
            }
        }
    }
}

fn write(rtc: &mut Rtc, mid: Mid, codec: Codec, seq: u64, ts: u32, marker: bool, data: Vec<u8>) {
    let Some(pt) = rtc
        .codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt())
    else {
        return;
    };
    if let Some(stream) = rtc.direct_api().stream_tx_by_mid(mid, None) {
        stream.write_rtp(
            RtpWrite::new(pt, seq.into(), ts, Instant::now(), data)
                .marker(marker)
                .nackable(codec == Codec::Vp8),
        );
    }
}

/// The room's first participant (a moderator in an ad-hoc room) over signaling.
async fn chair(server: &Server, room: &str) -> common::ws::Ws {
    let mut ws = connect(server).await;
    send(
        &mut ws,
        json!({"type": "join", "version": 1, "room": room, "name": "-"}).to_string(),
    )
    .await;
    let welcome = recv_type(&mut ws, "welcome").await;
    assert_eq!(welcome["moderator"], true);
    ws
}

/// Skip messages until a `participant_joined` arrives.
async fn joined(ws: &mut common::ws::Ws) -> Value {
    recv_type(ws, "participant_joined").await["participant"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_publisher_reaches_the_room_and_a_whep_viewer() {
    let server = Server::start(&["--jwt-secret", SECRET]);
    let addr = server.http;
    let mut ws = chair(&server, "town-hall").await;
    let publisher_offer = client(true).await.offer;

    // Who may publish.
    let none = post(addr, "/whip/town-hall", None, &publisher_offer).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    let forged = post(
        addr,
        "/whip/town-hall",
        Some("not.a.jwt".into()),
        &publisher_offer,
    )
    .await;
    assert_eq!(forged.status, 401);
    let elsewhere = post(
        addr,
        "/whip/town-hall",
        Some(token("other", None)),
        &publisher_offer,
    )
    .await;
    assert_eq!(elsewhere.status, 403);
    assert_eq!(elsewhere.json()["code"], "wrong_room");
    let not_sdp = tokio::task::spawn_blocking(move || {
        let t = format!("Bearer {}", token("town-hall", None));
        http(
            addr,
            "POST",
            "/whip/town-hall",
            &[("Authorization", &t), ("Content-Type", "text/plain")],
            "v=0",
        )
    })
    .await
    .unwrap();
    assert_eq!(not_sdp.status, 415);

    // The room requires end-to-end encryption (the default): refused, and said why.
    let refused = post(
        addr,
        "/whip/town-hall",
        Some(token("town-hall", None)),
        &publisher_offer,
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(refused.json()["code"], "e2ee_required");
    let refused = post(
        addr,
        "/whep/town-hall",
        Some(token("town-hall", None)),
        &client(false).await.offer,
    )
    .await;
    assert_eq!(refused.json()["code"], "e2ee_required");

    // A moderator allows participants who cannot encrypt.
    send(
        &mut ws,
        json!({"type": "set_e2ee", "required": false}).to_string(),
    )
    .await;
    recv_type(&mut ws, "settings").await;

    let mut publisher = client(true).await;
    let res = post(
        addr,
        "/whip/town-hall",
        Some(token("town-hall", Some("Lecture feed"))),
        &publisher.offer,
    )
    .await;
    publisher.accept(&res);
    let whip_session = res.header("location").unwrap().to_owned();
    assert!(
        whip_session.starts_with("/whip/town-hall/"),
        "{whip_session}"
    );
    let p = joined(&mut ws).await;
    assert_eq!(p["name"], "Lecture feed");
    assert_eq!(p["e2ee"], false, "shown as not end-to-end encrypted");
    assert_eq!(p["moderator"], false);
    let publisher_id = p["id"].clone();
    let (stop_publisher, stopped) = oneshot::channel();
    let publishing = tokio::spawn(async move {
        publisher.run(stopped, (0, 0)).await;
        publisher
    });

    let mut viewer = client(false).await;
    let res = post(
        addr,
        "/whep/town-hall",
        Some(token("town-hall", None)),
        &viewer.offer,
    )
    .await;
    viewer.accept(&res);
    let whep_session = res.header("location").unwrap().to_owned();
    assert!(whep_session.starts_with("/whep/town-hall/"));
    let v = joined(&mut ws).await;
    assert_eq!(v["name"], "Viewer");
    assert_eq!(v["e2ee"], false);

    // The viewer receives the publisher's audio and video (the chair publishes nothing).
    let (_stop_viewer, never) = oneshot::channel();
    let received = tokio::time::timeout(Duration::from_secs(60), viewer.run(never, (20, 20)))
        .await
        .expect("the viewer receives media");
    assert!(received.0 >= 20 && received.1 >= 20, "{received:?}");

    // No trickle: PATCH is refused as RFC 9725 allows.
    assert_eq!(request(addr, "PATCH", &whep_session).await.status, 405);

    assert_eq!(request(addr, "DELETE", &whep_session).await.status, 200);
    let left = recv_type(&mut ws, "participant_left").await;
    assert_eq!(left["participant_id"], v["id"]);
    assert_eq!(request(addr, "DELETE", &whep_session).await.status, 404);
    // A session URL is only valid with its own kind and room.
    let as_whep = whip_session.replacen("/whip/", "/whep/", 1);
    assert_eq!(request(addr, "DELETE", &as_whep).await.status, 404);

    assert_eq!(request(addr, "DELETE", &whip_session).await.status, 200);
    let left = recv_type(&mut ws, "participant_left").await;
    assert_eq!(left["participant_id"], publisher_id);
    let _ = stop_publisher.send(());
    publishing.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_whip_client_leaves_the_room() {
    let server = Server::start(&["--jwt-secret", SECRET]);
    let addr = server.http;
    let mut ws = chair(&server, "vanish").await;
    send(
        &mut ws,
        json!({"type": "set_e2ee", "required": false}).to_string(),
    )
    .await;
    recv_type(&mut ws, "settings").await;

    let mut publisher = client(true).await;
    let res = post(
        addr,
        "/whip/vanish",
        Some(token("vanish", None)),
        &publisher.offer,
    )
    .await;
    publisher.accept(&res);
    let p = joined(&mut ws).await;
    assert_eq!(p["name"], "Stream");
    // Connect and publish a little, then vanish without DELETE (a crashed encoder).
    let (stop, stopped) = oneshot::channel();
    let run = tokio::spawn(async move { publisher.run(stopped, (0, 0)).await });
    let updated = recv_type(&mut ws, "participant_updated").await;
    assert_eq!(updated["participant"]["video"], true);
    let _ = stop.send(());
    run.await.unwrap();

    let left = recv_type(&mut ws, "participant_left").await;
    assert_eq!(left["participant_id"], p["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_publisher_reaches_an_h264_viewer() {
    let server = Server::start(&["--jwt-secret", SECRET]);
    let addr = server.http;
    let mut ws = chair(&server, "obs").await;
    send(
        &mut ws,
        json!({"type": "set_e2ee", "required": false}).to_string(),
    )
    .await;
    recv_type(&mut ws, "settings").await;

    let mut publisher = h264_client(true).await;
    let res = post(
        addr,
        "/whip/obs",
        Some(token("obs", None)),
        &publisher.offer,
    )
    .await;
    publisher.accept(&res);
    assert!(
        res.body.contains("H264"),
        "video negotiated as H.264: {}",
        res.body
    );
    let (stop, stopped) = oneshot::channel();
    let publishing = tokio::spawn(async move { publisher.run(stopped, (0, 0)).await });

    let mut viewer = h264_client(false).await;
    let res = post(addr, "/whep/obs", Some(token("obs", None)), &viewer.offer).await;
    viewer.accept(&res);
    let (_keep, never) = oneshot::channel();
    let received = tokio::time::timeout(Duration::from_secs(60), viewer.run(never, (20, 20)))
        .await
        .expect("the viewer receives H.264 video from its first keyframe on");
    assert!(received.1 >= 20, "{received:?}");
    let _ = stop.send(());
    publishing.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_with_a_lobby_refuses_and_forgets_the_client() {
    let server = Server::start(&["--jwt-secret", SECRET]);
    let addr = server.http;
    let mut ws = chair(&server, "waiting").await;
    send(
        &mut ws,
        json!({"type": "set_e2ee", "required": false}).to_string(),
    )
    .await;
    recv_type(&mut ws, "settings").await;
    send(
        &mut ws,
        json!({"type": "set_lobby", "enabled": true}).to_string(),
    )
    .await;
    recv_type(&mut ws, "settings").await;

    let publisher = client(true).await;
    let res = post(
        addr,
        "/whip/waiting",
        Some(token("waiting", None)),
        &publisher.offer,
    )
    .await;
    assert_eq!(res.status, 403);
    assert_eq!(res.json()["code"], "lobby");
    // The knock it caused is withdrawn at once: nobody is left waiting.
    let knock = recv_type(&mut ws, "knock").await;
    let resolved = recv_type(&mut ws, "knock_resolved").await;
    assert_eq!(resolved["knock_id"], knock["knock_id"]);
}
