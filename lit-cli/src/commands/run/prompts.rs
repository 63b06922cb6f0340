//! `lit run llama|gpt2 STORE --prompts FILE --batch N`: many prompts, each pass through the model
//! serving every sequence in flight (`lit_burn::models::batch`). Stdout is one JSON object per
//! prompt, in the file's order, written as soon as every earlier prompt is done.
//!
//! A line of the file is a prompt as `--prompt` takes it, or a JSON object with the prompt and
//! its own options: `{"prompt": "…"}` (or `{"ids": [1, 2]}`), plus any of `max_tokens`,
//! `temperature` and `seed`, which override the flags for that prompt.

use anyhow::Context;
use lit_burn::layer_major::SpillTier;
use lit_burn::models::arch::Decoder;
use lit_burn::models::batch::{BatchOptions, Prompt};
use lit_burn::models::generate::{GenerateOptions, Generation};
use lit_burn::models::tokenizer::{Tokenizer, decode};
use lit_burn::{Budget, Streamer};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// A JSON line of a prompts file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonPrompt {
    prompt: Option<String>,
    ids: Option<Vec<u32>>,
    max_tokens: Option<usize>,
    temperature: Option<f32>,
    seed: Option<u64>,
}

/// The prompts of `file`, one per line, as token ids (`ids_of` turns a prompt's text into ids),
/// each with `options` or the options its JSON line sets; a blank or bad line is an error that
/// names it.
pub(crate) fn read(
    file: &Path,
    options: &GenerateOptions,
    ids_of: impl Fn(&str) -> anyhow::Result<Vec<u32>>,
) -> anyhow::Result<Vec<Prompt>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the prompts file {}", file.display()))?;
    let mut prompts = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let at = || format!("{} line {}", file.display(), n + 1);
        anyhow::ensure!(!line.trim().is_empty(), "{}: an empty prompt", at());
        let prompt = if line.trim_start().starts_with('{') {
            json_prompt(line, options, &ids_of)
        } else {
            ids_of(line).map(|ids| Prompt {
                ids,
                options: options.clone(),
            })
        }
        .with_context(at)?;
        anyhow::ensure!(!prompt.ids.is_empty(), "{}: the prompt has no tokens", at());
        prompts.push(prompt);
    }
    anyhow::ensure!(!prompts.is_empty(), "{} holds no prompts", file.display());
    Ok(prompts)
}

/// A prompt from a JSON line: `prompt` or `ids`, and options overriding `options`.
fn json_prompt(
    line: &str,
    options: &GenerateOptions,
    ids_of: impl Fn(&str) -> anyhow::Result<Vec<u32>>,
) -> anyhow::Result<Prompt> {
    let p: JsonPrompt = serde_json::from_str(line).context(
        "not a prompt object: expected {\"prompt\": \"…\"} or {\"ids\": […]}, with optional \
         max_tokens, temperature and seed",
    )?;
    let ids = match (p.prompt, p.ids) {
        (Some(text), None) => ids_of(&text)?,
        (None, Some(ids)) => ids,
        _ => anyhow::bail!("give either \"prompt\" or \"ids\""),
    };
    let mut options = options.clone();
    if let Some(n) = p.max_tokens {
        anyhow::ensure!(n >= 1, "max_tokens must be at least 1");
        options.max_tokens = n;
    }
    if let Some(t) = p.temperature {
        anyhow::ensure!(
            t.is_finite() && t >= 0.0,
            "temperature must be a finite number ≥ 0, not {t}"
        );
        options.temperature = t;
    }
    if let Some(seed) = p.seed {
        options.seed = seed;
    }
    Ok(Prompt { ids, options })
}

/// Least automatic budget for keys and values.
const MIN_AUTO_KV: u64 = 64 << 20;

/// `in_flight` sequences whose keys and values live in memory up to `kv_budget` and in `kv_dir`
/// (default: the temporary directory) beyond it. `auto` takes half the memory available beside
/// the weights' budget (at least 64 MiB), and no limit when the memory available is unknown.
pub(crate) fn batch_options(
    in_flight: usize,
    kv_budget: Budget,
    kv_dir: Option<&Path>,
    streamer: &Streamer,
) -> anyhow::Result<BatchOptions> {
    let choice = streamer.budget();
    let bytes = match kv_budget {
        Budget::All => return Ok(BatchOptions::new(in_flight)),
        Budget::Bytes(b) => b,
        Budget::Auto => match choice.available {
            None => return Ok(BatchOptions::new(in_flight)),
            Some(a) => {
                let weights = choice.bytes.min(choice.model_bytes);
                (a.bytes.saturating_sub(weights) / 2).max(MIN_AUTO_KV)
            }
        },
    };
    let dir = kv_dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let tier = SpillTier::new(&dir, bytes)
        .with_context(|| format!("--kv-dir {} cannot hold keys and values", dir.display()))?;
    if kv_budget == Budget::Auto {
        eprintln!(
            "kv budget: {} MiB in memory, beyond it in {}",
            bytes >> 20,
            dir.display()
        );
    }
    Ok(BatchOptions::new(in_flight).with_kv_tier(tier))
}

/// Generates every prompt, `batch.in_flight` at a time, printing each result in input order.
pub(crate) fn generate(
    decoder: &dyn Decoder,
    streamer: &Streamer,
    prompts: &[Prompt],
    batch: &BatchOptions,
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
        .generate_many(streamer, prompts, batch, &mut |index, g| {
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
        batch.in_flight,
        read as f64 / 1e6,
        read as f64 / 1e6 / tokens.max(1) as f64
    );
    if let Some(tier) = &batch.kv_tier {
        let s = tier.stats();
        if s.bytes_spilled > 0 {
            eprintln!(
                "keys and values: {:.1} MB written to {} and {:.1} MB read back (peak {:.1} MB \
                 in memory)",
                s.bytes_spilled as f64 / 1e6,
                tier.dir().display(),
                s.bytes_read_back as f64 / 1e6,
                s.peak_memory_bytes as f64 / 1e6
            );
        }
    }
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
