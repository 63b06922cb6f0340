//! Streamed Llama generation: the weights stay in a lit store and pass through memory one layer
//! at a time, under a byte budget, while the KV cache stays resident.
//!
//! ```sh
//! cargo run --release -p lit-examples --bin llama-generate              # a synthetic 60M model
//! cargo run --release -p lit-examples --bin llama-generate -- STORE 200  # a store, 200 MB budget
//! ```

use burn::tensor::Device;
use lit_burn::models::decoder::with_f32_compute;
use lit_burn::models::generate::{GenerateOptions, generate_with};
use lit_burn::models::llama::Llama;
use lit_burn::models::synth::{Synth, SynthConfig};
use lit_burn::{StreamOptions, Streamer};
use lit_store::LocalSource;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let store = match args.next() {
        Some(path) => PathBuf::from(path),
        None => synthetic()?,
    };
    let source = Arc::new(LocalSource::open(&store)?);
    let total = dir_bytes(&store)?;
    // Budget in MB (default: a third of the model, so most layers are streamed each token).
    let budget = match args.next() {
        Some(mb) => mb.parse::<u64>()? * 1_000_000,
        None => total / 3,
    };

    // A skeleton: lazy parameters, nothing allocated.
    let device = Device::flex();
    let model = Llama::from_source(source.as_ref(), &device)?;
    let options = StreamOptions::default()
        .with_names(Llama::names())
        .with_budget(budget)
        .with_prefetch(2);
    let options = with_f32_compute(source.as_ref(), options);
    let streamer = Streamer::new(source, &model, options)?;
    println!(
        "{}: {} MB of weights, budget {} MB",
        store.display(),
        total / 1_000_000,
        budget / 1_000_000
    );

    let prompt = [1, 2, 3, 4];
    print!("tokens:");
    let out = generate_with(
        &streamer,
        &model,
        &prompt,
        &GenerateOptions::greedy(16),
        |token| {
            print!(" {token}");
            let _ = std::io::stdout().flush();
        },
    )?;
    println!();
    let stats = streamer.stats();
    println!(
        "{:.2} tokens/s after the first; {} MB read from the store; peak weights held {} MB",
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
        println!(
            "writing a synthetic 60M-parameter Llama to {}",
            dir.display()
        );
        Synth::new(SynthConfig::llama_with_params(60_000_000), 0).write_local(&dir)?;
    }
    Ok(dir)
}
