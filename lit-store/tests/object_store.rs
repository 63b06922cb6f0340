//! Object-store sources and sinks against a real S3 server (s3s-fs over HTTP on loopback),
//! with faults: throttling, latency, bodies cut midway, restarts and outages.

use futures::executor::block_on;
use lit_core::conformance::{self, Fixture};
use lit_core::{Error, NoObserver, ObjectId, WeightSource};
use lit_store::remote::{ObjectStoreSource, RemoteOptions, RetryConfig};
use lit_store::testing::{S3TestServer, SECRET_KEY};
use lit_store::{DiskCachedSource, MemorySource, OpenOptions, copy_store, create_writer};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const BUCKET: &str = "models";

fn server() -> (tempfile::TempDir, S3TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let server = S3TestServer::start(dir.path()).unwrap();
    server.create_bucket(BUCKET).unwrap();
    (dir, server)
}

/// Puts `objects` under `prefix` of the bucket, as files behind the server.
fn put_files(server: &S3TestServer, prefix: &str, objects: &[(String, Vec<u8>)]) -> String {
    for (key, bytes) in objects {
        let path = server.object_file(BUCKET, &format!("{prefix}/{key}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    format!("s3://{BUCKET}/{prefix}")
}

/// Small parts, so every layer of the fixture larger than 64 KiB is several ranged GETs.
fn small_parts(server: &S3TestServer) -> RemoteOptions {
    RemoteOptions {
        part_size: 64 << 10,
        concurrency: 4,
        ..server.options()
    }
}

/// Options that open and create stores through `remote`.
fn reach(remote: RemoteOptions) -> OpenOptions {
    OpenOptions {
        remote,
        ..Default::default()
    }
}

fn assert_identical(source: &dyn WeightSource, fx: &Fixture) {
    block_on(conformance::identical_bytes(source, fx));
    block_on(conformance::tensor_ranges(source, fx));
}

#[test]
fn a_layer_arrives_as_parallel_ranged_gets_in_an_aligned_buffer() {
    let (_dir, server) = server();
    let fx = Fixture::new();
    let url = put_files(&server, "parts", &fx.objects());
    let source = ObjectStoreSource::open(&url, &small_parts(&server)).unwrap();
    let before = server.faults().requests.load(Ordering::Relaxed);
    let layer = block_on(source.read_object(ObjectId::Layer(1))).unwrap();
    let requests = server.faults().requests.load(Ordering::Relaxed) - before;
    assert_eq!(layer.as_ref(), fx.layer_bytes[1].as_slice());
    assert_eq!(
        layer.as_ptr() as usize % 64,
        0,
        "layer buffer is not 64-byte aligned"
    );
    let parts = fx.layer_bytes[1].len().div_ceil(64 << 10) as u64;
    assert!(parts > 1, "the fixture layer should need several parts");
    assert_eq!(requests, parts, "one ranged GET per part");
}

#[test]
fn copy_to_s3_and_back_keeps_every_byte() {
    let (_dir, server) = server();
    let fx = Fixture::new();
    let open = reach(small_parts(&server));
    let memory = MemorySource::from_objects(fx.objects()).unwrap();
    let url = format!("s3://{BUCKET}/copied/model.lit");
    let report = copy_store(&memory, create_writer(&url, &open).unwrap(), &NoObserver).unwrap();
    assert_eq!(report.bytes_copied, fx.manifest.total_bytes);
    let remote = lit_store::open(&url, &open).unwrap();
    assert_identical(remote.as_ref(), &fx);

    let back = tempfile::tempdir().unwrap();
    let local = back.path().join("back.lit");
    let local = local.to_str().unwrap();
    copy_store(
        remote.as_ref(),
        create_writer(local, &open).unwrap(),
        &NoObserver,
    )
    .unwrap();
    assert_identical(lit_store::open(local, &open).unwrap().as_ref(), &fx);

    // A second copy onto an existing store is refused, naming it.
    let err = create_writer(&url, &open).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(err.to_string().contains("copied/model.lit"), "{err}");
}

#[test]
fn multipart_upload_of_a_layer_larger_than_a_part() {
    let (_dir, server) = server();
    // 5 MiB is the smallest part S3 accepts: a 12 MiB layer is three parts.
    let big: Vec<u8> = (0..12 << 20)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let memory = MemorySource::from_objects(single_layer_store(&big)).unwrap();
    let open = reach(server.options());
    let url = format!("s3://{BUCKET}/big.lit");
    copy_store(&memory, create_writer(&url, &open).unwrap(), &NoObserver).unwrap();
    let remote = lit_store::open(&url, &open).unwrap();
    let layer = block_on(remote.read_object(ObjectId::Layer(0))).unwrap();
    assert!(layer.as_ref() == memory_layer(&memory).as_ref());
}

fn single_layer_store(payload: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut fx = Fixture::new();
    // Layer 0 with the payload appended after its tensors.
    let mut bytes = fx.layer_bytes[0].clone();
    bytes.extend_from_slice(payload);
    fx.manifest.layers.truncate(1);
    fx.layer_bytes = vec![bytes];
    rebuild(fx).objects()
}

fn memory_layer(m: &MemorySource) -> bytes::Bytes {
    block_on(m.read_object(ObjectId::Layer(0))).unwrap()
}

/// The fixture with its checksums and lengths recomputed after its bytes were changed.
fn rebuild(mut fx: Fixture) -> Fixture {
    for (layer, bytes) in fx.manifest.layers.iter_mut().zip(&fx.layer_bytes) {
        layer.byte_len = bytes.len() as u64;
        layer.checksum = lit_core::checksum(bytes);
    }
    fx.manifest.total_bytes = fx.layer_bytes.iter().map(|b| b.len() as u64).sum();
    fx.manifest.total_tensors = fx
        .manifest
        .layers
        .iter()
        .map(|l| l.tensors.len() as u64)
        .sum();
    fx
}

#[test]
fn throttling_latency_and_cut_bodies_still_give_identical_bytes() {
    let (_dir, server) = server();
    let fx = Fixture::new();
    let url = put_files(&server, "faults", &fx.objects());
    let options = small_parts(&server);
    let source = ObjectStoreSource::open(&url, &options).unwrap();

    server.faults().fail_every.store(3, Ordering::Relaxed);
    assert_identical(&source, &fx);
    server.faults().clear();

    server.faults().cut_every.store(4, Ordering::Relaxed);
    assert_identical(&source, &fx);
    server.faults().clear();

    server.faults().delay_ms.store(30, Ordering::Relaxed);
    assert_identical(&source, &fx);
    server.faults().clear();

    let injected = server.faults().injected.load(Ordering::Relaxed);
    assert!(injected >= 4, "only {injected} faults were injected");
}

#[test]
fn a_server_restarted_mid_pass_does_not_change_the_output() {
    let (_dir, mut server) = server();
    let fx = Fixture::new();
    let url = put_files(&server, "restart", &fx.objects());
    let source = ObjectStoreSource::open(&url, &small_parts(&server)).unwrap();
    // Slow responses, so requests are in flight when the server goes away.
    server.faults().delay_ms.store(40, Ordering::Relaxed);
    std::thread::scope(|s| {
        let pass = s.spawn(|| assert_identical(&source, &fx));
        std::thread::sleep(Duration::from_millis(100));
        server.restart().unwrap();
        pass.join().unwrap();
    });
}

#[test]
fn an_outage_longer_than_the_retry_budget_fails_within_the_deadline() {
    let (_dir, mut server) = server();
    let fx = Fixture::new();
    let url = put_files(&server, "outage", &fx.objects());
    let options = RemoteOptions {
        retry: RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(1),
            ..Default::default()
        },
        connect_timeout: Duration::from_millis(500),
        deadline: Duration::from_secs(3),
        ..small_parts(&server)
    };
    let source = ObjectStoreSource::open(&url, &options).unwrap();
    // A range outside the object is refused before any request.
    let err = block_on(source.read_range(ObjectId::Layer(1), 0..u64::MAX)).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    server.stop();
    let start = Instant::now();
    let err = block_on(source.read_object(ObjectId::Layer(1))).unwrap_err();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "gave up after {took:?}");
    let msg = err.to_string();
    assert!(msg.contains("layers/00001.safetensors"), "{msg}");
    assert!(!msg.contains(SECRET_KEY), "{msg}");

    // A deadline shorter than the retries also holds.
    let options = RemoteOptions {
        deadline: Duration::from_millis(700),
        retry: RetryConfig {
            max_retries: 100,
            retry_timeout: Duration::from_secs(60),
            ..Default::default()
        },
        ..options
    };
    server.restart().unwrap();
    let source = ObjectStoreSource::open(&url, &options).unwrap();
    server.stop();
    let start = Instant::now();
    let err = block_on(source.read_object(ObjectId::Layer(1))).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(err.to_string().contains("deadline"), "{err}");
}

#[test]
fn an_object_damaged_on_the_server_is_refused_by_checksum() {
    let (_dir, server) = server();
    let fx = Fixture::new();
    let url = put_files(&server, "damaged", &fx.objects());
    let file = server.object_file(BUCKET, &format!("damaged/{}", fx.manifest.layers[3].key));
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let source = ObjectStoreSource::open(&url, &server.options()).unwrap();
    let err = block_on(source.read_object(ObjectId::Layer(3))).unwrap_err();
    assert!(
        matches!(err, Error::ChecksumMismatch { ref layer, .. } if layer == "block.3"),
        "{err}"
    );
    assert!(
        err.to_string().contains("damaged/layers/00003.safetensors"),
        "{err}"
    );
}

/// Layers are fetched into recycled buffers, part bodies written straight into them: an object
/// that shrank on the server since the first read must be an error naming it, never the stale
/// bytes still in the buffer (which would pass the checksum).
#[test]
fn a_recycled_buffer_never_hides_an_object_that_shrank() {
    let (_dir, server) = server();
    let payload: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    let objects = single_layer_store(&payload);
    let url = put_files(&server, "shrank", &objects);
    let source = ObjectStoreSource::open(&url, &small_parts(&server)).unwrap();
    let key = &source.manifest().layers[0].key;
    let file = server.object_file(BUCKET, &format!("shrank/{key}"));
    let whole = std::fs::read(&file).unwrap();
    let first = block_on(source.read_object(ObjectId::Layer(0))).unwrap();
    assert!(first.as_ref() == whole.as_slice());
    drop(first);
    // Shorter by less than a part, then by whole parts.
    for cut in [1000, 200 << 10] {
        std::fs::write(&file, &whole[..whole.len() - cut]).unwrap();
        let err = block_on(source.read_object(ObjectId::Layer(0))).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("shrank/layers/00000"), "{text}");
    }
    std::fs::write(&file, &whole).unwrap();
    let again = block_on(source.read_object(ObjectId::Layer(0))).unwrap();
    assert!(again.as_ref() == whole.as_slice());
}

#[test]
fn an_interrupted_upload_never_opens_and_a_second_copy_resumes_it() {
    let (_dir, server) = server();
    let fx = Fixture::new();
    let open = reach(server.options());
    let url = format!("s3://{BUCKET}/interrupted.lit");
    let memory = MemorySource::from_objects(fx.objects()).unwrap();
    {
        let mut writer = create_writer(&url, &open).unwrap();
        for (entry, bytes) in fx.manifest.layers.iter().zip(&fx.layer_bytes).take(3) {
            writer.write_raw_layer(entry, bytes).unwrap();
        }
        // Dropped here without `finish`: as if the process died.
    }
    let err = lit_store::open(&url, &open).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("interrupted.lit"), "{err}");

    let report = copy_store(&memory, create_writer(&url, &open).unwrap(), &NoObserver).unwrap();
    assert_eq!(report.layers_skipped, 3);
    assert_eq!(
        report.bytes_copied + report.bytes_skipped,
        fx.manifest.total_bytes
    );
    assert_identical(lit_store::open(&url, &open).unwrap().as_ref(), &fx);
}

#[test]
fn a_damaged_leftover_layer_is_transferred_again_on_resume() {
    let (_dir, server) = server();
    let fx = Fixture::new();
    let open = reach(server.options());
    let url = format!("s3://{BUCKET}/resume-damaged.lit");
    {
        let mut writer = create_writer(&url, &open).unwrap();
        let mut bad = fx.layer_bytes[0].clone();
        bad[70] ^= 1;
        writer
            .write_raw_layer(&fx.manifest.layers[0], &bad)
            .unwrap();
    }
    let memory = MemorySource::from_objects(fx.objects()).unwrap();
    let report = copy_store(&memory, create_writer(&url, &open).unwrap(), &NoObserver).unwrap();
    assert_eq!(report.layers_skipped, 0);
    assert_identical(lit_store::open(&url, &open).unwrap().as_ref(), &fx);
}

#[test]
fn a_local_copy_resumes_from_what_a_dead_writer_left() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("resumed.lit");
    let dst = dst.to_str().unwrap();
    let open = OpenOptions::default();
    let memory = MemorySource::from_objects(fx.objects()).unwrap();
    // A writer in a child process that is killed: its staging directory stays behind.
    let mut writer = create_writer(dst, &open).unwrap();
    for (entry, bytes) in fx.manifest.layers.iter().zip(&fx.layer_bytes).take(2) {
        writer.write_raw_layer(entry, bytes).unwrap();
    }
    let staging: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(staging.len(), 1);
    let left = dir.path().join(".resumed.lit.lit-partial-999999999-0");
    copy_dir(&staging[0].path(), &left);
    drop(writer);
    assert!(lit_store::open(dst, &open).is_err());

    let report = copy_store(&memory, create_writer(dst, &open).unwrap(), &NoObserver).unwrap();
    assert_eq!(report.layers_skipped, 2);
    assert_identical(lit_store::open(dst, &open).unwrap().as_ref(), &fx);
    assert!(!left.exists());
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_disk_tier_serves_the_second_pass_and_stays_within_its_size() {
    let (_dir, server) = server();
    let fx = Fixture::new();
    let url = put_files(&server, "tiered", &fx.objects());
    let cache = tempfile::tempdir().unwrap();
    let open = || ObjectStoreSource::open(&url, &server.options()).unwrap();

    // Unbounded: the first pass fills the cache, the second reads only from disk.
    let first = DiskCachedSource::new(open(), cache.path(), u64::MAX).unwrap();
    assert_identical(&first, &fx);
    let s = first.stats();
    assert_eq!(
        s.bytes_from_inner,
        fx.manifest.total_bytes + fx.aux_bytes[0].len() as u64
    );
    let second = DiskCachedSource::new(open(), cache.path(), u64::MAX).unwrap();
    let requests = server.faults().requests.load(Ordering::Relaxed);
    assert_identical(&second, &fx);
    assert_eq!(second.stats().bytes_from_inner, 0, "{:?}", second.stats());
    assert_eq!(server.faults().requests.load(Ordering::Relaxed), requests);

    // A damaged cache file is detected, dropped and fetched again.
    let victim = std::fs::read_dir(cache.path())
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&victim, bytes).unwrap();
    let third = DiskCachedSource::new(open(), cache.path(), u64::MAX).unwrap();
    assert_identical(&third, &fx);
    assert_eq!(third.stats().misses, 1);

    // Bounded: only what fits is kept, the first objects in execution order.
    let small = tempfile::tempdir().unwrap();
    let budget = fx.layer_bytes[0].len() as u64 + fx.aux_bytes[0].len() as u64 + 10;
    let bounded = DiskCachedSource::new(open(), small.path(), budget).unwrap();
    assert_identical(&bounded, &fx);
    assert_identical(&bounded, &fx);
    let used: u64 = std::fs::read_dir(small.path())
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(used <= budget, "{used} > {budget}");
    assert!(bounded.is_kept(ObjectId::Layer(0)));
    assert!(!bounded.is_kept(ObjectId::Layer(1)));
}

/// Objects of 32 MiB and more come back from the tier through several reader threads: every
/// byte in place, and damage anywhere in them still caught.
#[test]
fn the_disk_tier_reads_a_large_object_back_intact() {
    let (_dir, server) = server();
    let payload: Vec<u8> = (0..40u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let url = put_files(&server, "large", &single_layer_store(&payload));
    let cache = tempfile::tempdir().unwrap();
    let tier = || {
        let remote = ObjectStoreSource::open(&url, &server.options()).unwrap();
        DiskCachedSource::new(remote, cache.path(), u64::MAX).unwrap()
    };
    let first = tier();
    let expected = block_on(first.read_object(ObjectId::Layer(0))).unwrap();
    assert!(expected.ends_with(&payload));
    let second = tier();
    let again = block_on(second.read_object(ObjectId::Layer(0))).unwrap();
    assert!(again == expected);
    assert_eq!((second.stats().hits, second.stats().misses), (1, 0));
    // A flipped byte in the third reader's share: refused, fetched again.
    let file = std::fs::read_dir(cache.path())
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[(16 << 20) + 12345] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();
    let third = tier();
    let fetched = block_on(third.read_object(ObjectId::Layer(0))).unwrap();
    assert!(fetched == expected);
    assert_eq!((third.stats().hits, third.stats().misses), (0, 1));
}

#[test]
fn processes_sharing_a_disk_cache_agree() {
    let (_dir, server) = server();
    let fx = Fixture::new();
    let url = put_files(&server, "shared", &fx.objects());
    let cache = tempfile::tempdir().unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let source = ObjectStoreSource::open(&url, &server.options()).unwrap();
                let tier = DiskCachedSource::new(source, cache.path(), u64::MAX).unwrap();
                assert_identical(&tier, &fx);
            });
        }
    });
    let files = std::fs::read_dir(cache.path()).unwrap().flatten().count();
    assert_eq!(
        files,
        fx.manifest.layers.len() + fx.manifest.aux_files.len()
    );
}

#[test]
fn secrets_never_appear_in_messages() {
    let (_dir, server) = server();
    let options = server.options();
    assert!(!format!("{options:?}").contains(SECRET_KEY));
    let err = ObjectStoreSource::open(&format!("s3://{BUCKET}/absent.lit"), &options).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let wrong = options
        .clone()
        .with_config("aws_secret_access_key", "wrong-secret-value");
    let err = ObjectStoreSource::open(&format!("s3://{BUCKET}/absent.lit"), &wrong).unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(
        !msg.contains(SECRET_KEY) && !msg.contains("wrong-secret-value"),
        "{msg}"
    );
    // Credentials in a URL are not echoed either.
    let err = lit_store::open("ftp://user:hunter2@host/x", &OpenOptions::default())
        .map(|_| ())
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn a_copy_that_fails_midway_resumes_where_it_stopped() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("failed.lit");
    let dst = dst.to_str().unwrap();
    let open = OpenOptions::default();
    // The source's layer 3 is damaged: the copy stops there with an error naming it.
    let bad = MemorySource::from_objects(fx.with_flipped_byte(3).objects()).unwrap();
    let err = copy_store(&bad, create_writer(dst, &open).unwrap(), &NoObserver).unwrap_err();
    assert!(
        matches!(err, Error::ChecksumMismatch { ref layer, .. } if layer == "block.3"),
        "{err}"
    );
    assert!(
        lit_store::open(dst, &open).is_err(),
        "a failed copy opened as a store"
    );
    // What it wrote stays (hidden), and the next copy keeps it.
    let good = MemorySource::from_objects(fx.objects()).unwrap();
    let report = copy_store(&good, create_writer(dst, &open).unwrap(), &NoObserver).unwrap();
    assert_eq!(report.layers_skipped, 3);
    assert_identical(lit_store::open(dst, &open).unwrap().as_ref(), &fx);
}
