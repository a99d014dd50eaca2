//! Readiness signalling threaded through the component tree.
//!
//! Everything below [`Rtc`][crate::Rtc] forms a tree, and both events and new
//! timeouts bubble up from the leaves. To avoid re-walking a quiescent tree on
//! every `poll_output`, each path that takes `&mut` access to a sub-component
//! is handed an armed [`Wake`] guard, threaded down like `&mut` state.
//!
//! A [`Wake`] defaults to re-polling *everything*: left untouched it signals
//! both a pending event drain and a timeout recompute. A component narrows it
//! locally — [`Wake::no_events`] / [`Wake::no_timeout`] — when it knows less
//! changed. The guard folds its (possibly narrowed) signal into the owning
//! [`Readiness`] on drop.
//!
//! The direction is deliberate: the safe default is to re-poll, and narrowing
//! is an opt-in optimization owned by the component that performed the
//! mutation. A forgotten narrowing or an over-broad wake costs at most one redundant
//! poll; it can never drop output. No component names another's scope, and
//! `Rtc` holds no knowledge of which mutation affects what.
//!
//! The app-facing API wrappers ([`DirectApi`][crate::change::DirectApi],
//! [`SdpApi`][crate::change::SdpApi], [`Channel`][crate::channel::Channel],
//! [`Bwe`][crate::bwe::Bwe]) hold an [`RtcMut`] instead of `&mut Rtc`. It arms
//! the readiness on *mutable* deref only, so a `&mut self` method that mutates
//! re-polls the tree while a `&self` reader never does — and neither has to
//! remember to call anything.

use std::ops::{Deref, DerefMut};

use crate::Rtc;

/// A `&mut Rtc` handle that re-polls the tree when it is used mutably.
///
/// Change detection, à la a dirty-flag on mutable access: `deref` is a plain
/// read and never arms; `deref_mut` arms both halves (the safe default).
/// Because a `&self` method can only reach `deref` and a mutating `&mut self`
/// method reaches `deref_mut`, "mutation re-polls, reads don't" is enforced by
/// the borrow checker — a new method can't forget, and a read-only method
/// can't accidentally arm.
///
/// Deliberately has no `Drop`: the API wrappers are held in `let` bindings
/// across other `Rtc` use, and a destructor would extend their borrow to the
/// end of scope. Arming therefore happens eagerly on the mutable access.
///
/// When a mutation only affects one half of the re-poll — and especially when
/// that isn't known until the mutation is underway — take it through
/// [`RtcMut::mutate`] and narrow the returned [`Mutation`] guard.
pub(crate) struct RtcMut<'a> {
    rtc: &'a mut Rtc,
}

impl<'a> RtcMut<'a> {
    pub(crate) fn new(rtc: &'a mut Rtc) -> Self {
        RtcMut { rtc }
    }

    /// Begin a mutation whose re-poll can be narrowed *after the fact*.
    ///
    /// The returned [`Mutation`] derefs to `Rtc`, so mutate through it, then
    /// (optionally, conditionally) call [`Mutation::no_events`] /
    /// [`Mutation::no_timeout`]. It folds its own — per-operation, never shared
    /// — signal into the readiness when it drops.
    ///
    /// Plain `&mut *` (via [`DerefMut`]) is the shorthand for "arm both": it's
    /// what methods that don't narrow, or that return a `&mut` borrowed from
    /// the tree (which can't outlive a guard), use instead.
    pub(crate) fn mutate(&mut self) -> Mutation<'_> {
        Mutation {
            rtc: self.rtc,
            events: true,
            timeout: true,
        }
    }
}

impl Deref for RtcMut<'_> {
    type Target = Rtc;

    fn deref(&self) -> &Rtc {
        self.rtc
    }
}

impl DerefMut for RtcMut<'_> {
    fn deref_mut(&mut self) -> &mut Rtc {
        self.rtc.readiness.wake();
        self.rtc
    }
}

/// A single mutation in progress, obtained from [`RtcMut::mutate`].
///
/// Derefs to `Rtc` for the actual change. Armed for both halves by default;
/// narrow with [`Mutation::no_events`] / [`Mutation::no_timeout`] at any point
/// before it drops — including conditionally, once the mutation has revealed
/// which half it touched. Folds the (possibly narrowed) signal into the
/// readiness on drop.
///
/// The signal is private to this one guard, so narrowing here can never
/// interfere with another method call's decision regardless of call order —
/// the property a long-lived shared guard could not offer.
pub(crate) struct Mutation<'a> {
    rtc: &'a mut Rtc,
    events: bool,
    timeout: bool,
}

impl Mutation<'_> {
    /// Assert this mutation queued no event or transmit.
    pub(crate) fn no_events(&mut self) {
        self.events = false;
    }

    /// Assert this mutation moved no timer.
    pub(crate) fn no_timeout(&mut self) {
        self.timeout = false;
    }
}

impl Deref for Mutation<'_> {
    type Target = Rtc;

    fn deref(&self) -> &Rtc {
        self.rtc
    }
}

impl DerefMut for Mutation<'_> {
    fn deref_mut(&mut self) -> &mut Rtc {
        self.rtc
    }
}

impl Drop for Mutation<'_> {
    fn drop(&mut self) {
        let mut wake = self.rtc.readiness.wake();
        if !self.events {
            wake.no_events();
        }
        if !self.timeout {
            wake.no_timeout();
        }
    }
}

/// The accumulated re-poll signal owned by [`Rtc`][crate::Rtc].
///
/// `poll_output` reads it to decide whether to walk the event pipeline and
/// whether to recompute the next timeout, clearing each half once it has
/// proven that part of the tree quiescent.
#[derive(Debug)]
pub(crate) struct Readiness {
    events: bool,
    timeout: bool,
    /// Since `events` was last armed, the event pipeline was walked to its end and media or
    /// feedback sent after it: only the datagrams can have more output until something arms
    /// it again (see [`Readiness::set_events_walked`]).
    walked: bool,
}

impl Readiness {
    /// A fresh instance must poll the whole tree once.
    pub(crate) fn armed() -> Self {
        Readiness {
            events: true,
            timeout: true,
            walked: false,
        }
    }

    pub(crate) fn wants_events(&self) -> bool {
        self.events
    }

    pub(crate) fn wants_timeout(&self) -> bool {
        self.timeout
    }

    pub(crate) fn clear_events(&mut self) {
        self.events = false;
        self.walked = false;
    }

    /// Whether `poll_output` may go straight to the datagrams: it found no event or transmit
    /// ahead of them since the last arming.
    pub(crate) fn events_walked(&self) -> bool {
        self.events && self.walked
    }

    /// Record that `poll_output` walked every event source, found nothing and then sent media
    /// or feedback. Sending those queues no event, so until a mutation arms `events` again,
    /// the next polls need not walk the sources (a receiver's dozens of streams and media,
    /// several times over) once per datagram.
    pub(crate) fn set_events_walked(&mut self) {
        self.walked = true;
    }

    /// The next poll walks the event sources again.
    pub(crate) fn unset_events_walked(&mut self) {
        self.walked = false;
    }

    /// Written media was released: datagrams are ready, and nothing else is new. A quiescent
    /// tree's next poll goes straight to them; one already armed is walked as it would be.
    pub(crate) fn set_datagrams_ready(&mut self) {
        if !self.events {
            self.events = true;
            self.walked = true;
        }
        self.timeout = true;
    }

    pub(crate) fn clear_timeout(&mut self) {
        self.timeout = false;
    }

    /// Hand out an armed guard for a mutable descent into the tree.
    pub(crate) fn wake(&mut self) -> Wake<'_> {
        Wake {
            readiness: self,
            events: true,
            timeout: true,
        }
    }
}

/// An armed guard threaded into a component's mutating methods.
///
/// Narrowed locally by the component and folded into [`Readiness`] on drop.
/// See the [module docs][self].
///
/// Dropping it immediately (e.g. `self.rtc.readiness.wake();`) is the
/// conservative default: it re-polls everything. Narrow first to do less.
pub(crate) struct Wake<'a> {
    readiness: &'a mut Readiness,
    events: bool,
    timeout: bool,
}

impl Wake<'_> {
    /// Assert this path queued no event or transmit, so the event pipeline
    /// need not be walked on its behalf.
    pub(crate) fn no_events(&mut self) {
        self.events = false;
    }

    /// Assert this path did not move any timer, so the next timeout need not
    /// be recomputed on its behalf.
    pub(crate) fn no_timeout(&mut self) {
        self.timeout = false;
    }
}

impl Drop for Wake<'_> {
    fn drop(&mut self) {
        if self.events {
            self.readiness.events = true;
            self.readiness.walked = false;
        }
        self.readiness.timeout |= self.timeout;
    }
}

#[cfg(test)]
impl Readiness {
    pub(crate) fn idle() -> Self {
        Self {
            events: false,
            timeout: false,
            walked: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::bwe::Bitrate;
    use crate::crypto::dtls::{KeyingMaterial, SrtpProfile};
    use crate::media::MediaKind;
    use crate::{Input, Output};
    use std::time::Instant;

    fn idle_rtc() -> Rtc {
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .enable_bwe(Some(Bitrate::kbps(300)))
            .build(now);
        let profile = SrtpProfile::AEAD_AES_128_GCM;
        let mat = KeyingMaterial::new(&vec![0; profile.keying_material_len()]);
        rtc.session
            .set_keying_material(mat, crate::crypto::test_default_provider(), profile, true);
        rtc.direct_api()
            .declare_media("vid".into(), MediaKind::Video);
        rtc.direct_api()
            .declare_stream_tx(42.into(), None, "vid".into(), None);
        rtc.handle_input(Input::Timeout(now)).unwrap();
        while !matches!(rtc.poll_output().unwrap(), Output::Timeout(_)) {}
        assert!(!rtc.readiness.wants_events());
        assert!(!rtc.readiness.wants_timeout());
        rtc
    }

    #[test]
    fn readiness_bwe_set_bitrate_only_wakes_timeout() {
        let mut rtc = idle_rtc();
        rtc.bwe().set_bitrate(Bitrate::kbps(100), Bitrate::mbps(2));
        assert!(!rtc.readiness.wants_events());
        assert!(rtc.readiness.wants_timeout());
        assert!(
            rtc.session.poll_event().is_none(),
            "no hidden event behind the narrowed flag"
        );
        let expected = rtc.poll_timeout();
        assert!(matches!(rtc.poll_output().unwrap(), Output::Timeout(at) if at == expected));
    }

    #[test]
    fn readiness_bwe_reset_only_wakes_timeout() {
        let mut rtc = idle_rtc();
        rtc.bwe().reset(Bitrate::kbps(900));
        assert!(!rtc.readiness.wants_events());
        assert!(rtc.readiness.wants_timeout());
        assert!(
            rtc.session.poll_event().is_none(),
            "reset produces estimates on a later timeout"
        );
        let expected = rtc.poll_timeout();
        assert!(matches!(rtc.poll_output().unwrap(), Output::Timeout(at) if at == expected));
    }

    #[test]
    fn readiness_outgoing_app_feedback_only_wakes_events() {
        let mut rtc = idle_rtc();
        let before = rtc.session.poll_timeout();
        rtc.direct_api()
            .send_app_specific_feedback(42.into(), 43.into(), vec![1, 2, 3, 4]);
        assert!(rtc.readiness.wants_events());
        assert!(!rtc.readiness.wants_timeout());
        assert_eq!(rtc.session.poll_timeout(), before);
        assert!(
            rtc.session.poll_datagram(rtc.last_now).is_some(),
            "queued feedback must be sendable without a timeout"
        );
    }

    #[test]
    fn readiness_api_narrowing_preserves_other_mutations() {
        for feedback_first in [false, true] {
            let mut rtc = idle_rtc();
            if feedback_first {
                rtc.direct_api()
                    .send_app_specific_feedback(42.into(), 43.into(), vec![1, 2, 3, 4]);
                rtc.bwe().reset(Bitrate::kbps(900));
            } else {
                rtc.bwe().reset(Bitrate::kbps(900));
                rtc.direct_api()
                    .send_app_specific_feedback(42.into(), 43.into(), vec![1, 2, 3, 4]);
            }
            assert!(rtc.readiness.wants_events());
            assert!(rtc.readiness.wants_timeout());
        }
    }

    /// An idle `Rtc` with somewhere to send, so that written media comes out as datagrams.
    fn sending_rtc() -> Rtc {
        let mut rtc = idle_rtc();
        rtc.send_addr = Some(crate::SendAddr {
            proto: crate::net::Protocol::Udp,
            source: "127.0.0.1:1000".parse().unwrap(),
            destination: "127.0.0.1:2000".parse().unwrap(),
        });
        rtc
    }

    fn write_packets(rtc: &mut Rtc, first_seq: u64, count: u64) {
        let now = rtc.last_now;
        let mut api = rtc.direct_api();
        let stream = api.stream_tx(&42.into()).unwrap();
        for seq in first_seq..first_seq + count {
            let write = crate::rtp::RtpWrite::new(
                100.into(),
                seq.into(),
                seq as u32 * 3000,
                now,
                vec![seq as u8; 1000],
            );
            stream.write_rtp(write);
        }
    }

    #[test]
    fn events_walked_is_cleared_by_arming_and_kept_by_narrowed_wakes() {
        let mut readiness = Readiness::armed();
        readiness.set_events_walked();
        assert!(readiness.events_walked());
        {
            let mut wake = readiness.wake();
            wake.no_events();
        }
        assert!(
            readiness.events_walked(),
            "a wake that queued no event keeps the walk"
        );
        drop(readiness.wake());
        assert!(
            !readiness.events_walked(),
            "a wake that may have queued one undoes it"
        );
        readiness.set_events_walked();
        readiness.clear_events();
        assert!(!readiness.events_walked());
        assert!(!readiness.wants_events());
    }

    /// Poll until the `Rtc` wants time, then give it the time it asked for, until `count`
    /// datagrams or more came out (the pacer lets a few out per burst; a new media may add
    /// probes). Returns the events seen.
    fn drain(rtc: &mut Rtc, count: usize) -> Vec<crate::Event> {
        let mut sent = 0;
        let mut events = vec![];
        for _ in 0..1000 {
            match rtc.poll_output().unwrap() {
                Output::Transmit(_) => {
                    sent += 1;
                    assert!(
                        rtc.readiness.events_walked(),
                        "walked once before the datagram"
                    );
                }
                Output::Event(e) => events.push(e),
                Output::Timeout(at) => {
                    assert!(!rtc.readiness.events_walked());
                    if sent >= count {
                        return events;
                    }
                    let at = at.max(rtc.last_now + std::time::Duration::from_millis(1));
                    rtc.handle_input(Input::Timeout(at)).unwrap();
                }
            }
        }
        panic!("only {sent} of {count} datagrams came out");
    }

    #[test]
    fn datagrams_after_the_first_skip_the_walk_and_all_come_out() {
        let mut rtc = sending_rtc();
        write_packets(&mut rtc, 1, 5);
        let now = rtc.last_now + std::time::Duration::from_millis(1);
        rtc.handle_input(Input::Timeout(now)).unwrap();
        drain(&mut rtc, 5);
    }

    #[test]
    fn an_event_queued_between_two_datagrams_comes_before_the_next() {
        let mut rtc = sending_rtc();
        write_packets(&mut rtc, 1, 3);
        let now = rtc.last_now + std::time::Duration::from_millis(1);
        rtc.handle_input(Input::Timeout(now)).unwrap();
        while !matches!(rtc.poll_output().unwrap(), Output::Transmit(_)) {}
        assert!(rtc.readiness.events_walked());

        // A mutation through the API that queues an event (here: media announced to the
        // application) arms the walk again.
        {
            let mut api = rtc.direct_api();
            let media = api.declare_media("aud".into(), MediaKind::Audio);
            media.need_open_event = true;
        }
        assert!(!rtc.readiness.events_walked());
        match rtc.poll_output().unwrap() {
            Output::Event(crate::Event::MediaAdded(added)) => assert_eq!(added.mid, "aud".into()),
            other => panic!("expected the queued event before the next datagram, got {other:?}"),
        }
        let events = drain(&mut rtc, 2);
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, crate::Event::MediaAdded(_))),
            "delivered once: {events:?}"
        );
    }

    /// Sequence numbers of the media (SSRC 42) in the datagrams that come out until the `Rtc`
    /// wants time, each datagram asked of `poll_transmit` first when `transmit_first`, the
    /// number of datagrams and how many of them came from `poll_transmit`.
    fn drain_seqs(rtc: &mut Rtc, transmit_first: bool) -> (Vec<u16>, usize, usize) {
        let mut seqs = vec![];
        let mut datagrams = 0;
        let mut from_transmit = 0;
        let mut note = |contents: &[u8]| {
            datagrams += 1;
            if contents[8..12] == 42u32.to_be_bytes() {
                seqs.push(u16::from_be_bytes([contents[2], contents[3]]));
            }
        };
        loop {
            if transmit_first {
                if let Some(t) = rtc.poll_transmit() {
                    from_transmit += 1;
                    note(&t.contents);
                    continue;
                }
            }
            match rtc.poll_output().unwrap() {
                Output::Transmit(t) => note(&t.contents),
                Output::Event(_) => {}
                Output::Timeout(_) => return (seqs, datagrams, from_transmit),
            }
        }
    }

    #[test]
    fn poll_transmit_gives_what_poll_output_would_in_its_order() {
        let mut by_output = sending_rtc();
        let mut by_transmit = sending_rtc();
        for rtc in [&mut by_output, &mut by_transmit] {
            write_packets(rtc, 1, 5);
            let now = rtc.last_now + std::time::Duration::from_millis(1);
            rtc.handle_input(Input::Timeout(now)).unwrap();
        }
        assert!(
            by_transmit.poll_transmit().is_none(),
            "nothing before the event sources were walked"
        );
        let (expected, count, _) = drain_seqs(&mut by_output, false);
        let (seqs, datagrams, from_transmit) = drain_seqs(&mut by_transmit, true);
        assert!(expected.len() > 1);
        assert_eq!(seqs, expected);
        assert_eq!(datagrams, count);
        assert_eq!(from_transmit, datagrams - 1, "all but the first, after the walk");
        assert_eq!(by_transmit.peer_bytes_tx, by_output.peer_bytes_tx);
        assert!(!by_transmit.readiness.wants_events());

        // An event queued by the API between two datagrams stops `poll_transmit`, and
        // `poll_output` gives it first.
        write_packets(&mut by_transmit, 6, 3);
        let now = by_transmit.last_now + std::time::Duration::from_millis(1);
        by_transmit.handle_input(Input::Timeout(now)).unwrap();
        while !matches!(by_transmit.poll_output().unwrap(), Output::Transmit(_)) {}
        assert!(by_transmit.readiness.events_walked());
        {
            let mut api = by_transmit.direct_api();
            let media = api.declare_media("aud".into(), MediaKind::Audio);
            media.need_open_event = true;
        }
        assert!(by_transmit.poll_transmit().is_none());
        assert!(matches!(
            by_transmit.poll_output().unwrap(),
            Output::Event(crate::Event::MediaAdded(_))
        ));
    }

    use std::time::Duration;

    /// Like [`sending_rtc`], as a forwarding server runs it: RTP mode, no estimator.
    fn forwarding_rtc() -> Rtc {
        let now = Instant::now();
        let mut rtc = Rtc::builder().set_rtp_mode(true).build(now);
        let profile = SrtpProfile::AEAD_AES_128_GCM;
        let mat = KeyingMaterial::new(&vec![0; profile.keying_material_len()]);
        rtc.session
            .set_keying_material(mat, crate::crypto::test_default_provider(), profile, true);
        rtc.direct_api()
            .declare_media("vid".into(), MediaKind::Video);
        rtc.direct_api()
            .declare_stream_tx(42.into(), None, "vid".into(), None);
        rtc.handle_input(Input::Timeout(now)).unwrap();
        while !matches!(rtc.poll_output().unwrap(), Output::Timeout(_)) {}
        rtc.send_addr = Some(crate::SendAddr {
            proto: crate::net::Protocol::Udp,
            source: "127.0.0.1:1000".parse().unwrap(),
            destination: "127.0.0.1:2000".parse().unwrap(),
        });
        rtc
    }

    fn write_packets_narrowly(rtc: &mut Rtc, first_seq: u64, count: u64) {
        let now = rtc.last_now;
        for seq in first_seq..first_seq + count {
            let write = crate::rtp::RtpWrite::new(
                100.into(),
                seq.into(),
                seq as u32 * 3000,
                now,
                vec![seq as u8; 1000],
            );
            assert!(rtc.direct_api().write_rtp(&42.into(), write).is_ok());
        }
    }

    #[test]
    fn release_written_lets_out_what_a_timeout_would_without_a_walk() {
        let mut by_timeout = forwarding_rtc();
        let mut by_release = forwarding_rtc();
        for round in 0..3 {
            for rtc in [&mut by_timeout, &mut by_release] {
                write_packets_narrowly(rtc, 1 + round * 5, 5);
                assert!(!rtc.readiness.wants_events(), "writing queues no event");
                assert!(rtc.readiness.wants_timeout());
            }
            let now = by_timeout.last_now.max(by_release.last_now) + Duration::from_millis(1);
            by_timeout.handle_input(Input::Timeout(now)).unwrap();
            assert!(by_release.release_written(now));
            assert_eq!(by_release.last_now, now);
            let (expected, _, _) = drain_seqs(&mut by_timeout, false);
            let (seqs, datagrams, from_transmit) = drain_seqs(&mut by_release, true);
            assert_eq!(expected.len(), 5);
            assert_eq!(seqs, expected, "the same media in the same order");
            // The timeout may also have sent a report that was due; that waits for the next.
            assert_eq!(datagrams, 5, "the media alone");
            assert_eq!(from_transmit, datagrams, "no walk of the event sources");
            assert!(!by_release.readiness.wants_events());
        }
        // What a timeout does besides is asked for when due: the sender reports, here.
        let Output::Timeout(due) = by_release.poll_output().unwrap() else {
            panic!("quiescent");
        };
        assert!(due <= by_release.last_now, "a report is due");
        by_release.handle_input(Input::Timeout(by_release.last_now)).unwrap();
        let (seqs, datagrams, _) = drain_seqs(&mut by_release, false);
        assert!(seqs.is_empty() && datagrams >= 1, "the report goes out");
    }

    #[test]
    fn release_written_refuses_where_only_a_timeout_will_do() {
        // With an estimator (its pacer binds probes at timeouts).
        let mut rtc = sending_rtc();
        write_packets(&mut rtc, 1, 2);
        let now = rtc.last_now + Duration::from_millis(1);
        assert!(!rtc.release_written(now));
        // A stream that has not had its first timeout.
        let mut rtc = forwarding_rtc();
        rtc.direct_api()
            .declare_stream_tx(43.into(), None, "vid".into(), None);
        let write = crate::rtp::RtpWrite::new(100.into(), 1.into(), 0, now, vec![0; 10]);
        assert!(rtc.direct_api().write_rtp(&43.into(), write).is_ok());
        assert!(!rtc.release_written(rtc.last_now + Duration::from_millis(1)));
        // Time going backwards.
        let mut rtc = forwarding_rtc();
        let before = rtc.last_now - Duration::from_millis(1);
        assert!(!rtc.release_written(before));
        // No such stream to write to.
        let write = crate::rtp::RtpWrite::new(100.into(), 1.into(), 0, now, vec![0; 10]);
        assert!(rtc.direct_api().write_rtp(&44.into(), write).is_err());
    }

    #[test]
    fn narrowing_preserves_other_operations() {
        for events in [false, true] {
            for timeout in [false, true] {
                let mut readiness = Readiness {
                    events,
                    timeout,
                    walked: false,
                };
                {
                    let mut wake = readiness.wake();
                    wake.no_events();
                    wake.no_timeout();
                }
                assert_eq!(readiness.wants_events(), events);
                assert_eq!(readiness.wants_timeout(), timeout);
            }
        }
    }
}
