//! Shared helpers for the CLI tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `lit` binary with `args`.
pub fn lit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lit"))
        .args(args)
        .output()
        .expect("lit runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The real all-MiniLM-L6-v2 directory, fetched by the project's own script (cached).
pub fn minilm_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("LIT_MINILM_DIR") {
        return PathBuf::from(dir);
    }
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/fetch-minilm.sh"))
        .output()
        .expect("bash runs scripts/fetch-minilm.sh");
    assert!(
        out.status.success(),
        "scripts/fetch-minilm.sh failed:\n{}",
        stderr(&out)
    );
    PathBuf::from(
        stdout(&out)
            .lines()
            .last()
            .expect("the script prints the directory")
            .trim(),
    )
}

/// Writes a seeded f32 safetensors checkpoint with `layers` blocks of `per_layer` bytes each.
pub fn synthetic_checkpoint(path: &Path, layers: usize, per_layer: usize) {
    let n = per_layer / 4;
    let data: Vec<(String, Vec<u8>)> = (0..layers)
        .map(|i| {
            let bytes = (0..n)
                .flat_map(|k| ((k * 7 + i) as f32).to_le_bytes())
                .collect();
            (format!("blocks.{i}.weight"), bytes)
        })
        .collect();
    let views: Vec<_> = data
        .iter()
        .map(|(name, bytes)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n], bytes)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// `$var` when set, else the last line the project's `scripts/<script>` prints (a cached path).
pub fn from_env_or_script(var: &str, script: &str) -> PathBuf {
    if let Ok(p) = std::env::var(var)
        && !p.is_empty()
    {
        return PathBuf::from(p);
    }
    let out = Command::new("bash")
        .arg(repo_root().join("scripts").join(script))
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{script} (set {var}): {e}"));
    assert!(
        out.status.success(),
        "scripts/{script} failed (set {var}):\n{}",
        stderr(&out)
    );
    PathBuf::from(
        stdout(&out)
            .lines()
            .last()
            .unwrap_or_else(|| panic!("scripts/{script} printed nothing"))
            .trim(),
    )
}
