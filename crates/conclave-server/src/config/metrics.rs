//! `[metrics]`: Prometheus metrics (aggregates only: no addresses, names, rooms or ids).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `/metrics` on the main listener.
    #[arg(
        id = "metrics",
        long = "metrics",
        env = "CONCLAVE_METRICS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub enabled: Option<bool>,

    /// Serve `/metrics` on this separate address instead (e.g. 127.0.0.1:9100), off the public
    /// listener.
    #[arg(
        id = "metrics_listen",
        long = "metrics-listen",
        env = "CONCLAVE_METRICS_LISTEN",
        value_name = "HOST:PORT"
    )]
    pub listen: Option<SocketAddr>,
}
