//! What a peer's transport reports, acted on: forwarded media (each received RTP packet goes
//! through the room core's decision and is written to its subscribers), keyframe requests,
//! downlink estimates, statistics and connection state.

use std::cell::OnceCell;
use std::time::Instant;

use conclave_room::codec::{h264_starts_keyframe, vp8_starts_keyframe};
use conclave_room::{Mid as RoomMid, PacketIn, PictureId, Pid, Vp8Ids};
use str0m::bwe::BweKind;
use str0m::format::Codec;
use str0m::rtp::Vp8Descriptor;
use str0m::{Event, IceConnectionState};

use super::peer::{ForwardedPacket, Peer};
use super::worker::RoomHost;
use crate::metrics::WorkerMetrics;

pub(super) fn handle_event(
    host: &mut RoomHost,
    pid: Pid,
    ev: Event,
    now: Instant,
    metrics: &WorkerMetrics,
) {
    match ev {
        Event::RtpPacket(pkt) => forward(host, pid, pkt, metrics),
        Event::MediaAdded(m) => {
            let Some(peer) = host.peers.get_mut(&pid) else {
                return;
            };
            if !peer.mids.iter().any(|(mid, _)| *mid == m.mid) {
                peer.mids.push((m.mid, m.kind));
            }
            let Some((published, slots)) = peer.guarded(Peer::media_changed) else {
                return;
            };
            host.core.set_media(now, pid, &published, &slots);
        }
        Event::MediaChanged(_) => {
            let Some(peer) = host.peers.get_mut(&pid) else {
                return;
            };
            // A receive-only m-line turned send-receive gets its send stream now.
            let Some((published, slots)) = peer.guarded(Peer::media_changed) else {
                return;
            };
            host.core.set_media(now, pid, &published, &slots);
        }
        Event::KeyframeRequest(req) => {
            metrics.keyframe_requests_received.inc();
            if let Some(mid) = RoomMid::new(&req.mid) {
                host.core.on_keyframe_request(now, pid, mid);
            }
        }
        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
            if let Some(peer) = host.peers.get_mut(&pid) {
                peer.dead = true;
                peer.guarded(|p| p.rtc.disconnect());
            }
            host.core.transport_closed(now, pid);
        }
        Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. })
            if host.peers.get(&pid).is_some_and(|p| p.twcc) =>
        {
            tracing::debug!(
                participant = pid.0,
                kbps = estimate.as_u64() / 1000,
                "downlink estimate"
            );
            host.core.set_estimate(pid, estimate.as_u64());
        }
        Event::PeerStats(st) if host.peers.get(&pid).is_some_and(|p| p.twcc) => {
            if let Some(bwe) = st.bwe_tx {
                tracing::debug!(
                    participant = pid.0,
                    kbps = bwe.as_u64() / 1000,
                    sent_bytes = st.peer_bytes_tx,
                    loss = st.egress_loss_fraction.unwrap_or(0.0),
                    "downlink estimate now"
                );
                host.core.set_estimate_now(pid, bwe.as_u64());
            }
            if let Some(loss) = st.egress_loss_fraction {
                host.core.set_downlink_loss(now, pid, loss);
            }
        }
        Event::Connected => tracing::debug!("peer connected"),
        Event::MediaIngressStats(st) => {
            if let Some(peer) = host.peers.get_mut(&pid) {
                let (nacks, packets) =
                    peer.stats_delta((st.mid, st.rid, true), st.nacks, st.packets);
                metrics.nacks_sent.inc_by(nacks);
                // str0m reports loss as a fraction of recent packets: an estimate, counted as such.
                let lost = st.loss.unwrap_or(0.0).clamp(0.0, 1.0) as f64 * packets as f64;
                metrics.packets_lost.inc_by(lost.round() as u64);
            }
        }
        Event::MediaEgressStats(st) => {
            // Bytes include retransmissions: with the downlink estimate (debug) this shows what
            // fills a receiver's link.
            tracing::trace!(
                participant = pid.0,
                mid = %st.mid,
                bytes = st.bytes,
                plis = st.plis,
                nacks = st.nacks,
                "egress"
            );
            if let Some(peer) = host.peers.get_mut(&pid) {
                let (nacks, _) = peer.stats_delta((st.mid, st.rid, false), st.nacks, st.packets);
                metrics.nacks_received.inc_by(nacks);
            }
        }
        _ => {}
    }
}

/// The picture numbering fields of a VP8 payload descriptor parsed from `payload`.
fn vp8_ids(d: &Vp8Descriptor, payload: &[u8]) -> Vp8Ids {
    Vp8Ids {
        picture_id: d.picture_id().map(|value| PictureId {
            value,
            // A PictureID directly follows the required and extension bytes (RFC 7741 4.2);
            // its M bit tells its width.
            wide: payload.get(2).is_some_and(|b| b & 0x80 != 0),
        }),
        tl0_pic_idx: d.tl0_pic_idx(),
        key_idx: d.key_idx(),
    }
}

/// Hot path: one RTP packet from `pid` to every subscriber the room core names.
fn forward(host: &mut RoomHost, pid: Pid, mut pkt: str0m::rtp::RtpPacket, metrics: &WorkerMetrics) {
    let Some(peer) = host.peers.get_mut(&pid) else {
        return;
    };
    let ssrc = pkt.header.ssrc;
    let pt = pkt.header.payload_type;
    // The publisher's transport: a panic here fails this participant only (`contain.rs`).
    let Some(Some((mid, layer, (codec, pt, red)))) = peer.guarded(|peer| {
        peer.fault.on_rtp();
        let (mid, rid) = peer
            .rtc
            .direct_api()
            .stream_rx(&ssrc)
            .map(|s| (s.mid(), s.rid()))?;
        Some((mid, peer.layer_of(mid, rid), peer.codec_of(pt)?))
    }) else {
        return;
    };
    let Some(room_mid) = RoomMid::new(&mid) else {
        return;
    };
    crate::tap::media(codec.codec.is_video(), red, &pkt.payload);
    let keyframe = match codec.codec {
        Codec::Vp8 => vp8_starts_keyframe(&pkt.payload),
        Codec::H264 => h264_starts_keyframe(&pkt.payload),
        _ => false,
    };
    // The VP8 payload descriptor is written by the browser's packetizer after the encryption
    // transform, so it is readable (and rewritable) under end-to-end encryption.
    let vp8 = match codec.codec {
        Codec::Vp8 => Vp8Descriptor::parse(&pkt.payload).ok(),
        _ => None,
    };
    let meta = PacketIn {
        seq: *pkt.seq_no,
        ts: pkt.header.timestamp,
        keyframe,
        layer,
        // Payload plus RTP, SRTP, UDP and IP headers, as the receiver's estimate counts them.
        bytes: pkt.payload.len() as u32 + 60,
        audio_level: pkt.header.ext_vals.audio_level,
        red,
        vp8: vp8.as_ref().map(|d| vp8_ids(d, &pkt.payload)),
        at: pkt.timestamp,
    };
    let mut forwards = std::mem::take(&mut host.forwards);
    host.core.on_rtp(pid, room_mid, meta, &mut forwards);
    // The receiver's transport-wide sequence number is the receiving side's business, and the
    // publisher's stream ids mean nothing on the receiver's m-line (a rid there could even make
    // the browser drop the packet).
    pkt.header.ext_vals.transport_cc = None;
    pkt.header.ext_vals.rid = None;
    pkt.header.ext_vals.rid_repair = None;
    pkt.header.ext_vals.mid = None;
    let out = ForwardedPacket {
        codec,
        red,
        pt,
        payload: &pkt.payload,
        primary: OnceCell::new(),
        marker: pkt.header.marker,
        ext_vals: &pkt.header.ext_vals,
        wallclock: pkt.timestamp,
        nackable: codec.codec.is_video(),
        vp8,
    };
    let mut sent = 0;
    for f in &forwards {
        let Some(sub) = host.peers.get_mut(&f.to) else {
            continue;
        };
        if sub.guarded(|s| s.write_forward(f, &out)) == Some(true) {
            sent += 1;
            if !sub.pending {
                sub.pending = true;
                host.pending.push(f.to);
            }
        }
    }
    metrics.packets_forwarded.inc_by(sent);
    metrics
        .bytes_forwarded
        .inc_by(sent * pkt.payload.len() as u64);
    host.forwards = forwards;
}
