//! Many sequences packed along the rows of one `[1, rows, width]` tensor, so that the row-wise
//! work of a decoder (embedding rows, norms, every linear layer, the head) runs once for all of
//! them: one matrix product per weight and pass instead of one per sequence, which is what lets a
//! pass shared by many sequences ([`super::batch`]) run at the rate of a matrix–matrix product.
//! Only attention, which has each sequence's own positions and cache, runs per sequence.

use super::decoder::{KvCache, RopeTables};
use crate::error::Result;
use burn::tensor::{Int, Tensor, TensorData};

/// One sequence of a packed pass (a decoder block's `forward`): how many rows it has, its rotary
/// tables (decoders with rotary positions) and its cache.
pub struct Seq<'a> {
    /// Rows (new positions) of this sequence in the packed tensor.
    pub len: usize,
    /// `cos`/`sin` of its positions.
    pub rope: Option<RopeTables>,
    /// Its keys and values.
    pub cache: &'a mut KvCache,
}

/// Runs `attend(seq, rows)` on each sequence's rows of `x` (`[1, Σ len, width]`) and packs the
/// results back in order.
pub(crate) fn per_sequence(
    x: Tensor<3>,
    seqs: &mut [Seq<'_>],
    mut attend: impl FnMut(&mut Seq<'_>, Tensor<3>) -> Result<Tensor<3>>,
) -> Result<Tensor<3>> {
    if let [seq] = seqs {
        return attend(seq, x);
    }
    let mut at = 0;
    let parts = seqs
        .iter_mut()
        .map(|seq| {
            let rows = x.clone().narrow(1, at, seq.len);
            at += seq.len;
            attend(seq, rows)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(parts, 1))
}

/// The rows of `x` (`[1, Σ len, width]`, packed by `lens`) the logits are taken from: all of
/// them with `all`, else each sequence's last. Returns `[rows, width]`.
pub(crate) fn logit_rows(x: Tensor<3>, lens: &[usize], all: bool) -> Tensor<2> {
    let x = x.squeeze_dim::<2>(0);
    if all {
        return x;
    }
    if let [len] = lens {
        return x.narrow(0, len - 1, 1);
    }
    let mut end = 0;
    let last: Vec<i64> = lens
        .iter()
        .map(|len| {
            end += len;
            end as i64 - 1
        })
        .collect();
    let n = last.len();
    let index = Tensor::<1, Int>::from_data(TensorData::new(last, [n]), &x.device());
    x.select(0, index)
}

/// Splits `logits` (from [`logit_rows`]) into each sequence's: `lens[i]` rows with `all`, else
/// one.
pub(crate) fn split_logits(logits: Tensor<2>, lens: &[usize], all: bool) -> Vec<Tensor<2>> {
    if lens.len() == 1 {
        return vec![logits];
    }
    let mut at = 0;
    lens.iter()
        .map(|&len| {
            let n = if all { len } else { 1 };
            let part = logits.clone().narrow(0, at, n);
            at += n;
            part
        })
        .collect()
}
