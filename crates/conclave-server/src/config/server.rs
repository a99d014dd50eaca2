//! `[server]`: where Conclave listens, its media ports and workers, and how meetings behave.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address for HTTP(S) and WebSocket (the web client and signaling).
    #[arg(long, env = "CONCLAVE_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<SocketAddr>,

    /// The one UDP address for all media.
    #[arg(long, env = "CONCLAVE_UDP", value_name = "HOST:PORT")]
    pub udp: Option<SocketAddr>,

    /// Addresses announced to browsers in ICE candidates (repeat, or comma-separate, for IPv4
    /// and IPv6). Defaults to the udp host when that is a specific address; required when udp
    /// binds to 0.0.0.0 or [::].
    #[arg(
        long,
        env = "CONCLAVE_PUBLIC_IP",
        value_name = "IP",
        value_delimiter = ','
    )]
    pub public_ip: Option<Vec<IpAddr>>,

    /// Exact address (IP and port) announced to browsers in ICE candidates, when the port they
    /// reach differs from the udp port: behind a port-forwarding NAT, or a relay in front of the
    /// media port. Replaces public_ip.
    #[arg(long, env = "CONCLAVE_ANNOUNCE", value_name = "IP:PORT")]
    pub announce: Option<SocketAddr>,

    /// Media worker threads; each room lives on one. Defaults to one per CPU core.
    #[arg(long, env = "CONCLAVE_WORKERS", value_name = "N")]
    pub workers: Option<usize>,

    /// Directory for stored data (persistent rooms). Created if missing.
    #[arg(long, global = true, env = "CONCLAVE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Seconds a participant whose connection dropped is kept so it can come back as itself.
    #[arg(long, env = "CONCLAVE_RECONNECT_GRACE", value_name = "SECONDS")]
    pub reconnect_grace: Option<u64>,

    /// Who may open a room that is not stored: `anyone`, or only `hosts` holding a valid join
    /// token (others wait until a host is there).
    #[arg(long, value_enum, env = "CONCLAVE_ADHOC_ROOMS")]
    pub adhoc_rooms: Option<AdhocRooms>,

    /// Origins allowed to embed Conclave in a frame (e.g. a learning platform), space-separated.
    /// Default: no embedding.
    #[arg(long, env = "CONCLAVE_FRAME_ANCESTORS", value_name = "ORIGINS")]
    pub frame_ancestors: Option<String>,

    /// Seconds running meetings may continue after SIGTERM before the server closes them.
    #[arg(long, env = "CONCLAVE_DRAIN_TIMEOUT", value_name = "SECONDS")]
    pub drain_timeout: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdhocRooms {
    Anyone,
    Hosts,
}
