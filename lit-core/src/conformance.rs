//! A conformance suite every [`WeightSource`] should pass, in the manner of object_store's
//! `integration` module: plain async functions that a backend's tests call on sources opened over
//! a [`Fixture`] the test has written into that backend.
//!
//! ```text
//! let fx = Fixture::new();
//! write fx.objects() into your backend          →  identical_bytes(&src, &fx), ranges(&src, &fx),
//!                                                   concurrent_readers(&src, &fx)
//! write fx.with_flipped_byte(1).objects()       →  checksum_mismatch(&src, &fx, 1)
//! write fx.objects() without fx.layer key 2     →  missing_object(&src, &fx, 2)
//! ```
//!
//! Functions panic (like assertions) when the source misbehaves.

use crate::checksum::checksum;
use crate::dtype::DType;
use crate::error::Error;
use crate::manifest::{
    AuxFile, LayerEntry, MANIFEST_KEY, Manifest, ObjectId, TensorEntry, aux_key, layer_key,
};
use crate::source::{WeightSource, WeightSourceExt};

/// A small store with known contents: five layers of varied sizes and dtypes, one empty-shaped
/// tensor, and one auxiliary file.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The manifest describing [`Fixture::layer_bytes`].
    pub manifest: Manifest,
    /// The bytes of each layer object, by index.
    pub layer_bytes: Vec<Vec<u8>>,
    /// The bytes of each auxiliary file, by index.
    pub aux_bytes: Vec<Vec<u8>>,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    /// Builds the fixture (deterministic).
    pub fn new() -> Self {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let specs: [&[(DType, &[u64])]; 5] = [
            &[(DType::F32, &[64, 16]), (DType::I64, &[1, 8])],
            &[
                (DType::F32, &[256, 256]),
                (DType::F32, &[256]),
                (DType::BF16, &[7, 3]),
            ],
            &[
                (DType::F16, &[1000]),
                (DType::U8, &[13]),
                (DType::F32, &[0, 4]),
            ],
            &[(DType::F32, &[3, 5, 7])],
            &[(DType::F64, &[2]), (DType::Bool, &[5])],
        ];
        let mut layers = Vec::new();
        let mut layer_bytes = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            // A 64-byte pseudo header, then each tensor aligned to 8 bytes.
            let mut bytes = vec![b' '; 64];
            let mut tensors = Vec::new();
            for (j, (dtype, shape)) in spec.iter().enumerate() {
                while !bytes.len().is_multiple_of(8) {
                    bytes.push(0);
                }
                let len = shape.iter().product::<u64>() * dtype.size() as u64;
                let offset = bytes.len() as u64;
                bytes.extend((0..len).map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    (rng >> 24) as u8
                }));
                tensors.push(TensorEntry {
                    name: format!("block.{i}.t{j}"),
                    dtype: *dtype,
                    shape: shape.to_vec(),
                    offset,
                    len,
                    quant: None,
                    checksum: Some(checksum(&bytes[offset as usize..])),
                });
            }
            layers.push(LayerEntry {
                name: format!("block.{i}"),
                key: layer_key(i),
                byte_len: bytes.len() as u64,
                checksum: checksum(&bytes),
                tensors,
            });
            layer_bytes.push(bytes);
        }
        let aux = br#"{"model_type":"fixture"}"#.to_vec();
        let manifest = Manifest {
            model_name: "conformance-fixture".into(),
            tool_version: crate::TOOL_VERSION.into(),
            total_bytes: layer_bytes.iter().map(|b| b.len() as u64).sum(),
            total_tensors: layers.iter().map(|l| l.tensors.len() as u64).sum(),
            layers,
            aux_files: vec![AuxFile {
                name: "config.json".into(),
                key: aux_key(0),
                byte_len: aux.len() as u64,
                checksum: checksum(&aux),
            }],
            metadata: vec![("purpose".into(), "conformance".into())],
        };
        manifest
            .validate("fixture")
            .expect("fixture manifest is valid");
        Fixture {
            manifest,
            layer_bytes,
            aux_bytes: vec![aux],
        }
    }

    /// Every object of the store as `(key, bytes)`, manifest included.
    pub fn objects(&self) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = self
            .manifest
            .layers
            .iter()
            .zip(&self.layer_bytes)
            .map(|(l, b)| (l.key.clone(), b.clone()))
            .collect();
        out.extend(
            self.manifest
                .aux_files
                .iter()
                .zip(&self.aux_bytes)
                .map(|(a, b)| (a.key.clone(), b.clone())),
        );
        out.push((
            MANIFEST_KEY.to_string(),
            self.manifest.encode().expect("fixture encodes"),
        ));
        out
    }

    /// The same store with one byte of layer `layer` flipped (the manifest unchanged).
    pub fn with_flipped_byte(&self, layer: usize) -> Fixture {
        let mut fx = self.clone();
        let bytes = &mut fx.layer_bytes[layer];
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        fx
    }
}

/// Every layer and auxiliary file reads back byte for byte, whole and as tensors.
pub async fn identical_bytes(source: &dyn WeightSource, fx: &Fixture) {
    assert_eq!(source.manifest(), &fx.manifest, "manifest differs");
    for (i, expected) in fx.layer_bytes.iter().enumerate() {
        let got = source
            .read_object(ObjectId::Layer(i))
            .await
            .unwrap_or_else(|e| panic!("layer {i}: {e}"));
        assert!(
            got.as_ref() == expected.as_slice(),
            "layer {i}: bytes differ"
        );
        let layer = source.read_layer(i).await.unwrap();
        for (t, bytes) in layer.tensors() {
            assert_eq!(
                bytes.as_ref(),
                &expected[t.offset as usize..(t.offset + t.len) as usize],
                "tensor {}",
                t.name
            );
        }
    }
    for (i, expected) in fx.aux_bytes.iter().enumerate() {
        let name = &fx.manifest.aux_files[i].name;
        assert_eq!(
            source.read_aux(name).await.unwrap().as_ref(),
            expected.as_slice(),
            "aux {name}"
        );
    }
    let (entry, bytes) = source.read_tensor("block.1.t1").await.unwrap();
    assert_eq!(
        bytes.as_ref(),
        &fx.layer_bytes[1][entry.offset as usize..(entry.offset + entry.len) as usize]
    );
    assert!(
        source
            .read_tensor("no.such.tensor")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        source
            .read_aux("no-such-file")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

/// Ranges: full, empty, head, tail, middle; out-of-bounds ranges and unknown objects are errors.
pub async fn ranges(source: &dyn WeightSource, fx: &Fixture) {
    for (i, bytes) in fx.layer_bytes.iter().enumerate() {
        let n = bytes.len() as u64;
        for r in [0..n, 0..0, n..n, 0..1, n - 1..n, n / 3..n / 2] {
            let got = source
                .read_range(ObjectId::Layer(i), r.clone())
                .await
                .unwrap_or_else(|e| panic!("layer {i} range {r:?}: {e}"));
            assert_eq!(
                got.as_ref(),
                &bytes[r.start as usize..r.end as usize],
                "layer {i} range {r:?}"
            );
        }
        for bad in [0..n + 1, n + 5..n + 9] {
            assert!(
                source
                    .read_range(ObjectId::Layer(i), bad.clone())
                    .await
                    .is_err(),
                "layer {i} range {bad:?} accepted"
            );
        }
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 2..1;
        assert!(
            source
                .read_range(ObjectId::Layer(i), backwards)
                .await
                .is_err()
        );
    }
    let count = fx.layer_bytes.len();
    assert!(
        source
            .read_object(ObjectId::Layer(count))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        source
            .read_range(ObjectId::Aux(99), 0..1)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

/// Tensors read by [`WeightSource::read_tensors`], one at a time and as one run of all of a
/// layer's tensors, are their bytes (each checked against its own checksum).
pub async fn tensor_ranges(source: &dyn WeightSource, fx: &Fixture) {
    for (i, bytes) in fx.layer_bytes.iter().enumerate() {
        let tensors = &fx.manifest.layers[i].tensors;
        let all = tensors[0].offset..tensors.iter().map(|t| t.offset + t.len).max().unwrap_or(0);
        for r in tensors.iter().map(TensorEntry::range).chain([all]) {
            let got = source
                .read_tensors(i, r.clone())
                .await
                .unwrap_or_else(|e| panic!("layer {i} tensors {r:?}: {e}"));
            assert_eq!(
                got.as_ref(),
                &bytes[r.start as usize..r.end as usize],
                "layer {i} tensors {r:?}"
            );
        }
    }
}

/// Over a store whose layer `corrupted` has a flipped byte ([`Fixture::with_flipped_byte`]):
/// reading the tensor holding it is a checksum error naming the layer and the tensor; the
/// layer's other tensors still read.
pub async fn tensor_checksum_mismatch(source: &dyn WeightSource, fx: &Fixture, corrupted: usize) {
    let layer = &fx.manifest.layers[corrupted];
    let at = fx.layer_bytes[corrupted].len() as u64 / 2;
    for t in &layer.tensors {
        let result = source.read_tensors(corrupted, t.range()).await;
        if t.range().contains(&at) {
            match result {
                Err(Error::ChecksumMismatch { layer: what, .. }) => {
                    assert!(
                        what.contains(&layer.name) && what.contains(&t.name),
                        "the error should name the layer and the tensor: {what}"
                    )
                }
                other => panic!(
                    "expected a checksum mismatch for `{}`, got {other:?}",
                    t.name
                ),
            }
        } else {
            result.unwrap_or_else(|e| panic!("intact tensor `{}`: {e}", t.name));
        }
    }
}

/// Over a store whose layer `missing` object was deleted: that layer errors, naming its key,
/// and the others still read.
pub async fn missing_object(source: &dyn WeightSource, fx: &Fixture, missing: usize) {
    let err = source
        .read_object(ObjectId::Layer(missing))
        .await
        .expect_err("missing layer read");
    let msg = err.to_string();
    assert!(
        msg.contains(&layer_key(missing)),
        "error should name the object: {msg}"
    );
    for i in (0..fx.layer_bytes.len()).filter(|&i| i != missing) {
        assert_eq!(
            source
                .read_object(ObjectId::Layer(i))
                .await
                .unwrap()
                .as_ref(),
            fx.layer_bytes[i].as_slice()
        );
    }
}

/// Over a store whose layer `corrupted` has a flipped byte: reading it whole is a checksum error
/// naming the layer, and `verify` reports exactly that layer.
pub async fn checksum_mismatch(source: &dyn WeightSource, fx: &Fixture, corrupted: usize) {
    match source.read_object(ObjectId::Layer(corrupted)).await {
        Err(Error::ChecksumMismatch { layer, .. }) => {
            assert_eq!(layer, fx.manifest.layers[corrupted].name)
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    let report = source.verify(&|_, _, _| {}).await;
    let failed: Vec<&str> = report.failed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(failed, [fx.manifest.layers[corrupted].name.as_str()]);
    assert_eq!(
        report.ok.len(),
        fx.layer_bytes.len() + fx.aux_bytes.len() - 1
    );
}

/// Eight threads read every layer in different orders at once; all get identical bytes.
pub async fn concurrent_readers(source: &dyn WeightSource, fx: &Fixture) {
    let n = fx.layer_bytes.len();
    std::thread::scope(|s| {
        for t in 0..8 {
            s.spawn(move || {
                futures::executor::block_on(async {
                    for k in 0..3 * n {
                        let i = (k * (t + 1) + t) % n;
                        let got = source.read_object(ObjectId::Layer(i)).await.unwrap();
                        assert!(
                            got.as_ref() == fx.layer_bytes[i].as_slice(),
                            "thread {t}: layer {i} differs"
                        );
                    }
                })
            });
        }
    });
}
