//! A small custom model, its resident reference and a store exported from it.
#![allow(dead_code, unreachable_pub)]

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, LinearLayout};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor, TensorData};
use lit_core::grouping::{GroupingOptions, TensorToGroup, plan_layers};
use lit_core::{Manifest, WeightSource};
use lit_store::layer_file::TensorSpec;
use lit_store::{LocalSource, StoreWriter};
use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

/// Input width, model width, output width, and each block's hidden width (all different, so
/// layers differ in size and the last block is the largest layer).
pub const D_IN: usize = 16;
pub const D: usize = 32;
pub const D_OUT: usize = 8;
pub const HIDDEN: [usize; 4] = [40, 24, 56, 96];

#[derive(Module, Debug)]
pub struct Block {
    pub norm: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Block {
    pub fn new(hidden: usize, layout: LinearLayout, device: &Device) -> Self {
        Block {
            norm: LayerNormConfig::new(D).init(device),
            fc1: LinearConfig::new(D, hidden)
                .with_layout(layout)
                .init(device),
            fc2: LinearConfig::new(hidden, D)
                .with_layout(layout)
                .init(device),
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = self.fc1.forward(self.norm.forward(x.clone()));
        x + self.fc2.forward(gelu(h))
    }
}

#[derive(Module, Debug)]
pub struct Net {
    pub embed: Linear,
    pub blocks: Vec<Block>,
    pub head: Linear,
}

impl Net {
    /// A lazy skeleton: nothing is allocated until a parameter is read.
    pub fn new(layout: LinearLayout, device: &Device) -> Self {
        Net {
            embed: LinearConfig::new(D_IN, D).with_layout(layout).init(device),
            blocks: HIDDEN
                .iter()
                .map(|&h| Block::new(h, layout, device))
                .collect(),
            head: LinearConfig::new(D, D_OUT).with_layout(layout).init(device),
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut h = self.embed.forward(x);
        for b in &self.blocks {
            h = b.forward(h);
        }
        self.head.forward(h)
    }
}

/// The forward pass of `net` with every submodule loaded through `streamer`.
pub fn streamed_forward(
    streamer: &lit_burn::Streamer,
    net: &Net,
    x: Tensor<2>,
) -> lit_burn::Result<Tensor<2>> {
    let embed = streamer.load(&net.embed)?;
    let mut h = embed.forward(x);
    drop(embed);
    for b in &net.blocks {
        let b = streamer.load(b)?;
        h = b.forward(h);
    }
    let head = streamer.load(&net.head)?;
    Ok(head.forward(h))
}

/// A fixed input.
pub fn input(device: &Device) -> Tensor<2> {
    let v: Vec<f32> = (0..3 * D_IN)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
        .collect();
    Tensor::from_data(TensorData::new(v, [3, D_IN]), device)
}

/// The bit patterns of a tensor, for exact comparisons.
pub fn bits(t: Tensor<2>) -> Vec<u32> {
    t.into_data()
        .try_to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

/// A resident model with seeded random weights (every parameter initialised).
pub fn resident(seed: u64, device: &Device) -> Net {
    device.seed(seed);
    let net = Net::new(LinearLayout::Row, device);
    named_tensors(&net, false);
    net
}

/// Every parameter's path and data, through the library's own visitor
/// ([`lit_burn::save::named_tensors`]), reading (so initialising) each. With `hf`, 2-D weights
/// (in these models, exactly the Linear weights) come out as PyTorch `[out, in]`.
pub fn named_tensors<M: Module>(m: &M, hf: bool) -> Vec<(String, TensorData)> {
    lit_burn::save::named_tensors(m)
        .into_iter()
        .map(|(name, data)| {
            if hf && data.shape().len() == 2 {
                let device = Device::flex();
                let t = Tensor::<2>::from_data(data, &device);
                (name, t.transpose().into_data())
            } else {
                (name, data)
            }
        })
        .collect()
}

/// Writes `tensors` as a store in `dir` (which must not exist), grouped by lit's default rule.
pub fn write_store(dir: &Path, tensors: &[(String, TensorData)]) -> Manifest {
    let sizes: Vec<u64> = tensors
        .iter()
        .map(|(_, d)| d.as_bytes().len() as u64)
        .collect();
    let to_group: Vec<TensorToGroup<'_>> = tensors
        .iter()
        .zip(&sizes)
        .map(|((name, _), &bytes)| TensorToGroup { name, bytes })
        .collect();
    let plan = plan_layers(&to_group, &GroupingOptions::default()).unwrap();
    let mut writer = StoreWriter::create_local(dir).unwrap();
    for layer in &plan {
        let specs: Vec<TensorSpec> = layer
            .members
            .iter()
            .map(|&m| {
                let (name, data) = &tensors[m];
                TensorSpec {
                    name: name.clone(),
                    dtype: lit_burn::dtype::from_burn(data.dtype()).unwrap(),
                    shape: data.shape().iter().map(|&d| d as u64).collect(),
                }
            })
            .collect();
        writer
            .write_layer(&layer.name, &specs, |i| {
                Ok(Cow::Borrowed(tensors[layer.members[i]].1.as_bytes()))
            })
            .unwrap();
    }
    writer.finish("test-net", vec![]).unwrap()
}

/// A resident model exported to a fresh store; returns the model, the source and the temp dir.
pub fn exported(seed: u64, device: &Device) -> (Net, Arc<dyn WeightSource>, tempfile::TempDir) {
    let net = resident(seed, device);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    lit_burn::save::save_module(&net, &dir).unwrap();
    let source: Arc<dyn WeightSource> = Arc::new(LocalSource::open(&dir).unwrap());
    (net, source, tmp)
}
