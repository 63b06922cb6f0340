//! `lit synth ARCH DST --params 2B --seed N`, for every architecture the registry can synthesize
//! (llama, gpt2).

use crate::progress::{WriteProgress, human_bytes, mb_per_s};
use anyhow::Context;
use lit_burn::models::arch::architecture_named;
use lit_burn::models::synth::{Synth, SynthConfig, parse_count, synthesizable};
use lit_core::DType;
use lit_store::StoreWriter;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    /// Architecture (its `model_type`): llama or gpt2.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(synthesizable()))]
    pub(crate) arch: String,
    /// Destination store directory (must not exist).
    pub(crate) dst: std::path::PathBuf,
    /// Approximate parameter count (e.g. 125M, 2B).
    #[arg(long, default_value = "100M")]
    pub(crate) params: String,
    /// Seed of the weights.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Write a Hugging Face model directory (config.json + model.safetensors) instead of a
    /// store: the same weights, for other tools (candle, transformers) or `lit export`.
    #[arg(long)]
    pub(crate) hf: bool,
    /// Float type of the weights: f32, f16 or bf16.
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16", "bf16"])]
    pub(crate) dtype: String,
    /// Store the weight matrices as 8- or 4-bit blocks (as `lit export --quantize` does): q8_0,
    /// q4_0 or q4_1. Norms and biases stay float.
    #[arg(long, value_parser = ["q8_0", "q4_0", "q4_1"], conflicts_with = "hf")]
    pub(crate) quantize: Option<String>,
    /// Write even when the destination seems to lack the free space the model needs (checked
    /// before writing starts).
    #[arg(long)]
    pub(crate) force: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let target = parse_count(&args.params)?;
    let config = SynthConfig::with_params(architecture_named(&args.arch)?, target)?;
    let dtype: DType = args.dtype.parse().map_err(anyhow::Error::msg)?;
    let quantize = match &args.quantize {
        Some(q) => Some(
            q.parse::<lit_core::QuantScheme>()
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    let synth = Synth::new(config, args.seed)
        .with_dtype(dtype)
        .with_quantize(quantize);
    let shape = synth.config.describe();
    let params = synth.config.num_params();
    eprintln!(
        "synthesizing a {} of {} parameters ({shape}), {} of {dtype}",
        args.arch,
        human_count(params),
        human_bytes(synth.data_bytes()),
    );
    if args.hf {
        anyhow::ensure!(
            !args.dst.exists(),
            "{}: already exists (remove it or choose another destination)",
            args.dst.display()
        );
        if !args.force {
            lit_store::space::ensure_space(&args.dst, synth.data_bytes())
                .map_err(super::hint_force)?;
        }
        let start = Instant::now();
        synth
            .write_hf_dir(&args.dst)
            .with_context(|| format!("cannot write {}", args.dst.display()))?;
        println!(
            "wrote synthetic {} ({} parameters, seed {}) as a Hugging Face directory {} in {:.2} s",
            args.arch,
            human_count(params),
            args.seed,
            args.dst.display(),
            start.elapsed().as_secs_f64()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut writer = StoreWriter::create_local(&args.dst)
        .with_context(|| format!("cannot create {}", args.dst.display()))?;
    if args.force {
        writer.skip_space_check();
    }
    writer
        .ensure_space(synth.data_bytes())
        .map_err(super::hint_force)?;
    let progress = WriteProgress::new("synthesizing");
    let start = Instant::now();
    let result = synth.write_store(writer, &progress);
    progress.finish();
    let manifest = result.with_context(|| format!("cannot write {}", args.dst.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "wrote synthetic {} ({} parameters, seed {}): {} in {} layers to {} in {seconds:.2} s ({:.0} MB/s)",
        args.arch,
        human_count(params),
        args.seed,
        human_bytes(manifest.total_bytes),
        manifest.layers.len(),
        args.dst.display(),
        mb_per_s(manifest.total_bytes, seconds),
    );
    Ok(ExitCode::SUCCESS)
}

/// `1.23B`, `125.0M`, `45.2K`.
fn human_count(n: u64) -> String {
    let n = n as f64;
    match n {
        _ if n >= 1e9 => format!("{:.2}B", n / 1e9),
        _ if n >= 1e6 => format!("{:.1}M", n / 1e6),
        _ if n >= 1e3 => format!("{:.1}K", n / 1e3),
        _ => format!("{n}"),
    }
}
