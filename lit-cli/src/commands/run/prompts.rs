//! `lit run llama|gpt2 STORE --prompts FILE --batch N`: many prompts, each pass through the model
//! serving every sequence in flight (`lit_burn::models::batch`). Stdout is one JSON object per
//! prompt, in the file's order, written as soon as every earlier prompt is done.

use anyhow::Context;
use lit_burn::Streamer;
use lit_burn::models::arch::Decoder;
use lit_burn::models::generate::{GenerateOptions, Generation};
use lit_burn::models::tokenizer::{Tokenizer, decode};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// The prompts of `file`, one per line, as token ids (`ids_of`); a blank line is an error that
/// names it.
pub(crate) fn read(
    file: &Path,
    ids_of: impl Fn(&str) -> anyhow::Result<Vec<u32>>,
) -> anyhow::Result<Vec<Vec<u32>>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the prompts file {}", file.display()))?;
    let mut prompts = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        anyhow::ensure!(
            !line.trim().is_empty(),
            "{} line {}: an empty prompt",
            file.display(),
            n + 1
        );
        let ids = ids_of(line).with_context(|| format!("{} line {}", file.display(), n + 1))?;
        anyhow::ensure!(
            !ids.is_empty(),
            "{} line {}: the prompt has no tokens",
            file.display(),
            n + 1
        );
        prompts.push(ids);
    }
    anyhow::ensure!(!prompts.is_empty(), "{} holds no prompts", file.display());
    Ok(prompts)
}

/// Generates every prompt, `in_flight` at a time, printing each result in input order.
pub(crate) fn generate(
    decoder: &dyn Decoder,
    streamer: &Streamer,
    prompts: &[Vec<u32>],
    options: &GenerateOptions,
    in_flight: usize,
    tokenizer: Option<&Tokenizer>,
    common: &super::Common,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut stdout = std::io::stdout().lock();
    // Finished out of order, waiting for the earlier ones.
    let mut waiting: BTreeMap<usize, Generation> = BTreeMap::new();
    let mut next = 0;
    let mut tokens = 0usize;
    let mut failed: Option<anyhow::Error> = None;
    decoder
        .generate_many(streamer, prompts, options, in_flight, &mut |index, g| {
            tokens += g.tokens.len();
            waiting.insert(index, g);
            while let Some(g) = waiting.remove(&next) {
                if failed.is_none()
                    && let Err(e) = print(&mut stdout, next, &g, tokenizer)
                {
                    failed = Some(e);
                }
                next += 1;
            }
            Ok(())
        })
        .context("generation failed")?;
    if let Some(e) = failed {
        return Err(e);
    }
    stdout.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    let report = common.report(streamer, streamer.stats().passes.len(), seconds)?;
    let read = report.bytes_read;
    eprintln!(
        "{} prompts, {tokens} tokens in {seconds:.2} s ({:.2} tokens/s), {} at a time; \
         {:.1} MB read from the store ({:.2} MB per token)",
        prompts.len(),
        tokens as f64 / seconds,
        in_flight,
        read as f64 / 1e6,
        read as f64 / 1e6 / tokens.max(1) as f64
    );
    report.finish(common.stats_json.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// One prompt's result as a JSON line: its index, the generated ids and, with a tokenizer, text.
fn print(
    out: &mut impl Write,
    index: usize,
    g: &Generation,
    tokenizer: Option<&Tokenizer>,
) -> anyhow::Result<()> {
    let mut line = serde_json::json!({ "index": index, "tokens": g.tokens });
    if let Some(t) = tokenizer {
        let text = decode(t, &g.tokens).context("cannot decode the generated tokens")?;
        line["text"] = text.into();
    }
    writeln!(out, "{line}")?;
    Ok(())
}
