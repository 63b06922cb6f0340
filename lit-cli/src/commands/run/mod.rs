//! `lit run bert|llama|gpt2 STORE …`: streamed inference with the built-in architectures. The
//! subcommand is a `model_type` of the architecture registry (`lit_burn::models::arch`); any other
//! it knows (`mistral`, or one added later) runs with the options of its task.

mod bert;
mod generate;

use crate::progress::human_bytes;
use anyhow::Context;
use lit_burn::models::arch::{Task, architecture_named};
use lit_burn::{LitDevice, StreamOptions, Streamer};
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
    /// Memory budget for weights: resident layers + prefetches + the running layer (e.g. 512MiB).
    /// Default: the whole model (everything stays resident after the first pass).
    #[arg(long, value_name = "SIZE")]
    pub(crate) budget: Option<bytesize::ByteSize>,
    /// Layers fetched ahead of the running one.
    #[arg(long, default_value_t = 2)]
    pub(crate) prefetch: usize,
    /// Compute device: cpu (Flex), ndarray, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
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
        let options = StreamOptions::default().with_prefetch(self.prefetch);
        match self.budget {
            Some(b) => options.with_budget(b.as_u64()),
            None => options,
        }
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

/// Drops the kernel's page cache (needs root); whether it could.
pub(crate) fn drop_page_cache() -> bool {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// Peak resident set size of this process so far (VmHWM), in bytes.
pub(crate) fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The closing lines every run prints (to stderr, so stdout stays machine-readable); the last is
/// `stats key=value …` in bytes and seconds, for scripts and tests.
pub(crate) fn report(streamer: &Streamer, passes: usize, seconds: f64, budget: Option<u64>) {
    let stats = streamer.stats();
    let per_pass = seconds / passes.max(1) as f64;
    eprintln!(
        "{passes} passes in {seconds:.2} s ({:.1} ms/pass); read {} from the store ({} resident in {} layers)",
        per_pass * 1e3,
        human_bytes(stats.bytes_read_total()),
        human_bytes(stats.resident_bytes),
        stats.resident_layers,
    );
    let rss = peak_rss();
    let shown = rss.map(human_bytes).unwrap_or_else(|| "unknown".into());
    match budget {
        Some(b) => eprintln!(
            "peak RSS {shown} (weights budget {}; peak weights held {})",
            human_bytes(b),
            human_bytes(stats.peak_bytes_held)
        ),
        None => eprintln!(
            "peak RSS {shown} (no budget; peak weights held {})",
            human_bytes(stats.peak_bytes_held)
        ),
    }
    eprintln!(
        "stats passes={passes} seconds={seconds:.6} bytes_read={} resident_bytes={} peak_held={} peak_rss={} budget={} largest_layer={}",
        stats.bytes_read_total(),
        stats.resident_bytes,
        stats.peak_bytes_held,
        rss.unwrap_or(0),
        budget.unwrap_or(0),
        streamer.source().manifest().largest_layer_bytes(),
    );
}
