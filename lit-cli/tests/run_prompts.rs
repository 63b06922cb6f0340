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

/// Tokens of each JSON line of `out`'s stdout.
fn tokens_of(out: &std::process::Output) -> Vec<Vec<u64>> {
    stdout(out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap())
                .collect()
        })
        .collect()
}

/// A lone `--prompt` run's ids with `flags`.
fn alone(store: &Path, prompt: &str, flags: &[&str]) -> Vec<u64> {
    let mut args = vec!["run", "llama", s(store), "--ids", "--prompt", prompt];
    args.extend_from_slice(flags);
    let out = lit(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .trim()
        .split(',')
        .map(|t| t.parse().unwrap())
        .collect()
}

#[test]
fn json_lines_carry_their_own_options_and_spilled_keys_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = synth(dir.path());
    let file = dir.path().join("prompts.jsonl");
    std::fs::write(
        &file,
        "{\"ids\": [1, 17, 5, 63], \"max_tokens\": 3}\n\
         3,4\n\
         {\"ids\": [8, 8, 8, 1], \"temperature\": 0.8, \"seed\": 4}\n\
         {\"ids\": [50, 2], \"max_tokens\": 9}\n",
    )
    .unwrap();
    let kv_dir = dir.path().join("kv");
    std::fs::create_dir(&kv_dir).unwrap();
    let run = |kv: &[&str]| {
        let mut args = vec![
            "run",
            "llama",
            s(&store),
            "--ids",
            "--prompts",
            s(&file),
            "--batch",
            "3",
            "--max-tokens",
            "5",
        ];
        args.extend_from_slice(kv);
        let out = lit(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        out
    };
    let in_memory = run(&["--kv-budget", "all"]);
    let got = tokens_of(&in_memory);
    assert_eq!(got[0], alone(&store, "1,17,5,63", &["--max-tokens", "3"]));
    assert_eq!(got[1], alone(&store, "3,4", &["--max-tokens", "5"]));
    let sampled = ["--max-tokens", "5", "--temperature", "0.8", "--seed", "4"];
    assert_eq!(got[2], alone(&store, "8,8,8,1", &sampled));
    assert_eq!(got[3], alone(&store, "50,2", &["--max-tokens", "9"]));
    // Keys and values on disk beyond 1 KiB: the same output.
    let spilled = run(&["--kv-budget", "1KiB", "--kv-dir", s(&kv_dir)]);
    assert_eq!(stdout(&spilled), stdout(&in_memory));
    assert!(
        stderr(&spilled).contains("keys and values:") && stderr(&spilled).contains("read back"),
        "{}",
        stderr(&spilled)
    );
    assert_eq!(
        std::fs::read_dir(&kv_dir).unwrap().count(),
        0,
        "no files left"
    );
    // Bad lines and a directory that cannot take spill files.
    for (line, want) in [
        ("{\"ids\": [1], \"temperature\": -1}", "temperature must be"),
        ("{\"ids\": [1], \"prompt\": \"a\"}", "either"),
        (
            "{\"ids\": [1], \"max_token\": 3}",
            "line 1: not a prompt object",
        ),
        ("{\"ids\": []}", "line 1: the prompt has no tokens"),
    ] {
        let bad = dir.path().join("bad.jsonl");
        std::fs::write(&bad, format!("{line}\n")).unwrap();
        let out = lit(&["run", "llama", s(&store), "--ids", "--prompts", s(&bad)]);
        assert!(!out.status.success(), "{line}");
        assert!(stderr(&out).contains(want), "{line}: {}", stderr(&out));
    }
    let missing = dir.path().join("no-such-dir");
    let out = lit(&[
        "run",
        "llama",
        s(&store),
        "--ids",
        "--prompts",
        s(&file),
        "--kv-dir",
        s(&missing),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--kv-dir") && stderr(&out).contains("no-such-dir"),
        "{}",
        stderr(&out)
    );
}

/// A spill file that cannot grow (a file size limit standing in for a full disk): a clear
/// error naming the directory, and the prompts finished before it are on stdout.
#[test]
fn a_full_kv_disk_is_a_clear_error_and_finished_outputs_are_kept() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let store = synth(dir.path());
    let file = dir.path().join("prompts.jsonl");
    std::fs::write(
        &file,
        "{\"ids\": [1, 17, 5, 63], \"max_tokens\": 1}\n{\"ids\": [3, 4], \"max_tokens\": 200}\n",
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lit"));
    cmd.args([
        "run",
        "llama",
        s(&store),
        "--ids",
        "--prompts",
        s(&file),
        "--batch",
        "1",
        "--kv-budget",
        "0",
        "--kv-dir",
        s(dir.path()),
    ]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Writes past 64 KiB fail with EFBIG instead of raising SIGXFSZ.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 64 << 10,
                rlim_max: 64 << 10,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("writing") && err.contains("keys and values") && err.contains(s(dir.path())),
        "{err}"
    );
    assert_eq!(
        tokens_of(&out).len(),
        1,
        "the first prompt's result is kept"
    );
}
