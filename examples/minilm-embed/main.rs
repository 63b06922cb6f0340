//! Sentence embeddings with all-MiniLM-L6-v2 streamed from a lit store under a small budget.
//!
//! ```text
//! cargo run --release -p lit-examples --bin minilm-embed -- minilm.lit ["text" ...]
//! ```

use burn::tensor::Device;
use lit_burn::StreamOptions;
use lit_burn::models::bert::SentenceEmbedder;
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let store = args.next().ok_or("usage: minilm-embed STORE [TEXT...]")?;
    let mut texts: Vec<String> = args.collect();
    if texts.is_empty() {
        texts = [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The girl is carrying a baby.",
            "The stock market crashed after the announcement of new tariffs.",
        ]
        .map(String::from)
        .to_vec();
    }

    // The config, the tokenizer and the weights all come from the store. The budget holds the
    // 47 MiB embedding table and two of the 7 MiB encoder layers: the rest streams.
    let source = Arc::new(lit_store::LocalSource::open(&store)?);
    let options = StreamOptions::default()
        .with_budget(62 << 20)
        .with_prefetch(2);
    let embedder = SentenceEmbedder::open(source, &Device::flex(), options)?;

    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = embedder.embed(&refs)?;

    for (text, v) in texts.iter().zip(&vectors) {
        println!(
            "{text:?}: [{:.4}, {:.4}, {:.4}, …] ({} dims)",
            v[0],
            v[1],
            v[2],
            v.len()
        );
    }
    println!("\ncosine similarity:");
    for (i, a) in vectors.iter().enumerate() {
        let row: Vec<String> = vectors
            .iter()
            .map(|b| format!("{:6.3}", a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()))
            .collect();
        println!("  {i}: {}", row.join(" "));
    }
    let stats = embedder.streamer().stats();
    println!(
        "\nweights read: {:.1} MiB, peak held {:.1} MiB of a {:.1} MiB budget",
        stats.bytes_read_total() as f64 / (1 << 20) as f64,
        stats.peak_bytes_held as f64 / (1 << 20) as f64,
        stats.budget as f64 / (1 << 20) as f64,
    );
    Ok(())
}
