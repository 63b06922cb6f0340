//! Hostile and malformed GGUF files: each gives a clear error naming the key or tensor, never a
//! panic or a huge allocation, and leaves no store behind that opens. Files are built by hand
//! here (a small GGUF writer), starting from a valid one that exports.

use lit_core::{DType, WeightSource, WeightSourceExt};
use lit_store::{ExportOptions, LocalSource, StoreWriter};
use std::path::Path;

const STR: u32 = 8;
const U32: u32 = 4;
const ARR: u32 = 9;

fn s(x: &str) -> Vec<u8> {
    let mut v = (x.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(x.as_bytes());
    v
}

#[derive(Clone)]
struct Gguf {
    version: u32,
    n_tensors: Option<u64>,
    n_kv: Option<u64>,
    /// Raw key bytes (length-prefixed on write), type, value bytes.
    kv: Vec<(Vec<u8>, u32, Vec<u8>)>,
    /// Raw name bytes, ne, type, offset.
    tensors: Vec<(Vec<u8>, Vec<u64>, u32, u64)>,
    data: Vec<u8>,
    truncate_data: usize,
}

impl Gguf {
    /// A valid two-head Llama layer fragment: a Q8_0 embedding [4, 64], an F32 norm [64], an F16
    /// q_proj [64, 64] whose GGUF row r holds the value r.
    fn valid() -> Gguf {
        let mut kv = vec![(b"general.architecture".to_vec(), STR, s("llama"))];
        for (k, v) in [
            ("llama.block_count", 1u32),
            ("llama.embedding_length", 64),
            ("llama.feed_forward_length", 64),
            ("llama.attention.head_count", 2),
            ("llama.attention.head_count_kv", 2),
        ] {
            kv.push((k.as_bytes().to_vec(), U32, v.to_le_bytes().to_vec()));
        }
        let mut data = Vec::new();
        // token_embd: 4 rows × 2 Q8_0 blocks (d = 1.0 = f16 0x3C00, q = row).
        for r in 0..4u8 {
            for _ in 0..2 {
                data.extend_from_slice(&[0x00, 0x3C]);
                data.extend_from_slice(&[r; 32]);
            }
        }
        data.resize(288, 0);
        data.extend((0..64).flat_map(|_| 1.0f32.to_le_bytes()));
        let q_at = data.len() as u64;
        for r in 0..64u16 {
            let v = half::f16::from_f32(r as f32).to_bits().to_le_bytes();
            for _ in 0..64 {
                data.extend_from_slice(&v);
            }
        }
        Gguf {
            version: 3,
            n_tensors: None,
            n_kv: None,
            kv,
            tensors: vec![
                (b"token_embd.weight".to_vec(), vec![64, 4], 8, 0),
                (b"output_norm.weight".to_vec(), vec![64], 0, 288),
                (b"blk.0.attn_q.weight".to_vec(), vec![64, 64], 1, q_at),
            ],
            data,
            truncate_data: 0,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(
            &self
                .n_tensors
                .unwrap_or(self.tensors.len() as u64)
                .to_le_bytes(),
        );
        out.extend_from_slice(&self.n_kv.unwrap_or(self.kv.len() as u64).to_le_bytes());
        for (k, ty, v) in &self.kv {
            out.extend_from_slice(&(k.len() as u64).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(v);
        }
        for (name, ne, ty, offset) in &self.tensors {
            out.extend_from_slice(&(name.len() as u64).to_le_bytes());
            out.extend_from_slice(name);
            out.extend_from_slice(&(ne.len() as u32).to_le_bytes());
            for d in ne {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
        }
        out.resize(out.len().next_multiple_of(32), 0);
        out.extend_from_slice(&self.data[..self.data.len() - self.truncate_data]);
        out
    }
}

/// Exports `bytes` as a .gguf; on failure checks that no valid store is left behind.
fn export(dir: &Path, bytes: &[u8]) -> Result<LocalSource, String> {
    let src = dir.join("m.gguf");
    let dst = dir.join("out.lit");
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::write(&src, bytes).unwrap();
    let writer = StoreWriter::create_local(&dst).unwrap();
    match lit_store::export(
        &src,
        writer,
        &ExportOptions::default(),
        &lit_core::NoObserver,
    ) {
        Ok(_) => Ok(LocalSource::open(&dst).unwrap()),
        Err(e) => {
            assert!(
                LocalSource::open(&dst).is_err(),
                "a store was left behind after: {e}"
            );
            Err(e.to_string())
        }
    }
}

fn refused(g: &Gguf, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let err = export(dir.path(), &g.bytes()).expect_err("export should fail");
    for n in needles {
        assert!(err.contains(n), "error `{err}` does not mention `{n}`");
    }
}

#[test]
fn the_valid_file_exports_and_q_rows_are_unpermuted() {
    let dir = tempfile::tempdir().unwrap();
    let store = export(dir.path(), &Gguf::valid().bytes()).unwrap();
    let (e, bytes) =
        futures::executor::block_on(store.read_tensor("model.layers.0.self_attn.q_proj.weight"))
            .unwrap();
    assert_eq!(
        (e.dtype, e.shape.as_slice()),
        (DType::F16, &[64u64, 64][..])
    );
    let row = |r: usize| half::f16::from_le_bytes([bytes[r * 128], bytes[r * 128 + 1]]).to_f32();
    // Head h of 32 rows: HF row h·32 + s·16 + j is GGUF row h·32 + 2j + s.
    assert_eq!(row(0), 0.0);
    assert_eq!(row(1), 2.0);
    assert_eq!(row(15), 30.0);
    assert_eq!(row(16), 1.0);
    assert_eq!(row(31), 31.0);
    assert_eq!(row(32), 32.0);
    assert_eq!(row(48), 33.0);
    let config: serde_json::Value = serde_json::from_slice(
        &futures::executor::block_on(store.read_aux("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["tie_word_embeddings"], true);
    assert_eq!(config["vocab_size"], 4);
    // GGUF version 2 has the same layout (64-bit counts).
    let mut v2 = Gguf::valid();
    v2.version = 2;
    let dir2 = tempfile::tempdir().unwrap();
    assert_eq!(
        export(dir2.path(), &v2.bytes())
            .unwrap()
            .manifest()
            .total_tensors,
        3
    );
}

#[test]
fn every_truncation_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let full = Gguf::valid().bytes();
    for len in (0..full.len() - 1).step_by(3).chain([full.len() - 1]) {
        let err = export(dir.path(), &full[..len]).err();
        assert!(
            err.is_some(),
            "a file cut to {len} of {} bytes exported",
            full.len()
        );
    }
}

#[test]
fn absurd_counts_and_lengths() {
    let mut g = Gguf::valid();
    g.n_tensors = Some(u64::MAX);
    refused(&g, &["tensor count"]);
    let mut g = Gguf::valid();
    g.n_kv = Some(1 << 40);
    refused(&g, &["metadata count"]);
    let mut g = Gguf::valid();
    g.n_kv = Some(1000);
    refused(&g, &["cannot fit"]);
    let mut g = Gguf::valid();
    g.kv[0].2 = (u64::MAX - 3).to_le_bytes().to_vec();
    refused(&g, &["general.architecture", "claims"]);
    let mut g = Gguf::valid();
    let mut arr = STR.to_le_bytes().to_vec();
    arr.extend_from_slice(&(1u64 << 60).to_le_bytes());
    g.kv.push((b"tokenizer.ggml.tokens".to_vec(), ARR, arr));
    refused(&g, &["tokenizer.ggml.tokens", "array"]);
    let mut g = Gguf::valid();
    g.tensors[1].0 = vec![b'x'; 8];
    let mut bytes = g.bytes();
    // Make the second tensor's name length absurd.
    let at = bytes.windows(8).position(|w| w == b"xxxxxxxx").unwrap() - 8;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 50).to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let err = export(dir.path(), &bytes).unwrap_err();
    assert!(err.contains("tensor #1"), "{err}");
}

#[test]
fn tensor_data_problems_name_the_tensor() {
    let mut g = Gguf::valid();
    g.tensors[2].3 += 1 << 20;
    refused(&g, &["blk.0.attn_q.weight", "past the end"]);
    let mut g = Gguf::valid();
    g.truncate_data = 10;
    refused(&g, &["blk.0.attn_q.weight", "past the end"]);
    let mut g = Gguf::valid();
    g.tensors[1].3 = 256;
    refused(&g, &["output_norm.weight", "overlaps", "token_embd.weight"]);
    let mut g = Gguf::valid();
    g.tensors[1].3 = 290;
    refused(&g, &["output_norm.weight", "alignment"]);
    // A shape that disagrees with the data: more rows than the bytes hold, or an inner dimension
    // that is not whole blocks.
    let mut g = Gguf::valid();
    g.tensors[2].1 = vec![64, 65];
    refused(&g, &["blk.0.attn_q.weight"]);
    let mut g = Gguf::valid();
    g.tensors[0].1 = vec![48, 4];
    refused(
        &g,
        &["token_embd.weight", "multiple of the 32-element block"],
    );
    let mut g = Gguf::valid();
    g.tensors[0].1 = vec![64, 0];
    refused(&g, &["token_embd.weight", "dimension 1 is 0"]);
    let mut g = Gguf::valid();
    g.tensors[0].1 = vec![1 << 40, 1 << 40];
    refused(&g, &["token_embd.weight"]);
    let mut g = Gguf::valid();
    g.tensors[0].1 = vec![64, 4, 1, 1, 1];
    refused(&g, &["token_embd.weight", "rank 5"]);
}

#[test]
fn unsupported_things_say_what_is_supported() {
    let mut g = Gguf::valid();
    g.tensors[1].2 = 99;
    refused(&g, &["output_norm.weight", "unknown type 99", "Q4_K"]);
    let mut g = Gguf::valid();
    g.tensors[1].2 = 6;
    refused(&g, &["output_norm.weight", "Q5_0", "supported: F32"]);
    let mut g = Gguf::valid();
    g.kv[0].2 = s("gpt2");
    refused(&g, &["architecture `gpt2`", "supported: llama"]);
    let mut g = Gguf::valid();
    g.version = 1;
    refused(&g, &["version 1", "2 and 3"]);
    let mut g = Gguf::valid();
    g.tensors[1].0 = b"blk.7.attn_norm.weight".to_vec();
    refused(&g, &["blk.7.attn_norm.weight", "no counterpart"]);
    let mut g = Gguf::valid();
    g.kv.push((
        b"general.alignment".to_vec(),
        U32,
        3u32.to_le_bytes().to_vec(),
    ));
    refused(&g, &["general.alignment"]);
    let mut g = Gguf::valid();
    g.kv[2].1 = 77;
    refused(&g, &["llama.embedding_length", "unknown value type 77"]);
    let mut g = Gguf::valid();
    g.kv.push((b"general.architecture".to_vec(), STR, s("llama")));
    refused(&g, &["general.architecture", "twice"]);
}

#[test]
fn bad_utf8_is_named() {
    let mut g = Gguf::valid();
    g.kv[3].0 = b"llama.\xff\xfe".to_vec();
    refused(&g, &["metadata key #3", "not UTF-8"]);
    let mut g = Gguf::valid();
    g.tensors[2].0 = b"blk.0.\xc3(".to_vec();
    refused(&g, &["tensor #2", "not UTF-8"]);
    let mut g = Gguf::valid();
    g.kv[0].2 = {
        let mut v = 3u64.to_le_bytes().to_vec();
        v.extend_from_slice(b"\xffab");
        v
    };
    refused(&g, &["general.architecture", "not UTF-8"]);
}
