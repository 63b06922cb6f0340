//! `lit demo`: the main job end to end with nothing downloaded. Synthesizes a Llama-style model
//! several times larger than the memory budget it then runs under, streams it layer by layer, and
//! prints tokens/s, bytes read per token and peak RSS against the budget.

use crate::progress::{WriteProgress, human_bytes};
use crate::report::RunReport;
use anyhow::Context;
use lit_burn::models::arch::architecture_named;
use lit_burn::models::generate::GenerateOptions;
use lit_burn::models::synth::{Synth, SynthConfig, parse_count};
use lit_burn::{LitDevice, StreamOptions};
use lit_core::WeightSource;
use lit_store::{LocalSource, StoreWriter};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    /// Working directory (default: a temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Size of the synthetic model, in parameters.
    #[arg(long, default_value = "125M")]
    params: String,
    /// How many times larger than the weights budget the model is.
    #[arg(long, default_value_t = 4.0)]
    times_larger: f64,
    /// Layers fetched ahead of the running one.
    #[arg(long, default_value_t = 1)]
    prefetch: usize,
    /// Tokens to generate.
    #[arg(long, default_value_t = 8)]
    tokens: usize,
    /// Also write the run's report (bytes, seconds, peak RSS, pass times) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let temp;
    let dir = match args.dir {
        Some(d) => d,
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let store = dir.join("synth-llama.lit");
    if store.exists() {
        std::fs::remove_dir_all(&store)
            .with_context(|| format!("cannot remove old {}", store.display()))?;
    }

    let arch = architecture_named("llama")?;
    let synth = Synth::new(
        SynthConfig::with_params(arch, parse_count(&args.params)?)?,
        7,
    );
    println!(
        "1. synthesizing a Llama-style model: {} parameters ({}), {} of f32, seeded",
        synth.config.num_params(),
        synth.config.describe(),
        human_bytes(synth.data_bytes())
    );
    let writer = StoreWriter::create_local(&store)?;
    writer.ensure_space(synth.data_bytes())?;
    let progress = WriteProgress::new("   writing");
    let manifest = synth
        .write_store(writer, &progress)
        .with_context(|| format!("cannot write {}", store.display()));
    progress.finish();
    let manifest = manifest?;
    println!(
        "   store {}: {} layers, largest {}",
        store.display(),
        manifest.layers.len(),
        human_bytes(manifest.largest_layer_bytes())
    );

    let model_bytes = manifest.total_bytes;
    let budget = ((model_bytes as f64 / args.times_larger) as u64).max(arch.min_budget(&manifest));
    println!(
        "2. streaming it under a {} weights budget ({:.1}× smaller than the model), prefetching {} layer(s) ahead",
        human_bytes(budget),
        model_bytes as f64 / budget as f64,
        args.prefetch
    );
    let source: Arc<dyn WeightSource> = Arc::new(LocalSource::open(&store)?);
    let device = LitDevice::cpu();
    let model = arch.decoder(source.as_ref(), device.device())?;
    let options = StreamOptions::default()
        .with_budget(budget)
        .with_prefetch(args.prefetch);
    let options = arch.stream_options(source.as_ref(), options);
    let streamer = model.streamer(source, options)?;
    let prompt = [1u32, 2, 3, 4];
    let mut count = 0;
    let mut last = Instant::now();
    let generation = model
        .generate(
            &streamer,
            &prompt,
            &GenerateOptions::greedy(args.tokens),
            &mut |id| {
                count += 1;
                println!(
                    "   token {count}/{}: id {id:<6} {:>6.0} ms",
                    args.tokens,
                    last.elapsed().as_secs_f64() * 1e3
                );
                let _ = std::io::stdout().flush();
                last = Instant::now();
            },
        )
        .context("generation failed")?;
    streamer.check_store()?;
    let report = RunReport::streamed(
        &streamer,
        Some(budget),
        args.prefetch,
        generation.passes(),
        generation.total().as_secs_f64(),
    )
    .with_generation(&generation, prompt.len());

    println!("3. results");
    println!(
        "   {:.2} tokens/s after the prompt ({} passes in {:.2} s)",
        generation.tokens_per_second(),
        report.passes,
        report.seconds
    );
    println!(
        "   {} read from the store per pass (model {}, resident {})",
        human_bytes(report.bytes_read / report.passes.max(1) as u64),
        human_bytes(report.model_bytes),
        human_bytes(report.resident_bytes)
    );
    println!(
        "   peak weights held {} of the {} budget; peak RSS of the whole process {}",
        human_bytes(report.peak_held),
        human_bytes(budget),
        report
            .peak_rss
            .map(human_bytes)
            .unwrap_or_else(|| "unknown".into())
    );
    println!("   the model never had to fit in memory: each layer was fetched, run and released.");
    if let Some(path) = &args.stats_json {
        crate::report::write_json(&report, path)?;
    }
    Ok(ExitCode::SUCCESS)
}
