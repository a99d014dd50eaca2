//! `conclave-netsim`: a user-space UDP relay that makes a network worse on purpose, to measure
//! meeting quality on bad networks where kernel tools (`tc netem`) are not available.
//!
//! Clients send to the relay's address (the server announces it in its ICE candidates); the relay
//! forwards each client's packets to the server from a socket of its own, so the server sees one
//! distinct address per client as behind a NAT, and impairs each direction separately: delay,
//! jitter, random and bursty (Gilbert–Elliott) loss, and a rate cap with a bounded queue whose
//! rate can follow a schedule. Every random decision comes from a seed.
//!
//! The decisions live in [`Link`] (sans-IO, driven with explicit times); the binary is a thin
//! tokio loop around it.

#![forbid(unsafe_code)]

mod link;
mod spec;

pub use link::{Link, LinkStats};
pub use spec::{Gilbert, LinkSpec, SpecError};
