//! `lit run bert STORE [--tokenizer FILE] [--json] TEXT...`, or
//! `lit run bert STORE --input FILE --output FILE.jsonl` for a corpus (see [`corpus`]).

mod committed;
mod corpus;

use anyhow::Context;
use lit_burn::models::bert::{DEFAULT_MAX_LENGTH, SentenceEmbedder, tokenizer_from_json};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

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
    /// Longest input in tokens; longer texts are truncated.
    #[arg(long, default_value_t = DEFAULT_MAX_LENGTH, value_parser = super::super::at_least_one)]
    pub(crate) max_length: usize,
    /// Texts per encoder pass (each pass streams the model once).
    #[arg(long, default_value_t = 32, value_parser = super::super::at_least_one)]
    pub(crate) batch_size: usize,
    /// Embed the texts this many times (benchmarks: the first pass also fills resident layers);
    /// prints the vectors once and each repetition's time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) repeat: u32,
    /// Drop the page cache before every repetition (root only), to measure cold reads.
    #[arg(long)]
    pub(crate) drop_caches: bool,
    /// Embed every line of FILE (one sentence per line, any size) into --output instead of
    /// TEXTs: chunk by chunk, each layer loaded once per chunk, resumable.
    #[arg(long, value_name = "FILE", requires = "output",
          conflicts_with_all = ["texts", "json", "repeat", "drop_caches"])]
    pub(crate) input: Option<PathBuf>,
    /// JSONL file for the --input embeddings: `{"index":N,"embedding":[…]}` per line, in input
    /// order. A run interrupted at any point resumes from its last committed chunk when started
    /// again with the same options (state in FILE.lit-progress, removed when it finishes).
    #[arg(long, value_name = "FILE", requires = "input")]
    pub(crate) output: Option<PathBuf>,
    /// Sentences per chunk of --input: each layer is loaded once per chunk, and a chunk is what
    /// an interruption can lose. Default: as many as the activation budget holds (estimated
    /// from the first lines), at most 16384.
    #[arg(long, value_name = "N", requires = "input", value_parser = super::super::at_least_one)]
    pub(crate) chunk_size: Option<usize>,
    /// Memory for a chunk's hidden states between layers; beyond it they spill to --spill-dir.
    /// Default: a quarter of the memory available (at least 64 MiB).
    #[arg(long, value_name = "SIZE", requires = "input")]
    pub(crate) activation_budget: Option<bytesize::ByteSize>,
    /// Where spilled hidden states go (unnamed files, gone when the run ends, even if killed).
    /// Default: the directory of --output.
    #[arg(long, value_name = "DIR", requires = "input")]
    pub(crate) spill_dir: Option<PathBuf>,
    /// Texts to embed.
    #[arg(required_unless_present = "input")]
    pub(crate) texts: Vec<String>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let (Some(input), Some(output)) = (&args.input, &args.output) {
        return corpus::run(&args, input, output);
    }
    let embedder = open_embedder(&args)?;
    super::announce_budget(embedder.streamer());
    embed_texts(args, embedder)
}

/// The embedder the flags ask for: the store's tokenizer or `--tokenizer`, `--max-length`,
/// `--batch-size`.
fn open_embedder(args: &Args) -> anyhow::Result<SentenceEmbedder> {
    let source = args.common.open()?;
    let device = args.common.device()?;
    let options = args.common.stream_options();
    Ok(match &args.tokenizer {
        Some(path) => {
            let json = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
            let tokenizer = tokenizer_from_json(&json, args.max_length)?;
            SentenceEmbedder::with_tokenizer(source, tokenizer, device.device(), options)?
        }
        None if args.max_length != DEFAULT_MAX_LENGTH => {
            let json = futures::executor::block_on(lit_core::WeightSourceExt::read_aux(
                source.as_ref(),
                "tokenizer.json",
            ))?;
            let tokenizer = tokenizer_from_json(&json, args.max_length)?;
            SentenceEmbedder::with_tokenizer(source, tokenizer, device.device(), options)?
        }
        None => SentenceEmbedder::open(source, device.device(), options)?,
    }
    .with_batch_size(args.batch_size))
}

fn embed_texts(args: Args, embedder: SentenceEmbedder) -> anyhow::Result<ExitCode> {
    let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    let start = Instant::now();
    let mut vectors = Vec::new();
    let mut repeat_ms = Vec::new();
    for _ in 0..args.repeat {
        if args.drop_caches {
            anyhow::ensure!(
                crate::process::drop_page_cache(),
                "--drop-caches needs root (cannot write /proc/sys/vm/drop_caches)"
            );
        }
        let pass = Instant::now();
        vectors = embedder.embed(&texts)?;
        repeat_ms.push(pass.elapsed().as_secs_f64() * 1e3);
    }
    let seconds = start.elapsed().as_secs_f64();

    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &vectors)?;
        writeln!(out)?;
    } else {
        for v in &vectors {
            let line: Vec<String> = v.iter().map(f32::to_string).collect();
            writeln!(out, "{}", line.join(" "))?;
        }
    }
    out.flush()?;
    let passes = texts.len().div_ceil(args.batch_size.max(1)) * args.repeat as usize;
    let report = crate::report::RunReport {
        repeat_ms,
        ..args.common.report(embedder.streamer(), passes, seconds)?
    };
    report.finish(args.common.stats_json.as_deref())?;
    Ok(ExitCode::SUCCESS)
}
