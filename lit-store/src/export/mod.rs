//! Export: a checkpoint in, a store out, one layer at a time.

mod reader;

use crate::convert::convert_floats;
use crate::import::{Checkpoint, SourceTensor, open_checkpoint};
use crate::layer_file::{TensorSpec, write_order};
use crate::writer::StoreWriter;
use lit_core::grouping::{GroupingOptions, TensorToGroup, plan_layers};
use lit_core::quant::{dequantize, quantize};
use lit_core::{DType, Error, Event, Manifest, Observer, QuantScheme, Result};
use reader::TensorReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of [`export`].
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Convert float tensors to this type (`None` keeps each tensor's type). Block-quantized
    /// source tensors (GGUF) are dequantized to it; with `None` their blocks are kept as they are.
    pub dtype: Option<DType>,
    /// Quantize float weight matrices to this scheme (`Q8_0`, `Q4_0` or `Q4_1`): every 2-D float
    /// tensor named `*.weight` whose inner dimension is a multiple of 32 (projections and
    /// embeddings); 1-D tensors (norms, biases) keep their float type, as llama.cpp does.
    pub quantize: Option<QuantScheme>,
    /// Layer grouping (regex override, maximum layer size).
    pub grouping: GroupingOptions,
    /// Model name recorded in the manifest (default: the source's file or directory name).
    pub name: Option<String>,
    /// A `config.json` to carry (overrides one found beside the checkpoint).
    pub config: Option<PathBuf>,
    /// A `tokenizer.json` to carry (overrides one found beside the checkpoint).
    pub tokenizer: Option<PathBuf>,
}

/// What an export did.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The manifest of the new store.
    pub manifest: Manifest,
    /// Bytes of layer objects written.
    pub bytes_written: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Exports the checkpoint at `src` (see [`open_checkpoint`]) through `writer`.
pub fn export(
    src: &Path,
    writer: StoreWriter,
    options: &ExportOptions,
    observer: &dyn Observer,
) -> Result<ExportReport> {
    let checkpoint = open_checkpoint(src)?;
    let default_name = src
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    export_checkpoint(
        checkpoint.as_ref(),
        &default_name,
        writer,
        options,
        observer,
    )
}

/// Exports an opened checkpoint through `writer`; `default_name` is used when
/// `options.name` is unset.
pub fn export_checkpoint(
    checkpoint: &dyn Checkpoint,
    default_name: &str,
    mut writer: StoreWriter,
    options: &ExportOptions,
    observer: &dyn Observer,
) -> Result<ExportReport> {
    let start = Instant::now();
    let file = checkpoint.path().to_string();
    let tensors = checkpoint.tensors();
    if tensors.is_empty() {
        return Err(Error::InvalidCheckpoint {
            file,
            reason: "the checkpoint holds no tensors".into(),
        });
    }
    if let Some(q) = options.quantize
        && !q.can_quantize()
    {
        return Err(Error::InvalidArgument(format!(
            "--quantize {q}: lit quantizes to Q8_0, Q4_0 or Q4_1 (K-quants are imported, not produced)"
        )));
    }
    let plans: Vec<Plan> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| Plan::new(t, checkpoint.quant(i), options))
        .collect();
    let sizes: Vec<u64> = tensors
        .iter()
        .zip(&plans)
        .map(|(t, p)| {
            lit_core::manifest::stored_byte_len(
                &format!("{file}: tensor `{}`", t.name),
                p.dtype,
                p.quant,
                &t.shape,
            )
        })
        .collect::<Result<_>>()?;
    let to_group: Vec<TensorToGroup<'_>> = tensors
        .iter()
        .zip(&sizes)
        .map(|(t, &bytes)| TensorToGroup {
            name: &t.name,
            bytes,
        })
        .collect();
    let plan = plan_layers(&to_group, &options.grouping)?;
    let aux_bytes: u64 = [&options.config, &options.tokenizer]
        .into_iter()
        .flatten()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    writer.ensure_space(sizes.iter().sum::<u64>() + aux_bytes)?;
    observer.on_event(&Event::WriteStarted {
        layers: plan.len(),
        bytes: sizes.iter().sum(),
    });

    let mut bytes_written = 0u64;
    let mut reader = TensorReader::new();
    for (index, layer) in plan.iter().enumerate() {
        let specs: Vec<TensorSpec> = layer
            .members
            .iter()
            .map(|&m| TensorSpec {
                name: tensors[m].name.clone(),
                dtype: plans[m].dtype,
                shape: tensors[m].shape.clone(),
            })
            .collect();
        let quants: Vec<Option<QuantScheme>> =
            layer.members.iter().map(|&m| plans[m].quant).collect();
        // The reader thread fetches (and converts) the next tensor while this one is written.
        let len = |i: usize| sizes[layer.members[i]];
        let read = |i: usize, buf: Vec<u8>| {
            let m = layer.members[i];
            read_stored(checkpoint, m, &plans[m], &file, buf)
        };
        let entry = reader.run(&write_order(&specs), &len, &read, |next| {
            writer
                .write_layer_quantized(&layer.name, &specs, &quants, |i| {
                    let (got, bytes) = next().ok_or_else(|| {
                        Error::InvalidArgument(format!("{file}: tensor reader stopped early"))
                    })?;
                    debug_assert_eq!(got, i, "reader and writer agree on the order");
                    bytes
                })
                .cloned()
        })?;
        bytes_written += entry.byte_len;
        observer.on_event(&Event::LayerWritten {
            index,
            name: &layer.name,
            bytes: entry.byte_len,
        });
    }

    let mut aux = checkpoint.aux_files()?;
    for (name, path) in [
        ("config.json", &options.config),
        ("tokenizer.json", &options.tokenizer),
    ] {
        if let Some(path) = path {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
            aux.retain(|(n, _)| n != name);
            aux.push((name.to_string(), bytes));
        }
    }
    for (name, bytes) in &aux {
        writer.write_aux(name, bytes)?;
    }

    let mut metadata = vec![("source".to_string(), file.clone())];
    if let Some(d) = options.dtype {
        metadata.push(("dtype".to_string(), d.to_string()));
    }
    if let Some(q) = options.quantize {
        metadata.push(("quantize".to_string(), q.to_string()));
    }
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| default_name.to_string());
    let manifest = writer.finish(&name, metadata)?;
    Ok(ExportReport {
        manifest,
        bytes_written,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// How one tensor is stored and what turns the source bytes into the stored ones.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Stored dtype (`U8` for blocks).
    dtype: DType,
    /// Stored block quantization.
    quant: Option<QuantScheme>,
    /// The source's block quantization (dequantized when `quant` is `None`).
    from_quant: Option<QuantScheme>,
}

impl Plan {
    fn new(t: &SourceTensor, from_quant: Option<QuantScheme>, options: &ExportOptions) -> Plan {
        match (from_quant, options.dtype) {
            // Dequantize on export: the store then needs no quantization support to load.
            (Some(_), Some(to)) if to.is_float() => Plan {
                dtype: to,
                quant: None,
                from_quant,
            },
            // Blocks kept exactly as they came.
            (Some(q), _) => Plan {
                dtype: DType::U8,
                quant: Some(q),
                from_quant,
            },
            (None, to) => match options.quantize {
                Some(q) if quantizable(&t.name, t.dtype, &t.shape, q) => Plan {
                    dtype: DType::U8,
                    quant: Some(q),
                    from_quant: None,
                },
                _ => Plan {
                    dtype: match to {
                        Some(to) if t.dtype.is_float() => to,
                        _ => t.dtype,
                    },
                    quant: None,
                    from_quant: None,
                },
            },
        }
    }
}

/// Whether `--quantize q` applies to a tensor: a 2-D float `*.weight` whose rows are whole
/// blocks (norms and biases are 1-D and stay float).
pub fn quantizable(name: &str, dtype: DType, shape: &[u64], q: QuantScheme) -> bool {
    dtype.is_float()
        && name.ends_with(".weight")
        && shape.len() == 2
        && shape
            .last()
            .is_some_and(|&c| c > 0 && c % q.block_elems() == 0)
}

/// Tensor `index` of `checkpoint` as `plan` stores it, read into `buf`.
fn read_stored(
    checkpoint: &dyn Checkpoint,
    index: usize,
    plan: &Plan,
    file: &str,
    mut buf: Vec<u8>,
) -> Result<Vec<u8>> {
    let t = &checkpoint.tensors()[index];
    let bad = |reason: String| Error::InvalidTensor {
        file: file.to_string(),
        tensor: t.name.clone(),
        reason,
    };
    checkpoint.read_into(index, &mut buf)?;
    match (plan.from_quant, plan.quant) {
        (Some(_), Some(_)) => Ok(buf),
        (Some(from), None) => {
            let mut values = Vec::new();
            dequantize(from, &buf, &mut values).map_err(|e| bad(e.to_string()))?;
            let f32_bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            if plan.dtype == DType::F32 {
                return Ok(f32_bytes);
            }
            convert_floats(&f32_bytes, DType::F32, plan.dtype)
                .ok_or_else(|| bad(format!("cannot convert F32 to {}", plan.dtype)))
        }
        (None, Some(q)) => {
            let f32_bytes = if t.dtype == DType::F32 {
                buf
            } else {
                convert_floats(&buf, t.dtype, DType::F32)
                    .ok_or_else(|| bad(format!("cannot convert {} to F32", t.dtype)))?
            };
            let values: Vec<f32> = f32_bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(bad(format!(
                    "element {i} is {}, which {q} cannot hold",
                    values[i]
                )));
            }
            let mut out = Vec::new();
            quantize(q, &values, &mut out).map_err(|e| bad(e.to_string()))?;
            Ok(out)
        }
        (None, None) if t.dtype == plan.dtype => Ok(buf),
        (None, None) => convert_floats(&buf, t.dtype, plan.dtype)
            .ok_or_else(|| bad(format!("cannot convert {} to {}", t.dtype, plan.dtype))),
    }
}
