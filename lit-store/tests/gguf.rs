//! GGUF import against independent references: llama.cpp's own `gguf` Python package (its
//! dequantizers, its reader) and the Python `tokenizers` package, on the real SmolLM2-135M GGUF
//! (`LIT_SMOLLM2_GGUF` or `scripts/fetch-smollm2.sh`) and on random blocks.

use lit_core::quant::dequantize;
use lit_core::{DType, QuantScheme, WeightSource, WeightSourceExt};
use lit_store::import::gguf::{GgufHeader, parse_header};
use lit_store::{ExportOptions, LocalSource, StoreWriter};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `$VAR`, or the last stdout line of `scripts/SCRIPT`.
fn from_env_or_script(var: &str, script: &str) -> String {
    if let Ok(v) = std::env::var(var)
        && !v.is_empty()
    {
        return v;
    }
    let out = Command::new("bash")
        .arg(root().join("scripts").join(script))
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{script} (set {var}): {e}"));
    assert!(
        out.status.success(),
        "scripts/{script} failed (set {var}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

fn python() -> String {
    from_env_or_script("LIT_PYTHON", "setup-python.sh")
}

fn smollm2() -> PathBuf {
    PathBuf::from(from_env_or_script("LIT_SMOLLM2_GGUF", "fetch-smollm2.sh"))
}

fn run_py(args: &[&str]) {
    let out = Command::new(python())
        .arg(root().join("scripts/reference/gguf_dequant.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gguf_dequant.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn header(path: &Path) -> GgufHeader {
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    parse_header(std::io::BufReader::new(f), len, &path.display().to_string()).unwrap()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn scheme(name: &str) -> QuantScheme {
    name.parse().unwrap()
}

#[test]
fn dequantizers_match_gguf_package_bit_for_bit_on_random_blocks() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [1, 2, 3] {
        run_py(&["random", dir.path().to_str().unwrap(), &seed.to_string()]);
        for name in ["Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"] {
            let blocks = std::fs::read(dir.path().join(format!("{name}.blocks"))).unwrap();
            let expected = f32s(&std::fs::read(dir.path().join(format!("{name}.f32"))).unwrap());
            let mut got = Vec::new();
            dequantize(scheme(name), &blocks, &mut got).unwrap();
            assert_eq!(got.len(), expected.len(), "{name}");
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    e.to_bits(),
                    "{name} seed {seed} element {i}: {g} vs {e}"
                );
            }
        }
    }
}

#[test]
fn smollm2_every_tensor_dequantizes_like_gguf_package() {
    let path = smollm2();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("m.json");
    run_py(&["file", path.to_str().unwrap(), json.to_str().unwrap()]);
    let expected: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let h = header(&path);
    assert_eq!(h.version, 3);
    assert_eq!(h.tensors.len(), expected.len());
    let file = std::fs::read(&path).unwrap();
    let mut types = std::collections::BTreeMap::new();
    for (t, e) in h.tensors.iter().zip(&expected) {
        assert_eq!(t.name, e["name"].as_str().unwrap());
        let ty = e["type"].as_str().unwrap();
        *types.entry(ty.to_string()).or_insert(0) += 1;
        let start = (h.data_start + t.offset) as usize;
        let raw = &file[start..start + t.len as usize];
        let values = match ty {
            "F32" => f32s(raw),
            other => {
                let mut v = Vec::new();
                dequantize(scheme(other), raw, &mut v).unwrap();
                v
            }
        };
        assert_eq!(
            values.len() as u64,
            e["elements"].as_u64().unwrap(),
            "{}",
            t.name
        );
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let sha = format!("{:x}", Sha256::digest(&bytes));
        assert_eq!(
            sha,
            e["sha256"].as_str().unwrap(),
            "{} ({ty}) differs from gguf.quants.dequantize",
            t.name
        );
    }
    assert_eq!(types.get("Q4_1"), Some(&210));
    assert_eq!(types.get("Q8_0"), Some(&1));
    assert_eq!(types.get("F32"), Some(&61));
}

fn export(src: &Path, dst: &Path, options: &ExportOptions) -> LocalSource {
    lit_store::export(
        src,
        StoreWriter::create_local(dst).unwrap(),
        options,
        &lit_core::NoObserver,
    )
    .unwrap();
    LocalSource::open(dst).unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

#[test]
fn smollm2_exports_with_blocks_kept_config_and_tokenizer() {
    let path = smollm2();
    let dir = tempfile::tempdir().unwrap();
    let store = export(
        &path,
        &dir.path().join("smol.lit"),
        &ExportOptions::default(),
    );
    let m = store.manifest();
    assert_eq!(m.total_tensors, 272);
    let report = block_on(store.verify(&|_, _, _| {}));
    assert!(report.failed.is_empty(), "{:?}", report.failed);

    let t = |n: &str| {
        m.find_tensor(n)
            .unwrap_or_else(|| panic!("no {n}"))
            .1
            .clone()
    };
    let e = t("model.embed_tokens.weight");
    assert_eq!(
        (e.quant, e.shape.as_slice(), e.dtype),
        (Some(QuantScheme::Q8_0), &[49152u64, 576][..], DType::U8)
    );
    assert!(m.find_tensor("lm_head.weight").is_none());
    for l in 0..30 {
        let p = |s: &str| format!("model.layers.{l}.{s}");
        for (name, shape) in [
            ("self_attn.q_proj.weight", [576u64, 576]),
            ("self_attn.k_proj.weight", [192, 576]),
            ("self_attn.v_proj.weight", [192, 576]),
            ("self_attn.o_proj.weight", [576, 576]),
            ("mlp.gate_proj.weight", [1536, 576]),
            ("mlp.up_proj.weight", [1536, 576]),
            ("mlp.down_proj.weight", [576, 1536]),
        ] {
            let x = t(&p(name));
            assert_eq!(
                (x.quant, x.shape.as_slice()),
                (Some(QuantScheme::Q4_1), &shape[..]),
                "{}",
                p(name)
            );
        }
        for n in ["input_layernorm.weight", "post_attention_layernorm.weight"] {
            let x = t(&p(n));
            assert_eq!(
                (x.quant, x.dtype, x.shape.as_slice()),
                (None, DType::F32, &[576u64][..])
            );
        }
    }
    assert_eq!(t("model.norm.weight").shape, [576]);

    let config: serde_json::Value =
        serde_json::from_slice(&block_on(store.read_aux("config.json")).unwrap()).unwrap();
    for (k, v) in [
        ("model_type", serde_json::json!("llama")),
        ("hidden_size", 576.into()),
        ("intermediate_size", 1536.into()),
        ("num_hidden_layers", 30.into()),
        ("num_attention_heads", 9.into()),
        ("num_key_value_heads", 3.into()),
        ("vocab_size", 49152.into()),
        ("max_position_embeddings", 8192.into()),
        ("bos_token_id", 1.into()),
        ("eos_token_id", 2.into()),
        ("tie_word_embeddings", true.into()),
    ] {
        assert_eq!(config[k], v, "config.json {k}");
    }
    assert_eq!(config["rope_theta"].as_f64(), Some(100000.0));
    assert!((config["rms_norm_eps"].as_f64().unwrap() - 1e-5).abs() < 1e-12);

    let tc: serde_json::Value =
        serde_json::from_slice(&block_on(store.read_aux("tokenizer_config.json")).unwrap())
            .unwrap();
    assert!(
        tc["chat_template"]
            .as_str()
            .unwrap()
            .contains("<|im_start|>")
    );
    assert_eq!(tc["bos_token"], "<|im_start|>");
    assert_eq!(tc["eos_token"], "<|im_end|>");
    assert_eq!(tc["add_bos_token"], false);

    // The tokenizer loads in Hugging Face's tokenizers and round-trips text; special tokens and
    // digits (the `smollm` pre-tokenizer splits them one by one) come out as SmolLM2's.
    let tok = dir.path().join("tokenizer.json");
    std::fs::write(&tok, block_on(store.read_aux("tokenizer.json")).unwrap()).unwrap();
    let script = r#"
import sys, json
from tokenizers import Tokenizer
t = Tokenizer.from_file(sys.argv[1])
out = []
for s in ["The capital of France is", "Hello, world! 12345 ünïcödé 🚀\n\tend", "<|im_start|>user\nHi<|im_end|>"]:
    ids = t.encode(s, add_special_tokens=False).ids
    out.append({"ids": ids, "text": t.decode(ids, skip_special_tokens=False), "pieces": [t.id_to_token(i) for i in ids]})
print(json.dumps(out))
"#;
    let out = Command::new(python())
        .args(["-c", script, tok.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let enc: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(enc[0]["text"], "The capital of France is");
    assert_eq!(enc[1]["text"], "Hello, world! 12345 ünïcödé 🚀\n\tend");
    assert_eq!(enc[2]["text"], "<|im_start|>user\nHi<|im_end|>");
    let pieces = |i: usize| -> Vec<String> {
        enc[i]["pieces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(pieces(0), ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis"]);
    let digits: Vec<String> = pieces(1)
        .into_iter()
        .filter(|p| p.chars().any(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(digits, ["1", "2", "3", "4", "5"]);
    assert_eq!(enc[2]["ids"][0], 1);
    assert_eq!(enc[2]["ids"].as_array().unwrap().last().unwrap(), 2);
}

#[test]
fn smollm2_f32_export_undoes_rope_permutation_like_numpy() {
    let path = smollm2();
    let dir = tempfile::tempdir().unwrap();
    let options = ExportOptions {
        dtype: Some(DType::F32),
        ..Default::default()
    };
    let f32_store = export(&path, &dir.path().join("f32.lit"), &options);
    let blocks = export(&path, &dir.path().join("q.lit"), &ExportOptions::default());
    assert!(
        f32_store
            .manifest()
            .layers
            .iter()
            .flat_map(|l| &l.tensors)
            .all(|t| t.quant.is_none() && t.dtype == DType::F32)
    );
    for (gguf, hf, heads) in [
        (
            "blk.3.attn_q.weight",
            "model.layers.3.self_attn.q_proj.weight",
            9,
        ),
        (
            "blk.3.attn_k.weight",
            "model.layers.3.self_attn.k_proj.weight",
            3,
        ),
        (
            "blk.3.attn_v.weight",
            "model.layers.3.self_attn.v_proj.weight",
            0,
        ),
        ("token_embd.weight", "model.embed_tokens.weight", 0),
    ] {
        let out = dir.path().join("ref.f32");
        run_py(&[
            "hf",
            path.to_str().unwrap(),
            gguf,
            &heads.to_string(),
            out.to_str().unwrap(),
        ]);
        let expected = f32s(&std::fs::read(&out).unwrap());
        let (_, got) = block_on(f32_store.read_tensor(hf)).unwrap();
        let got = f32s(&got);
        assert_eq!(got.len(), expected.len(), "{hf}");
        assert!(
            got.iter()
                .zip(&expected)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{hf} differs from numpy"
        );
        // The kept blocks dequantize to the same values.
        let (entry, raw) = block_on(blocks.read_tensor(hf)).unwrap();
        let mut v = Vec::new();
        dequantize(entry.quant.unwrap(), &raw, &mut v).unwrap();
        assert!(
            v.iter()
                .zip(&expected)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{hf} blocks"
        );
    }
}

/// A GGUF written by an independent writer (gguf-py's `GGUFWriter`, alignment 64, F32, F16, BF16,
/// Q8_0, Q4_0, Q4_1 tensors quantized by `gguf.quants.quantize`, untied output): exported with
/// `--dtype f32`, every tensor equals gguf-py's dequantization (Q/K unpermuted in numpy), bit for bit;
/// exported as is, F16/BF16 stay as they are and blocks dequantize to the same values.
#[test]
fn gguf_written_by_gguf_py_imports_exactly() {
    let dir = tempfile::tempdir().unwrap();
    run_py(&["write", dir.path().to_str().unwrap(), "11"]);
    let src = dir.path().join("tiny.gguf");
    assert_eq!(header(&src).data_start % 64, 0);
    let options = ExportOptions {
        dtype: Some(DType::F32),
        ..Default::default()
    };
    let f32_store = export(&src, &dir.path().join("f32.lit"), &options);
    let kept = export(
        &src,
        &dir.path().join("kept.lit"),
        &ExportOptions::default(),
    );
    assert_eq!(f32_store.manifest().total_tensors, 12);
    let config: serde_json::Value =
        serde_json::from_slice(&block_on(f32_store.read_aux("config.json")).unwrap()).unwrap();
    assert_eq!(config["tie_word_embeddings"], false);
    assert_eq!(config["num_key_value_heads"], 2);
    assert_eq!(config["vocab_size"], 32);
    for l in &f32_store.manifest().layers {
        for t in &l.tensors {
            let expected =
                f32s(&std::fs::read(dir.path().join(format!("{}.f32", t.name))).unwrap());
            let (_, got) = block_on(f32_store.read_tensor(&t.name)).unwrap();
            let got = f32s(&got);
            assert_eq!(got.len(), expected.len(), "{}", t.name);
            assert!(
                got.iter()
                    .zip(&expected)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{} differs",
                t.name
            );

            let (k, raw) = block_on(kept.read_tensor(&t.name)).unwrap();
            let values = match (k.quant, k.dtype) {
                (Some(q), _) => {
                    let mut v = Vec::new();
                    dequantize(q, &raw, &mut v).unwrap();
                    v
                }
                (None, DType::F32) => f32s(&raw),
                (None, DType::F16) => raw
                    .chunks(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                (None, DType::BF16) => raw
                    .chunks(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                other => panic!("{}: {other:?}", t.name),
            };
            assert!(
                values
                    .iter()
                    .zip(&expected)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{} (kept) differs",
                t.name
            );
        }
    }
    let kinds: std::collections::BTreeSet<String> = kept
        .manifest()
        .layers
        .iter()
        .flat_map(|l| &l.tensors)
        .map(|t| t.quant.map_or(t.dtype.to_string(), |q| q.to_string()))
        .collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["BF16", "F16", "F32", "Q4_0", "Q4_1", "Q8_0"]
    );
}
