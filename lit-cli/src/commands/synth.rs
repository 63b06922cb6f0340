//! `lit synth llama|gpt2 DST --params 2B --seed N`

use std::process::ExitCode;

#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    /// Architecture: llama or gpt2.
    #[arg(value_parser = ["llama", "gpt2"])]
    pub(crate) arch: String,
    /// Destination store directory (must not exist).
    pub(crate) dst: std::path::PathBuf,
    /// Approximate parameter count (e.g. 125M, 2B).
    #[arg(long, default_value = "100M")]
    pub(crate) params: String,
    /// Seed of the weights.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Float type of the weights: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub(crate) dtype: String,
}

pub(crate) fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`lit synth` is not built yet")
}
