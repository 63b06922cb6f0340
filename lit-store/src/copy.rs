//! Copying a store between any two locations (local ↔ object store ↔ object store).

use crate::writer::StoreWriter;
use lit_core::{Event, Manifest, ObjectId, Observer, Result, WeightSource};
use std::time::Instant;

/// What [`copy_store`] did.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// The manifest of the new store.
    pub manifest: Manifest,
    /// Bytes read from the source and written.
    pub bytes_copied: u64,
    /// Bytes the destination already held from an interrupted copy (not transferred again).
    pub bytes_skipped: u64,
    /// Layers skipped for that reason.
    pub layers_skipped: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Copies every layer and auxiliary file of `source` through `writer`, verifying each
/// against its checksum on the way, and publishes the manifest last.
///
/// Resumable: objects an interrupted copy already wrote to the same destination, with the right
/// length and checksum (read back to check it), are kept rather than written again. The next layer is read while the
/// current one is written.
pub fn copy_store(
    source: &dyn WeightSource,
    mut writer: StoreWriter,
    observer: &dyn Observer,
) -> Result<CopyReport> {
    let start = Instant::now();
    writer.keep_on_failure();
    let manifest = source.manifest();
    observer.on_event(&Event::WriteStarted {
        layers: manifest.layers.len(),
        bytes: manifest.total_bytes,
    });
    let (mut copied, mut skipped, mut layers_skipped) = (0u64, 0u64, 0usize);
    // Layers an interrupted copy already wrote come first (it wrote them in order).
    let mut first_missing = manifest.layers.len();
    for (index, entry) in manifest.layers.iter().enumerate() {
        if !writer.reuse_layer(entry)? {
            first_missing = index;
            break;
        }
        skipped += entry.byte_len;
        layers_skipped += 1;
        observer.on_event(&Event::LayerSkipped {
            index,
            name: &entry.name,
            bytes: entry.byte_len,
        });
    }
    // Refused up front when the rest cannot fit (auxiliary files counted whole: small).
    let remaining = manifest.layers[first_missing..]
        .iter()
        .map(|l| l.byte_len)
        .chain(manifest.aux_files.iter().map(|a| a.byte_len))
        .sum();
    writer.ensure_space(remaining)?;
    // The rest: the next layer is read while this one is written.
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            for index in first_missing..manifest.layers.len() {
                let read = futures::executor::block_on(source.read_object(ObjectId::Layer(index)));
                if tx.send((index, read)).is_err() {
                    return;
                }
            }
        });
        for (index, read) in rx {
            let entry = &manifest.layers[index];
            let bytes = read?;
            writer.write_raw_layer(entry, &bytes)?;
            // A mapped source layer truncated while it was written read zeros: no manifest then.
            crate::mmap::check_mapped(&bytes)?;
            copied += bytes.len() as u64;
            observer.on_event(&Event::LayerWritten {
                index,
                name: &entry.name,
                bytes: bytes.len() as u64,
            });
        }
        Ok(())
    })?;
    for (index, file) in manifest.aux_files.iter().enumerate() {
        if writer.reuse_aux(file)? {
            continue;
        }
        let bytes = futures::executor::block_on(source.read_object(ObjectId::Aux(index)))?;
        writer.write_aux(&file.name, &bytes)?;
        crate::mmap::check_mapped(&bytes)?;
    }
    let manifest = writer.finish(&manifest.model_name, manifest.metadata.clone())?;
    Ok(CopyReport {
        manifest,
        bytes_copied: copied,
        bytes_skipped: skipped,
        layers_skipped,
        seconds: start.elapsed().as_secs_f64(),
    })
}
