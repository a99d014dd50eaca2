//! Command line: everything has a working default, so `conclave` alone starts a server. The
//! settings themselves are declared in `config/`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Settings;

/// Conclave: self-hosted video meetings. Serves the web client, signaling and the media server.
///
/// Every setting can also come from a config file (`--config`) or a `CONCLAVE_…` environment
/// variable; a flag wins over the environment, which wins over the file.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "conclave",
    version,
    about,
    after_help = "Every key with its default and its environment variable: deploy/conclave.toml. \
                  `conclave config check` prints the effective settings."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,

    /// TOML configuration file (see deploy/conclave.toml for every key).
    #[arg(long, global = true, env = "CONCLAVE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Cmd {
    /// Manage persistent rooms (kept in the data directory between meetings).
    #[command(subcommand)]
    Rooms(RoomsCmd),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
}

#[derive(Debug, Clone, Subcommand)]
pub enum ConfigCmd {
    /// Validate the configuration (file, environment, flags) and print the effective settings,
    /// secrets redacted. Exits non-zero on any error.
    Check,
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
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
