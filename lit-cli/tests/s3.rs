//! The CLI against a real S3 server (s3s-fs over HTTP on loopback, in this test process):
//! export to a bucket, inspect, verify, run, copy both ways, the disk tier, faults, secrets.

mod common;
use common::*;
use lit_store::testing::{S3TestServer, SECRET_KEY};
use std::process::{Command, Output};
use std::sync::atomic::Ordering;

struct Env {
    _dir: tempfile::TempDir,
    server: S3TestServer,
    cache: tempfile::TempDir,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let server = S3TestServer::start(dir.path()).unwrap();
    server.create_bucket("models").unwrap();
    Env {
        _dir: dir,
        server,
        cache: tempfile::tempdir().unwrap(),
    }
}

impl Env {
    /// `lit args…` with the server's endpoint and credentials in the environment.
    fn lit(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_lit"))
            .args(args)
            .envs(self.server.env())
            .env("LIT_CACHE_DIR", self.cache.path())
            .output()
            .expect("lit runs");
        for text in [stdout(&out), stderr(&out)] {
            assert!(!text.contains(SECRET_KEY), "a secret was printed:\n{text}");
        }
        out
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.lit(args);
        assert!(
            out.status.success(),
            "lit {args:?} failed:\n{}",
            stderr(&out)
        );
        out
    }

    fn requests(&self) -> u64 {
        self.server.faults().requests.load(Ordering::Relaxed)
    }
}

const TEXTS: [&str; 2] = ["A man is eating food.", "The stock market crashed."];

fn embed(env: &Env, store: &str, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["run", "bert", store, "--json", "--budget", "60MiB"];
    args.extend(extra);
    args.extend(TEXTS);
    env.ok(&args).stdout
}

#[test]
fn minilm_exported_to_s3_runs_exactly_as_from_disk() {
    let env = env();
    let model = minilm_dir();
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("minilm.lit");
    let local = local.to_str().unwrap();
    let url = "s3://models/minilm/minilm.lit";

    env.ok(&["export", model.to_str().unwrap(), local]);
    let out = env.ok(&["export", model.to_str().unwrap(), url]);
    assert!(stdout(&out).contains(url), "{}", stdout(&out));

    // Same layers, bytes and checksums as the local export.
    let inspect = |store: &str| -> serde_json::Value {
        serde_json::from_slice(&env.ok(&["inspect", store, "--json"]).stdout).unwrap()
    };
    let (remote, disk) = (inspect(url), inspect(local));
    assert_eq!(remote["layers"], disk["layers"]);
    assert_eq!(remote["layers"].as_array().unwrap().len(), 8);
    let out = env.ok(&["verify", url]);
    assert!(
        stdout(&out).contains("every checksum matches"),
        "{}",
        stdout(&out)
    );

    // Streamed from the bucket: the same embeddings, bit for bit.
    let expected = embed(&env, local, &[]);
    assert_eq!(embed(&env, url, &["--no-disk-cache"]), expected);

    // Throttled (503 on every 5th request) and with bodies cut midway: still identical.
    env.server.faults().fail_every.store(5, Ordering::Relaxed);
    env.server.faults().cut_every.store(7, Ordering::Relaxed);
    assert_eq!(
        embed(&env, url, &["--no-disk-cache", "--part-size", "1MiB"]),
        expected
    );
    env.server.faults().clear();
    assert!(env.server.faults().injected.load(Ordering::Relaxed) > 0);

    // The disk tier: the first run fills it, the second asks the server for the manifest only.
    assert_eq!(embed(&env, url, &[]), expected);
    let before = env.requests();
    assert_eq!(embed(&env, url, &[]), expected);
    let requests = env.requests() - before;
    assert!(requests <= 2, "second run made {requests} requests");

    // Exporting onto an existing store is refused.
    let out = env.lit(&["export", model.to_str().unwrap(), url]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
}

#[test]
fn cp_copies_both_ways_and_resumes() {
    let env = env();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.lit");
    let ckpt = tmp.path().join("model.safetensors");
    synthetic_checkpoint(&ckpt, 6, 3 << 20);
    env.ok(&["export", ckpt.to_str().unwrap(), src.to_str().unwrap()]);

    let url = "s3://models/copies/model.lit";
    let out = env.ok(&["cp", src.to_str().unwrap(), url]);
    assert!(stdout(&out).contains("copied 6 layers"), "{}", stdout(&out));
    env.ok(&["verify", url]);

    let back = tmp.path().join("back.lit");
    env.ok(&["cp", url, back.to_str().unwrap()]);
    let out = env.ok(&["verify", back.to_str().unwrap()]);
    assert!(stdout(&out).contains("every checksum matches"));
    for layer in 0..6 {
        let key = format!("layers/{layer:05}.safetensors");
        assert_eq!(
            std::fs::read(src.join(&key)).unwrap(),
            std::fs::read(back.join(&key)).unwrap()
        );
    }

    // An interrupted copy (the manifest and two layers missing) is resumed, not redone.
    let partial = "s3://models/partial/model.lit";
    env.ok(&["cp", url, partial]);
    let root = env.server.object_file("models", "partial/model.lit");
    std::fs::remove_file(root.join("manifest.lit")).unwrap();
    std::fs::remove_file(root.join("layers/00004.safetensors")).unwrap();
    std::fs::remove_file(root.join("layers/00005.safetensors")).unwrap();
    let out = env.lit(&["inspect", partial]);
    assert!(!out.status.success(), "a store without its manifest opened");
    let out = env.ok(&["cp", src.to_str().unwrap(), partial]);
    assert!(
        stdout(&out).contains("4 layers") && stdout(&out).contains("interrupted copy"),
        "{}",
        stdout(&out)
    );
    env.ok(&["verify", partial]);
}

#[test]
fn unreachable_stores_and_bad_locations_fail_clearly() {
    let env = env();
    let out = env.lit(&["inspect", "s3://models/nothing-here.lit"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing-here.lit"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("not a lit store"), "{}", stderr(&out));

    let out = env.lit(&["inspect", "ftp://user:hunter2@host/m.lit"]);
    assert!(!out.status.success());
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));

    // A server that is down: an error within the deadline, naming the store.
    let mut env = env;
    env.server.stop();
    let start = std::time::Instant::now();
    let out = env.lit(&[
        "inspect",
        "s3://models/x.lit",
        "--retries",
        "1",
        "--deadline",
        "2",
    ]);
    assert!(!out.status.success());
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
    assert!(
        stderr(&out).contains("s3://models/x.lit"),
        "{}",
        stderr(&out)
    );
}
