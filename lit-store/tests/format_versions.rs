//! Stores written before format versions 2 and 3 keep opening and verifying; version 2
//! manifests carry quantized tensor entries and validate their byte lengths; version 3 adds a
//! checksum per tensor.

use lit_core::manifest::FORMAT_VERSION;
use lit_core::{DType, Manifest, QuantScheme, WeightSource, WeightSourceExt};
use lit_store::LocalSource;
use std::path::Path;

/// `tests/data/store-v1` was written by lit-core as of commit e845c97 (format version 1, before
/// quantized tensors existed): one F32 [2, 3] tensor `w` and a `config.json`.
#[test]
fn version_1_store_opens_and_verifies() {
    futures::executor::block_on(version_1_store())
}

async fn version_1_store() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store-v1");
    let bytes = std::fs::read(dir.join("manifest.lit")).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1);
    let source = LocalSource::open(&dir).unwrap();
    let m = source.manifest();
    assert_eq!(m.model_name, "tiny-v1");
    let t = &m.layers[0].tensors[0];
    assert_eq!(
        (t.name.as_str(), t.dtype, t.shape.as_slice(), t.quant),
        ("w", DType::F32, &[2u64, 3][..], None)
    );
    let report = source.verify(&|_, _, _| {}).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.ok.len(), 2);
    let (_, data) = source.read_tensor("w").await.unwrap();
    let values: Vec<f32> = data
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values, [1.0, -2.0, 3.5, 0.25, 100.0, -0.125]);
    // Re-encoding in version 1 gives the fixture's bytes back; the current version is 3.
    assert_eq!(m.encode_v1().unwrap(), bytes);
    assert_eq!(FORMAT_VERSION, 3);
    for encoded in [m.encode_v2().unwrap(), m.encode().unwrap()] {
        assert_eq!(Manifest::decode(&encoded, "v2/v3").unwrap(), *m);
    }
}

/// Version 3 records each tensor's checksum; a version 2 encoding of the same manifest drops
/// them and decodes with none (its tensors read by range are then checked for length only).
#[test]
fn version_3_tensor_checksums_and_version_2_without() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = lit_store::StoreWriter::create_local(dir.path().join("s")).unwrap();
    let specs = [lit_store::layer_file::TensorSpec {
        name: "w".into(),
        dtype: DType::F32,
        shape: vec![2],
    }];
    let data = [1.0f32, -3.0].map(f32::to_le_bytes).concat();
    writer
        .write_layer("l", &specs, |_| Ok(data.clone()))
        .unwrap();
    let m = writer.finish("v3", vec![]).unwrap();
    let t = &m.layers[0].tensors[0];
    assert_eq!(t.checksum, Some(lit_core::checksum::checksum(&data)));
    let v2 = m.encode_v2().unwrap();
    assert_eq!(u32::from_le_bytes(v2[8..12].try_into().unwrap()), 2);
    let old = Manifest::decode(&v2, "v2").unwrap();
    assert_eq!(old.layers[0].tensors[0].checksum, None);
    let mut without = m.clone();
    without.layers[0].tensors[0].checksum = None;
    assert_eq!(old, without);
}

#[test]
fn quantized_entries_round_trip_and_lengths_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = lit_store::StoreWriter::create_local(dir.path().join("s")).unwrap();
    let spec = |name: &str, dtype, shape: &[u64]| lit_store::layer_file::TensorSpec {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    };
    let specs = [spec("q", DType::U8, &[4, 64]), spec("n", DType::F32, &[64])];
    let q_bytes = vec![0u8; 4 * 2 * 20];
    let n_bytes = vec![0u8; 256];
    writer
        .write_layer_quantized("l", &specs, &[Some(QuantScheme::Q4_1), None], |i| {
            Ok(if i == 0 {
                q_bytes.clone()
            } else {
                n_bytes.clone()
            })
        })
        .unwrap();
    let m = writer.finish("q", vec![]).unwrap();
    let t = m.find_tensor("q").unwrap().1;
    assert_eq!(
        (t.quant, t.len, t.shape.as_slice()),
        (Some(QuantScheme::Q4_1), 160, &[4u64, 64][..])
    );
    let decoded = Manifest::decode(&m.encode().unwrap(), "x").unwrap();
    assert_eq!(decoded, m);
    assert!(
        m.encode_v1().is_err(),
        "version 1 cannot express quantized tensors"
    );
    // The layer object stays valid safetensors: the quantized tensor is a 1-D U8 array.
    let layer = std::fs::read(dir.path().join("s").join(&m.layers[0].key)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&layer).unwrap();
    let view = st.tensor("q").unwrap();
    assert_eq!(
        (view.dtype(), view.shape()),
        (safetensors::Dtype::U8, &[160usize][..])
    );
    // A wrong length, a non-U8 dtype or a shape that is not whole blocks is refused.
    for bad in [
        |t: &mut lit_core::TensorEntry| t.len -= 20,
        |t: &mut lit_core::TensorEntry| t.dtype = DType::F16,
        |t: &mut lit_core::TensorEntry| t.shape = vec![5, 32 * 5 / 4 + 1],
    ] {
        let mut m2 = m.clone();
        let layer = &mut m2.layers[0];
        let i = layer.tensors.iter().position(|t| t.name == "q").unwrap();
        bad(&mut layer.tensors[i]);
        let err = m2.encode().unwrap_err().to_string();
        assert!(err.contains('q'), "{err}");
    }
}
