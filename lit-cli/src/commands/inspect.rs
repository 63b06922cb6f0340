//! `lit inspect STORE [--tensors] [--json]`

use crate::progress::human_bytes;
use lit_core::manifest::FORMAT_VERSION;
use lit_core::{Manifest, WeightSource};
use serde_json::json;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    /// The store: a directory, file://, s3://, gs://, az://, http(s):// or memory:// location.
    store: String,
    #[command(flatten)]
    reach: super::StoreArgs,
    /// List every tensor under its layer.
    #[arg(long)]
    tensors: bool,
    /// Print JSON (a `layers` array and totals) instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let source = args.reach.open(&args.store)?;
    let m = source.manifest();
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &to_json(source.location(), m, args.tensors))?;
        writeln!(out)?;
    } else {
        write_table(&mut out, source.location(), m, args.tensors)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A tensor's stored type: its dtype, or its quantization scheme (`Q4_1`) for block-quantized
/// tensors (stored as `U8` bytes).
fn stored_type(t: &lit_core::TensorEntry) -> String {
    match t.quant {
        Some(q) => q.to_string(),
        None => t.dtype.to_string(),
    }
}

fn dtypes(layer: &lit_core::LayerEntry) -> Vec<String> {
    let set: BTreeSet<String> = layer.tensors.iter().map(stored_type).collect();
    set.into_iter().collect()
}

fn to_json(location: &str, m: &Manifest, with_tensors: bool) -> serde_json::Value {
    let layers: Vec<_> = m
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut v = json!({
                "index": i,
                "name": l.name,
                "key": l.key,
                "bytes": l.byte_len,
                "checksum": format!("{:016x}", l.checksum),
                "tensor_count": l.tensors.len(),
                "dtypes": dtypes(l),
            });
            if with_tensors {
                v["tensors"] = l
                    .tensors
                    .iter()
                    .map(|t| json!({"name": t.name, "dtype": t.dtype.to_string(), "quant": t.quant.map(|q| q.to_string()), "shape": t.shape, "offset": t.offset, "bytes": t.len}))
                    .collect();
            }
            v
        })
        .collect();
    json!({
        "location": location,
        "model_name": m.model_name,
        "tool_version": m.tool_version,
        "format_version": FORMAT_VERSION,
        "total_bytes": m.total_bytes,
        "total_tensors": m.total_tensors,
        "largest_layer_bytes": m.largest_layer_bytes(),
        "layers": layers,
        "aux_files": m.aux_files.iter().map(|a| json!({"name": a.name, "bytes": a.byte_len})).collect::<Vec<_>>(),
        "metadata": m.metadata.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
    })
}

fn write_table(
    out: &mut impl Write,
    location: &str,
    m: &Manifest,
    with_tensors: bool,
) -> std::io::Result<()> {
    writeln!(out, "store   {location}")?;
    writeln!(
        out,
        "model   {} (written by {}, format v{FORMAT_VERSION})",
        m.model_name, m.tool_version
    )?;
    writeln!(
        out,
        "totals  {} layers, {} tensors, {} (largest layer {})",
        m.layers.len(),
        m.total_tensors,
        human_bytes(m.total_bytes),
        human_bytes(m.largest_layer_bytes())
    )?;
    writeln!(out)?;
    let width = m
        .layers
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    writeln!(
        out,
        "{:>5}  {:<width$}  {:>10}  {:>7}  dtypes",
        "#", "layer", "size", "tensors"
    )?;
    for (i, l) in m.layers.iter().enumerate() {
        writeln!(
            out,
            "{i:>5}  {:<width$}  {:>10}  {:>7}  {}",
            l.name,
            human_bytes(l.byte_len),
            l.tensors.len(),
            dtypes(l).join(",")
        )?;
        if with_tensors {
            for t in &l.tensors {
                writeln!(
                    out,
                    "         {}  {} {:?}  {}",
                    t.name,
                    stored_type(t),
                    t.shape,
                    human_bytes(t.len)
                )?;
            }
        }
    }
    if !m.aux_files.is_empty() {
        writeln!(out)?;
        let files: Vec<String> = m
            .aux_files
            .iter()
            .map(|a| format!("{} ({})", a.name, human_bytes(a.byte_len)))
            .collect();
        writeln!(out, "files   {}", files.join(", "))?;
    }
    Ok(())
}
