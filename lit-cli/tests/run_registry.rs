//! `lit run <model_type>` resolves through the architecture registry: an alias runs as its
//! architecture, an unknown name is refused with the supported list, a model's own options parse.

mod common;
use common::*;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn aliases_run_as_their_architecture_and_unknown_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let out = lit(&[
        "synth",
        "llama",
        s(&hf),
        "--params",
        "1M",
        "--seed",
        "4",
        "--hf",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The same weights, declared as Mistral (same tensors and computation as Llama).
    let config = std::fs::read_to_string(hf.join("config.json")).unwrap();
    assert!(config.contains(r#""model_type": "llama""#), "{config}");
    let config = config.replace(r#""model_type": "llama""#, r#""model_type": "mistral""#);
    std::fs::write(hf.join("config.json"), config).unwrap();
    let store = tmp.path().join("store");
    let out = lit(&["export", s(&hf), s(&store)]);
    assert!(out.status.success(), "{}", stderr(&out));

    let run = |arch: &str| {
        let out = lit(&[
            "run",
            arch,
            s(&store),
            "--ids",
            "--prompt",
            "1,2,3",
            "--max-tokens",
            "4",
        ]);
        assert!(out.status.success(), "{arch}: {}", stderr(&out));
        stdout(&out)
    };
    let as_mistral = run("mistral");
    assert_eq!(as_mistral.trim().split(',').count(), 4, "{as_mistral}");
    assert_eq!(as_mistral, run("llama"));

    let out = lit(&["run", "mistral", s(&store), "--no-such-flag"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--no-such-flag"), "{}", stderr(&out));

    let out = lit(&["run", "falcon", s(&store), "--ids", "--prompt", "1"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("`falcon`") && err.contains("llama") && err.contains("gpt2"),
        "{err}"
    );
}
