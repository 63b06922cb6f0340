//! Progress events, so a CLI can draw bars and a benchmark can plot timelines.
//!
//! Observers are called on the thread doing the work and must never block.

use std::time::Instant;

/// Something that happened while exporting, copying or streaming a store.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event<'a> {
    /// An export or copy started: how many layers and bytes will be written.
    WriteStarted {
        /// Layers to write.
        layers: usize,
        /// Bytes of tensor data to write.
        bytes: u64,
    },
    /// A layer object was written.
    LayerWritten {
        /// Layer index.
        index: usize,
        /// Layer name.
        name: &'a str,
        /// Bytes written.
        bytes: u64,
    },
    /// A layer was skipped because the destination already held it (resumed copy).
    LayerSkipped {
        /// Layer index.
        index: usize,
        /// Layer name.
        name: &'a str,
        /// Bytes not written.
        bytes: u64,
    },
    /// The fetch of a layer started.
    FetchStarted {
        /// Layer index.
        index: usize,
        /// Bytes to fetch.
        bytes: u64,
        /// When.
        at: Instant,
    },
    /// The fetch of a layer finished.
    FetchFinished {
        /// Layer index.
        index: usize,
        /// Bytes fetched (0 when served from a resident copy).
        bytes: u64,
        /// When.
        at: Instant,
    },
    /// A layer started computing.
    ComputeStarted {
        /// Layer index.
        index: usize,
        /// When.
        at: Instant,
    },
    /// A layer finished computing.
    ComputeFinished {
        /// Layer index.
        index: usize,
        /// When.
        at: Instant,
    },
}

/// Receives [`Event`]s. Must be cheap and must not block.
pub trait Observer: Send + Sync {
    /// Called for each event.
    fn on_event(&self, event: &Event<'_>);
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn on_event(&self, _event: &Event<'_>) {}
}

impl<F: Fn(&Event<'_>) + Send + Sync> Observer for F {
    fn on_event(&self, event: &Event<'_>) {
        self(event)
    }
}
