//! Bad input: a clear error naming the file and tensor, no panic, no huge allocation, nothing
//! half-written left behind, nothing written outside the destination.

use lit_core::{Error, NoObserver};
use lit_store::{ExportOptions, StoreWriter};
use std::path::{Path, PathBuf};

/// A safetensors file with a hand-written header (so it can lie) and `data_len` bytes of data.
fn raw_safetensors(dir: &Path, header: &str, data_len: usize) -> PathBuf {
    let path = dir.join("bad.safetensors");
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(std::iter::repeat_n(7u8, data_len));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Exports `src` into `dir/store` and returns the error; checks nothing was left in `dir`
/// except the inputs.
fn export_err(dir: &Path, src: &Path) -> Error {
    let before = listing(dir);
    let result = StoreWriter::create_local(dir.join("store"))
        .and_then(|w| lit_store::export(src, w, &ExportOptions::default(), &NoObserver));
    let err = result.expect_err("export of bad input succeeded");
    assert_eq!(listing(dir), before, "export left files behind");
    err
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn assert_names(err: &Error, parts: &[&str]) {
    let msg = err.to_string();
    for p in parts {
        assert!(msg.contains(p), "`{msg}` does not mention `{p}`");
    }
}

const GOOD: &str = r#"{"a.0.w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"a.0.b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}"#;

#[test]
fn the_good_file_exports() {
    let dir = tempfile::tempdir().unwrap();
    let src = raw_safetensors(dir.path(), GOOD, 24);
    lit_store::export(
        &src,
        StoreWriter::create_local(dir.path().join("store")).unwrap(),
        &ExportOptions::default(),
        &NoObserver,
    )
    .unwrap();
}

#[test]
fn truncated_file_at_every_length() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(raw_safetensors(dir.path(), GOOD, 24)).unwrap();
    for cut in [0, 3, 8, 20, full.len() - 1] {
        let src = dir.path().join("cut.safetensors");
        std::fs::write(&src, &full[..cut]).unwrap();
        let err = export_err(dir.path(), &src);
        // Cut in the header: the file is refused; cut in the data: the tensor cut off is named.
        assert!(
            matches!(
                err,
                Error::InvalidCheckpoint { .. } | Error::InvalidTensor { .. }
            ),
            "cut {cut}: {err}"
        );
        if cut == full.len() - 1 {
            assert_names(&err, &["`a.0.b`", "run past"]);
        }
        assert_names(&err, &["cut.safetensors"]);
    }
}

#[test]
fn trailing_bytes_after_data() {
    let dir = tempfile::tempdir().unwrap();
    let src = raw_safetensors(dir.path(), GOOD, 30);
    assert_names(
        &export_err(dir.path(), &src),
        &["bad.safetensors", "truncated or padded"],
    );
}

#[test]
fn header_that_is_not_json() {
    let dir = tempfile::tempdir().unwrap();
    let src = raw_safetensors(dir.path(), "{not json", 0);
    assert_names(
        &export_err(dir.path(), &src),
        &["bad.safetensors", "invalid header"],
    );
}

#[test]
fn absurd_header_length_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("huge.safetensors");
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&src, bytes).unwrap();
    assert_names(
        &export_err(dir.path(), &src),
        &["huge.safetensors", "header length"],
    );
}

#[test]
fn offsets_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let src = raw_safetensors(
        dir.path(),
        r#"{"w":{"dtype":"F32","shape":[400],"data_offsets":[0,1600]}}"#,
        16,
    );
    let err = export_err(dir.path(), &src);
    assert!(matches!(err, Error::InvalidTensor { .. }), "{err}");
    assert_names(&err, &["bad.safetensors", "`w`", "past the 16 bytes"]);
}

#[test]
fn overlapping_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let src = raw_safetensors(
        dir.path(),
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
        12,
    );
    assert_names(
        &export_err(dir.path(), &src),
        &["bad.safetensors", "`b`", "overlap"],
    );
}

#[test]
fn gap_between_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let src = raw_safetensors(
        dir.path(),
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}"#,
        20,
    );
    assert_names(
        &export_err(dir.path(), &src),
        &["bad.safetensors", "`b`", "gap"],
    );
}

#[test]
fn shape_times_dtype_is_not_the_byte_count() {
    let dir = tempfile::tempdir().unwrap();
    let src = raw_safetensors(
        dir.path(),
        r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#,
        16,
    );
    assert_names(
        &export_err(dir.path(), &src),
        &["bad.safetensors", "`w`", "12 bytes"],
    );
}

#[test]
fn absurd_shape_is_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let src = raw_safetensors(
        dir.path(),
        r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}}"#,
        16,
    );
    assert_names(&export_err(dir.path(), &src), &["bad.safetensors", "`w`"]);
}

#[test]
fn dtype_lit_does_not_store_names_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let src = raw_safetensors(
        dir.path(),
        r#"{"scales":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}"#,
        4,
    );
    let err = export_err(dir.path(), &src);
    assert!(matches!(err, Error::InvalidTensor { .. }), "{err}");
    assert_names(&err, &["bad.safetensors", "scales", "F8_E4M3"]);
}

#[test]
fn unknown_dtype_string() {
    let dir = tempfile::tempdir().unwrap();
    let src = raw_safetensors(
        dir.path(),
        r#"{"w":{"dtype":"Q4_K","shape":[4],"data_offsets":[0,4]}}"#,
        4,
    );
    assert_names(
        &export_err(dir.path(), &src),
        &["bad.safetensors", "`w`", "Q4_K"],
    );
}

#[test]
fn empty_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let src = raw_safetensors(dir.path(), "{}", 0);
    assert_names(
        &export_err(dir.path(), &src),
        &["bad.safetensors", "no tensors"],
    );
}

#[test]
fn overlong_tensor_name() {
    let dir = tempfile::tempdir().unwrap();
    let name = "n".repeat(5000);
    let src = raw_safetensors(
        dir.path(),
        &format!(r#"{{"{name}":{{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}}}"#),
        1,
    );
    assert!(matches!(
        export_err(dir.path(), &src),
        Error::InvalidTensor { .. }
    ));
}

#[test]
fn unknown_file_kind_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("weights.onnx");
    std::fs::write(&src, b"whatever").unwrap();
    assert_names(
        &export_err(dir.path(), &src),
        &["weights.onnx", "unknown checkpoint kind"],
    );
    assert_names(
        &export_err(dir.path(), &dir.path().join("absent.safetensors")),
        &["absent.safetensors"],
    );
}

#[test]
fn corrupt_pytorch_and_burnpack_files() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("x.pt", &b"PK\x03\x04garbage"[..]),
        ("x.bin", b"\x80\x02garbage"),
        ("x.bpk", b"BURNgarbage"),
    ] {
        let src = dir.path().join(name);
        std::fs::write(&src, bytes).unwrap();
        assert_names(&export_err(dir.path(), &src), &[name]);
    }
    let real =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny.pt")).unwrap();
    let src = dir.path().join("truncated.pt");
    std::fs::write(&src, &real[..real.len() / 2]).unwrap();
    assert_names(&export_err(dir.path(), &src), &["truncated.pt"]);
}

#[test]
fn existing_destination_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("store");
    std::fs::create_dir(&dst).unwrap();
    std::fs::write(dst.join("precious"), b"keep me").unwrap();
    let err = StoreWriter::create_local(&dst).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_names(&err, &["store", "already exists"]);
    assert_eq!(std::fs::read(dst.join("precious")).unwrap(), b"keep me");
}

#[test]
fn full_disk_is_an_error_and_leaves_nothing() {
    // A 64 KiB tmpfs stands in for a full disk (needs root; CI runs as root).
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "full_disk: cannot mount a tmpfs here (not root?); checked only that the source exports"
        );
        return;
    }
    let src = raw_safetensors(
        dir.path(),
        r#"{"layers.0.w":{"dtype":"U8","shape":[300000],"data_offsets":[0,300000]}}"#,
        300_000,
    );
    // Refused up front (300 KB cannot fit in 64 KiB) ...
    let refused = StoreWriter::create_local(mnt.join("store"))
        .and_then(|w| lit_store::export(&src, w, &ExportOptions::default(), &NoObserver));
    let refused_leftovers = listing(&mnt);
    // ... and, told to try anyway (`--force`), the disk fills while writing.
    let result = StoreWriter::create_local(mnt.join("store")).and_then(|mut w| {
        w.skip_space_check();
        lit_store::export(&src, w, &ExportOptions::default(), &NoObserver)
    });
    let leftovers = listing(&mnt);
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    let err = result.expect_err("export onto a full disk succeeded");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_names(&err, &["layers/00000.safetensors"]);
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    let err = refused.expect_err("export onto a full disk succeeded");
    assert!(matches!(err, Error::InsufficientSpace { .. }), "{err}");
    assert_names(
        &err,
        &["store", "not enough free space", "300000 bytes needed"],
    );
    assert!(
        refused_leftovers.is_empty(),
        "left behind: {refused_leftovers:?}"
    );
}
