//! PyTorch, burnpack and Hugging Face directory inputs, checked against independently known values.

use futures::executor::block_on;
use lit_core::{DType, WeightSource, WeightSourceExt};
use lit_store::{ExportOptions, LocalSource, StoreWriter};
use std::path::Path;

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn export(src: &Path, dst: &Path) -> LocalSource {
    lit_store::export(
        src,
        StoreWriter::create_local(dst).unwrap(),
        &ExportOptions::default(),
        &lit_core::NoObserver,
    )
    .unwrap();
    LocalSource::open(dst).unwrap()
}

#[test]
fn pytorch_checkpoint_written_by_torch_save() {
    // tests/data/tiny.pt was written by tests/data/make_pytorch_fixture.py with real PyTorch.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny.pt");
    let dir = tempfile::tempdir().unwrap();
    let store = export(&src, &dir.path().join("s"));
    let names: Vec<&str> = store
        .manifest()
        .layers
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["embeddings", "encoder.layer.0", "encoder.layer.1"]);

    let (e, b) = block_on(store.read_tensor("encoder.layer.0.dense.weight")).unwrap();
    assert_eq!((e.dtype, e.shape.clone()), (DType::F32, vec![3, 4]));
    assert_eq!(
        f32s(&b),
        (0..12).map(|i| i as f32 / 8.0).collect::<Vec<_>>()
    );

    let (e, b) = block_on(store.read_tensor("encoder.layer.0.dense.bias")).unwrap();
    assert_eq!(e.dtype, DType::BF16);
    let bias: Vec<f32> = b
        .chunks_exact(2)
        .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    assert_eq!(bias, [-1.0, 0.0, 1.0]);

    // A transposed (non-contiguous) tensor is stored contiguous, row-major.
    let (e, b) = block_on(store.read_tensor("encoder.layer.1.dense.weight")).unwrap();
    assert_eq!(e.shape, vec![3, 4]);
    let expected: Vec<f32> = (0..3)
        .flat_map(|r| (0..4).map(move |c| ((c * 3 + r) * 2) as f32))
        .collect();
    assert_eq!(f32s(&b), expected);

    let (e, b) = block_on(store.read_tensor("embeddings.position_ids")).unwrap();
    assert_eq!((e.dtype, e.shape.clone()), (DType::I64, vec![1, 5]));
    let ids: Vec<i64> = b
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
}

#[test]
fn burnpack_file_written_by_burn_pack() {
    let w: Vec<f32> = (0..6).map(|i| i as f32 * 0.5).collect();
    let tensors = vec![
        burn_pack::Tensor::new(
            "layers.0.linear.weight".into(),
            burn_pack::DType::F32,
            vec![2usize, 3],
            None,
            burn_pack::Bytes::from_elems(w.clone()),
        ),
        burn_pack::Tensor::new(
            "norm.gamma".into(),
            burn_pack::DType::F32,
            vec![3usize],
            None,
            burn_pack::Bytes::from_elems(vec![1.0f32, 2.0, 3.0]),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("model.bpk");
    burn_pack::Writer::new(tensors).write_to_file(&src).unwrap();
    let store = export(&src, &dir.path().join("s"));
    let names: Vec<&str> = store
        .manifest()
        .layers
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["layers.0", "norm"]);
    let (e, b) = block_on(store.read_tensor("layers.0.linear.weight")).unwrap();
    assert_eq!(e.shape, vec![2, 3]);
    assert_eq!(f32s(&b), w);
}

#[test]
fn hugging_face_directory_with_shards_and_carried_files() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    let a = [1.0f32, 2.0];
    let b = [3.0f32; 4];
    let write = |file: &str, name: &str, data: &[f32], shape: Vec<usize>| {
        let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &bytes).unwrap();
        safetensors::serialize_to_file([(name.to_string(), view)], None, &model.join(file))
            .unwrap();
    };
    write(
        "model-00001-of-00002.safetensors",
        "model.layers.0.w",
        &a,
        vec![2],
    );
    write(
        "model-00002-of-00002.safetensors",
        "lm_head.weight",
        &b,
        vec![2, 2],
    );
    std::fs::write(
        model.join("model.safetensors.index.json"),
        r#"{"metadata":{},"weight_map":{"model.layers.0.w":"model-00001-of-00002.safetensors","lm_head.weight":"model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    std::fs::write(model.join("config.json"), r#"{"model_type":"llama"}"#).unwrap();
    std::fs::write(model.join("tokenizer.json"), r#"{"version":"1.0"}"#).unwrap();
    let store = export(&model, &dir.path().join("s"));
    let names: Vec<&str> = store
        .manifest()
        .layers
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["model.layers.0", "lm_head"]);
    assert_eq!(
        block_on(store.read_aux("config.json")).unwrap().as_ref(),
        br#"{"model_type":"llama"}"#
    );
    assert_eq!(
        block_on(store.read_aux("tokenizer.json")).unwrap().as_ref(),
        br#"{"version":"1.0"}"#
    );
    assert_eq!(store.manifest().model_name, "model");
}
