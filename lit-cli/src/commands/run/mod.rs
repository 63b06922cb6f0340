//! `lit run bert|llama|gpt2 STORE …`: streamed inference with the built-in architectures. The
//! subcommand is a `model_type` of the architecture registry (`lit_burn::models::arch`); any other
//! it knows (`mistral`, or one added later) runs with the options of its task.

mod bert;
mod generate;
mod prompts;

use crate::report::RunReport;
use anyhow::Context;
use lit_burn::models::arch::{Task, architecture_named};
use lit_burn::{Budget, LitDevice, StreamOptions, Streamer};
use lit_core::WeightSource;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    #[command(subcommand)]
    model: Model,
}

#[derive(Debug, clap::Subcommand)]
enum Model {
    /// Sentence embeddings with a BERT encoder (mean pooling + L2 normalisation).
    Bert(bert::Args),
    /// Text generation with a Llama-style decoder.
    Llama(generate::Args),
    /// Text generation with GPT-2.
    Gpt2(generate::Args),
    /// Any other `model_type` of the registry (e.g. `mistral`), with its task's options.
    #[command(external_subcommand)]
    Other(Vec<String>),
}

/// Options every `lit run` model takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Common {
    /// The store: a directory, file://, s3://, gs://, az://, http(s):// or memory:// location.
    pub(crate) store: String,
    #[command(flatten)]
    pub(crate) reach: super::StoreArgs,
    /// Memory budget for weights: resident layers + prefetches + the running layer. A size
    /// (512MiB), `all` (no limit: everything stays resident) or `auto`. Default: auto, the whole
    /// model when it fits in the memory available (cgroup limits included), otherwise 3/4 of that
    /// memory, streaming the rest.
    #[arg(long, value_name = "SIZE|all|auto", value_parser = parse_budget)]
    pub(crate) budget: Option<Budget>,
    /// Layers fetched ahead of the running one.
    #[arg(long, default_value_t = 2)]
    pub(crate) prefetch: usize,
    /// Compute device: cpu (Flex), ndarray, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    /// Decode quantized weights to f32 when a layer is loaded instead of computing on their
    /// blocks (the default on the CPU). Slower, and a layer then holds 4–7× its stored bytes:
    /// kept to compare the two.
    #[arg(long)]
    pub(crate) dequantize: bool,
    /// Stream whole layers even when the budget holds fewer than two of them. By default a
    /// Llama block is then streamed in four pieces (q/k/v, o, gate/up, down), so the next is
    /// read while one computes (stores written since format version 3). Kept to compare.
    #[arg(long)]
    pub(crate) whole_layers: bool,
    /// Also write the run's report (bytes, seconds, peak RSS, pass times) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) stats_json: Option<std::path::PathBuf>,
}

impl Common {
    /// Opens the store.
    pub(crate) fn open(&self) -> anyhow::Result<Arc<dyn WeightSource>> {
        self.reach.open(&self.store)
    }

    /// The device asked for (probed).
    pub(crate) fn device(&self) -> anyhow::Result<LitDevice> {
        LitDevice::parse(&self.device).with_context(|| format!("device `{}`", self.device))
    }

    /// Stream options from the flags.
    pub(crate) fn stream_options(&self) -> StreamOptions {
        StreamOptions::default()
            .with_prefetch(self.prefetch)
            .with_budget(self.budget.unwrap_or_default())
    }

    /// `options` (an architecture's) with the flags that override it.
    pub(crate) fn overrides(&self, mut options: StreamOptions) -> StreamOptions {
        if self.dequantize {
            options.load = options.load.with_block_compute(false);
        }
        options.with_whole_layers(self.whole_layers)
    }

    /// The report of `passes` passes through `streamer` run with these flags, taking `seconds`;
    /// an error if a mapped store file changed under the last pass (its results are suspect).
    pub(crate) fn report(
        &self,
        streamer: &Streamer,
        passes: usize,
        seconds: f64,
    ) -> anyhow::Result<RunReport> {
        streamer.check_store()?;
        let budget = Some(streamer.budget().bytes).filter(|&b| b != u64::MAX);
        Ok(RunReport::streamed(
            streamer,
            budget,
            self.prefetch,
            passes,
            seconds,
        ))
    }
}

/// Says which budget an automatic `--budget` chose, and warns when the machine may not hold the
/// budget (to stderr).
pub(crate) fn announce_budget(streamer: &Streamer) {
    let choice = streamer.budget();
    if choice.asked == Budget::Auto {
        eprintln!("{choice}");
    }
    if let Some(w) = &choice.warning {
        eprintln!("warning: {w}");
    }
}

/// `--budget`: a size, `all` or `auto`.
pub(crate) fn parse_budget(s: &str) -> Result<Budget, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "all" => Ok(Budget::All),
        "auto" => Ok(Budget::Auto),
        size => size
            .parse::<bytesize::ByteSize>()
            .map(|b| Budget::Bytes(b.as_u64()))
            .map_err(|_| format!("expected a size (512MiB, 2GB), `all` or `auto`, not `{s}`")),
    }
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.model {
        Model::Bert(a) => bert::run(a),
        // The subcommand is the architecture's `model_type` in the registry.
        Model::Llama(a) => generate::run(a, "llama"),
        Model::Gpt2(a) => generate::run(a, "gpt2"),
        Model::Other(argv) => {
            let name = argv.first().map(String::as_str).unwrap_or_default();
            let arch = architecture_named(name)?;
            match arch.task() {
                Task::Generate => generate::run(parse(&argv), arch.model_type()),
                Task::Embed => bert::run(parse(&argv)),
            }
        }
    }
}

/// The options of `lit run <argv[0]>` (clap's usage error and exit when they do not parse).
fn parse<A: clap::Args + clap::FromArgMatches>(argv: &[String]) -> A {
    let name = argv.first().map(String::as_str).unwrap_or_default();
    let command = A::augment_args(clap::Command::new("run").bin_name(format!("lit run {name}")));
    command
        .try_get_matches_from(argv)
        .and_then(|m| A::from_arg_matches(&m))
        .unwrap_or_else(|e| e.exit())
}
