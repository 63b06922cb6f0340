//! candle running the models lit runs, on the same files, for `scripts/bench-candle.sh`:
//!
//! ```text
//! candle-peer bert MODEL_DIR REPEAT TEXT...     # sentence embeddings (mean pooling, L2 norm)
//! candle-peer llama HF_DIR TOKENS               # greedy decoding from token 1 with a KV cache
//! ```
//!
//! Prints what it computed on stdout (the vectors as JSON, or the token ids) and one
//! `timing …_ms=a,b,c` line on stderr, like `lit run`.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{bert, llama};
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bert") if args.len() >= 4 => run_bert(&args[1], args[2].parse()?, &args[3..]),
        Some("llama") if args.len() == 3 => run_llama(&args[1], args[2].parse()?),
        _ => Err(
            "usage: candle-peer bert MODEL_DIR REPEAT TEXT... | candle-peer llama HF_DIR TOKENS"
                .into(),
        ),
    }
}

fn weights(dir: &str) -> Result<VarBuilder<'static>> {
    let path = std::path::Path::new(dir).join("model.safetensors");
    // SAFETY: the file is not modified while mapped (benchmark inputs in a private directory).
    Ok(unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, &Device::Cpu)? })
}

fn run_bert(dir: &str, repeat: usize, texts: &[String]) -> Result<()> {
    let config: bert::Config = serde_json::from_slice(&std::fs::read(
        std::path::Path::new(dir).join("config.json"),
    )?)?;
    let model = bert::BertModel::load(weights(dir)?, &config)?;
    let mut tokenizer =
        tokenizers::Tokenizer::from_file(std::path::Path::new(dir).join("tokenizer.json"))
            .map_err(|e| e.to_string())?;
    tokenizer
        .with_padding(Some(tokenizers::PaddingParams::default()))
        .with_truncation(Some(tokenizers::TruncationParams {
            max_length: 256,
            ..Default::default()
        }))
        .map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    let mut vectors = Vec::new();
    for _ in 0..repeat {
        let start = Instant::now();
        let encodings = tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| e.to_string())?;
        let ids: Vec<Tensor> = encodings
            .iter()
            .map(|e| Tensor::new(e.get_ids(), &Device::Cpu))
            .collect::<candle_core::Result<_>>()?;
        let mask: Vec<Tensor> = encodings
            .iter()
            .map(|e| Tensor::new(e.get_attention_mask(), &Device::Cpu))
            .collect::<candle_core::Result<_>>()?;
        let ids = Tensor::stack(&ids, 0)?;
        let mask = Tensor::stack(&mask, 0)?;
        let types = ids.zeros_like()?;
        let hidden = model.forward(&ids, &types, Some(&mask))?;
        // Mean over the real tokens, then L2 normalisation (sentence-transformers' pipeline).
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&m)?.sum(1)?;
        let mean = summed.broadcast_div(&m.sum(1)?)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        vectors = mean.broadcast_div(&norm)?.to_vec2::<f32>()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    println!("{}", serde_json::to_string(&vectors)?);
    eprintln!("timing embed_ms={}", join(&times));
    Ok(())
}

fn run_llama(dir: &str, tokens: usize) -> Result<()> {
    let config: llama::LlamaConfig = serde_json::from_slice(&std::fs::read(
        std::path::Path::new(dir).join("config.json"),
    )?)?;
    let config = config.into_config(false);
    let model = llama::Llama::load(weights(dir)?, &config)?;
    let mut cache = llama::Cache::new(true, DType::F32, &config, &Device::Cpu)?;
    let mut ids = vec![1u32];
    let mut times = Vec::new();
    for pos in 0..tokens {
        let start = Instant::now();
        let input = Tensor::new(&ids[pos..pos + 1], &Device::Cpu)?.unsqueeze(0)?;
        let logits = model.forward(&input, pos, &mut cache)?.squeeze(0)?;
        let next = logits.argmax(0)?.to_scalar::<u32>()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        ids.push(next);
    }
    let out: Vec<String> = ids[1..].iter().map(u32::to_string).collect();
    println!("{}", out.join(","));
    eprintln!("timing pass_ms={}", join(&times));
    Ok(())
}

fn join(ms: &[f64]) -> String {
    ms.iter()
        .map(|t| format!("{t:.3}"))
        .collect::<Vec<_>>()
        .join(",")
}
