//! Free-space checks of the writers and the disk tier, on a real small filesystem (a tmpfs of a
//! few MiB, mounted when the tests run as root; skipped, saying so, otherwise).

use futures::executor::block_on;
use lit_core::{DType, Error, ObjectId, WeightSource};
use lit_store::layer_file::TensorSpec;
use lit_store::{DiskCachedSource, LocalSource, StoreWriter};
use std::path::Path;
use std::process::Command;

/// A tmpfs of `mib` MiB mounted on a new directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here (root only): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A store of `layers` layers of `bytes` each (one f32 tensor) at `dst`.
fn store(dst: &Path, layers: usize, bytes: usize) {
    let mut writer = StoreWriter::create_local(dst).unwrap();
    for i in 0..layers {
        let spec = TensorSpec {
            name: format!("layers.{i}.w"),
            dtype: DType::F32,
            shape: vec![(bytes / 4) as u64],
        };
        let data: Vec<u8> = (0..bytes).map(|k| (k * 31 + i) as u8).collect();
        writer
            .write_layer(&format!("layers.{i}"), &[spec], |_| Ok(data.clone()))
            .unwrap();
    }
    writer.finish("m", vec![]).unwrap();
}

fn used(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn a_writer_refuses_what_does_not_fit_and_writes_what_does() {
    let Some(small) = Tmpfs::mount(4) else { return };
    let dst = small.dir.path().join("m.lit");
    let writer = StoreWriter::create_local(&dst).unwrap();
    let err = writer.ensure_space(5 << 20).unwrap_err();
    match &err {
        Error::InsufficientSpace {
            path,
            needed,
            available,
        } => {
            assert_eq!(path, &dst.display().to_string());
            assert_eq!(*needed, 5 << 20);
            assert!(*available <= 4 << 20, "{available}");
        }
        other => panic!("unexpected {other:?}"),
    }
    writer.ensure_space(1 << 20).unwrap();
    let mut forced = writer;
    forced.skip_space_check();
    forced.ensure_space(u64::MAX).unwrap();
    drop(forced);
    // Nothing left behind by a writer that wrote nothing.
    assert_eq!(std::fs::read_dir(small.dir.path()).unwrap().count(), 0);
}

#[test]
fn the_disk_tier_never_takes_the_last_of_a_disk() {
    let Some(small) = Tmpfs::mount(8) else { return };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("m.lit");
    store(&src, 6, 1 << 20);
    let cache = small.dir.path().join("cache");
    // Unbounded by size, but 4 MiB of the 8 MiB disk must stay free: 6 MiB of layers cannot
    // all be cached.
    let tier = DiskCachedSource::new(LocalSource::open(&src).unwrap(), &cache, u64::MAX)
        .unwrap()
        .with_min_free(4 << 20);
    for pass in 0..2 {
        for i in 0..6 {
            let bytes = block_on(tier.read_object(ObjectId::Layer(i))).unwrap();
            assert_eq!(
                bytes.len(),
                (1 << 20) + tier_overhead(&src, i),
                "pass {pass}"
            );
        }
    }
    let free = lit_store::space::available_bytes(&cache).unwrap();
    assert!(free >= 4 << 20, "{free} bytes left free");
    let stats = tier.stats();
    assert!(stats.admitted >= 1 && stats.admitted < 6, "{stats:?}");
    assert!(used(&cache) <= 4 << 20, "{}", used(&cache));
}

/// Bytes of layer `i`'s object beyond its tensor data (the layer file's header).
fn tier_overhead(src: &Path, i: usize) -> usize {
    let source = LocalSource::open(src).unwrap();
    source.manifest().layers[i].byte_len as usize - (1 << 20)
}
