//! `lit run bert|llama|gpt2 STORE …`: streamed inference with the built-in architectures.

mod bert;
mod generate;

use crate::report::RunReport;
use anyhow::Context;
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

    /// The `--budget` in bytes.
    pub(crate) fn budget(&self) -> Option<u64> {
        self.budget.map(|b| b.as_u64())
    }

    /// Stream options from the flags.
    pub(crate) fn stream_options(&self) -> StreamOptions {
        let options = StreamOptions::default().with_prefetch(self.prefetch);
        match self.budget() {
            Some(b) => options.with_budget(b),
            None => options,
        }
    }

    /// The report of `passes` passes through `streamer` run with these flags, taking `seconds`.
    pub(crate) fn report(&self, streamer: &Streamer, passes: usize, seconds: f64) -> RunReport {
        RunReport::streamed(streamer, self.budget(), self.prefetch, passes, seconds)
    }
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.model {
        Model::Bert(a) => bert::run(a),
        Model::Llama(a) => generate::run(a, generate::Arch::Llama),
        Model::Gpt2(a) => generate::run(a, generate::Arch::Gpt2),
    }
}
