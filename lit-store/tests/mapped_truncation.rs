//! `ReadMode::Mmap` against a store file truncated, rewritten or replaced while its layer is
//! mapped: held, being hashed, being read. The process must survive, reads and
//! `check_mapped` must return an error naming the layer, and a SIGBUS outside store mappings
//! must still kill the process. The guard is Linux's.
#![cfg(target_os = "linux")]

use futures::executor::block_on;
use lit_core::{DType, Error, ObjectId, WeightSource};
use lit_store::layer_file::TensorSpec;
use lit_store::{LocalSource, ReadMode, StoreWriter, check_mapped, watch_mapped};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

/// Deterministic bytes with no zero run as long as a page (so zeros read back cannot pass).
fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i ^ seed).wrapping_mul(2_654_435_761).to_le_bytes()[3] | 1)
        .collect()
}

/// A store with one layer `big` holding one `u8` tensor of `len` bytes; returns the layer
/// file's path and the tensor's bytes.
fn write_store(store: &Path, len: usize) -> (PathBuf, Vec<u8>) {
    let bytes = pattern(7, len);
    let mut writer = StoreWriter::create_local(store).unwrap();
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
    let source = LocalSource::open(store).unwrap();
    (store.join(&source.manifest().layers[0].key), bytes)
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Reads every byte (the compiler cannot skip it): what computing on the layer does.
fn touch(bytes: &[u8]) -> u64 {
    std::hint::black_box(bytes.iter().map(|&b| b as u64).sum())
}

fn assert_mapped(bytes: &[u8]) {
    let before = std::fs::read_to_string("/proc/self/maps").unwrap();
    let at = bytes.as_ptr() as usize;
    let mapped_from_file = before.lines().any(|line| {
        let mut it = line.split_whitespace();
        let range = it.next().unwrap();
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (
            usize::from_str_radix(a, 16).unwrap(),
            usize::from_str_radix(b, 16).unwrap(),
        );
        (a..b).contains(&at) && line.contains(".safetensors")
    });
    assert!(mapped_from_file, "the layer is a mapping of its file");
}

#[test]
fn a_mapped_layer_truncated_while_held_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (path, want) = write_store(&dir.path().join("s"), 8 << 20);
    let source = LocalSource::open_with(dir.path().join("s"), ReadMode::Mmap).unwrap();
    let bytes = block_on(source.read_object(ObjectId::Layer(0))).unwrap();
    assert_mapped(&bytes);
    check_mapped(&bytes).unwrap();
    let file_len = bytes.len() as u64;
    let keep = (1 << 20) + 123;
    truncate(&path, keep);
    // Touching a vanished page would raise SIGBUS: the guard maps zeros over the layer instead.
    touch(&bytes);
    let last_page = &bytes[bytes.len() - 4096..];
    assert!(
        last_page.iter().all(|&b| b == 0),
        "vanished pages read as zeros"
    );
    assert!(bytes[..] != want[..]);
    match check_mapped(&bytes) {
        Err(Error::LengthMismatch {
            layer,
            expected,
            actual,
            ..
        }) => {
            assert_eq!(layer, "big");
            assert_eq!(expected, file_len);
            assert_eq!(actual, keep);
        }
        other => panic!("expected LengthMismatch, got {other:?}"),
    }
    // A slice (a tensor of the layer) is checked as its layer.
    assert!(check_mapped(&bytes.slice(4096..8192)).is_err());
    // A fresh read sees the short file before mapping it.
    assert!(matches!(
        block_on(source.read_object(ObjectId::Layer(0))),
        Err(Error::LengthMismatch { .. })
    ));
}

#[test]
fn a_mapped_layer_rewritten_in_place_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let (path, _) = write_store(&store, 2 << 20);
    let source = LocalSource::open_with(&store, ReadMode::Mmap).unwrap();
    let file = std::fs::read(&path).unwrap();
    let mut other = file.clone();
    let n = other.len();
    other[n / 2..].reverse();

    // Truncated to nothing, touched (faults), then written back at its full length (what `cp`
    // over the file does): the length is right again, the bytes read in between were zeros.
    let held = block_on(source.read_object(ObjectId::Layer(0))).unwrap();
    truncate(&path, 0);
    touch(&held);
    std::fs::write(&path, &other).unwrap();
    match check_mapped(&held) {
        Err(Error::Changed { layer, what, .. }) => {
            assert_eq!(layer, "big");
            assert!(what.contains("vanished"), "{what}");
        }
        other => panic!("expected Changed, got {other:?}"),
    }
    drop(held);

    // Rewritten while nobody touched it: the file's identity (modification time) tells.
    std::fs::write(&path, &file).unwrap();
    let held = block_on(source.read_object(ObjectId::Layer(0))).unwrap();
    assert!(held[..] == file[..]);
    check_mapped(&held).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, &other).unwrap();
    assert!(matches!(check_mapped(&held), Err(Error::Changed { .. })));
}

#[test]
fn a_mapped_layer_replaced_by_rename_is_an_error_and_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let (path, _) = write_store(&store, 2 << 20);
    let file = std::fs::read(&path).unwrap();
    let source = LocalSource::open_with(&store, ReadMode::Mmap).unwrap();
    let held = block_on(source.read_object(ObjectId::Layer(0))).unwrap();
    let mut other = file.clone();
    other.reverse();
    let tmp = dir.path().join("replacement");
    std::fs::write(&tmp, &other).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    // The mapping keeps the old file: its bytes are intact, but they are not the store's now.
    assert!(held[..] == file[..]);
    match check_mapped(&held) {
        Err(Error::Changed { layer, what, .. }) => {
            assert_eq!(layer, "big");
            assert!(what.contains("replaced"), "{what}");
        }
        other => panic!("expected Changed, got {other:?}"),
    }
    assert!(matches!(
        block_on(source.read_object(ObjectId::Layer(0))),
        Err(Error::ChecksumMismatch { .. })
    ));
}

#[test]
fn a_layer_truncated_while_mapped_and_hashed_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let (path, _) = write_store(&store, 48 << 20);
    let want = std::fs::read(&path).unwrap();
    let file_len = want.len() as u64;
    let source = LocalSource::open_with(&store, ReadMode::Mmap).unwrap();
    // Shrink the file while reads (map + hash every page) run; every read either returns the
    // whole, checksummed layer or an error naming it; none crashes or returns zeros.
    let reads = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut results = Vec::new();
            loop {
                // Only the verdict is kept. A read that returned may still meet the
                // truncation while it is compared (zeros): then the check after use says so.
                let r = block_on(source.read_object(ObjectId::Layer(0)))
                    .map(|bytes| bytes[..] == want[..] || check_mapped(&bytes).is_err());
                let failed = r.is_err();
                results.push(r);
                if failed || results.len() > 10_000 {
                    return results;
                }
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(30));
        truncate(&path, file_len / 2 + 1234);
        reader.join().unwrap()
    });
    let (last, earlier) = reads.split_last().unwrap();
    assert!(
        !earlier.is_empty(),
        "some reads finished before the truncation"
    );
    for read in earlier {
        assert!(
            read.as_ref().unwrap(),
            "a whole read is the file, or its check after use fails"
        );
    }
    match last {
        Err(Error::LengthMismatch { layer, actual, .. }) => {
            assert_eq!(layer, "big");
            assert_eq!(*actual, file_len / 2 + 1234);
        }
        other => panic!("expected LengthMismatch after the truncation, got {other:?}"),
    }
}

#[test]
fn a_layer_truncated_while_being_read_after_its_checksum_is_an_error() {
    // Truncated while a compute thread walks the held layer: the walk finishes (zeros where
    // pages vanished) and the check after use reports it.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let (path, _) = write_store(&store, 32 << 20);
    let source = LocalSource::open_with(&store, ReadMode::Mmap).unwrap();
    let held = block_on(source.read_object(ObjectId::Layer(0))).unwrap();
    std::thread::scope(|scope| {
        let walker = scope.spawn(|| {
            let mut sum = 0;
            for _ in 0..50 {
                sum += touch(&held);
            }
            sum
        });
        std::thread::sleep(std::time::Duration::from_millis(10));
        truncate(&path, 4096);
        walker.join().unwrap();
    });
    assert!(matches!(
        check_mapped(&held),
        Err(Error::LengthMismatch { actual: 4096, .. })
    ));
}

/// Set in the child process of [`a_sigbus_outside_store_mappings_still_kills_the_process`].
const CHILD: &str = "LIT_TEST_UNRELATED_SIGBUS_CHILD";

#[test]
fn a_sigbus_outside_store_mappings_still_kills_the_process() {
    let name = "a_sigbus_outside_store_mappings_still_kills_the_process";
    if let Ok(dir) = std::env::var(CHILD) {
        let dir = Path::new(&dir);
        // The guard is installed and works for a store mapping in this process...
        let (path, _) = write_store(&dir.join("s"), 1 << 20);
        let source = LocalSource::open_with(dir.join("s"), ReadMode::Mmap).unwrap();
        let held = block_on(source.read_object(ObjectId::Layer(0))).unwrap();
        truncate(&path, 0);
        touch(&held);
        assert!(check_mapped(&held).is_err());
        eprintln!("store mapping survived");
        // ...but a mapping of another file, truncated, still raises SIGBUS.
        let other = dir.join("other");
        std::fs::write(&other, vec![1u8; 1 << 20]).unwrap();
        let file = std::fs::File::open(&other).unwrap();
        // SAFETY: the point of the test: this mapping is truncated under itself.
        let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
        truncate(&other, 0);
        let sum = touch(&map);
        eprintln!("not killed: {sum}");
        std::process::exit(0);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("store mapping survived"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "{:?}: {stderr}",
        out.status
    );
}

#[test]
fn a_watch_reports_faults_after_the_mapping_is_dropped() {
    // How the executor checks after use without keeping a layer mapped: the watch outlives
    // the bytes, and the faults they took before they were dropped.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let (path, _) = write_store(&store, 2 << 20);
    let file = std::fs::read(&path).unwrap();
    let source = LocalSource::open_with(&store, ReadMode::Mmap).unwrap();
    let held = block_on(source.read_object(ObjectId::Layer(0))).unwrap();
    let watch = watch_mapped(&held).expect("mapped bytes are watched");
    assert!(watch_mapped(&file).is_none(), "a heap copy is not");
    watch.check().unwrap();
    truncate(&path, 0);
    touch(&held);
    std::fs::write(&path, &file).unwrap(); // the same bytes again: only the fault tells
    drop(held);
    // Another mapping may take the slot meanwhile.
    let other = block_on(source.read_object(ObjectId::Layer(0))).unwrap();
    match watch.check() {
        Err(Error::Changed { what, .. }) => assert!(what.contains("vanished"), "{what}"),
        other => panic!("expected Changed, got {other:?}"),
    }
    check_mapped(&other).unwrap();
}
