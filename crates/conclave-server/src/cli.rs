//! Command line: everything has a working default, so `conclave` alone starts a server.

use std::net::{IpAddr, SocketAddr};

use clap::Parser;

/// Conclave: self-hosted video meetings. Serves the web client, signaling and the media server.
#[derive(Debug, Clone, Parser)]
#[command(name = "conclave", version, about)]
pub struct Cli {
    /// Address for HTTP and WebSocket (the web client and signaling).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    pub listen: SocketAddr,

    /// The one UDP address for all media.
    #[arg(long, default_value = "127.0.0.1:40000", value_name = "HOST:PORT")]
    pub udp: SocketAddr,

    /// Address announced to browsers in ICE candidates. Defaults to the --udp host when that is a
    /// specific address; required when --udp binds to 0.0.0.0 or [::].
    #[arg(long, value_name = "IP")]
    pub public_ip: Option<IpAddr>,

    /// Media worker threads; each room lives on one. Defaults to one per CPU core.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Seconds a participant whose connection dropped is kept so it can come back as itself.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub reconnect_grace: u64,

    /// Log filter, e.g. `info` or `conclave=debug,str0m=warn`. Overrides RUST_LOG.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
}

impl Cli {
    /// The address put into ICE candidates.
    pub fn candidate_addr(&self) -> Result<SocketAddr, String> {
        let ip = match self.public_ip {
            Some(ip) => ip,
            None if self.udp.ip().is_unspecified() => {
                return Err(format!(
                    "--udp {} binds to all interfaces; give the address browsers reach with --public-ip",
                    self.udp
                ));
            }
            None => self.udp.ip(),
        };
        Ok(SocketAddr::new(ip, self.udp.port()))
    }

    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}
