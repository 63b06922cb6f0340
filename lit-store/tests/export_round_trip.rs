//! Property: arbitrary tensors, written by the safetensors crate, exported, then read back through
//! every source, are byte-identical; the layer objects are valid, aligned safetensors files.

use futures::executor::block_on;
use lit_core::{DType, WeightSource, WeightSourceExt};
use lit_store::layer_file::{DATA_ALIGNMENT, to_safetensors_dtype};
use lit_store::{CachedSource, ExportOptions, LocalSource, MemorySource, ReadMode, StoreWriter};
use proptest::prelude::*;
use std::collections::BTreeMap;

const DTYPES: [DType; 13] = DType::ALL;

#[derive(Debug, Clone)]
struct Tensor {
    name: String,
    dtype: DType,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn arb_tensors() -> impl Strategy<Value = Vec<Tensor>> {
    let one = (
        0usize..DTYPES.len(),
        prop::collection::vec(0usize..5, 0..4),
        any::<u8>(),
    );
    prop::collection::vec((0u8..4, one), 1..14).prop_map(|items| {
        items
            .into_iter()
            .enumerate()
            .map(|(i, (block, (d, shape, seed)))| {
                let dtype = DTYPES[d];
                let len = shape.iter().product::<usize>() * dtype.size();
                let name = match block {
                    0 => format!("embed.t{i}"),
                    3 => format!("head.t{i}"),
                    b => format!("blocks.{b}.t{i}"),
                };
                Tensor {
                    name,
                    dtype,
                    shape,
                    data: (0..len)
                        .map(|k| seed.wrapping_add((k * 31) as u8))
                        .collect(),
                }
            })
            .collect()
    })
}

fn write_safetensors(path: &std::path::Path, tensors: &[Tensor]) {
    let views: Vec<_> = tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                safetensors::tensor::TensorView::new(
                    to_safetensors_dtype(t.dtype),
                    t.shape.clone(),
                    &t.data,
                )
                .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn check_store(store: &std::path::Path, tensors: &[Tensor]) {
    let expected: BTreeMap<&str, &Tensor> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let local = LocalSource::open(store).unwrap();
    let sources: Vec<Box<dyn WeightSource>> = vec![
        Box::new(LocalSource::open_with(store, ReadMode::Mmap).unwrap()),
        Box::new(block_on(MemorySource::load(&local)).unwrap()),
        Box::new(CachedSource::new(
            LocalSource::open(store).unwrap(),
            1 << 20,
        )),
        Box::new(local),
    ];
    for source in &sources {
        let m = source.manifest();
        assert_eq!(m.total_tensors as usize, tensors.len());
        let mut seen = 0;
        for i in 0..m.layers.len() {
            let layer = block_on(source.read_layer(i)).unwrap();
            // Any safetensors reader opens the layer object, and finds the same tensors.
            let st = safetensors::SafeTensors::deserialize(&layer.bytes).unwrap();
            let (n, _) = safetensors::SafeTensors::read_metadata(&layer.bytes).unwrap();
            assert_eq!((8 + n) % DATA_ALIGNMENT, 0, "data section not aligned");
            for (entry, bytes) in layer.tensors() {
                let t = expected[entry.name.as_str()];
                assert_eq!(entry.dtype, t.dtype);
                assert_eq!(
                    entry.shape,
                    t.shape.iter().map(|&d| d as u64).collect::<Vec<_>>()
                );
                assert_eq!(bytes.as_ref(), t.data.as_slice(), "{}", t.name);
                assert_eq!(
                    entry.offset % t.dtype.size() as u64,
                    0,
                    "{} misaligned",
                    t.name
                );
                assert_eq!(st.tensor(&entry.name).unwrap().data(), t.data.as_slice());
                seen += 1;
            }
        }
        assert_eq!(seen, tensors.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn export_then_every_source_gives_identical_bytes(tensors in arb_tensors()) {
        let mut unique = BTreeMap::new();
        for t in tensors { unique.insert(t.name.clone(), t); }
        let tensors: Vec<Tensor> = unique.into_values().collect();
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("model.safetensors");
        write_safetensors(&src, &tensors);
        let store = dir.path().join("store");
        let report = lit_store::export(&src, StoreWriter::create_local(&store).unwrap(), &ExportOptions::default(), &lit_core::NoObserver).unwrap();
        // Layers follow execution order: embeddings, numbered blocks, then the rest.
        let names: Vec<&str> = report.manifest.layers.iter().map(|l| l.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_by_key(|n| if n.starts_with("embed") { 0 } else if n.starts_with("blocks") { 1 } else { 2 });
        prop_assert_eq!(names, sorted);
        check_store(&store, &tensors);
    }
}

#[test]
fn dtype_conversion_to_bf16_and_f16() {
    let xs: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) / 7.0).collect();
    let tensors = vec![
        Tensor {
            name: "layers.0.w".into(),
            dtype: DType::F32,
            shape: vec![8, 8],
            data: xs.iter().flat_map(|x| x.to_le_bytes()).collect(),
        },
        Tensor {
            name: "layers.0.ids".into(),
            dtype: DType::I64,
            shape: vec![3],
            data: [1i64, 2, 3].iter().flat_map(|x| x.to_le_bytes()).collect(),
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("m.safetensors");
    write_safetensors(&src, &tensors);
    for (dtype, to_f32) in [
        (
            DType::BF16,
            (|b: &[u8]| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()) as fn(&[u8]) -> f32,
        ),
        (DType::F16, |b: &[u8]| {
            half::f16::from_le_bytes([b[0], b[1]]).to_f32()
        }),
    ] {
        let store = dir.path().join(format!("s-{dtype}"));
        let options = ExportOptions {
            dtype: Some(dtype),
            ..Default::default()
        };
        lit_store::export(
            &src,
            StoreWriter::create_local(&store).unwrap(),
            &options,
            &lit_core::NoObserver,
        )
        .unwrap();
        let source = LocalSource::open(&store).unwrap();
        let (entry, bytes) = block_on(source.read_tensor("layers.0.w")).unwrap();
        assert_eq!(entry.dtype, dtype);
        for (x, b) in xs.iter().zip(bytes.chunks_exact(2)) {
            assert!(
                (x - to_f32(b)).abs() <= x.abs() / 128.0 + 1e-3,
                "{dtype}: {x}"
            );
        }
        let (entry, bytes) = block_on(source.read_tensor("layers.0.ids")).unwrap();
        assert_eq!(entry.dtype, DType::I64, "integers are never converted");
        assert_eq!(bytes.as_ref(), tensors[1].data.as_slice());
        assert_eq!(
            source.manifest().metadata_value("dtype"),
            Some(dtype.as_str())
        );
    }
}

#[test]
fn max_layer_size_splits_and_group_regex_regroups() {
    let tensors: Vec<Tensor> = (0..6)
        .map(|i| Tensor {
            name: format!("enc.layer.{}.w{}", i / 3, i % 3),
            dtype: DType::F32,
            shape: vec![256],
            data: vec![i as u8; 1024],
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("m.safetensors");
    write_safetensors(&src, &tensors);
    let split = ExportOptions {
        grouping: lit_core::grouping::GroupingOptions {
            max_layer_bytes: Some(2048),
            ..Default::default()
        },
        ..Default::default()
    };
    let r = lit_store::export(
        &src,
        StoreWriter::create_local(dir.path().join("a")).unwrap(),
        &split,
        &lit_core::NoObserver,
    )
    .unwrap();
    let names: Vec<&str> = r.manifest.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "enc.layer.0#0",
            "enc.layer.0#1",
            "enc.layer.1#0",
            "enc.layer.1#1"
        ]
    );
    check_store(&dir.path().join("a"), &tensors);

    let regroup = ExportOptions {
        grouping: lit_core::grouping::GroupingOptions {
            regex: Some(regex::Regex::new(r"^enc\.layer\.\d+\.(w\d)").unwrap()),
            ..Default::default()
        },
        ..Default::default()
    };
    let r = lit_store::export(
        &src,
        StoreWriter::create_local(dir.path().join("b")).unwrap(),
        &regroup,
        &lit_core::NoObserver,
    )
    .unwrap();
    let names: Vec<&str> = r.manifest.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["w0", "w1", "w2"]);
}
