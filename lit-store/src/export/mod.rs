//! Export: a checkpoint in, a store out, one layer at a time.

mod reader;

use crate::convert::convert_floats;
use crate::import::{Checkpoint, open_checkpoint};
use crate::layer_file::{TensorSpec, write_order};
use crate::writer::StoreWriter;
use lit_core::grouping::{GroupingOptions, TensorToGroup, plan_layers};
use lit_core::{DType, Error, Event, Manifest, Observer, Result};
use reader::TensorReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of [`export`].
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Convert float tensors to this type (`None` keeps each tensor's type).
    pub dtype: Option<DType>,
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
    let stored_dtype = |d: DType| match options.dtype {
        Some(to) if d.is_float() => to,
        _ => d,
    };
    let sizes: Vec<u64> = tensors
        .iter()
        .map(|t| lit_core::manifest::tensor_byte_len(&file, stored_dtype(t.dtype), &t.shape))
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
                dtype: stored_dtype(tensors[m].dtype),
                shape: tensors[m].shape.clone(),
            })
            .collect();
        // The reader thread fetches (and converts) the next tensor while this one is written.
        let len = |i: usize| sizes[layer.members[i]];
        let read = |i: usize, buf: Vec<u8>| {
            read_stored(checkpoint, layer.members[i], specs[i].dtype, &file, buf)
        };
        let entry = reader.run(&write_order(&specs), &len, &read, |next| {
            writer
                .write_layer(&layer.name, &specs, |i| {
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

/// Tensor `index` of `checkpoint` as it will be stored (converted to `to` when that differs),
/// read into `buf`.
fn read_stored(
    checkpoint: &dyn Checkpoint,
    index: usize,
    to: DType,
    file: &str,
    mut buf: Vec<u8>,
) -> Result<Vec<u8>> {
    let t = &checkpoint.tensors()[index];
    checkpoint.read_into(index, &mut buf)?;
    if t.dtype == to {
        return Ok(buf);
    }
    convert_floats(&buf, t.dtype, to).ok_or_else(|| Error::InvalidTensor {
        file: file.to_string(),
        tensor: t.name.clone(),
        reason: format!("cannot convert {} to {to}", t.dtype),
    })
}
