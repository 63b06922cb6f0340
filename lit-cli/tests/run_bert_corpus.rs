//! `lit run bert --input FILE --output FILE.jsonl` on the real all-MiniLM-L6-v2: the rows equal
//! `lit run bert --json` on the same texts, with the hidden states spilling to disk; a run killed
//! mid-corpus and restarted writes the same file byte for byte; bad input fails clearly and
//! keeps finished outputs.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// 400 sentences of different lengths (deterministic), with a CRLF line and an empty one.
fn write_corpus(path: &Path) -> Vec<String> {
    let words = [
        "the",
        "model",
        "streams",
        "weights",
        "from",
        "disk",
        "while",
        "a",
        "small",
        "cat",
        "sleeps",
        "on",
        "warm",
        "laptop",
        "layer",
        "by",
        "and",
        "nobody",
        "notices",
        "café",
        "München",
        "quickly",
        "embeddings",
        "are",
        "unit",
        "vectors",
        "東京",
        "42",
    ];
    let lines: Vec<String> = (0..400)
        .map(|i| match i {
            57 => String::new(),
            _ => {
                let len = 1 + (i * 7919) % 41;
                let s: Vec<&str> = (0..len)
                    .map(|j| words[(i * 31 + j * 17) % words.len()])
                    .collect();
                s.join(" ")
            }
        })
        .collect();
    let mut text = String::new();
    for (i, l) in lines.iter().enumerate() {
        text.push_str(l);
        text.push_str(if i == 100 { "\r\n" } else { "\n" });
    }
    std::fs::write(path, text).unwrap();
    lines
}

struct Setup {
    dir: tempfile::TempDir,
    store: PathBuf,
    input: PathBuf,
    texts: Vec<String>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("minilm.lit");
    let out = lit(&[
        "export",
        minilm_dir().to_str().unwrap(),
        store.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let input = dir.path().join("corpus.txt");
    let texts = write_corpus(&input);
    Setup {
        dir,
        store,
        input,
        texts,
    }
}

/// `lit run bert STORE --input INPUT --output OUTPUT` with a budget below the model, chunks of
/// 40 sentences and 256 KiB of activations in memory.
fn corpus_args<'a>(s: &'a Setup, output: &'a Path, spill: &'a Path) -> Vec<&'a str> {
    vec![
        "run",
        "bert",
        s.store.to_str().unwrap(),
        "--input",
        s.input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--budget",
        "60MiB",
        "--chunk-size",
        "40",
        "--activation-budget",
        "256KiB",
        "--spill-dir",
        spill.to_str().unwrap(),
    ]
}

#[derive(serde::Deserialize)]
struct Row {
    index: usize,
    embedding: Vec<f32>,
}

fn rows(path: &Path) -> Vec<Row> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn corpus_rows_equal_one_batch_embeddings_and_resume_after_sigkill() {
    let s = setup();
    let spill = s.dir.path().join("spill");
    std::fs::create_dir(&spill).unwrap();

    // Uninterrupted.
    let full = s.dir.path().join("full.jsonl");
    let out = lit(&corpus_args(&s, &full, &spill));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("400/400 sentences (100.0%)") && err.contains("ETA"),
        "{err}"
    );
    assert!(
        err.contains("spilled to disk") && !err.contains(" 0 B spilled to disk"),
        "the hidden states should have spilled: {err}"
    );
    assert!(
        !progress_path(&full).exists(),
        "the state is removed when done"
    );
    assert_eq!(
        std::fs::read_dir(&spill).unwrap().count(),
        0,
        "no spill file left"
    );

    // The same vectors as the plain command on all texts at once (resident, batches of 32 in
    // input order).
    let mut args = vec![
        "run",
        "bert",
        s.store.to_str().unwrap(),
        "--json",
        "--budget",
        "all",
    ];
    args.extend(s.texts.iter().map(String::as_str));
    let out = lit(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected: Vec<Vec<f32>> = serde_json::from_slice(&out.stdout).unwrap();
    let got = rows(&full);
    assert_eq!(got.len(), 400);
    let mut worst = 0f32;
    for (i, (row, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(row.index, i);
        assert_eq!(row.embedding.len(), 384);
        for (a, b) in row.embedding.iter().zip(e) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(worst <= 1e-6, "largest difference {worst}");

    // Killed after its first committed chunk, a chunk cut short after it, then restarted.
    let part = s.dir.path().join("part.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lit"))
        .args(corpus_args(&s, &part, &spill))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = progress_path(&part);
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed_rows(&state) < 40 {
        assert!(Instant::now() < deadline, "no chunk committed in 2 minutes");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended too early"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let committed = committed_rows(&state);
    assert!(
        (40..400).contains(&committed),
        "killed after {committed} rows: not mid-corpus"
    );
    // A chunk the kill cut short: half a row past the committed ones.
    let mut text = std::fs::read(&part).unwrap();
    text.extend_from_slice(b"{\"index\":999,\"embedding\":[0.1,");
    std::fs::write(&part, text).unwrap();

    let out = lit(&corpus_args(&s, &part, &spill));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("resuming: {committed} rows already committed")),
        "{err}"
    );
    assert!(
        err.contains(&format!("embedded {} sentences", 400 - committed)),
        "finished chunks are not recomputed: {err}"
    );
    assert!(
        std::fs::read(&part).unwrap() == std::fs::read(&full).unwrap(),
        "the resumed output differs from the uninterrupted one"
    );
    assert!(!state.exists());
    assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0);

    // A finished output is kept: running again is an error that names it.
    let before = std::fs::read(&full).unwrap();
    let out = lit(&corpus_args(&s, &full, &spill));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already exists") && stderr(&out).contains("full.jsonl"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&full).unwrap(), before);
}

fn progress_path(output: &Path) -> PathBuf {
    let mut p = output.as_os_str().to_owned();
    p.push(".lit-progress");
    PathBuf::from(p)
}

/// Rows the state file says are committed (0 while it does not exist).
fn committed_rows(state: &Path) -> u64 {
    std::fs::read(state)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["rows"].as_u64())
        .unwrap_or(0)
}

#[test]
fn corpus_bad_input_fails_clearly() {
    let s = setup();
    let dir = s.dir.path();
    let run = |input: &Path, output: &Path, extra: &[&str]| {
        let mut args = vec![
            "run",
            "bert",
            s.store.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ];
        args.extend(extra);
        let out = lit(&args);
        assert!(!out.status.success(), "should fail: {args:?}");
        stderr(&out)
    };
    let out = dir.join("out.jsonl");

    let missing = dir.join("no-such-corpus.txt");
    let err = run(&missing, &out, &[]);
    assert!(err.contains("no-such-corpus.txt"), "{err}");

    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let err = run(&empty, &out, &[]);
    assert!(err.contains("empty.txt") && err.contains("empty"), "{err}");

    let err = run(&s.input, &dir.join("no-such-dir/out.jsonl"), &[]);
    assert!(err.contains("no-such-dir"), "{err}");

    let err = run(
        &s.input,
        &out,
        &["--spill-dir", dir.join("no-spill").to_str().unwrap()],
    );
    assert!(
        err.contains("spill directory") && err.contains("no-spill"),
        "{err}"
    );

    let latin1 = dir.join("latin1.txt");
    std::fs::write(&latin1, b"fine\ncaf\xe9\n").unwrap();
    let err = run(&latin1, &out, &[]);
    assert!(
        err.contains("latin1.txt line 2") && err.contains("UTF-8"),
        "{err}"
    );

    // A different run's state: refused, nothing changed.
    std::fs::write(&out, b"").unwrap();
    std::fs::write(progress_path(&out), b"not json").unwrap();
    let err = run(&s.input, &out, &[]);
    assert!(err.contains("out.jsonl.lit-progress"), "{err}");

    // None of these left an output behind (the last one's was made by the test).
    assert!(!dir.join("no-such-dir").exists());
}
