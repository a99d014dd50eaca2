//! `[auth]`: signed join tokens (JWT) from an organisation's sign-in service.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Secret;

#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Shared secret for HS256 join tokens (JWT), at least 32 characters. Prefer the environment
    /// variable or the config file: command lines are visible to other users of the machine.
    #[arg(
        long,
        env = "CONCLAVE_JWT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub jwt_secret: Option<Secret>,

    /// PEM public key for RS256 or ES256 join tokens.
    #[arg(long, env = "CONCLAVE_JWT_PUBLIC_KEY", value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,

    /// Required `aud` claim of join tokens.
    #[arg(long, env = "CONCLAVE_JWT_AUDIENCE", value_name = "AUD")]
    pub jwt_audience: Option<String>,

    /// Required `iss` claim of join tokens.
    #[arg(long, env = "CONCLAVE_JWT_ISSUER", value_name = "ISS")]
    pub jwt_issuer: Option<String>,
}
