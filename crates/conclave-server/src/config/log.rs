//! `[log]`: how much the server logs and in which format. Logs never carry IP addresses, names,
//! room names or tokens, whatever the level.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Log filter, e.g. `info` or `conclave=debug,str0m=warn`. When unset, RUST_LOG, else the
    /// built-in default.
    #[arg(
        id = "log_level",
        long = "log",
        env = "CONCLAVE_LOG",
        value_name = "FILTER"
    )]
    pub level: Option<String>,

    /// `human` (text lines) or `json` (one object per line, for log collectors).
    #[arg(
        id = "log_format",
        long = "log-format",
        env = "CONCLAVE_LOG_FORMAT",
        value_enum
    )]
    pub format: Option<LogFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}
