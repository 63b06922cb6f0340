//! `lit export SRC DST`

use crate::progress::WriteProgress;
use anyhow::Context;
use lit_core::DType;
use lit_core::grouping::GroupingOptions;
use lit_store::ExportOptions;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    /// Checkpoint: a .safetensors file, a Hugging Face model directory, a PyTorch .bin/.pt, a
    /// Burn .bpk file, or a llama.cpp .gguf file (architecture `llama`).
    src: PathBuf,
    /// Destination: a new store directory, or an object-store URL (s3://bucket/prefix/model.lit,
    /// gs://…, az://…, memory://…). It must not hold a store yet.
    dst: String,
    /// Convert float tensors to this type. Quantized GGUF tensors are dequantized to it (without
    /// --dtype their blocks are stored as they are).
    #[arg(long, value_parser = ["f32", "f16", "bf16"])]
    dtype: Option<String>,
    /// Quantize 2-D float weight matrices (`*.weight`, inner dimension a multiple of 32) to
    /// GGML blocks; norms and biases keep their float type.
    #[arg(long, value_parser = ["q8_0", "q4_0", "q4_1"])]
    quantize: Option<String>,
    /// Group tensors into layers by this regex (first capture group, or the whole match) instead
    /// of the default rule, for the tensors it matches.
    #[arg(long, value_name = "REGEX")]
    group: Option<String>,
    /// Split layers larger than this (e.g. 256MiB).
    #[arg(long, value_name = "SIZE", value_parser = super::nonzero_size)]
    max_layer_size: Option<bytesize::ByteSize>,
    /// A config.json to store with the weights.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A tokenizer.json to store with the weights.
    #[arg(long, value_name = "FILE")]
    tokenizer: Option<PathBuf>,
    /// Model name recorded in the store.
    #[arg(long)]
    name: Option<String>,
    /// Also write the export's report (bytes written, seconds, peak RSS) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
    /// Write even when the destination seems to lack the free space the store needs (checked
    /// before writing starts; object stores are not checked).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    reach: super::StoreArgs,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let regex = args
        .group
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("invalid --group regex")?;
    let options = ExportOptions {
        dtype: args
            .dtype
            .as_deref()
            .map(|d| d.parse::<DType>())
            .transpose()
            .map_err(anyhow::Error::msg)?,
        quantize: args
            .quantize
            .as_deref()
            .map(|q| q.parse::<lit_core::QuantScheme>())
            .transpose()
            .map_err(anyhow::Error::msg)?,
        grouping: GroupingOptions {
            regex,
            max_layer_bytes: args.max_layer_size.map(|s| s.as_u64()),
        },
        name: args.name,
        config: args.config,
        tokenizer: args.tokenizer,
    };
    let mut writer = args.reach.create(&args.dst)?;
    if args.force {
        writer.skip_space_check();
    }
    let progress = WriteProgress::new("exporting");
    let report = lit_store::export(&args.src, writer, &options, &progress)
        .map_err(super::hint_force)
        .with_context(|| {
            format!(
                "cannot export {} to {}",
                args.src.display(),
                super::shown(&args.dst)
            )
        });
    progress.finish();
    let report = report?;
    crate::report::ExportReport::new(&report, super::shown(&args.dst))
        .finish(args.stats_json.as_deref())?;
    Ok(ExitCode::SUCCESS)
}
