//! Your own `#[derive(Module)]`, run layer-major: each block is read from the store once and
//! runs over all 256 micro-batches before the next block is read, with the hidden states
//! between blocks spilled to disk beyond a 1 MiB activation budget.
//!
//! ```sh
//! cargo run --release -p lit-examples --bin layer-major
//! ```

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::tensor::{Device, Distribution, Tensor};
use lit_burn::layer_major::{LayerMajor, SpillTier};
use lit_burn::{StreamOptions, Streamer};
use std::sync::Arc;

/// A user's model: nothing lit-specific in it.
#[derive(Module, Debug)]
struct Mlp {
    blocks: Vec<Linear>,
    act: Relu,
}

impl Mlp {
    fn new(device: &Device) -> Self {
        let blocks = (0..8)
            .map(|_| LinearConfig::new(256, 256).init(device))
            .collect();
        Mlp {
            blocks,
            act: Relu::new(),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::flex();
    let dir = tempfile::tempdir()?;
    let store = dir.path().join("mlp.lit");
    let trained = Mlp::new(&device);
    lit_burn::save::save_module(&trained, &store)?;
    // 256 micro-batches of 16 rows: 4 MiB of hidden states per block.
    let inputs: Vec<Tensor<2>> = (0..256)
        .map(|_| Tensor::random([16, 256], Distribution::Normal(0.0, 1.0), &device))
        .collect();

    // The layer-major run: weights within a 1 MiB budget, 1 MiB of activations in memory.
    let skeleton = Mlp::new(&device);
    let source = Arc::new(lit_store::LocalSource::open(&store)?);
    let options = StreamOptions::default()
        .with_budget(1 << 20)
        .with_prefetch(1);
    let streamer = Streamer::new(source, &skeleton, options)?;
    let tier = SpillTier::new(dir.path(), 1 << 20)?;
    let run = LayerMajor::new(&streamer, tier);
    let hidden = run.inputs(inputs.iter().cloned())?;
    let outputs = run.stages(&skeleton.blocks, hidden, |block, _batch, h| {
        skeleton.act.forward(block.forward(h)) // one block over one micro-batch
    })?;

    // Each output equals the resident model's.
    let mut same = true;
    for (x, y) in inputs.into_iter().zip(outputs) {
        let expected = trained
            .blocks
            .iter()
            .fold(x, |h, b| trained.act.forward(b.forward(h)));
        same &= y?.equal(expected).all().into_scalar::<bool>();
    }
    let stats = streamer.stats();
    let spill = run.tier().stats();
    println!("layer-major output equals the resident one: {same}");
    println!(
        "weights read: {} bytes in {} pass for all 256 micro-batches",
        stats.bytes_read_total(),
        stats.passes.len()
    );
    println!(
        "activations: peak {} bytes in memory, {} bytes spilled to disk and read back",
        spill.peak_memory_bytes, spill.bytes_read_back
    );
    Ok(())
}
