//! The `lit` binary: exit codes, messages, atomic export under kill -9.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn existing_destination_and_missing_source_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("m.safetensors");
    synthetic_checkpoint(&src, 2, 1024);
    let dst = dir.path().join("out");
    std::fs::create_dir(&dst).unwrap();
    let out = lit(&["export", src.to_str().unwrap(), dst.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));

    let out = lit(&[
        "export",
        dir.path().join("nope.safetensors").to_str().unwrap(),
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nope.safetensors"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("x").exists());

    let out = lit(&["inspect", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no manifest.lit"), "{}", stderr(&out));
}

#[test]
fn export_options_reach_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("m.safetensors");
    synthetic_checkpoint(&src, 3, 4096);
    let cfg = dir.path().join("my-config.json");
    std::fs::write(&cfg, br#"{"hidden_size": 8}"#).unwrap();
    let dst = dir.path().join("s");
    let out = lit(&[
        "export",
        src.to_str().unwrap(),
        dst.to_str().unwrap(),
        "--dtype",
        "bf16",
        "--max-layer-size",
        "1KiB",
        "--config",
        cfg.to_str().unwrap(),
        "--name",
        "tiny",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(
        &lit(&["inspect", dst.to_str().unwrap(), "--json", "--tensors"]).stdout,
    )
    .unwrap();
    assert_eq!(json["model_name"], "tiny");
    assert_eq!(json["layers"][0]["dtypes"][0], "BF16");
    // 4096 bytes of f32 become 2048 of bf16 per block: one tensor each, bigger than 1 KiB, so
    // each group stays one part (a tensor is never split).
    assert_eq!(json["layers"].as_array().unwrap().len(), 3);
    assert_eq!(json["aux_files"][0]["name"], "config.json");
    let bad = lit(&[
        "export",
        src.to_str().unwrap(),
        dir.path().join("t").to_str().unwrap(),
        "--group",
        "(",
    ]);
    assert!(
        !bad.status.success() && stderr(&bad).contains("--group"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn kill_9_during_export_never_leaves_a_valid_store() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.safetensors");
    synthetic_checkpoint(&src, 40, 8 << 20); // 320 MiB in 40 layers
    let mut killed_mid_export = 0;
    for delay_ms in [5u64, 60, 250] {
        let dst = dir.path().join(format!("store-{delay_ms}"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lit"))
            .args(["export", src.to_str().unwrap(), dst.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            continue; // finished before the kill: nothing to check at this delay
        }
        // Killed while writing: its staging directory is there (or it died before creating it).
        let staged = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains("lit-partial"));
        killed_mid_export += usize::from(staged);
        assert!(
            lit_store::LocalSource::open(&dst).is_err(),
            "a killed export opened as valid ({delay_ms} ms)"
        );
        assert!(!dst.join("manifest.lit").exists());
        // Exporting again succeeds, produces a valid store and clears the dead writer's leftovers.
        let out = lit(&["export", src.to_str().unwrap(), dst.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(lit(&["verify", dst.to_str().unwrap()]).status.success());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("lit-partial"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "partial directories left: {leftovers:?}"
        );
    }
    assert!(
        killed_mid_export > 0,
        "every export finished before its kill: the test checked nothing"
    );
}

#[test]
fn demo_streams_a_model_larger_than_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("demo.json");
    let out = lit(&[
        "demo",
        "--params",
        "20M",
        "--tokens",
        "3",
        "--stats-json",
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("token 3/3"), "{text}");
    assert!(text.contains("4.0× smaller than the model"), "{text}");
    assert!(text.contains("tokens/s"), "{text}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let n = |key: &str| r[key].as_u64().unwrap_or_else(|| panic!("{key}: {r:#}"));
    let (model, budget) = (n("model_bytes"), n("budget"));
    assert!(model / 4 <= budget && budget <= model / 4 + 1, "{r:#}");
    assert!(n("peak_held") <= budget, "{r:#}");
    assert_eq!(n("passes"), 3, "{r:#}");
    assert_eq!(r["generation"]["new_tokens"], 3, "{r:#}");
    // Under a quarter of the model, most of it is read again every pass: all but what stays
    // resident and the embedding table, of which only the tokens' rows are read.
    let largest = n("largest_layer");
    assert!(n("bytes_read") >= 3 * (model - budget - largest), "{r:#}");
}
