//! Some rows of a 2-D tensor: an embedding lookup takes the rows of this step's tokens from the
//! table's layer when it is in memory, and otherwise reads just those rows by range (a few KiB)
//! instead of the whole table.
//!
//! A ranged read bypasses the layer's checksum, which covers the whole layer object: rows are
//! checked for length, not content (`lit verify` checks every byte of a store).

use super::inner::Inner;
use crate::dtype::to_burn;
use crate::error::{Error, LoadErrors, Problem, Result};
use crate::names::Layout;
use burn::module::ParamId;
use burn::tensor::{Bytes, TensorData};
use lit_core::quant;
use lit_core::{Event, ObjectId};
use std::ops::Range;
use std::time::Instant;

impl Inner {
    /// Rows `ids` of the 2-D tensor that fills parameter `id`, as f32 `[ids.len(), cols]`: from
    /// its layer when the layer is in memory, else read by range. `None` when the budget keeps
    /// the whole model and the layer is not loaded yet (load it: it then stays), or the tensor
    /// is not stored row for row (a transposed layout).
    pub(crate) fn read_rows(&self, id: ParamId, ids: &[usize]) -> Result<Option<TensorData>> {
        let Some(entry) = self.plan.get(&id) else {
            let path = self
                .paths
                .get(id)
                .map(|p| p.path.clone())
                .unwrap_or_default();
            return Err(Error::InvalidArgument(format!(
                "the parameter `{path}` has no tensor in the store to read rows of"
            )));
        };
        if entry.layout != Layout::AsStored || entry.shape.len() != 2 {
            return Ok(None);
        }
        // A table the layer is held without: always by range.
        let rows_only = self.parts[entry.layer].contains(&entry.tensor);
        let held = if rows_only {
            None
        } else {
            let unit = self.units.of(entry.layer, entry.tensor);
            let mut s = self.lock();
            match s.resident_data(unit) {
                Some(data) => Some(data),
                // A budget that keeps the whole model: the table is loaded once (a prefetched
                // copy too), then stays resident.
                None if s.keeps_everything() => return Ok(None),
                // Prefetched (the first pass follows the manifest's order): used here and given
                // back, or it would hold its bytes until a load that may never come.
                None => s.take_prefetched(unit),
            }
        };
        // Budget given back wakes a waiting load or prefetch.
        self.cond.notify_all();
        let manifest = self.source.manifest();
        let tensor = &manifest.layers[entry.layer].tensors[entry.tensor];
        let [rows, cols] = [entry.shape[0], entry.shape[1]];
        let row_bytes = match tensor.quant {
            Some(scheme) => scheme
                .row_bytes(cols as u64)
                .map_err(|e| decode(&entry.name, e))?,
            None => cols as u64 * tensor.dtype.size() as u64,
        };
        if let Some(bad) = ids.iter().find(|&&r| r >= rows) {
            return Err(Error::InvalidArgument(format!(
                "row {bad} of `{}`, which has {rows} rows",
                entry.name
            )));
        }
        let mut wanted = ids.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        // Runs of consecutive rows.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for &r in &wanted {
            match runs.last_mut() {
                Some((_, end)) if *end == r => *end += 1,
                _ => runs.push((r, r + 1)),
            }
        }
        // Rows `a..b` of the tensor at `offset` of its layer's bytes.
        let range = |offset: u64, &(a, b): &(usize, usize)| {
            let start = offset + a as u64 * row_bytes;
            start..start + (b - a) as u64 * row_bytes
        };
        let chunks: Vec<bytes::Bytes> = match &held {
            // In memory: sliced out of the layer (whose tensors may sit at other offsets than
            // in the store: a layer held without its tables).
            Some(data) => {
                let offset = data.entry.tensors[entry.tensor].offset;
                runs.iter()
                    .map(|run| {
                        // Out of the buffer: a short chunk, refused below by its length.
                        let r = range(offset, run);
                        let end = (r.end as usize).min(data.bytes.len());
                        data.bytes.slice((r.start as usize).min(end)..end)
                    })
                    .collect()
            }
            None => self.read_runs(
                entry.layer,
                runs.iter().map(|run| range(tensor.offset, run)).collect(),
            )?,
        };
        // The lookup is the layer's compute for this pass (the first of a decoder's pass).
        let index = entry.layer;
        self.emit(Event::ComputeStarted {
            index,
            at: Instant::now(),
        });
        // Decode the runs, in `wanted` order, then pick each id's row.
        let mut table: Vec<f32> = Vec::with_capacity(wanted.len() * cols);
        for (chunk, &(a, b)) in chunks.iter().zip(&runs) {
            let want = (b - a) as u64 * row_bytes;
            if chunk.len() as u64 != want {
                return Err(Error::InvalidArgument(format!(
                    "rows {a}..{b} of `{}`: the store returned {} bytes, not {want}",
                    entry.name,
                    chunk.len()
                )));
            }
            match tensor.quant {
                Some(scheme) => {
                    quant::dequantize(scheme, chunk, &mut table)
                        .map_err(|e| decode(&entry.name, e))?;
                }
                None => {
                    let data = TensorData::from_bytes(
                        Bytes::from_bytes_vec(chunk.to_vec()),
                        [b - a, cols],
                        to_burn(tensor.dtype),
                    )
                    .convert::<f32>();
                    table.extend(data.iter::<f32>());
                }
            }
        }
        // A held layer, and ranges of 1 MiB and more, may be mapped (`ReadMode::Mmap`): rows
        // copied from pages that vanished meanwhile read as zeros, which the check reports.
        match &held {
            Some(data) => lit_store::check_mapped(&data.bytes)?,
            None => chunks
                .iter()
                .try_for_each(|chunk| lit_store::check_mapped(chunk))?,
        }
        let mut out = Vec::with_capacity(ids.len() * cols);
        for r in ids {
            // `wanted` holds every id.
            let at = wanted.binary_search(r).unwrap_or_default();
            out.extend_from_slice(&table[at * cols..(at + 1) * cols]);
        }
        self.emit(Event::ComputeFinished {
            index,
            at: Instant::now(),
        });
        Ok(Some(TensorData::new(out, [ids.len(), cols])))
    }

    /// Reads `ranges` of layer `layer`'s object, all in flight together, with fetch events,
    /// counting the bytes in the pass's statistics.
    fn read_runs(&self, layer: usize, ranges: Vec<Range<u64>>) -> Result<Vec<bytes::Bytes>> {
        let object = ObjectId::Layer(layer);
        self.emit(Event::FetchStarted {
            index: layer,
            bytes: ranges.iter().map(|r| r.end - r.start).sum(),
            at: Instant::now(),
        });
        let reads = ranges
            .into_iter()
            .map(|r| self.source.read_range(object, r));
        let chunks = futures::executor::block_on(futures::future::try_join_all(reads))?;
        let bytes_read: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        self.lock().count_rows_read(bytes_read);
        self.emit(Event::FetchFinished {
            index: layer,
            bytes: bytes_read,
            at: Instant::now(),
        });
        Ok(chunks)
    }
}

fn decode(tensor: &str, e: quant::QuantError) -> Error {
    Error::Load(LoadErrors {
        problems: vec![Problem::Decode {
            tensor: tensor.to_string(),
            reason: e.to_string(),
        }],
    })
}
