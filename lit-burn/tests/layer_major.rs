//! Layer-major schedules over a small custom model: every micro-batch's output equals the
//! resident model's bit for bit, whether the activations stay in memory or spill to disk; each
//! layer is read once per run; a spill directory that cannot be written is a clear error.

mod common;
use common::*;

use burn::nn::LinearLayout;
use burn::tensor::{Device, Tensor, TensorData};
use lit_burn::layer_major::{LayerMajor, SpillTier};
use lit_burn::{Error, Resident, StreamOptions, Streamer};

/// 40 micro-batches of different sizes and values.
fn batches(device: &Device) -> Vec<Tensor<2>> {
    (0..40)
        .map(|b| {
            let rows = 1 + b % 5;
            let v: Vec<f32> = (0..rows * D_IN)
                .map(|i| (((i + 7 * b) * 37 % 23) as f32 - 11.0) / 7.0)
                .collect();
            Tensor::from_data(TensorData::new(v, [rows, D_IN]), device)
        })
        .collect()
}

/// The model's output for each batch through a layer-major schedule over `weights`.
fn layer_major<W: lit_burn::Weights>(weights: &W, net: &Net, tier: &SpillTier) -> Vec<Vec<u32>> {
    let device = Device::flex();
    let inputs = batches(&device);
    let run = LayerMajor::new(weights, tier.clone());
    let h = run.start(&net.embed, inputs.len(), |embed, i| {
        embed.forward(inputs[i].clone())
    });
    let h = run.stages(&net.blocks, h.unwrap(), |block, _, x| block.forward(x));
    let out = run.stage(&net.head, h.unwrap(), |head, _, x| head.forward(x));
    out.unwrap().map(|t| bits(t.unwrap())).collect()
}

#[test]
fn spilled_and_in_memory_runs_equal_the_resident_model() {
    let device = Device::flex();
    let (net, source, _tmp) = exported(11, &device);
    let expected: Vec<Vec<u32>> = batches(&device)
        .into_iter()
        .map(|x| bits(net.forward(x)))
        .collect();
    let spill_dir = tempfile::tempdir().unwrap();

    // The resident model, everything in memory.
    let tier = SpillTier::in_memory();
    assert_eq!(layer_major(&Resident, &net, &tier), expected);
    assert_eq!(tier.stats().tensors_spilled, 0);
    assert_eq!(tier.memory_bytes(), 0, "everything consumed is released");

    // Streamed under a budget of the largest layer, activations: none, some, all in memory.
    let total = source.manifest().total_bytes;
    for budget in [0, 2 << 10, u64::MAX] {
        let skeleton = Net::new(LinearLayout::Row, &device);
        let options = StreamOptions::default().with_budget(total / 2);
        let streamer = Streamer::new(source.clone(), &skeleton, options).unwrap();
        let tier = SpillTier::new(spill_dir.path(), budget).unwrap();
        assert_eq!(
            layer_major(&streamer, &skeleton, &tier),
            expected,
            "{budget}"
        );

        let spill = tier.stats();
        assert!(spill.peak_memory_bytes <= budget, "{budget}: {spill:?}");
        assert_eq!(tier.memory_bytes(), 0, "{budget}");
        match budget {
            0 => assert_eq!(spill.tensors_spilled, 40 * 6, "{spill:?}"),
            u64::MAX => assert_eq!(spill.tensors_spilled, 0, "{spill:?}"),
            _ => assert!(
                spill.tensors_spilled > 0 && spill.tensors_spilled < 40 * 6,
                "{spill:?}"
            ),
        }
        assert_eq!(spill.bytes_read_back, spill.bytes_spilled, "{spill:?}");
        // One pass: each of the 6 submodules loaded once for all 40 micro-batches.
        let stats = streamer.stats();
        assert_eq!(stats.passes.len(), 1, "{stats:?}");
        assert_eq!(stats.passes[0].loads, 6, "{stats:?}");
        assert_eq!(stats.passes[0].bytes_read, total, "{stats:?}");
    }
    // Spill files are anonymous: nothing is left in the directory.
    assert_eq!(std::fs::read_dir(spill_dir.path()).unwrap().count(), 0);
}

#[test]
fn an_unwritable_spill_directory_is_named() {
    let missing = std::env::temp_dir().join("lit-no-such-dir/spill");
    let err = SpillTier::new(&missing, 0).unwrap_err();
    assert!(matches!(err, Error::Spill { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("lit-no-such-dir/spill"), "{msg}");
}
