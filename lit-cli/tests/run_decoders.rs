//! `lit synth` and `lit run llama|gpt2`: seeded stores, generation under budgets, tokenizers.

mod common;
use common::*;
use lit_burn::models::gpt2::Gpt2Config;
use lit_burn::models::synth::{Synth, SynthConfig};
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under a store directory, by path, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn synth_is_seeded_and_generation_does_not_depend_on_the_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    for (dir, seed) in [(&a, "7"), (&b, "7"), (&c, "8")] {
        let out = lit(&["synth", "llama", s(dir), "--params", "2M", "--seed", seed]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("wrote synthetic llama"),
            "{}",
            stdout(&out)
        );
    }
    assert_eq!(files(&a), files(&b), "same seed, same bytes");
    assert_ne!(files(&a), files(&c));

    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "llama",
            s(&a),
            "--prompt",
            "1,2,3",
            "--ids",
            "--max-tokens",
            "6",
        ];
        args.extend_from_slice(extra);
        let out = lit(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("tokens/s"), "{}", stderr(&out));
        assert!(stderr(&out).contains("peak RSS"), "{}", stderr(&out));
        stdout(&out)
    };
    let resident = run(&[]);
    assert_eq!(resident.trim().split(',').count(), 6, "{resident}");
    assert_eq!(run(&["--budget", "4MB", "--prefetch", "0"]), resident);
    assert_eq!(run(&["--budget", "7MB", "--prefetch", "3"]), resident);
    let sampled = run(&["--temperature", "0.9", "--seed", "4"]);
    assert_eq!(run(&["--temperature", "0.9", "--seed", "4"]), sampled);

    let out = lit(&["run", "llama", s(&a), "--prompt", "hello"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--ids"), "{}", stderr(&out));
    let out = lit(&["run", "llama", s(&a), "--prompt", "1,x", "--ids"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`x`"), "{}", stderr(&out));
}

#[test]
fn gpt2_in_bf16_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("g");
    let out = lit(&[
        "synth",
        "gpt2",
        s(&dst),
        "--params",
        "1M",
        "--dtype",
        "bf16",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = lit(&[
        "run",
        "gpt2",
        s(&dst),
        "--prompt",
        "5,6",
        "--ids",
        "--max-tokens",
        "4",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim().split(',').count(),
        4,
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_store_with_a_tokenizer_takes_text() {
    // A tiny GPT-2 over MiniLM's WordPiece vocabulary, exported with its tokenizer.json.
    let tokenizer = minilm_dir().join("tokenizer.json");
    let tmp = tempfile::tempdir().unwrap();
    let config = Gpt2Config {
        n_embd: 32,
        n_head: 2,
        n_layer: 2,
        n_positions: 64,
        vocab_size: 30522,
        n_inner: None,
        layer_norm_epsilon: 1e-5,
        activation_function: "gelu_new".into(),
        scale_attn_weights: true,
        scale_attn_by_inverse_layer_idx: false,
        eos_token_id: None,
        bos_token_id: None,
    };
    let hf = tmp.path().join("hf");
    Synth::new(SynthConfig::Gpt2(config), 1)
        .write_hf_dir(&hf)
        .unwrap();
    let store = tmp.path().join("store");
    let out = lit(&["export", s(&hf), s(&store), "--tokenizer", s(&tokenizer)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = lit(&[
        "run",
        "gpt2",
        s(&store),
        "--prompt",
        "Hello world",
        "--max-tokens",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "the text, then a newline: {text}");
    assert!(
        stderr(&out).contains("4 prompt tokens"),
        "[CLS] hello world [SEP]: {}",
        stderr(&out)
    );
    // --print-ids: the same text, then the ids.
    let out = lit(&[
        "run",
        "gpt2",
        s(&store),
        "--prompt",
        "Hello world",
        "--max-tokens",
        "3",
        "--print-ids",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let with_ids = stdout(&out);
    let lines: Vec<&str> = with_ids.lines().collect();
    assert_eq!(lines.len(), 2, "text, then ids: {with_ids}");
    assert_eq!(format!("{}\n", lines[0]), text);
    assert_eq!(lines[1].split(',').count(), 3, "{with_ids}");
    // No chat template in this store: --chat says so.
    let out = lit(&["run", "gpt2", s(&store), "--prompt", "Hi", "--chat"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("has no chat template"),
        "{}",
        stderr(&out)
    );
}
