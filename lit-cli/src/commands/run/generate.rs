//! `lit run llama|gpt2 STORE --prompt P --max-tokens N`

use std::process::ExitCode;

/// Which decoder.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arch {
    Llama,
    Gpt2,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: super::Common,
    /// The prompt (tokenized with the store's tokenizer.json), or comma-separated token ids with
    /// `--ids`.
    #[arg(long)]
    pub(crate) prompt: String,
    /// Treat the prompt as comma-separated token ids.
    #[arg(long)]
    pub(crate) ids: bool,
    /// Tokens to generate.
    #[arg(long, default_value_t = 16)]
    pub(crate) max_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) temperature: f32,
    /// Seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
}

pub(crate) fn run(_args: Args, _arch: Arch) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`lit run llama|gpt2` is not built yet")
}
