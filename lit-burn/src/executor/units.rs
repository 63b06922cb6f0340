//! Streaming units: what the streamer reads, holds and releases as one buffer.
//!
//! A unit is a whole layer, or, for a layer split into **pieces** (submodules a model loads one
//! after another, [`StreamOptions::with_piece`](super::StreamOptions::with_piece)), one run of
//! adjacent tensors of the same piece: a piece whose tensors are not adjacent in the layer file
//! is several units loaded together. Splitting lets a budget that holds one layer but not two
//! still read the next piece while one computes: with whole layers, a 706 MB layer in a 1 GiB
//! budget is read and computed in series.
//!
//! Unit `i < layers` is layer `i` or the first run of its split; further runs are numbered after
//! the layers, so a store with no split layer has exactly its layers as units. Each unit is read
//! with [`WeightSource::read_tensors`](lit_core::WeightSource::read_tensors), which checks every
//! tensor against its own checksum, so only stores that have them (format version 3) are split.

use lit_core::LayerEntry;
use std::ops::Range;

/// One streaming unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    /// The layer (index in the manifest).
    pub(crate) layer: usize,
    /// The tensors (indices into the layer's entry) and their bytes in the layer object;
    /// `None` for a whole layer.
    pub(crate) run: Option<(Range<usize>, Range<u64>)>,
}

/// Every unit of a streamer, and which one holds each tensor.
#[derive(Debug, Clone)]
pub(crate) struct Units {
    units: Vec<Unit>,
    /// Per split layer, each tensor's unit; empty for a whole layer (its unit is its index).
    of: Vec<Vec<usize>>,
    /// Per layer, its units in the order a pass loads them (piece order, then file order).
    by_layer: Vec<Vec<usize>>,
}

impl Units {
    /// Every layer whole.
    pub(crate) fn whole(layers: usize) -> Self {
        Units {
            units: (0..layers).map(|layer| Unit { layer, run: None }).collect(),
            of: vec![Vec::new(); layers],
            by_layer: (0..layers).map(|l| vec![l]).collect(),
        }
    }

    /// Splits layer `layer` (`entry`) by `piece`, each tensor's piece (`None`: in no piece;
    /// those form pieces of their own, loaded with the layer's other tensors only by a load of
    /// the whole layer), ranked in the order the pieces are declared.
    pub(crate) fn split(&mut self, layer: usize, entry: &LayerEntry, piece: &[Option<usize>]) {
        debug_assert_eq!(piece.len(), entry.tensors.len());
        let mut runs: Vec<(Option<usize>, Range<usize>)> = Vec::new();
        for (t, &p) in piece.iter().enumerate() {
            match runs.last_mut() {
                Some((q, r)) if *q == p && r.end == t => r.end = t + 1,
                _ => runs.push((p, t..t + 1)),
            }
        }
        if runs.len() < 2 {
            return;
        }
        // Load order: declared pieces first (in declared order), then the rest; file order
        // within a piece.
        runs.sort_by_key(|(p, r)| (p.unwrap_or(usize::MAX), r.start));
        let mut of = vec![0; entry.tensors.len()];
        let mut mine = Vec::with_capacity(runs.len());
        for (k, (_, tensors)) in runs.into_iter().enumerate() {
            let first = &entry.tensors[tensors.start];
            let last = &entry.tensors[tensors.end - 1];
            let bytes = first.offset..last.offset + last.len;
            let index = if k == 0 { layer } else { self.units.len() };
            for t in tensors.clone() {
                of[t] = index;
            }
            let unit = Unit {
                layer,
                run: Some((tensors, bytes)),
            };
            if k == 0 {
                self.units[layer] = unit;
            } else {
                self.units.push(unit);
            }
            mine.push(index);
        }
        self.of[layer] = of;
        self.by_layer[layer] = mine;
    }

    /// The unit holding tensor `tensor` of layer `layer`.
    pub(crate) fn of(&self, layer: usize, tensor: usize) -> usize {
        self.of[layer].get(tensor).copied().unwrap_or(layer)
    }

    /// Unit `unit`.
    pub(crate) fn get(&self, unit: usize) -> &Unit {
        &self.units[unit]
    }

    /// Number of units.
    pub(crate) fn len(&self) -> usize {
        self.units.len()
    }

    /// Whether any layer is split.
    pub(crate) fn any_split(&self) -> bool {
        self.units.len() > self.by_layer.len() || self.units.iter().any(|u| u.run.is_some())
    }

    /// The units of `layer`, in load order.
    pub(crate) fn of_layer(&self, layer: usize) -> &[usize] {
        &self.by_layer[layer]
    }

    /// Each unit's layer: the prefetch depth counts layers, whatever their pieces (a piece of
    /// a tiny norm would otherwise take a place of the window).
    pub(crate) fn groups(&self) -> Vec<usize> {
        self.units.iter().map(|u| u.layer).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lit_core::{DType, TensorEntry};

    fn layer(lens: &[u64]) -> LayerEntry {
        let mut at = 100;
        LayerEntry {
            name: "l".into(),
            key: "k".into(),
            byte_len: 100 + lens.iter().sum::<u64>(),
            checksum: 0,
            tensors: lens
                .iter()
                .enumerate()
                .map(|(i, &len)| {
                    let t = TensorEntry {
                        name: format!("t{i}"),
                        dtype: DType::U8,
                        shape: vec![len],
                        offset: at,
                        len,
                        quant: None,
                        checksum: Some(0),
                    };
                    at += len;
                    t
                })
                .collect(),
        }
    }

    #[test]
    fn a_llama_layer_splits_into_three_units_in_load_order() {
        // HF names in file order: input_layernorm (A), mlp.down/gate/up (M),
        // post_attention_layernorm (M), self_attn.k/o/q/v (A).
        let entry = layer(&[4, 30, 30, 30, 4, 5, 20, 20, 5]);
        let (a, m) = (Some(0), Some(1));
        let mut units = Units::whole(3);
        units.split(1, &entry, &[a, m, m, m, m, a, a, a, a]);
        assert_eq!(units.len(), 5);
        assert!(units.any_split());
        // Piece A: its two runs (file order), then piece M.
        assert_eq!(units.of_layer(1), &[1, 3, 4]);
        assert_eq!(units.get(1).run, Some((0..1, 100..104)));
        assert_eq!(units.get(3).run, Some((5..9, 198..248)));
        assert_eq!(units.get(4).run, Some((1..5, 104..198)));
        assert_eq!(units.groups(), [0, 1, 2, 1, 1]);
        assert_eq!(
            (0..9).map(|t| units.of(1, t)).collect::<Vec<_>>(),
            [1, 4, 4, 4, 4, 3, 3, 3, 3]
        );
        // Other layers stay whole.
        assert_eq!((units.of(0, 0), units.of(2, 5)), (0, 2));
        assert_eq!(units.get(2).run, None);
    }

    #[test]
    fn a_layer_in_one_piece_stays_whole() {
        let entry = layer(&[4, 30]);
        let mut units = Units::whole(1);
        units.split(0, &entry, &[Some(0), Some(0)]);
        assert!(!units.any_split());
        assert_eq!(units.get(0).run, None);
    }
}
