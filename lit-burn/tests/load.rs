//! Loading modules from layer bytes: errors that name tensors, name maps and layouts, copies
//! and dtype conversion.

mod common;

use burn::nn::LinearLayout;
use burn::tensor::{DType as BurnDType, Device, FloatDType, Tensor, TensorData, Tolerance};
use common::*;
use lit_burn::paths::is_lazy;
use lit_burn::{
    Error, LoadOptions, NameRules, ParamPaths, Problem, StreamOptions, Streamer, load_module,
};
use lit_core::{LayerData, WeightSource, WeightSourceExt};
use lit_store::LocalSource;
use std::sync::Arc;

fn store_of(tensors: &[(String, TensorData)]) -> (Arc<dyn WeightSource>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    write_store(&dir, tensors);
    (Arc::new(LocalSource::open(&dir).unwrap()), tmp)
}

fn layer(source: &dyn WeightSource, name: &str) -> LayerData {
    futures::executor::block_on(source.read_layer_named(name)).unwrap()
}

fn problems(err: Error) -> Vec<Problem> {
    match err {
        Error::Load(e) => e.problems,
        other => panic!("expected a load error, got {other}"),
    }
}

#[test]
fn missing_tensor_is_named_at_registration_and_at_load() {
    let device = Device::flex();
    let net = resident(10, &device);
    let mut tensors = named_tensors(&net, false);
    tensors.retain(|(n, _)| n != "blocks.2.fc2.bias");
    let (source, _tmp) = store_of(&tensors);
    let skeleton = Net::new(LinearLayout::Row, &device);

    let err = Streamer::new(source.clone(), &skeleton, StreamOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`blocks.2.fc2.bias`") && msg.contains("missing"),
        "{msg}"
    );
    assert_eq!(problems(err).len(), 1);

    let paths = ParamPaths::from_module(&skeleton);
    let l = layer(source.as_ref(), "blocks.2");
    let err = load_module(
        &skeleton.blocks[2],
        &paths,
        std::slice::from_ref(&l),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        problems(err),
        [Problem::Missing {
            tensor: "blocks.2.fc2.bias".into(),
            path: "blocks.2.fc2.bias".into()
        }]
    );

    // Tolerated, the parameter stays lazy and the report lists it.
    let options = LoadOptions::default().with_allow_missing(true);
    let (block, report) = load_module(&skeleton.blocks[2], &paths, &[l], &options).unwrap();
    assert_eq!(report.missing, ["blocks.2.fc2.bias"]);
    assert!(!block.fc2.bias.as_ref().unwrap().is_initialized());
    assert!(block.fc2.weight.is_initialized());
    assert!(is_lazy(&skeleton));
}

#[test]
fn shape_mismatches_are_all_listed() {
    let device = Device::flex();
    let (_, source, _tmp) = exported(11, &device);
    let mut skeleton = Net::new(LinearLayout::Row, &device);
    skeleton.blocks[1] = Block::new(HIDDEN[1] + 1, LinearLayout::Row, &device);
    let err = Streamer::new(source, &skeleton, StreamOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`blocks.1.fc1.weight`") && msg.contains("shape mismatch"),
        "{msg}"
    );
    let found = problems(err);
    let names: Vec<&str> = found
        .iter()
        .map(|p| match p {
            Problem::ShapeMismatch { tensor, .. } => tensor.as_str(),
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "blocks.1.fc1.weight",
            "blocks.1.fc1.bias",
            "blocks.1.fc2.weight"
        ]
    );
    assert_eq!(
        found[0],
        Problem::ShapeMismatch {
            tensor: "blocks.1.fc1.weight".into(),
            path: "blocks.1.fc1.weight".into(),
            expected: vec![D, HIDDEN[1] + 1],
            found: vec![D, HIDDEN[1]],
        }
    );
}

#[test]
fn int_data_for_a_float_param_is_a_dtype_mismatch() {
    let device = Device::flex();
    let net = resident(12, &device);
    let mut tensors = named_tensors(&net, false);
    for (name, data) in &mut tensors {
        if name == "head.bias" {
            *data = TensorData::new(vec![1i32; D_OUT], [D_OUT]);
        }
    }
    let (source, _tmp) = store_of(&tensors);
    let skeleton = Net::new(LinearLayout::Row, &device);
    let err = Streamer::new(source, &skeleton, StreamOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`head.bias`") && msg.contains("dtype mismatch"),
        "{msg}"
    );
    assert!(msg.contains("I32"), "{msg}");
}

/// Hugging Face style: `model.` prefix, LayerNorm `weight`/`bias`, Linear weights `[out, in]`.
fn hf_tensors(net: &Net) -> Vec<(String, TensorData)> {
    named_tensors(net, true)
        .into_iter()
        .map(|(n, d)| {
            let n = n
                .replace(".norm.gamma", ".norm.weight")
                .replace(".norm.beta", ".norm.bias");
            (format!("model.{n}"), d)
        })
        .collect()
}

#[test]
fn hf_names_and_layout_through_name_rules() {
    let device = Device::flex();
    let net = resident(13, &device);
    let (source, _tmp) = store_of(&hf_tensors(&net));
    let rules = NameRules::new()
        .rename_field("LayerNorm", "gamma", "weight")
        .rename_field("LayerNorm", "beta", "bias")
        .replace_prefix("", "model.")
        .transpose_linear_weights();

    // A Row-layout skeleton: the loader transposes `[out, in]` (a view on Flex). Flex's matmul
    // over a transposed view sums in another order than over a contiguous `[in, out]` copy, so
    // compare bit for bit with the same store loaded whole, and approximately with `net`.
    let skeleton = Net::new(LinearLayout::Row, &device);
    let paths = ParamPaths::from_module(&skeleton);
    let all: Vec<LayerData> = (0..source.manifest().layers.len())
        .map(|i| futures::executor::block_on(source.read_layer(i)).unwrap())
        .collect();
    let whole_options = LoadOptions::default().with_names(rules.clone());
    let (whole, _) = load_module(&skeleton, &paths, &all, &whole_options).unwrap();
    let reference = whole.forward(input(&device));
    reference.to_data().assert_approx_eq::<f32>(
        &net.forward(input(&device)).into_data(),
        Tolerance::rel_abs(1e-5, 1e-6),
    );
    let expected = bits(reference);
    let options = StreamOptions::default()
        .with_names(rules.clone())
        .with_budget(source.manifest().total_bytes / 2);
    let streamer = Streamer::new(source.clone(), &skeleton, options).unwrap();
    for _ in 0..2 {
        let out = streamed_forward(&streamer, &skeleton, input(&device)).unwrap();
        assert_eq!(bits(out), expected);
    }

    // Without the transpose rule the non-square weights do not fit.
    let wrong = NameRules::new()
        .rename_field("LayerNorm", "gamma", "weight")
        .rename_field("LayerNorm", "beta", "bias")
        .replace_prefix("", "model.");
    let err = Streamer::new(
        source.clone(),
        &skeleton,
        StreamOptions::default().with_names(wrong.clone()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("`model.embed.weight`"), "{err}");

    // A Col-layout skeleton expects `[out, in]` itself: no transpose rule.
    let col = Net::new(LinearLayout::Col, &device);
    let streamer = Streamer::new(source, &col, StreamOptions::default().with_names(wrong)).unwrap();
    let out = streamed_forward(&streamer, &col, input(&device)).unwrap();
    assert_eq!(bits(out), expected);
    assert!(is_lazy(&col) && is_lazy(&skeleton));
}

#[test]
fn aligned_bytes_are_shared_and_misaligned_ones_copied() {
    let device = Device::flex();
    let (net, source, _tmp) = exported(14, &device);
    let skeleton = Net::new(LinearLayout::Row, &device);
    let paths = ParamPaths::from_module(&skeleton);
    let l = layer(source.as_ref(), "blocks.0");
    let x = Tensor::<2>::ones([2, D], &device);
    let expected = bits(net.blocks[0].forward(x.clone()));

    let (block, report) = load_module(
        &skeleton.blocks[0],
        &paths,
        std::slice::from_ref(&l),
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(report.copied.is_empty(), "{report:?}");
    assert_eq!(report.applied.len(), 6);
    assert!(report.unused.is_empty());
    assert_eq!(bits(block.forward(x.clone())), expected);

    // The same layer one byte off its alignment: every f32 tensor is copied, results equal.
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&l.bytes);
    let misaligned = LayerData {
        bytes: bytes::Bytes::from(shifted).slice(1..),
        ..l.clone()
    };
    assert_ne!(misaligned.bytes.as_ptr() as usize % 4, 0);
    let (block, report) = load_module(
        &skeleton.blocks[0],
        &paths,
        &[misaligned],
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(report.copied.len(), 6, "{report:?}");
    assert_eq!(bits(block.forward(x)), expected);

    // Loading only `fc1` leaves the layer's other tensors unused.
    let (_, report) = load_module(
        &skeleton.blocks[0].fc1,
        &paths,
        &[l],
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(report.applied, ["blocks.0.fc1.weight", "blocks.0.fc1.bias"]);
    assert_eq!(report.unused.len(), 4, "{report:?}");
}

#[test]
fn stored_dtype_is_kept_unless_asked_to_convert() {
    let device = Device::flex();
    let net = resident(15, &device);
    let half: Vec<(String, TensorData)> = named_tensors(&net, false)
        .into_iter()
        .map(|(n, d)| (n, d.convert_dtype(BurnDType::F16)))
        .filter(|(n, _)| n.starts_with("head."))
        .collect();
    let (source, _tmp) = store_of(&half);
    let skeleton = Net::new(LinearLayout::Row, &device);
    let paths = ParamPaths::from_module(&skeleton);
    let l = layer(source.as_ref(), "head");

    let (head, report) = load_module(
        &skeleton.head,
        &paths,
        std::slice::from_ref(&l),
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(report.copied.is_empty());
    assert_eq!(head.weight.val().dtype(), BurnDType::F16);

    let options = LoadOptions::default().with_float_dtype(FloatDType::F32);
    let (head, report) = load_module(&skeleton.head, &paths, &[l], &options).unwrap();
    assert_eq!(report.copied.len(), 2);
    let w = head.weight.val();
    assert_eq!(w.dtype(), BurnDType::F32);
    let rounded = net
        .head
        .weight
        .val()
        .cast(FloatDType::F16)
        .cast(FloatDType::F32);
    assert_eq!(bits(w), bits(rounded));
}

#[test]
fn burn_store_loads_a_lit_store_whole() {
    use burn_store::{ModuleSnapshot, PyTorchToBurnAdapter};
    let device = Device::flex();
    let (net, source, _tmp) = exported(16, &device);
    let expected = bits(net.forward(input(&device)));
    let mut model = Net::new(LinearLayout::Row, &device);
    let result = model
        .load_from(&mut lit_burn::LitModuleStore::new(source.clone()))
        .unwrap();
    assert_eq!(
        result.applied.len(),
        source.manifest().total_tensors as usize
    );
    assert_eq!(bits(model.forward(input(&device))), expected);

    // Hugging Face names and layouts through burn-store's own adapter (it transposes Linear
    // weights eagerly, so this path copies).
    let hf: Vec<(String, TensorData)> = named_tensors(&net, true)
        .into_iter()
        .map(|(n, d)| {
            let n = n.replace(".norm.gamma", ".norm.weight");
            (n.replace(".norm.beta", ".norm.bias"), d)
        })
        .collect();
    let (source, _tmp2) = store_of(&hf);
    let mut model = Net::new(LinearLayout::Row, &device);
    model
        .load_from(
            &mut lit_burn::LitModuleStore::new(source.clone()).with_adapter(PyTorchToBurnAdapter),
        )
        .unwrap();
    assert_eq!(bits(model.forward(input(&device))), expected);

    // Without the adapter the names do not match: an error listing them.
    let mut model = Net::new(LinearLayout::Row, &device);
    let err = model
        .load_from(&mut lit_burn::LitModuleStore::new(source))
        .unwrap_err()
        .to_string();
    assert!(err.contains("blocks.0.norm.gamma"), "{err}");
}
