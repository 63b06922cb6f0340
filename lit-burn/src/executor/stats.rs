//! Counters of a [`Streamer`](crate::Streamer).

/// What one pass (one run through the model) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    /// `load` calls.
    pub loads: usize,
    /// Bytes of layers read from the source and used in this pass (prefetches that were
    /// discarded unused are in [`StreamStats::bytes_discarded`]).
    pub bytes_read: u64,
    /// Layers read from the source and used in this pass (a layer streamed in pieces counts
    /// once per run of adjacent tensors read; see [`crate::StreamOptions::with_piece`]).
    pub layers_read: usize,
    /// Layers (or runs of pieces) served from the resident set.
    pub resident_hits: usize,
    /// Tensors converted or dequantized by their load plan step in this pass. Resident layers
    /// keep theirs, so once everything is resident a pass converts nothing.
    pub tensors_converted: usize,
}

/// A snapshot of a streamer's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Every pass so far; the last one is in progress.
    pub passes: Vec<PassStats>,
    /// Most bytes of layer buffers held at once (resident + in flight + prefetched + running).
    pub peak_bytes_held: u64,
    /// Bytes held now.
    pub bytes_held: u64,
    /// Bytes of layers resident now.
    pub resident_bytes: u64,
    /// Layers resident now (runs of pieces counted one by one).
    pub resident_layers: usize,
    /// Bytes prefetched and then dropped unused to make room.
    pub bytes_discarded: u64,
    /// The byte budget.
    pub budget: u64,
}

impl StreamStats {
    /// Bytes read from the source in all passes, discarded prefetches included.
    pub fn bytes_read_total(&self) -> u64 {
        self.passes.iter().map(|p| p.bytes_read).sum::<u64>() + self.bytes_discarded
    }
}
