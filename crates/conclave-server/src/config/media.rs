//! `[media]`: what each participant receives (last-N, simulcast layer choice).

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    /// Most video streams forwarded to one participant: the tiles it shows, else the most recent
    /// speakers. Bounds each browser's downlink and decoding work in large meetings (1–500).
    #[arg(long, env = "CONCLAVE_LAST_N", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=500))]
    pub last_n: Option<u16>,

    /// Most audio streams forwarded to one participant; with more, the most recent speakers are
    /// heard (1–500).
    #[arg(long, env = "CONCLAVE_AUDIO_LAST_N", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=500))]
    pub audio_last_n: Option<u16>,

    /// How simulcast layers are chosen: `auto` by tile size and each receiver's bandwidth, or
    /// `highest` always (no adaptation; for comparison measurements).
    #[arg(long, value_enum, env = "CONCLAVE_LAYER_SELECTION")]
    pub layer_selection: Option<LayerSelection>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerSelection {
    Auto,
    Highest,
}
