//! `save_module` writes a resident module as a store that streams back to identical outputs.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use lit_burn::{StreamOptions, Streamer};
use lit_core::WeightSource;
use std::sync::Arc;

#[derive(Module, Debug)]
struct Block {
    fc: Linear,
    norm: LayerNorm,
}

#[derive(Module, Debug)]
struct Net {
    blocks: Vec<Block>,
    head: Linear,
}

fn net(device: &Device) -> Net {
    Net {
        blocks: (0..4)
            .map(|_| Block {
                fc: LinearConfig::new(32, 32).init(device),
                norm: LayerNormConfig::new(32).init(device),
            })
            .collect(),
        head: LinearConfig::new(32, 3).init(device),
    }
}

#[test]
fn saved_module_streams_back_bit_for_bit() {
    let device = Device::flex();
    device.seed(11);
    let resident = net(&device);
    let dir = tempfile::tempdir().unwrap();
    let manifest = lit_burn::save::save_module(&resident, &dir.path().join("net.lit")).unwrap();
    let names: Vec<&str> = manifest.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        ["blocks.0", "blocks.1", "blocks.2", "blocks.3", "head"]
    );
    assert_eq!(manifest.total_tensors, 4 * 4 + 2);

    let x = Tensor::<2>::random([5, 32], burn::tensor::Distribution::Default, &device);
    let forward = |n: &Net, h: Tensor<2>| {
        n.head.forward(
            n.blocks
                .iter()
                .fold(h, |h, b| b.norm.forward(b.fc.forward(h))),
        )
    };
    let expected = forward(&resident, x.clone()).into_data();

    let skeleton = net(&device);
    let source: Arc<dyn WeightSource> =
        Arc::new(lit_store::LocalSource::open(dir.path().join("net.lit")).unwrap());
    let streamer = Streamer::new(
        source,
        &skeleton,
        StreamOptions::default()
            .with_budget(10_000)
            .with_prefetch(1),
    )
    .unwrap();
    let mut h = x;
    for b in &skeleton.blocks {
        let b = streamer.load(b).unwrap();
        h = b.norm.forward(b.fc.forward(h));
    }
    let out = streamer
        .load(&skeleton.head)
        .unwrap()
        .forward(h)
        .into_data();
    assert_eq!(out.as_bytes(), expected.as_bytes());
    assert!(lit_burn::paths::is_lazy(&skeleton));
}

#[test]
fn saving_to_an_existing_destination_fails() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let err = lit_burn::save::save_module(&net(&device), dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("already exists"), "{err}");
}
