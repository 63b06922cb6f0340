//! Every source in this crate passes lit-core's conformance suite.

use futures::executor::block_on;
use lit_core::conformance::{self, Fixture};
use lit_core::{ObjectId, WeightSource};
use lit_store::{CachedSource, LocalSource, MemorySource, ReadMode};
use std::path::Path;

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

    let corrupt = open(&fx.with_flipped_byte(1).objects());
    block_on(conformance::checksum_mismatch(corrupt.as_ref(), &fx, 1));

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
