//! One test per way a manifest can be refused.

use lit_core::checksum::checksum;
use lit_core::manifest::{HEADER_LEN, MAGIC, aux_key, layer_key};
use lit_core::{AuxFile, DType, Error, LayerEntry, Manifest, TensorEntry};

fn tensor(name: &str, dtype: DType, shape: &[u64], offset: u64) -> TensorEntry {
    let len = shape.iter().product::<u64>() * dtype.size() as u64;
    TensorEntry {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
        offset,
        len,
        quant: None,
        checksum: None,
    }
}

fn valid() -> Manifest {
    let layers = vec![
        LayerEntry {
            name: "embeddings".into(),
            key: layer_key(0),
            byte_len: 64 + 4 * 40,
            checksum: 1,
            tensors: vec![tensor("embeddings.weight", DType::F32, &[10, 4], 64)],
        },
        LayerEntry {
            name: "layers.0".into(),
            key: layer_key(1),
            byte_len: 64 + 16 + 8,
            checksum: 2,
            tensors: vec![
                tensor("layers.0.w", DType::F32, &[2, 2], 64),
                tensor("layers.0.b", DType::BF16, &[4], 80),
            ],
        },
    ];
    Manifest {
        model_name: "m".into(),
        tool_version: "lit test".into(),
        total_bytes: layers.iter().map(|l| l.byte_len).sum(),
        total_tensors: 3,
        layers,
        aux_files: vec![AuxFile {
            name: "config.json".into(),
            key: aux_key(0),
            byte_len: 2,
            checksum: checksum(b"{}"),
        }],
        metadata: vec![("k".into(), "v".into())],
    }
}

fn refused(m: &Manifest) -> String {
    match m.validate("test") {
        Ok(()) => panic!("manifest accepted: {m:?}"),
        Err(e) => e.to_string(),
    }
}

/// Re-encodes a tampered header so only the intended field is wrong.
fn with_header(mut bytes: Vec<u8>, at: usize, value: &[u8]) -> Vec<u8> {
    bytes[at..at + value.len()].copy_from_slice(value);
    bytes
}

#[test]
fn valid_manifest_round_trips() {
    let m = valid();
    let bytes = m.encode().unwrap();
    assert_eq!(&bytes[..8], &MAGIC);
    assert_eq!(Manifest::decode(&bytes, "x").unwrap(), m);
}

#[test]
fn bad_magic() {
    let bytes = with_header(valid().encode().unwrap(), 0, b"NOTLIT!!");
    assert!(matches!(
        Manifest::decode(&bytes, "x"),
        Err(Error::BadMagic { .. })
    ));
    assert!(matches!(
        Manifest::decode(b"PK\x03\x04", "x"),
        Err(Error::CorruptManifest { .. }) | Err(Error::BadMagic { .. })
    ));
}

#[test]
fn unsupported_version() {
    let bytes = with_header(valid().encode().unwrap(), 8, &7u32.to_le_bytes());
    match Manifest::decode(&bytes, "store-x") {
        Err(Error::UnsupportedVersion {
            found: 7,
            supported: 3,
            location,
        }) => assert_eq!(location, "store-x"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_flags() {
    let bytes = with_header(valid().encode().unwrap(), 12, &1u32.to_le_bytes());
    assert!(
        Manifest::decode(&bytes, "x")
            .unwrap_err()
            .to_string()
            .contains("flags")
    );
}

#[test]
fn truncated_anywhere_is_an_error_never_a_panic() {
    let bytes = valid().encode().unwrap();
    for cut in 0..bytes.len() {
        assert!(
            Manifest::decode(&bytes[..cut], "x").is_err(),
            "cut at {cut} accepted"
        );
    }
}

#[test]
fn payload_checksum_mismatch() {
    let mut bytes = valid().encode().unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(
        Manifest::decode(&bytes, "x")
            .unwrap_err()
            .to_string()
            .contains("checksum")
    );
}

#[test]
fn payload_length_lies() {
    let bytes = valid().encode().unwrap();
    let bytes = with_header(bytes, 16, &(u64::MAX).to_le_bytes());
    assert!(matches!(
        Manifest::decode(&bytes, "x"),
        Err(Error::CorruptManifest { .. })
    ));
}

#[test]
fn garbage_payload_with_valid_checksum() {
    let payload = vec![0xFFu8; 64];
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&checksum(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    assert_eq!(bytes.len(), HEADER_LEN + 64);
    assert!(matches!(
        Manifest::decode(&bytes, "x"),
        Err(Error::CorruptManifest { .. })
    ));
}

#[test]
fn oversized_manifest_is_refused_before_reading() {
    let huge = vec![0u8; (lit_core::limits::MAX_MANIFEST_BYTES + 1) as usize];
    assert!(matches!(
        Manifest::decode(&huge, "x"),
        Err(Error::LimitExceeded {
            what: "manifest size",
            ..
        })
    ));
}

#[test]
fn no_layers() {
    let mut m = valid();
    m.layers.clear();
    m.total_bytes = 0;
    m.total_tensors = 0;
    assert!(refused(&m).contains("no layers"));
}

#[test]
fn duplicate_layer_and_tensor_names() {
    let mut m = valid();
    m.layers[1].name = "embeddings".into();
    assert!(refused(&m).contains("appears twice"));
    let mut m = valid();
    m.layers[1].tensors[0].name = "embeddings.weight".into();
    assert!(refused(&m).contains("appears twice"));
}

#[test]
fn keys_must_be_generated_by_lit() {
    for key in ["../../etc/passwd", "/abs", "layers/00000.safetensors"] {
        let mut m = valid();
        m.layers[1].key = key.into();
        assert!(refused(&m).contains("key"), "{key}");
    }
    let mut m = valid();
    m.aux_files[0].key = "../x".into();
    assert!(refused(&m).contains("key"));
    let mut m = valid();
    m.aux_files[0].name = "../config.json".into();
    assert!(refused(&m).contains("plain file name"));
}

#[test]
fn tensor_outside_its_layer() {
    let mut m = valid();
    m.layers[0].tensors[0].offset = 100;
    assert!(refused(&m).contains("outside layer"));
    let mut m = valid();
    m.layers[0].tensors[0].offset = u64::MAX - 4;
    assert!(refused(&m).contains("outside layer"));
}

#[test]
fn overlapping_tensors() {
    let mut m = valid();
    m.layers[1].tensors[1].offset = 72;
    assert!(refused(&m).contains("overlap"));
}

#[test]
fn shape_times_dtype_must_equal_length() {
    let mut m = valid();
    m.layers[0].tensors[0].len -= 4;
    assert!(refused(&m).contains("needs 160 bytes"));
}

#[test]
fn misaligned_tensor() {
    let mut m = valid();
    m.layers[1].tensors[0].offset = 66;
    m.layers[1].tensors[1].offset = 82;
    m.layers[1].byte_len += 2;
    m.total_bytes += 2;
    assert!(refused(&m).contains("not aligned"));
}

#[test]
fn rank_and_dimension_limits() {
    let mut m = valid();
    m.layers[0].tensors[0].shape = vec![1; 9];
    m.layers[0].tensors[0].len = 4;
    assert!(matches!(
        m.validate("x"),
        Err(Error::LimitExceeded {
            what: "tensor rank",
            ..
        })
    ));
    let mut m = valid();
    m.layers[0].tensors[0].shape = vec![1 << 41];
    assert!(matches!(
        m.validate("x"),
        Err(Error::LimitExceeded {
            what: "tensor dimension",
            ..
        })
    ));
    let mut m = valid();
    m.layers[0].tensors[0].shape = vec![1 << 40, 1 << 40, 1 << 40];
    assert!(matches!(m.validate("x"), Err(Error::LimitExceeded { .. })));
}

#[test]
fn name_limits() {
    let mut m = valid();
    m.layers[0].tensors[0].name = "x".repeat(2000);
    assert!(matches!(
        m.validate("x"),
        Err(Error::LimitExceeded {
            what: "name length",
            ..
        })
    ));
    let mut m = valid();
    m.layers[0].name = "bad\nname".into();
    assert!(refused(&m).contains("control characters"));
    let mut m = valid();
    m.layers[0].tensors[0].name = String::new();
    assert!(refused(&m).contains("empty"));
}

#[test]
fn totals_must_add_up() {
    let mut m = valid();
    m.total_bytes += 1;
    assert!(refused(&m).contains("total_bytes"));
    let mut m = valid();
    m.total_tensors = 99;
    assert!(refused(&m).contains("total_tensors"));
}

#[test]
fn layer_size_limit() {
    let mut m = valid();
    m.layers[0].byte_len = lit_core::limits::MAX_LAYER_BYTES + 1;
    m.total_bytes = m.layers.iter().map(|l| l.byte_len).sum();
    assert!(matches!(
        m.validate("x"),
        Err(Error::LimitExceeded {
            what: "layer size",
            ..
        })
    ));
}

#[test]
fn writer_refuses_to_encode_an_invalid_manifest() {
    let mut m = valid();
    m.total_tensors = 0;
    assert!(m.encode().is_err());
}
