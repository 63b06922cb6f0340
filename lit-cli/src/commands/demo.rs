//! `lit demo`: lit end to end with nothing downloaded.

use crate::progress::human_bytes;
use anyhow::Context;
use lit_core::WeightSource;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Working directory (default: a temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Number of transformer blocks in the synthetic checkpoint.
    #[arg(long, default_value_t = 6)]
    layers: usize,
    /// Hidden size of the synthetic checkpoint.
    #[arg(long, default_value_t = 384)]
    hidden: usize,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let temp;
    let dir = match args.dir {
        Some(d) => {
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
            d
        }
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let checkpoint = dir.join("model.safetensors");
    let store = dir.join("model.lit");
    let bytes = write_checkpoint(&checkpoint, args.layers, args.hidden)?;
    println!(
        "1. wrote a synthetic BERT-shaped checkpoint: {} ({})",
        checkpoint.display(),
        human_bytes(bytes)
    );

    println!("2. lit export {} {}", checkpoint.display(), store.display());
    if store.exists() {
        std::fs::remove_dir_all(&store)
            .with_context(|| format!("cannot remove old {}", store.display()))?;
    }
    super::export::run(clap::Parser::parse_from([
        "export",
        checkpoint.to_str().context("non-UTF-8 path")?,
        store.to_str().context("non-UTF-8 path")?,
        "--name",
        "demo-bert",
    ]))?;

    println!("\n3. lit inspect {}", store.display());
    super::inspect::run(clap::Parser::parse_from([
        "inspect",
        store.to_str().unwrap_or_default(),
    ]))?;

    println!("\n4. lit verify {}", store.display());
    let code = super::verify::run(clap::Parser::parse_from([
        "verify",
        store.to_str().unwrap_or_default(),
    ]))?;
    let source = super::open_store(&store)?;
    println!(
        "\nThe store holds {} layers in execution order; each is a safetensors file any reader opens.",
        source.manifest().layers.len()
    );
    Ok(code)
}

/// A seeded, BERT-shaped checkpoint of `layers` blocks (hidden size `h`), written with the
/// safetensors crate. Returns its size.
fn write_checkpoint(path: &std::path::Path, layers: usize, h: usize) -> anyhow::Result<u64> {
    let mut tensors: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![1000, h]),
        ("embeddings.position_embeddings.weight".into(), vec![512, h]),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
        ("pooler.dense.weight".into(), vec![h, h]),
        ("pooler.dense.bias".into(), vec![h]),
    ];
    for i in 0..layers {
        for (name, shape) in [
            ("attention.self.query.weight", vec![h, h]),
            ("attention.self.key.weight", vec![h, h]),
            ("attention.self.value.weight", vec![h, h]),
            ("attention.output.dense.weight", vec![h, h]),
            ("intermediate.dense.weight", vec![4 * h, h]),
            ("output.dense.weight", vec![h, 4 * h]),
            ("output.LayerNorm.weight", vec![h]),
        ] {
            tensors.push((format!("encoder.layer.{i}.{name}"), shape));
        }
    }
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let bytes = (0..n)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1).to_le_bytes()
                })
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
        })
        .collect::<Result<_, _>>()?;
    safetensors::serialize_to_file(views, None, path)?;
    Ok(std::fs::metadata(path)?.len())
}
