//! `lit run llama` on the real SmolLM2-135M-Instruct (llama.cpp's Q4_1 GGUF, exported with
//! `lit export`): the text streamed to stdout, and a `--chat` answer, exactly those of the
//! independent numpy reference (`scripts/reference/smollm2_reference.py`, its own GGUF reader,
//! BPE tokenizer and rendering of SmolLM2's chat template).
//!
//! The GGUF comes from `$LIT_SMOLLM2_GGUF` or `scripts/fetch-smollm2.sh`; the python from
//! `$LIT_PYTHON` or `scripts/setup-python.sh`.

mod common;

use common::{from_env_or_script, lit, repo_root, stderr, stdout};
use serde_json::Value;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

const FRANCE: &str = "The capital of France is";
/// Its first tokens hold characters split across tokens (byte-level BPE), and the eighth ends
/// in the middle of one.
const JAPANESE: &str = "日本の首都は";
const QUESTION: &str = "What is 2+2?";

/// The reference's results for `prompts` (each wrapped in the chat template when `chat`): prompt
/// ids, generated ids, text (control tokens verbatim).
fn reference(gguf: &Path, prompts: &[&str], chat: bool, max_tokens: usize) -> Vec<Value> {
    let python = from_env_or_script("LIT_PYTHON", "setup-python.sh");
    let mut cmd = Command::new(python);
    cmd.arg(repo_root().join("scripts/reference/smollm2_reference.py"))
        .arg(gguf)
        .args(["--max-tokens", &max_tokens.to_string(), "--logits", "none"]);
    for p in prompts {
        cmd.args(["--text", p]);
    }
    if chat {
        cmd.arg("--chat");
    }
    let out = cmd.output().expect("cannot run the SmolLM2 reference");
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["results"].as_array().unwrap().clone()
}

/// The prompt length `lit run` reports on stderr ("N prompt tokens in ...").
fn prompt_tokens(stderr: &str) -> usize {
    stderr
        .lines()
        .find_map(|l| l.split_once(" prompt tokens"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no prompt token count in: {stderr}"))
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn smollm2_streams_the_reference_text_and_answers_in_chat() {
    let gguf = from_env_or_script("LIT_SMOLLM2_GGUF", "fetch-smollm2.sh");
    // The two reference runs (each loads the model) side by side while lit exports and runs.
    let plain = {
        let gguf = gguf.clone();
        std::thread::spawn(move || reference(&gguf, &[FRANCE, JAPANESE], false, 8))
    };
    let chat = {
        let gguf = gguf.clone();
        std::thread::spawn(move || reference(&gguf, &[QUESTION], true, 32))
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("smol.lit");
    let store = store.to_str().unwrap();
    let out = lit(&["export", gguf.to_str().unwrap(), store]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Plain text: stdout receives the text piece by piece as tokens are generated.
    let mut child = Command::new(env!("CARGO_BIN_EXE_lit"))
        .args([
            "run",
            "llama",
            store,
            "--prompt",
            FRANCE,
            "--max-tokens",
            "8",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdout.take().unwrap();
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = pipe.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        chunks.push(buf[..n].to_vec());
    }
    let run = child.wait_with_output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let streamed = String::from_utf8(chunks.concat()).expect("whole characters only");
    assert!(
        chunks.len() >= 2,
        "the text arrives as it is generated, not at once: {chunks:?}"
    );

    // A reader that goes away (`| head -c 1`) stops generation at the next piece of text: a
    // million tokens would take hours; the process ends as one killed by SIGPIPE would.
    let mut child = Command::new(env!("CARGO_BIN_EXE_lit"))
        .args([
            "run",
            "llama",
            store,
            "--prompt",
            FRANCE,
            "--max-tokens",
            "1000000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut pipe = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    pipe.read_exact(&mut first).unwrap();
    drop(pipe);
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed().as_secs() > 120 {
            let _ = child.kill();
            panic!("lit kept generating after its reader closed the pipe");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(141), "{status:?}");

    let plain = plain.join().unwrap();
    let france = &plain[0];
    assert_eq!(france["generated"].as_array().unwrap().len(), 8, "{france}");
    assert_eq!(
        streamed,
        format!("{}\n", france["text"].as_str().unwrap()),
        "reference: {france}"
    );
    assert_eq!(prompt_tokens(&stderr(&run)), ids(&france["prompt"]).len());

    // --print-ids: the same text, then the ids; for a prompt whose characters span tokens too
    // (the last one incomplete when generation stops: U+FFFD, as the reference decodes it).
    for (prompt, expected) in [FRANCE, JAPANESE].into_iter().zip(&plain) {
        let out = lit(&[
            "run",
            "llama",
            store,
            "--prompt",
            prompt,
            "--max-tokens",
            "8",
            "--print-ids",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let (before, ids_line) = text.trim_end_matches('\n').rsplit_once('\n').unwrap();
        assert_eq!(before, expected["text"].as_str().unwrap(), "{expected}");
        let lit_ids: Vec<u32> = ids_line.split(',').map(|t| t.parse().unwrap()).collect();
        assert_eq!(lit_ids, ids(&expected["generated"]), "{expected}");
        assert_eq!(prompt_tokens(&stderr(&out)), ids(&expected["prompt"]).len());
    }
    assert!(
        plain[1]["text"].as_str().unwrap().ends_with('\u{FFFD}'),
        "the Japanese prompt no longer ends mid-character: {}",
        plain[1]
    );

    // --chat: the store's template (with SmolLM2's default system turn), tokenized with its
    // special tokens, the answer ending at <|im_end|> (printed without it).
    let out = lit(&[
        "run",
        "llama",
        store,
        "--chat",
        "--prompt",
        QUESTION,
        "--max-tokens",
        "32",
        "--print-ids",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let chat = chat.join().unwrap().remove(0);
    assert_eq!(chat["stopped_at_eos"], true, "{chat}");
    let generated = ids(&chat["generated"]);
    let answer = chat["text"]
        .as_str()
        .unwrap()
        .strip_suffix("<|im_end|>")
        .expect("the reference's answer ends with the control token");
    assert_eq!(
        stdout(&out),
        format!(
            "{answer}\n{}\n",
            generated
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
        "reference: {chat}"
    );
    assert_eq!(prompt_tokens(&stderr(&out)), ids(&chat["prompt"]).len());
}
