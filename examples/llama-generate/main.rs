//! Streamed Llama generation: the weights stay in a lit store and pass through memory one layer
//! at a time, under a byte budget, while the KV cache stays resident; the text is printed as it
//! is generated.
//!
//! ```sh
//! cargo run --release -p lit-examples --bin llama-generate               # a synthetic 60M model
//! cargo run --release -p lit-examples --bin llama-generate -- STORE "PROMPT" [--chat] \
//!     [--budget MB] [--max-tokens N]
//! ```

use burn::tensor::Device;
use lit_burn::models::chat::{ChatMessage, ChatTemplate};
use lit_burn::models::decoder::with_f32_compute;
use lit_burn::models::generate::{CausalLm, GenerateOptions, generate_with};
use lit_burn::models::llama::Llama;
use lit_burn::models::synth::{Synth, SynthConfig};
use lit_burn::models::tokenizer::{TextStream, encode, encode_chat, store_tokenizer, token_ids_of};
use lit_burn::{Budget, StreamOptions, Streamer};
use lit_store::LocalSource;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// The command line: `[STORE [PROMPT]] [--chat] [--budget MB] [--max-tokens N]`.
struct Args {
    store: Option<PathBuf>,
    prompt: Option<String>,
    chat: bool,
    budget_mb: Option<u64>,
    max_tokens: usize,
}

fn parse_args() -> Result<Args, Box<dyn std::error::Error>> {
    let mut out = Args {
        store: None,
        prompt: None,
        chat: false,
        budget_mb: None,
        max_tokens: 32,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--chat" => out.chat = true,
            "--budget" => out.budget_mb = Some(value("--budget")?.parse()?),
            "--max-tokens" => out.max_tokens = value("--max-tokens")?.parse()?,
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}").into()),
            _ if out.store.is_none() => out.store = Some(arg.into()),
            _ if out.prompt.is_none() => out.prompt = Some(arg),
            _ => return Err(format!("unexpected argument `{arg}`").into()),
        }
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let store = match &args.store {
        Some(path) => path.clone(),
        None => synthetic()?,
    };
    let source = Arc::new(LocalSource::open(&store)?);
    let total = dir_bytes(&store)?;
    // Budget in MB. Default: a third of the synthetic model (most layers streamed each token), or
    // for a store named on the command line `auto` (all of it when it fits in memory).
    let budget = match (args.budget_mb, &args.store) {
        (Some(mb), _) => Budget::Bytes(mb * 1_000_000),
        (None, None) => Budget::Bytes(total / 3),
        (None, Some(_)) => Budget::Auto,
    };

    // A skeleton: lazy parameters, nothing allocated.
    let device = Device::flex();
    let model = Llama::from_source(source.as_ref(), &device)?;

    // The prompt: text through the store's tokenizer (and chat template with --chat), or ids for
    // a store without a tokenizer (the synthetic one).
    let tokenizer = store_tokenizer(source.as_ref())?;
    let mut stop = model.stop_tokens();
    let prompt = match (&tokenizer, &args.prompt) {
        (Some(t), Some(text)) if args.chat => {
            let template = ChatTemplate::from_store(source.as_ref())?
                .ok_or("--chat: the store has no chat template")?;
            let rendered = template.render(&[ChatMessage::user(text.as_str())], true)?;
            stop.extend(token_ids_of(t, &template.stop_strings()));
            encode_chat(t, &rendered)?
        }
        (Some(t), Some(text)) => encode(t, text)?,
        (None, Some(_)) => return Err("the store has no tokenizer.json to read the prompt".into()),
        (_, None) if args.chat => return Err("--chat needs a prompt".into()),
        (_, None) => vec![1, 2, 3, 4],
    };

    let options = StreamOptions::default()
        .with_names(Llama::names())
        .with_budget(budget)
        .with_prefetch(2);
    let options = with_f32_compute(source.as_ref(), options);
    let streamer = Streamer::new(source, &model, options)?;
    eprintln!(
        "{}: {} MB in the store, {} MB of weights to compute with, budget {} MB, {} prompt tokens",
        store.display(),
        total / 1_000_000,
        streamer.budget().model_bytes / 1_000_000,
        streamer.budget().bytes.min(streamer.budget().model_bytes) / 1_000_000,
        prompt.len()
    );

    // Each token is printed as it comes: as text (whole characters) or as an id.
    let mut text = tokenizer.as_ref().map(TextStream::new);
    let mut stdout = std::io::stdout().lock();
    let mut failed = None;
    let options = GenerateOptions::greedy(args.max_tokens).with_stop_tokens(stop);
    let out = generate_with(&streamer, &model, &prompt, &options, |token| {
        let piece = match &mut text {
            Some(stream) => stream.push(token).map_err(|e| e.to_string()),
            None => Ok(format!("{token} ")),
        };
        let shown = piece.and_then(|p| {
            write!(stdout, "{p}")
                .and_then(|()| stdout.flush())
                .map_err(|e| e.to_string())
        });
        if let Err(e) = shown {
            failed.get_or_insert(e);
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if let Some(stream) = &mut text {
        write!(stdout, "{}", stream.finish()?)?;
    }
    writeln!(stdout)?;
    let stats = streamer.stats();
    eprintln!(
        "{} tokens, {:.2} tokens/s after the first; {} MB read from the store; peak weights held {} MB",
        out.tokens.len(),
        out.tokens_per_second(),
        stats.bytes_read_total() / 1_000_000,
        stats.peak_bytes_held / 1_000_000,
    );
    Ok(())
}

/// Bytes of the files under `dir` (the store's layers, manifest and auxiliary files).
fn dir_bytes(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// A seeded synthetic Llama of about 60M parameters, written once to the temp directory.
fn synthetic() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join("lit-llama-generate-60M");
    if !dir.exists() {
        eprintln!(
            "writing a synthetic 60M-parameter Llama to {}",
            dir.display()
        );
        Synth::new(SynthConfig::llama_with_params(60_000_000), 0).write_local(&dir)?;
    }
    Ok(dir)
}
