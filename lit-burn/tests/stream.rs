//! Streamed forward == resident forward, bit for bit, across prefetch depths and budgets; the
//! budget, the residency rule and the counters.

mod common;

use burn::nn::LinearLayout;
use burn::tensor::Device;
use common::*;
use lit_burn::paths::is_lazy;
use lit_burn::{Error, StreamOptions, Streamer};
use lit_core::{Event, WeightSource};
use std::sync::{Arc, Mutex};

fn largest_layer(source: &dyn WeightSource) -> (String, u64) {
    let l = source
        .manifest()
        .layers
        .iter()
        .max_by_key(|l| l.byte_len)
        .unwrap();
    (l.name.clone(), l.byte_len)
}

#[test]
fn layers_follow_the_default_grouping() {
    let device = Device::flex();
    let (_, source, _tmp) = exported(1, &device);
    let names: Vec<&str> = source
        .manifest()
        .layers
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "embed", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "head"
        ]
    );
    assert_eq!(largest_layer(source.as_ref()).0, "blocks.3");
}

#[test]
fn streamed_equals_resident_bit_for_bit() {
    let device = Device::flex();
    let (net, source, _tmp) = exported(7, &device);
    let expected = bits(net.forward(input(&device)));
    let total = source.manifest().total_bytes;
    let (_, largest) = largest_layer(source.as_ref());
    for budget in [largest, total / 2, total] {
        for prefetch in [0, 1, 3] {
            let what = format!("budget {budget} of {total}, prefetch {prefetch}");
            let skeleton = Net::new(LinearLayout::Row, &device);
            let options = StreamOptions::default()
                .with_budget(budget)
                .with_prefetch(prefetch);
            let streamer = Streamer::new(source.clone(), &skeleton, options).unwrap();
            for pass in 0..3 {
                let out = streamed_forward(&streamer, &skeleton, input(&device)).unwrap();
                assert_eq!(bits(out), expected, "{what}, pass {pass}");
            }
            assert!(is_lazy(&skeleton), "{what}: the skeleton was initialised");

            let stats = streamer.stats();
            assert_eq!(stats.passes.len(), 3, "{what}");
            assert_eq!(
                stats.passes[0].bytes_read, total,
                "{what}: first pass reads all"
            );
            for p in &stats.passes[1..] {
                assert_eq!(
                    p.bytes_read,
                    total - stats.resident_bytes,
                    "{what}: later passes read model - resident ({stats:?})"
                );
                assert_eq!(p.loads, 6);
            }
            assert!(stats.peak_bytes_held <= budget, "{what}: {stats:?}");
            if budget == total {
                assert_eq!(stats.resident_bytes, total, "{what}: all resident");
            }
            if budget == largest {
                assert_eq!(stats.resident_bytes, 0, "{what}");
            }
            if budget == total / 2 {
                assert!(
                    stats.resident_bytes > 0 && stats.resident_bytes < total,
                    "{what}: {stats:?}"
                );
            }
        }
    }
}

#[test]
fn budget_below_the_largest_layer_names_it() {
    let device = Device::flex();
    let (_, source, _tmp) = exported(2, &device);
    let (name, largest) = largest_layer(source.as_ref());
    let skeleton = Net::new(LinearLayout::Row, &device);
    let err = Streamer::new(
        source,
        &skeleton,
        StreamOptions::default().with_budget(largest - 1),
    )
    .unwrap_err();
    assert!(matches!(err, Error::BudgetTooSmall { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("`{name}`")), "{msg}");
    assert!(msg.contains(&largest.to_string()), "{msg}");
}

#[test]
fn whole_model_loads_at_once_within_the_budget_only() {
    let device = Device::flex();
    let (net, source, _tmp) = exported(3, &device);
    let expected = bits(net.forward(input(&device)));
    let total = source.manifest().total_bytes;
    let skeleton = Net::new(LinearLayout::Row, &device);

    let streamer = Streamer::new(source.clone(), &skeleton, StreamOptions::default()).unwrap();
    let whole = streamer.load(&skeleton).unwrap();
    assert_eq!(bits(whole.forward(input(&device))), expected);
    assert!(whole.report().copied.is_empty(), "{:?}", whole.report());
    assert!(whole.report().unused.is_empty());
    drop(whole);
    assert!(is_lazy(&skeleton));

    let streamer = Streamer::new(
        source,
        &skeleton,
        StreamOptions::default().with_budget(total - 1),
    )
    .unwrap();
    let err = streamer.load(&skeleton).unwrap_err();
    assert!(matches!(err, Error::BudgetTooSmall { .. }), "{err}");
    assert!(err.to_string().contains("`blocks.3`"), "{err}");
}

#[test]
fn holding_two_modules_past_the_budget_is_an_error() {
    let device = Device::flex();
    let (_, source, _tmp) = exported(4, &device);
    let (_, largest) = largest_layer(source.as_ref());
    let skeleton = Net::new(LinearLayout::Row, &device);
    let streamer = Streamer::new(
        source,
        &skeleton,
        StreamOptions::default()
            .with_budget(largest)
            .with_prefetch(0),
    )
    .unwrap();
    let first = streamer.load(&skeleton.blocks[3]).unwrap();
    let err = streamer.load(&skeleton.blocks[2]).unwrap_err();
    assert!(matches!(err, Error::BudgetHeld { .. }), "{err}");
    assert!(err.to_string().contains("blocks.2"), "{err}");
    drop(first);
    streamer.load(&skeleton.blocks[2]).unwrap();
    assert!(streamer.stats().peak_bytes_held <= largest);
}

#[test]
fn order_is_corrected_by_the_first_pass() {
    let device = Device::flex();
    let (_, source, _tmp) = exported(5, &device);
    let skeleton = Net::new(LinearLayout::Row, &device);
    let streamer =
        Streamer::new(source, &skeleton, StreamOptions::default().with_prefetch(2)).unwrap();
    // Run the blocks in reverse and skip the head.
    for _ in 0..2 {
        for b in skeleton.blocks.iter().rev() {
            streamer.load(b).unwrap();
        }
        streamer.load(&skeleton.embed).unwrap();
    }
    assert_eq!(
        streamer.plan(),
        ["blocks.3", "blocks.2", "blocks.1", "blocks.0", "embed"]
    );
    let stats = streamer.stats();
    assert_eq!(stats.passes.len(), 2);
    // The unlimited budget keeps everything the model used resident after the first pass.
    assert_eq!(stats.passes[1].bytes_read, 0, "{stats:?}");
}

/// (event kind, layer index, bytes).
type Logged = (&'static str, usize, u64);

#[test]
fn events_pair_up() {
    let device = Device::flex();
    let (_, source, _tmp) = exported(6, &device);
    let (_, largest) = largest_layer(source.as_ref());
    let log: Arc<Mutex<Vec<Logged>>> = Arc::default();
    let sink = log.clone();
    let observer = move |e: &Event<'_>| {
        let entry = match *e {
            Event::FetchStarted { index, bytes, .. } => ("fetch", index, bytes),
            Event::FetchFinished { index, bytes, .. } => ("fetched", index, bytes),
            Event::ComputeStarted { index, .. } => ("compute", index, 0),
            Event::ComputeFinished { index, .. } => ("computed", index, 0),
            _ => return,
        };
        sink.lock().unwrap().push(entry);
    };
    let skeleton = Net::new(LinearLayout::Row, &device);
    let streamer = Streamer::new(
        source.clone(),
        &skeleton,
        StreamOptions::default()
            .with_budget(largest * 2)
            .with_prefetch(1)
            .with_observer(observer),
    )
    .unwrap();
    streamed_forward(&streamer, &skeleton, input(&device)).unwrap();
    drop(streamer);
    let log = log.lock().unwrap();
    let count = |k: &str| log.iter().filter(|e| e.0 == k).count();
    assert_eq!(count("compute"), 6);
    assert_eq!(count("computed"), 6);
    assert_eq!(count("fetch"), count("fetched"));
    let fetched: u64 = log.iter().filter(|e| e.0 == "fetched").map(|e| e.2).sum();
    assert!(fetched >= source.manifest().total_bytes, "{log:?}");
    // Each layer computes after its fetch finished.
    for (i, e) in log.iter().enumerate() {
        if e.0 == "compute" {
            assert!(
                log[..i].iter().any(|f| f.0 == "fetched" && f.1 == e.1),
                "{log:?}"
            );
        }
    }
}

#[test]
fn async_load_needs_no_runtime() {
    let device = Device::flex();
    let (net, source, _tmp) = exported(8, &device);
    let skeleton = Net::new(LinearLayout::Row, &device);
    let streamer = Streamer::new(source, &skeleton, StreamOptions::default()).unwrap();
    let block = futures::executor::block_on(streamer.load_async(&skeleton.blocks[1])).unwrap();
    let x = burn::tensor::Tensor::<2>::ones([2, D], &device);
    assert_eq!(
        bits(block.forward(x.clone())),
        bits(net.blocks[1].forward(x))
    );
    assert!(is_lazy(&skeleton));
}

/// A bf16 store computed in f32 holds each running layer twice (stored bytes + f32 copies): the
/// budget counts both, so "resident + in flight + running ≤ budget" still holds.
#[test]
fn the_budget_counts_converted_copies() {
    let device = Device::flex();
    let net = resident(5, &device);
    let tensors: Vec<_> = named_tensors(&net, false)
        .into_iter()
        .map(|(name, data)| (name, data.convert_dtype(burn::tensor::DType::BF16)))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bf16");
    let manifest = write_store(&dir, &tensors);
    let source: Arc<dyn WeightSource> = Arc::new(lit_store::LocalSource::open(&dir).unwrap());
    let (name, largest) = largest_layer(source.as_ref());
    let layer = manifest.layers.iter().find(|l| l.name == name).unwrap();
    // Every tensor is bf16: its f32 copy is twice its bytes.
    let floats: u64 = layer.tensors.iter().map(|t| t.len).sum();
    let held = largest + 2 * floats;
    let options = || {
        StreamOptions::default().with_prefetch(1).with_load_options(
            lit_burn::LoadOptions::default().with_float_dtype(burn::tensor::FloatDType::F32),
        )
    };
    let skeleton = Net::new(LinearLayout::Row, &device);

    // Enough for the stored bytes, not for the layer as it runs.
    let err =
        Streamer::new(source.clone(), &skeleton, options().with_budget(held - 1)).unwrap_err();
    assert!(
        matches!(err, Error::BudgetTooSmall { needed, .. } if needed == held),
        "{err}"
    );

    let budget = 2 * held;
    let streamer = Streamer::new(source, &skeleton, options().with_budget(budget)).unwrap();
    let expected: Vec<f32> = net
        .forward(input(&device))
        .into_data()
        .try_to_vec()
        .unwrap();
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    for _ in 0..2 {
        let out = streamed_forward(&streamer, &skeleton, input(&device)).unwrap();
        streamer.end_pass();
        // bf16 weights (8 bits of mantissa): close to the f32 model, not equal.
        let got: Vec<f32> = out.into_data().try_to_vec().unwrap();
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() <= 0.05 * scale, "{g} vs {e} (scale {scale})");
        }
    }
    let stats = streamer.stats();
    assert!(
        stats.peak_bytes_held <= budget,
        "{} > {budget}",
        stats.peak_bytes_held
    );
    assert!(
        stats.peak_bytes_held > largest,
        "converted copies were not counted"
    );
}

/// Resident layers keep the tensors their plan converted: once the model is resident, a pass
/// converts nothing and still computes the same values; streamed layers convert every pass.
#[test]
fn resident_layers_convert_once() {
    let device = Device::flex();
    let net = resident(4, &device);
    let tensors: Vec<_> = named_tensors(&net, false)
        .into_iter()
        .map(|(name, data)| (name, data.convert_dtype(burn::tensor::DType::BF16)))
        .collect();
    let n_tensors = tensors.len();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bf16");
    write_store(&dir, &tensors);
    let source: Arc<dyn WeightSource> = Arc::new(lit_store::LocalSource::open(&dir).unwrap());
    let f32_compute = || {
        StreamOptions::default().with_load_options(
            lit_burn::LoadOptions::default().with_float_dtype(burn::tensor::FloatDType::F32),
        )
    };
    let skeleton = Net::new(LinearLayout::Row, &device);
    let run = |streamer: &Streamer| -> Vec<Vec<f32>> {
        (0..3)
            .map(|_| {
                let out = streamed_forward(streamer, &skeleton, input(&device)).unwrap();
                streamer.end_pass();
                out.into_data().try_to_vec().unwrap()
            })
            .collect()
    };

    let everything = Streamer::new(source.clone(), &skeleton, f32_compute()).unwrap();
    let outs = run(&everything);
    let converted: Vec<usize> = everything.stats().passes[..3]
        .iter()
        .map(|p| p.tensors_converted)
        .collect();
    assert_eq!(converted, [n_tensors, 0, 0]);
    assert_eq!(
        bits_of(&outs[0]),
        bits_of(&outs[2]),
        "cached tensors differ"
    );

    // A budget of the largest layer: nothing resident, every pass converts everything again.
    let (_, largest) = largest_layer(source.as_ref());
    let floats = 2 * largest; // bf16 -> f32 doubles each tensor; layers hold little else
    let tight = f32_compute().with_prefetch(0).with_budget(largest + floats);
    let streamed = Streamer::new(source, &skeleton, tight).unwrap();
    let outs_streamed = run(&streamed);
    let stats = streamed.stats();
    assert_eq!(stats.resident_layers, 0);
    for p in &stats.passes[..3] {
        assert_eq!(p.tensors_converted, n_tensors);
    }
    assert_eq!(bits_of(&outs_streamed[2]), bits_of(&outs[2]));
}

fn bits_of(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
