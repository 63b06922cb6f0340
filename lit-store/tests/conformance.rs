//! Every source in this crate passes lit-core's conformance suite.

use futures::executor::block_on;
use lit_core::conformance::{self, Fixture};
use lit_core::{ObjectId, WeightSource};
use lit_store::remote::{ObjectPath, ObjectStoreSource, RemoteOptions, object_store_for};
use lit_store::testing::S3TestServer;
use lit_store::{CachedSource, DiskCachedSource, LocalSource, MemorySource, ReadMode};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

fn write_dir(dir: &Path, objects: &[(String, Vec<u8>)]) {
    for (key, bytes) in objects {
        let path = dir.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

fn run_suite(open: impl Fn(&[(String, Vec<u8>)]) -> Box<dyn WeightSource>) {
    let fx = Fixture::new();
    let source = open(&fx.objects());
    block_on(conformance::identical_bytes(source.as_ref(), &fx));
    block_on(conformance::ranges(source.as_ref(), &fx));
    block_on(conformance::concurrent_readers(source.as_ref(), &fx));
    block_on(conformance::tensor_ranges(source.as_ref(), &fx));

    let corrupt = open(&fx.with_flipped_byte(1).objects());
    block_on(conformance::checksum_mismatch(corrupt.as_ref(), &fx, 1));
    let corrupt = open(&fx.with_flipped_byte(1).objects());
    block_on(conformance::tensor_checksum_mismatch(
        corrupt.as_ref(),
        &fx,
        1,
    ));

    let missing_key = fx.manifest.layers[2].key.clone();
    let without: Vec<_> = fx
        .objects()
        .into_iter()
        .filter(|(k, _)| *k != missing_key)
        .collect();
    let missing = open(&without);
    block_on(conformance::missing_object(missing.as_ref(), &fx, 2));
}

fn local(mode: ReadMode) -> impl Fn(&[(String, Vec<u8>)]) -> Box<dyn WeightSource> {
    move |objects| {
        let dir = tempfile::tempdir().unwrap().keep();
        write_dir(&dir, objects);
        Box::new(LocalSource::open_with(&dir, mode).unwrap())
    }
}

#[test]
fn local_pread() {
    run_suite(local(ReadMode::Pread));
}

#[test]
fn local_mmap() {
    run_suite(local(ReadMode::Mmap));
}

#[test]
fn local_direct() {
    run_suite(local(ReadMode::Direct));
}

#[test]
fn memory() {
    run_suite(|objects| Box::new(MemorySource::from_objects(objects.to_vec()).unwrap()));
}

#[test]
fn cached_over_memory_at_several_budgets() {
    for budget in [0, 70_000, u64::MAX] {
        run_suite(move |objects| {
            Box::new(CachedSource::new(
                MemorySource::from_objects(objects.to_vec()).unwrap(),
                budget,
            ))
        });
    }
}

#[test]
fn memory_load_copies_a_local_store() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), &fx.objects());
    let local = LocalSource::open(dir.path()).unwrap();
    let mem = block_on(MemorySource::load(&local)).unwrap();
    block_on(conformance::identical_bytes(&mem, &fx));
}

#[test]
fn pread_buffers_are_64_byte_aligned() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), &fx.objects());
    let source = LocalSource::open(dir.path()).unwrap();
    for i in 0..fx.layer_bytes.len() {
        let b = block_on(source.read_object(ObjectId::Layer(i))).unwrap();
        assert_eq!(b.as_ptr() as usize % 64, 0, "layer {i}");
    }
}

#[test]
fn s3_over_http_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3TestServer::start(dir.path()).unwrap();
    server.create_bucket("models").unwrap();
    // Small parts, so every layer above 64 KiB is several concurrent ranged GETs.
    let options = RemoteOptions {
        part_size: 64 << 10,
        concurrency: 4,
        ..server.options()
    };
    let stores = AtomicUsize::new(0);
    run_suite(|objects| {
        let prefix = format!("conformance/{}", stores.fetch_add(1, Ordering::Relaxed));
        write_dir(&server.object_file("models", &prefix), objects);
        Box::new(ObjectStoreSource::open(&format!("s3://models/{prefix}"), &options).unwrap())
    });
}

#[test]
fn memory_urls() {
    let options = RemoteOptions::default();
    let stores = AtomicUsize::new(0);
    run_suite(|objects| {
        let url = format!(
            "memory:///conformance/{}",
            stores.fetch_add(1, Ordering::Relaxed)
        );
        let (store, prefix, _) = object_store_for(&url, &options).unwrap();
        for (key, bytes) in objects {
            let path: ObjectPath = prefix
                .parts()
                .chain(ObjectPath::from(key.as_str()).parts())
                .collect();
            // The in-memory store needs no runtime.
            block_on(store.put_opts(&path, bytes.clone().into(), Default::default())).unwrap();
        }
        Box::new(ObjectStoreSource::open(&url, &options).unwrap())
    });
}

#[test]
fn disk_tier_over_memory_at_several_sizes() {
    for max_bytes in [0, 70_000, u64::MAX] {
        run_suite(move |objects| {
            let cache = tempfile::tempdir().unwrap().keep();
            Box::new(
                DiskCachedSource::new(
                    MemorySource::from_objects(objects.to_vec()).unwrap(),
                    cache,
                    max_bytes,
                )
                .unwrap(),
            )
        });
    }
}
