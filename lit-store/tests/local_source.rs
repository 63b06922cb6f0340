//! LocalSource behaviour a store on a real disk needs: truncation and replacement under a reader,
//! missing manifests, large parallel reads.

use futures::executor::block_on;
use lit_core::conformance::Fixture;
use lit_core::{Error, ObjectId, WeightSource};
use lit_store::{LocalSource, ReadMode};
use std::path::Path;

fn write_fixture(dir: &Path, fx: &Fixture) {
    for (key, bytes) in fx.objects() {
        let path = dir.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// Every read mode, for the tests of files changed under a reader.
const MODES: [ReadMode; 3] = [ReadMode::Pread, ReadMode::Mmap, ReadMode::Direct];

#[test]
fn truncated_layer_file_is_an_error_not_a_crash() {
    for mode in MODES {
        let fx = Fixture::new();
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), &fx);
        let source = LocalSource::open_with(dir.path(), mode).unwrap();
        let path = dir.path().join(&fx.manifest.layers[1].key);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(100)
            .unwrap();
        match block_on(source.read_object(ObjectId::Layer(1))) {
            Err(Error::LengthMismatch {
                layer,
                expected,
                actual,
                ..
            }) => {
                assert_eq!(layer, "block.1");
                assert_eq!(expected, fx.layer_bytes[1].len() as u64);
                assert_eq!(actual, 100);
            }
            other => panic!("{mode:?}: {other:?}"),
        }
    }
}

#[test]
fn replaced_layer_file_is_caught_by_checksum() {
    for mode in MODES {
        let fx = Fixture::new();
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), &fx);
        let source = LocalSource::open_with(dir.path(), mode).unwrap();
        let path = dir.path().join(&fx.manifest.layers[3].key);
        let mut other = fx.layer_bytes[3].clone();
        other.reverse();
        let tmp = dir.path().join("replacement");
        std::fs::write(&tmp, &other).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(
            matches!(
                block_on(source.read_object(ObjectId::Layer(3))),
                Err(Error::ChecksumMismatch { .. })
            ),
            "{mode:?}"
        );
    }
}

#[test]
fn directory_without_manifest_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = LocalSource::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no manifest.lit"), "{err}");
    let err = LocalSource::open(dir.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no such store"), "{err}");
}

#[test]
fn manifest_that_is_not_ours() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("manifest.lit"), b"{\"not\": \"lit\"}").unwrap();
    assert!(matches!(
        LocalSource::open(dir.path()),
        Err(Error::BadMagic { .. })
    ));
}

#[test]
fn large_layers_read_in_parallel_chunks_identically() {
    // 40 MiB + 123 bytes: above the parallel-read threshold, not a multiple of the chunk size.
    let len = (40 << 20) + 123;
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut writer = lit_store::StoreWriter::create_local(dir.path().join("s")).unwrap();
    let spec = lit_store::layer_file::TensorSpec {
        name: "big".into(),
        dtype: lit_core::DType::U8,
        shape: vec![len as u64],
    };
    writer
        .write_layer("big", std::slice::from_ref(&spec), |_| {
            Ok(std::borrow::Cow::Borrowed(&bytes[..]))
        })
        .unwrap();
    writer.finish("big", vec![]).unwrap();
    for mode in [ReadMode::Pread, ReadMode::Mmap, ReadMode::Direct] {
        let source = LocalSource::open_with(dir.path().join("s"), mode).unwrap();
        let layer = block_on(lit_core::WeightSourceExt::read_layer(&source, 0)).unwrap();
        let (_, data) = layer.tensor("big").unwrap();
        assert!(data.as_ref() == bytes.as_slice(), "{mode:?}");
    }
}
