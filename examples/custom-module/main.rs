//! Your own `#[derive(Module)]`, streamed: its weights are written to a store once, then each
//! block is fetched just before it runs and released right after, within a 1 MiB budget.
//!
//! ```sh
//! cargo run --release -p lit-examples --bin custom-module
//! ```

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::tensor::{Device, Tensor};
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
    // Once: save real weights into a lit store (here from a randomly initialised model).
    let trained = Mlp::new(&device);
    lit_burn::save::save_module(&trained, &store)?;
    let x = Tensor::<2>::ones([4, 256], &device);
    let expected = trained
        .blocks
        .iter()
        .fold(x.clone(), |h, b| trained.act.forward(b.forward(h)));

    // The streamed run: ten lines.
    let skeleton = Mlp::new(&device); // lazy parameters: no weight memory
    let source = Arc::new(lit_store::LocalSource::open(&store)?);
    let options = StreamOptions::default()
        .with_budget(1 << 20)
        .with_prefetch(2);
    let streamer = Streamer::new(source, &skeleton, options)?;
    let mut h = x;
    for block in &skeleton.blocks {
        h = skeleton.act.forward(streamer.load(block)?.forward(h)); // fetched, run, released
    }

    let same = h.equal(expected).all().into_scalar::<bool>();
    println!(
        "streamed output equals the resident one: {same}; {:?}",
        streamer.stats()
    );
    Ok(())
}
