//! Command line: everything has a working default, so `conclave` alone starts a server.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Conclave: self-hosted video meetings. Serves the web client, signaling and the media server.
#[derive(Debug, Clone, Parser)]
#[command(name = "conclave", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,

    #[command(flatten)]
    pub serve: ServeArgs,

    /// Directory for stored data (persistent rooms). Created if missing.
    #[arg(
        long,
        global = true,
        default_value = "./conclave-data",
        env = "CONCLAVE_DATA_DIR",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
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

    /// Exact address (IP and port) announced to browsers in ICE candidates, when the port they
    /// reach differs from the --udp port: behind a port-forwarding NAT, or a relay in front of
    /// the media port. Replaces the --public-ip / --udp address.
    #[arg(long, value_name = "IP:PORT", conflicts_with = "public_ip")]
    pub announce: Option<SocketAddr>,

    /// Media worker threads; each room lives on one. Defaults to one per CPU core.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Seconds a participant whose connection dropped is kept so it can come back as itself.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub reconnect_grace: u64,

    /// Who may open a room that is not stored: `anyone`, or only `hosts` holding a valid join
    /// token (others wait until a host is there).
    #[arg(long, value_enum, default_value_t = AdhocRooms::Anyone, env = "CONCLAVE_ADHOC_ROOMS")]
    pub adhoc_rooms: AdhocRooms,

    /// Shared secret for HS256 join tokens (JWT). Prefer the environment variable: command lines
    /// are visible to other users of the machine.
    #[arg(
        long,
        env = "CONCLAVE_JWT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub jwt_secret: Option<String>,

    /// PEM public key for RS256 or ES256 join tokens.
    #[arg(
        long,
        env = "CONCLAVE_JWT_PUBLIC_KEY",
        value_name = "FILE",
        conflicts_with = "jwt_secret"
    )]
    pub jwt_public_key: Option<PathBuf>,

    /// Required `aud` claim of join tokens.
    #[arg(long, env = "CONCLAVE_JWT_AUDIENCE", value_name = "AUD")]
    pub jwt_audience: Option<String>,

    /// Required `iss` claim of join tokens.
    #[arg(long, env = "CONCLAVE_JWT_ISSUER", value_name = "ISS")]
    pub jwt_issuer: Option<String>,

    /// Origins allowed to embed Conclave in a frame (e.g. a learning platform), space-separated.
    /// Default: no embedding.
    #[arg(long, env = "CONCLAVE_FRAME_ANCESTORS", value_name = "ORIGINS")]
    pub frame_ancestors: Option<String>,

    /// Log filter, e.g. `info` or `conclave=debug,str0m=warn`. Overrides RUST_LOG.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AdhocRooms {
    Anyone,
    Hosts,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Cmd {
    /// Manage persistent rooms (kept in the data directory between meetings).
    #[command(subcommand)]
    Rooms(RoomsCmd),
}

#[derive(Debug, Clone, Subcommand)]
pub enum RoomsCmd {
    /// Create a persistent room. Its moderator password is taken from CONCLAVE_MODERATOR_PASSWORD
    /// or generated and printed once; only its hash is stored.
    Add {
        name: String,
        /// Joiners knock and wait for a moderator.
        #[arg(long)]
        lobby: bool,
        /// Also require a room password from everyone: taken from CONCLAVE_ROOM_PASSWORD or
        /// generated and printed once.
        #[arg(long)]
        with_password: bool,
        /// Delete the room after this long, e.g. `90d`, `12h`, `30m`.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs)]
        expires_in: Option<i64>,
    },
    /// List persistent rooms (never shows a password).
    List,
    /// Delete a persistent room.
    Remove { name: String },
}

/// `90d`, `12h`, `30m`, `45s` → seconds.
fn parse_duration_secs(s: &str) -> Result<i64, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 90d, 12h, 30m or 45s"))?;
    let mult = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" | "" => 1,
        _ => return Err(format!("unknown unit in '{s}': use d, h, m or s")),
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("'{s}' is out of range"))
}

impl ServeArgs {
    /// The address put into ICE candidates.
    pub fn candidate_addr(&self) -> Result<SocketAddr, String> {
        if let Some(addr) = self.announce {
            if addr.ip().is_unspecified() || addr.port() == 0 {
                return Err(format!(
                    "--announce {addr}: give the address and port browsers send media to"
                ));
            }
            return Ok(addr);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("90d"), Ok(90 * 86_400));
        assert_eq!(parse_duration_secs("30m"), Ok(1800));
        assert_eq!(parse_duration_secs("45"), Ok(45));
        assert!(parse_duration_secs("0d").is_err());
        assert!(parse_duration_secs("3w").is_err());
        assert!(parse_duration_secs("d").is_err());
    }

    #[test]
    fn announce_replaces_the_candidate_address() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["conclave"], args].concat());
        let cli = parse(&["--udp", "0.0.0.0:40000", "--announce", "203.0.113.7:3478"]).unwrap();
        assert_eq!(
            cli.serve.candidate_addr(),
            Ok("203.0.113.7:3478".parse().unwrap())
        );
        let cli = parse(&["--udp", "127.0.0.1:40000"]).unwrap();
        assert_eq!(
            cli.serve.candidate_addr(),
            Ok("127.0.0.1:40000".parse().unwrap())
        );
        let cli = parse(&["--announce", "0.0.0.0:3478"]).unwrap();
        assert!(cli.serve.candidate_addr().is_err());
        assert!(parse(&["--announce", "203.0.113.7"]).is_err());
        assert!(parse(&["--public-ip", "203.0.113.7", "--announce", "203.0.113.7:1"]).is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
