//! `[api]`: the admin REST API and WHIP/WHEP (see docs/admin-api.md and docs/whip-whep.md).

use serde::{Deserialize, Serialize};

use super::{Defaulted, Secret};
use crate::api::ApiArgs;

#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Bearer token for the admin API under /api/v1 (at least 32 characters). Without it the API
    /// is off and answers 404. Prefer the environment variable: command lines are visible to
    /// other users of the machine.
    #[arg(
        long,
        env = "CONCLAVE_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<Secret>,

    /// Most WHIP and WHEP sessions at once on this server; more are refused with 503.
    #[arg(long, env = "CONCLAVE_WHIP_MAX_SESSIONS", value_name = "N")]
    pub whip_max_sessions: Option<usize>,
}

impl ApiSettings {
    pub fn to_args(&self) -> ApiArgs {
        ApiArgs {
            admin_token: self.admin_token.as_ref().map(|s| s.0.clone()),
            whip_max_sessions: self.whip_max_sessions.value(),
        }
    }
}
