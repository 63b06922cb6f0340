//! With no `--budget`, lit sizes the budget from the memory it is given: a model larger than a
//! cgroup's memory limit runs inside it (it is not killed for memory), streaming under an
//! automatic budget below the limit. Needs a writable cgroup v1 memory controller (root), as on
//! the CI machine; elsewhere the test says why it cannot run and fails, so a green run means it ran.

mod common;
use common::*;
use std::path::PathBuf;

/// A memory cgroup with `limit` bytes, removed on drop.
struct Cgroup(PathBuf);

impl Cgroup {
    fn new(limit: u64) -> Result<Self, String> {
        let root = PathBuf::from("/sys/fs/cgroup/memory");
        let dir = root.join(format!("lit-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let cg = Cgroup(dir);
        let file = cg.0.join("memory.limit_in_bytes");
        std::fs::write(&file, limit.to_string()).map_err(|e| format!("{}: {e}", file.display()))?;
        // No swap to escape to, where the kernel has the knob.
        let _ = std::fs::write(cg.0.join("memory.swappiness"), "0");
        Ok(cg)
    }

    /// Runs `lit args…` inside the cgroup.
    fn lit(&self, args: &[&str]) -> std::process::Output {
        let procs = self.0.join("cgroup.procs");
        std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"echo $$ > "$0" && exec "$@""#)
            .arg(&procs)
            .arg(env!("CARGO_BIN_EXE_lit"))
            .args(args)
            .output()
            .expect("run lit in the cgroup")
    }

    fn max_usage(&self) -> u64 {
        std::fs::read_to_string(self.0.join("memory.max_usage_in_bytes"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_model_larger_than_the_cgroup_runs_with_the_default_budget() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("llama.lit");
    let store_s = store.to_str().unwrap();
    let out = lit(&["synth", "llama", store_s, "--params", "200M", "--seed", "5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let source = lit_store::LocalSource::open(&store).unwrap();
    let model = lit_core::WeightSource::manifest(&source).total_bytes;
    let limit: u64 = 640 << 20;
    assert!(
        model > limit + (64 << 20),
        "test model {model} B is not larger than {limit} B"
    );

    let cgroup = Cgroup::new(limit).unwrap_or_else(|e| {
        panic!("this test needs a writable cgroup v1 memory controller (run as root): {e}")
    });
    let report = dir.path().join("report.json");
    let args = [
        "run",
        "llama",
        store_s,
        "--ids",
        "--prompt",
        "1,2,3",
        "--max-tokens",
        "3",
        "--stats-json",
        report.to_str().unwrap(),
    ];
    let out = cgroup.lit(&args);
    let err = stderr(&out);
    assert!(
        out.status.success(),
        "killed or failed inside a {limit}-byte cgroup (status {:?}): {err}",
        out.status
    );
    assert!(
        err.contains("streaming the rest") && err.contains("cgroup limit 640 MiB"),
        "{err}"
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let budget = r["budget"]
        .as_u64()
        .expect("an automatic budget in the report");
    assert!(budget < limit, "budget {budget} ≥ the cgroup limit {limit}");
    assert!(r["peak_held"].as_u64().unwrap() <= budget, "{r:#}");
    assert!(
        r["bytes_read"].as_u64().unwrap() > model,
        "a streamed run re-reads layers: {r:#}"
    );
    assert!(cgroup.max_usage() <= limit);

    // The same run without the default (`--budget all`) keeps every layer: killed for memory.
    let out = cgroup.lit(&[&args[..8], &["--budget", "all"]].concat());
    assert!(
        !out.status.success(),
        "a {model}-byte model held whole fit in {limit} bytes: the test proves nothing"
    );
}
