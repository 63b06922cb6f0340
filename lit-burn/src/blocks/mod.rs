//! Quantized weights kept as their blocks, and computed on directly.
//!
//! A store's quantized matrix (GGML blocks along each row, see `docs/format.md`) can be loaded two
//! ways (a [`crate::Step`] of the load plan):
//! - [`Step::Dequantize`](crate::Step::Dequantize): decoded to f32 when loaded. Any Burn module
//!   can use it, but a layer then holds its blocks *and* ~4–7× their size in floats, and a
//!   streamed layer is decoded again on every pass;
//! - [`Step::Blocks`](crate::Step::Blocks): kept as a [`BlockMatrix`] over the layer's bytes (no
//!   copy). [`crate::models::linear::linear`], [`rows`] and [`matmul_transposed`] compute on
//!   the blocks (dot products on the blocks for a few rows of activations; a tile decoded at a
//!   time for many), so a layer costs its stored bytes and nothing is decoded ahead.
//!
//! Blocks are chosen by [`crate::LoadOptions::with_block_compute`], for 2-D weights of `Linear`
//! (stored `[out, in]`) and `Embedding` modules on a CPU device. Such a parameter stays *lazy* in
//! the filled module: its initialiser owns the blocks and decodes them if anything asks for the
//! tensor ([`Param::val`], Burn's own `Linear::forward`), so every other use still computes the
//! right values. The helpers find the blocks through a registry keyed by a parameter id given
//! to each filled parameter, which holds them weakly: they live exactly as long as the module.

mod kernels;

use burn::module::{Param, ParamId};
use burn::tensor::{Device, FloatDType, Int, Tensor, TensorData};
use lit_core::quant::{self, QuantError, QuantScheme};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock, Weak};

/// A matrix of quantized blocks: `rows` rows of `cols` elements, each row whole blocks.
#[derive(Debug)]
pub struct BlockMatrix {
    scheme: QuantScheme,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    bytes: bytes::Bytes,
}

/// Activation rows up to which [`BlockMatrix::matmul_transposed`] takes dot products on the
/// blocks; above it a tile of rows is decoded once and multiplied by Burn (a prompt).
const DOT_ROWS: usize = 8;

/// Multiply-adds below which a matrix–vector product is not split between threads: SmolLM2's
/// matrices (0.3–0.9 M) then run on one thread and only its head is split, 5–10% faster a token
/// than tasks of 256 K on 2 cores (the fork and join cost more than the work they share).
const MIN_TASK_MACS: usize = 1 << 20;

/// Weight bytes walked for every activation row before the next ones are read (L2-sized): with
/// several rows the weight comes from memory once, not once per row.
const GROUP_BYTES: usize = 64 << 10;

/// f32 bytes of one decoded tile for many activation rows.
const TILE_BYTES: usize = 4 << 20;

impl BlockMatrix {
    /// Blocks of `scheme` for a `[rows, cols]` matrix; `bytes` must be exactly its size.
    pub fn new(
        scheme: QuantScheme,
        rows: usize,
        cols: usize,
        bytes: bytes::Bytes,
    ) -> Result<Self, QuantError> {
        let row_bytes = scheme.row_bytes(cols as u64)? as usize;
        let len = scheme.byte_len(&[rows as u64, cols as u64])?;
        if bytes.len() as u64 != len {
            return Err(QuantError::Length {
                scheme,
                reason: format!(
                    "a {rows}×{cols} matrix takes {len} bytes, not {}",
                    bytes.len()
                ),
            });
        }
        Ok(BlockMatrix {
            scheme,
            rows,
            cols,
            row_bytes,
            bytes,
        })
    }

    /// The block scheme.
    pub fn scheme(&self) -> QuantScheme {
        self.scheme
    }

    /// `[rows, cols]`, as stored.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// Bytes of the blocks.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// The whole matrix decoded to f32, row-major `[rows, cols]`.
    pub fn decode(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows * self.cols);
        // `new` checked the length, so decoding cannot fail.
        let _ = quant::dequantize(self.scheme, &self.bytes, &mut out);
        out
    }

    /// Rows `ids` decoded, one after another; `None` if an id is not a row.
    pub fn decode_rows(&self, ids: &[usize]) -> Option<Vec<f32>> {
        let mut out = Vec::with_capacity(ids.len() * self.cols);
        for &r in ids {
            let row = self
                .bytes
                .get(r.checked_mul(self.row_bytes)?..(r + 1).checked_mul(self.row_bytes)?)?;
            quant::dequantize(self.scheme, row, &mut out).ok()?;
        }
        Some(out)
    }

    /// `x · selfᵀ` for `n` activation rows `x` (`[n, cols]` row-major, `n` small): `[n, rows]`,
    /// by dot products on the blocks, the matrix's rows split between threads.
    pub fn matmul_transposed_f32(&self, x: &[f32], n: usize) -> Vec<f32> {
        self.dot_rows(x, n, GROUP_BYTES)
    }

    /// [`Self::matmul_transposed_f32`] with the weight walked in groups of `group_bytes`: each
    /// group is read from memory once and serves every activation row from the cache, so `n`
    /// rows cost one pass over the weight, not `n`.
    fn dot_rows(&self, x: &[f32], n: usize, group_bytes: usize) -> Vec<f32> {
        assert_eq!(x.len(), n * self.cols, "activations are not [n, cols]");
        if n == 0 || self.rows == 0 {
            return vec![0f32; n * self.rows];
        }
        // Tasks of at least MIN_TASK_MACS (4× for several rows: two threads on 2–4 rows of a
        // SmolLM2 matrix, ~2 M multiply-adds, were 20–25% slower than one): a small product runs
        // on this thread.
        let threads = rayon::current_num_threads().max(1);
        let min_macs = if n == 1 {
            MIN_TASK_MACS
        } else {
            4 * MIN_TASK_MACS
        };
        let per_task = self
            .rows
            .div_ceil(threads * 4)
            .max(min_macs.div_ceil(self.cols * n));
        // `[rows, n]`: a task's weight rows are one slice, whatever `n`.
        let mut by_row = vec![0f32; self.rows * n];
        by_row
            .par_chunks_mut(per_task * n)
            .enumerate()
            .for_each(|(t, o)| {
                let first = t * per_task;
                let count = o.len() / n;
                let group = (group_bytes / self.row_bytes).clamp(1, count);
                let mut dots = vec![0f32; group];
                for g0 in (0..count).step_by(group) {
                    let g = group.min(count - g0);
                    let start = (first + g0) * self.row_bytes;
                    let rows = &self.bytes[start..start + g * self.row_bytes];
                    for (i, xi) in x.chunks_exact(self.cols).enumerate() {
                        // Lengths were checked by `new`.
                        let _ = kernels::rows_dot(
                            self.scheme,
                            rows,
                            self.row_bytes,
                            xi,
                            &mut dots[..g],
                        );
                        for (j, d) in dots[..g].iter().enumerate() {
                            o[(g0 + j) * n + i] = *d;
                        }
                    }
                }
            });
        if n == 1 {
            return by_row;
        }
        let mut out = vec![0f32; n * self.rows];
        for (r, values) in by_row.chunks_exact(n).enumerate() {
            for (i, v) in values.iter().enumerate() {
                out[i * self.rows + r] = *v;
            }
        }
        out
    }

    /// Rows `start..end` decoded, in parallel.
    fn decode_range(&self, start: usize, end: usize) -> Vec<f32> {
        let mut w = vec![0f32; (end - start) * self.cols];
        w.par_chunks_mut(self.cols)
            .zip(
                self.bytes[start * self.row_bytes..end * self.row_bytes].par_chunks(self.row_bytes),
            )
            .for_each_init(
                || Vec::with_capacity(self.cols),
                |scratch, (o, row)| {
                    scratch.clear();
                    // Lengths were checked by `new`.
                    let _ = quant::dequantize(self.scheme, row, scratch);
                    o.copy_from_slice(scratch);
                },
            );
        w
    }

    /// `x · selfᵀ` for a Burn tensor `x` of shape `[n, cols]` (any float type; the result has
    /// `x`'s type and device). Up to 8 rows (decoding a token), dot products on the
    /// blocks; more (a prompt), tiles of rows decoded one at a time and multiplied by Burn.
    pub fn matmul_transposed(&self, x: Tensor<2>) -> Tensor<2> {
        let [n, _] = x.dims();
        let dtype = x.dtype();
        let device = x.device();
        if n > DOT_ROWS {
            let x = x.cast(FloatDType::F32);
            let tile = (TILE_BYTES / (4 * self.cols)).max(1);
            let parts: Vec<Tensor<2>> = (0..self.rows)
                .step_by(tile)
                .map(|r0| {
                    let r1 = (r0 + tile).min(self.rows);
                    let w = Tensor::<2>::from_data(
                        TensorData::new(self.decode_range(r0, r1), [r1 - r0, self.cols]),
                        &device,
                    );
                    x.clone().matmul(w.transpose())
                })
                .collect();
            return Tensor::cat(parts, 1).cast(dtype);
        }
        let data = x.into_data().convert::<f32>();
        let y = match data.as_slice::<f32>() {
            Ok(values) => self.matmul_transposed_f32(values, n),
            Err(_) => {
                let values: Vec<f32> = data.iter::<f32>().collect();
                self.matmul_transposed_f32(&values, n)
            }
        };
        Tensor::from_data(TensorData::new(y, [n, self.rows]), (&device, dtype))
    }
}

/// Parameter id → the blocks of a lazy parameter, held weakly (the parameter owns them).
static REGISTRY: LazyLock<RwLock<Registry>> = LazyLock::new(Default::default);

#[derive(Default)]
struct Registry {
    blocks: HashMap<ParamId, (Weak<BlockMatrix>, bool)>,
    since_prune: usize,
}

/// The blocks behind a parameter, and how its tensor relates to them.
#[derive(Debug, Clone)]
pub struct Blocks {
    /// The stored matrix `[rows, cols]`.
    pub matrix: Arc<BlockMatrix>,
    /// Whether the parameter's tensor is the matrix transposed (`[cols, rows]`: a `Linear`
    /// weight stored PyTorch-style `[out, in]`) rather than the matrix itself (an embedding).
    pub transposed: bool,
}

/// A lazy parameter of `shape` that owns `matrix`: [`of`] finds the blocks, and
/// [`Param::val`] decodes them (transposed when `transposed`) if anything asks for the tensor.
pub(crate) fn lazy_param<const D: usize>(
    matrix: BlockMatrix,
    transposed: bool,
    device: Device,
    shape: Vec<usize>,
) -> Param<Tensor<D>> {
    let matrix = Arc::new(matrix);
    let id = ParamId::new();
    {
        let mut r = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
        r.since_prune += 1;
        if r.since_prune > 4096 {
            r.blocks.retain(|_, (w, _)| w.strong_count() > 0);
            r.since_prune = 0;
        }
        r.blocks.insert(id, (Arc::downgrade(&matrix), transposed));
    }
    let init = move |device: &Device, _: bool| {
        let t = Tensor::<D>::from_data(TensorData::new(matrix.decode(), matrix.shape()), device);
        if transposed { t.transpose() } else { t }
    };
    Param::uninitialized(id, init, device, false, shape.into())
}

/// The blocks behind `param`, if it was loaded as blocks and has not been decoded since.
pub fn of<const D: usize>(param: &Param<Tensor<D>>) -> Option<Blocks> {
    if param.is_initialized() {
        return None;
    }
    let r = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    let (matrix, transposed) = r.blocks.get(&param.id)?;
    Some(Blocks {
        matrix: matrix.upgrade()?,
        transposed: *transposed,
    })
}

/// Folds `x`'s leading dimensions into rows, applies `f`, and unfolds.
fn rows_of<const D: usize>(x: Tensor<D>, f: impl FnOnce(Tensor<2>) -> Tensor<2>) -> Tensor<D> {
    let dims = x.dims();
    let cols = dims[D - 1];
    let n: usize = dims[..D - 1].iter().product();
    let y = f(x.reshape([n, cols]));
    let mut out = dims;
    out[D - 1] = y.dims()[1];
    y.reshape(out)
}

/// `x · W` for `x` of shape `[.., in]` and a weight tensor `W` `[in, out]` (a `Linear` weight):
/// on the blocks when `weight` holds a matrix stored `[out, in]`, else a matmul of its tensor.
pub fn matmul<const D: usize>(x: Tensor<D>, weight: &Param<Tensor<2>>) -> Tensor<D> {
    rows_of(x, |x2| match of(weight) {
        Some(b) if b.transposed => b.matrix.matmul_transposed(x2),
        _ => x2.matmul(weight.val()),
    })
}

/// `x · Wᵀ` for `x` of shape `[.., cols]` and a weight tensor `W` `[rows, cols]` (a tied LM head
/// over the token embedding): on the blocks when `weight` holds them as stored.
pub fn matmul_transposed<const D: usize>(x: Tensor<D>, weight: &Param<Tensor<2>>) -> Tensor<D> {
    rows_of(x, |x2| match of(weight) {
        Some(b) if !b.transposed => b.matrix.matmul_transposed(x2),
        _ => x2.matmul(weight.val().transpose()),
    })
}

/// Rows `ids` of a 2-D table `weight` (`[rows, cols]`), `[ids.len(), cols]`: only those rows
/// are decoded when the table holds blocks. An error when an id is not a row.
pub fn rows(weight: &Param<Tensor<2>>, ids: &[usize]) -> crate::Result<Tensor<2>> {
    let [rows, cols] = weight.lazy_shape().dims();
    if let Some(bad) = ids.iter().find(|&&r| r >= rows) {
        return Err(crate::Error::InvalidArgument(format!(
            "row {bad} of a table of {rows} rows"
        )));
    }
    Ok(match of(weight) {
        Some(blocks) if !blocks.transposed => {
            // Every id is a row (checked above), so decoding cannot fail.
            let values = blocks.matrix.decode_rows(ids).unwrap_or_default();
            Tensor::from_data(
                TensorData::new(values, [ids.len(), cols]),
                &weight.lazy_device(),
            )
        }
        _ => {
            let table = weight.val();
            let index: Vec<i64> = ids.iter().map(|&r| r as i64).collect();
            let index =
                Tensor::<1, Int>::from_data(TensorData::new(index, [ids.len()]), &table.device());
            table.select(0, index)
        }
    })
}

#[cfg(test)]
mod tests;
