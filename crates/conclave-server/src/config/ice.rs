//! `[ice]`: reaching participants behind restrictive networks: ICE-TCP and TURN (built in or
//! external). See `docs/reachability.md`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{Defaulted, Secret};
use crate::reach::{IceTcp, Policy, ReachArgs};

#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceSettings {
    /// ICE-TCP: a TCP address the media server also accepts WebRTC on (RFC 6544 passive
    /// candidates), for networks that block UDP. `off` disables it. Default: the udp address and
    /// port number, over TCP.
    #[arg(long, env = "CONCLAVE_ICE_TCP", value_name = "HOST:PORT|off")]
    pub ice_tcp: Option<IceTcp>,

    /// Run the built-in TURN server (UDP and TCP) on this address, e.g. `0.0.0.0:3478`. Off by
    /// default. It relays only to this server's own media ports.
    #[arg(long, env = "CONCLAVE_TURN_LISTEN", value_name = "HOST:PORT")]
    pub turn_listen: Option<SocketAddr>,

    /// TURN URLs handed to browsers, e.g. `turn:turn.example.org:3478?transport=tcp` for an
    /// external coturn with `use-auth-secret`. May be repeated. With turn_listen and no URL, the
    /// built-in server's UDP and TCP URLs are used.
    #[arg(
        id = "turn_urls",
        long = "turn-url",
        env = "CONCLAVE_TURN_URLS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub turn_urls: Option<Vec<String>>,

    /// Shared secret for TURN credentials (coturn's `static-auth-secret`). Required with
    /// turn_urls; generated at start for the built-in server when not given. Prefer the
    /// environment variable: command lines are visible to other users of the machine.
    #[arg(
        long,
        env = "CONCLAVE_TURN_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub turn_secret: Option<Secret>,

    /// Seconds a TURN credential stays valid. A relayed connection cannot be refreshed after its
    /// credential expires, so this must outlast the longest meeting.
    #[arg(long, env = "CONCLAVE_TURN_CREDENTIAL_TTL", value_name = "SECONDS")]
    pub turn_credential_ttl: Option<u64>,

    /// `relay` makes browsers use TURN only (their addresses then reach only the TURN server).
    #[arg(long, env = "CONCLAVE_ICE_TRANSPORT_POLICY", value_enum)]
    pub ice_transport_policy: Option<Policy>,
}

impl IceSettings {
    /// The settings in the form the reachability code works with.
    pub fn to_reach(&self) -> ReachArgs {
        ReachArgs {
            ice_tcp: self.ice_tcp,
            turn_listen: self.turn_listen,
            turn_urls: self.turn_urls.clone().unwrap_or_default(),
            turn_secret: self.turn_secret.as_ref().map(|s| s.0.clone()),
            turn_credential_ttl: self.turn_credential_ttl.value(),
            ice_transport_policy: self.ice_transport_policy.value(),
        }
    }
}
