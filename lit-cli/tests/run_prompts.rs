//! `lit run llama --prompts FILE --batch N`: every prompt's tokens equal a lone `--prompt` run's,
//! printed in the file's order whatever order they finish in, with fewer passes than prompts
//! run one by one; bad prompt files are refused with the file and line named.

mod common;
use common::*;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const PROMPTS: [&str; 5] = ["1,17,5,63", "3", "8,8,8,1,2,9,4", "50,2", "7,6,5"];

fn synth(dir: &Path) -> std::path::PathBuf {
    let store = dir.join("llama.lit");
    let out = lit(&["synth", "llama", s(&store), "--params", "2M", "--seed", "9"]);
    assert!(out.status.success(), "{}", stderr(&out));
    store
}

#[test]
fn prompts_in_a_file_equal_lone_runs_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = synth(dir.path());
    let file = dir.path().join("prompts.txt");
    std::fs::write(&file, PROMPTS.join("\n") + "\n").unwrap();
    let report = dir.path().join("report.json");
    let out = lit(&[
        "run",
        "llama",
        s(&store),
        "--ids",
        "--prompts",
        s(&file),
        "--batch",
        "2",
        "--max-tokens",
        "5",
        "--budget",
        "4MiB",
        "--stats-json",
        s(&report),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), PROMPTS.len(), "{}", stdout(&out));
    let mut lone_passes = 0;
    for (i, (line, prompt)) in lines.iter().zip(PROMPTS).enumerate() {
        assert_eq!(line["index"], i);
        let alone = lit(&[
            "run",
            "llama",
            s(&store),
            "--ids",
            "--prompt",
            prompt,
            "--max-tokens",
            "5",
            "--budget",
            "4MiB",
        ]);
        assert!(alone.status.success(), "{}", stderr(&alone));
        let ids: Vec<u64> = stdout(&alone)
            .trim()
            .split(',')
            .map(|t| t.parse().unwrap())
            .collect();
        let got: Vec<u64> = line["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect();
        assert_eq!(got, ids, "prompt {i}");
        lone_passes += ids.len();
    }
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let passes = r["passes"].as_u64().unwrap() as usize;
    assert!(
        passes < lone_passes,
        "{passes} passes for 2 at a time, {lone_passes} alone"
    );
    assert!(stderr(&out).contains("2 at a time"), "{}", stderr(&out));
}

#[test]
fn bad_prompt_files_are_refused_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = synth(dir.path());
    let missing = dir.path().join("missing.txt");
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let blank = dir.path().join("blank.txt");
    std::fs::write(&blank, "1,2\n\n3\n").unwrap();
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "1,2\n3,x\n").unwrap();
    let long = dir.path().join("long.txt");
    let too_many: Vec<String> = (0..5000).map(|_| "1".to_string()).collect();
    std::fs::write(&long, format!("1\n{}\n", too_many.join(","))).unwrap();
    for (file, want) in [
        (&missing, "cannot read the prompts file"),
        (&empty, "holds no prompts"),
        (&blank, "line 2: an empty prompt"),
        (&bad, "line 2"),
    ] {
        let out = lit(&["run", "llama", s(&store), "--ids", "--prompts", s(file)]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{}", s(file));
        assert!(err.contains(want), "{}: {err}", s(file));
        assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    }
    // Longer than GPT-2's context: refused before anything is generated.
    let gpt2 = dir.path().join("gpt2.lit");
    let out = lit(&["synth", "gpt2", s(&gpt2), "--params", "2M", "--seed", "9"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = lit(&["run", "gpt2", s(&gpt2), "--ids", "--prompts", s(&long)]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("prompt 1:"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}
