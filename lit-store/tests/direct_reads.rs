//! `ReadMode::Direct` (O_DIRECT): the same bytes as the written tensors and as `pread` for every
//! awkward offset and length, the fallback where a filesystem refuses direct I/O, and a file
//! truncated under a reader. `O_DIRECT` is Linux's.
#![cfg(target_os = "linux")]

use futures::executor::block_on;
use lit_core::{DType, Error, ObjectId, WeightSource, WeightSourceExt};
use lit_store::layer_file::TensorSpec;
use lit_store::{LocalSource, ReadMode, StoreWriter};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Deterministic, position-dependent bytes (so a shifted read cannot pass).
fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i ^ seed).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect()
}

/// Tensor sizes around page and read-chunk boundaries: empty, tiny, one byte short of and past
/// a page, and large enough to span several 4 MiB direct reads. Stored as `u8`, so tensors start
/// at unaligned offsets.
const SIZES: [usize; 11] = [
    0,
    1,
    3,
    4095,
    4096,
    4097,
    5000,
    (1 << 20) + 17,
    0,
    (9 << 20) + 3,
    7,
];

/// Writes a store at `dir` with two layers of `u8` tensors of [`SIZES`]; returns the tensors'
/// names and bytes.
fn write_store(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut writer = StoreWriter::create_local(dir).unwrap();
    let mut all = Vec::new();
    for layer in 0..2 {
        let tensors: Vec<(String, Vec<u8>)> = SIZES
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let seed = (layer * 100 + i) as u32;
                (format!("l{layer}.t{i}"), pattern(seed, len))
            })
            .collect();
        let specs: Vec<TensorSpec> = tensors
            .iter()
            .map(|(name, bytes)| TensorSpec {
                name: name.clone(),
                dtype: DType::U8,
                shape: vec![bytes.len() as u64],
            })
            .collect();
        writer
            .write_layer(&format!("layer{layer}"), &specs, |i| {
                Ok(std::borrow::Cow::Borrowed(&tensors[i].1[..]))
            })
            .unwrap();
        all.extend(tensors);
    }
    writer.finish("layer0", vec![]).unwrap();
    all
}

/// Whether the filesystem holding `file` accepts `O_DIRECT` (asked of the kernel directly).
fn takes_direct_io(file: &Path) -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(file)
        .is_ok()
}

/// Every tensor, whole layer and a spread of unaligned ranges read in Direct mode equals what
/// was written and what `pread` reads.
fn check_direct_equals_written(store: &Path, tensors: &[(String, Vec<u8>)]) -> LocalSource {
    let direct = LocalSource::open_with(store, ReadMode::Direct).unwrap();
    let pread = LocalSource::open_with(store, ReadMode::Pread).unwrap();
    for (name, bytes) in tensors {
        let (_, got) = block_on(direct.read_tensor(name)).unwrap();
        assert!(got.as_ref() == bytes.as_slice(), "tensor {name}");
    }
    for index in 0..direct.manifest().layers.len() {
        let layer = block_on(direct.read_layer(index)).unwrap(); // checksum verified
        for (name, bytes) in tensors {
            if let Some((_, got)) = layer.tensor(name) {
                assert!(got.as_ref() == bytes.as_slice(), "layer {index}, {name}");
            }
        }
        let len = direct.manifest().layers[index].byte_len;
        let mut x = 0x9e37_79b9_u64 + index as u64;
        for _ in 0..200 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let a = (x >> 20) % (len + 1);
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let b =
                a + (x >> 20) % (len - a + 1).min(if x.is_multiple_of(3) { 64 } else { 20 << 20 });
            let id = ObjectId::Layer(index);
            let got = block_on(direct.read_range(id, a..b)).unwrap();
            let want = block_on(pread.read_range(id, a..b)).unwrap();
            assert!(got == want, "layer {index}, bytes {a}..{b}");
        }
    }
    direct
}

#[test]
fn direct_reads_equal_the_written_bytes_and_pread() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let tensors = write_store(&store);
    let source = check_direct_equals_written(&store, &tensors);
    let layer_file = store.join(&source.manifest().layers[0].key);
    assert_eq!(
        source.direct_refused(),
        !takes_direct_io(&layer_file),
        "direct reads fall back exactly where the filesystem refuses them"
    );
}

#[test]
fn direct_reads_on_tmpfs() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("no /dev/shm: skipped");
        return;
    }
    // tmpfs takes O_DIRECT since Linux 6.6 and refuses it before; either way the bytes are right.
    let dir = tempfile::tempdir_in(shm).unwrap();
    let store = dir.path().join("s");
    let tensors = write_store(&store);
    let source = check_direct_equals_written(&store, &tensors);
    let layer_file = store.join(&source.manifest().layers[0].key);
    assert_eq!(source.direct_refused(), !takes_direct_io(&layer_file));
}

/// A ramfs mount (root only), unmounted when dropped.
struct Ramfs(PathBuf);

impl Ramfs {
    fn mount(at: &Path) -> Option<Ramfs> {
        std::fs::create_dir_all(at).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "ramfs", "ramfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Ramfs(at.to_path_buf()))
    }
}

impl Drop for Ramfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn direct_falls_back_to_pread_where_the_filesystem_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(ramfs) = Ramfs::mount(&dir.path().join("ramfs")) else {
        eprintln!("cannot mount a ramfs (not root?): skipped");
        return;
    };
    let store = ramfs.0.join("s");
    let tensors = write_store(&store);
    let layer_file = store.join("manifest.lit");
    assert!(!takes_direct_io(&layer_file), "ramfs refuses O_DIRECT");
    let source = check_direct_equals_written(&store, &tensors);
    assert!(source.direct_refused());
    assert_eq!(source.mode(), ReadMode::Direct);
}

#[test]
fn a_layer_truncated_while_read_directly_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let len = 48 << 20;
    let bytes = pattern(7, len);
    let mut writer = StoreWriter::create_local(&store).unwrap();
    let spec = TensorSpec {
        name: "big".into(),
        dtype: DType::U8,
        shape: vec![len as u64],
    };
    writer
        .write_layer("big", std::slice::from_ref(&spec), |_| {
            Ok(std::borrow::Cow::Borrowed(&bytes[..]))
        })
        .unwrap();
    writer.finish("big", vec![]).unwrap();
    let source = LocalSource::open_with(&store, ReadMode::Direct).unwrap();
    let path = store.join(&source.manifest().layers[0].key);
    let file_len = std::fs::metadata(&path).unwrap().len();
    // Shrink the file while reads run; every read either returns the whole layer (checksummed)
    // or an error naming it.
    let reads = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut results = Vec::new();
            loop {
                let r = block_on(source.read_object(ObjectId::Layer(0)));
                let failed = r.is_err();
                results.push(r);
                if failed || results.len() > 10_000 {
                    return results;
                }
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(30));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(file_len / 2 + 1234)
            .unwrap();
        reader.join().unwrap()
    });
    // The reads before the truncation returned the whole, checksummed layer (the loop stops at
    // the first error); the first error names the layer.
    match reads.last().unwrap() {
        Err(Error::LengthMismatch { layer, .. }) => assert_eq!(layer, "big"),
        Err(Error::Io { .. }) => {}
        other => panic!("expected an error after the truncation, got {other:?}"),
    }
}
