//! `lit run bert STORE [--tokenizer FILE] [--json] TEXT...`

use std::process::ExitCode;

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: super::Common,
    /// tokenizer.json to use instead of the one stored with the weights.
    #[arg(long, value_name = "FILE")]
    pub(crate) tokenizer: Option<std::path::PathBuf>,
    /// Print a JSON array of float arrays.
    #[arg(long)]
    pub(crate) json: bool,
    /// Texts to embed.
    #[arg(required = true)]
    pub(crate) texts: Vec<String>,
}

pub(crate) fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`lit run bert` is not built yet")
}
