//! `lit run bert STORE --input FILE --output FILE.jsonl`: a file of any size, one sentence per
//! line, embedded chunk by chunk. Each chunk runs layer-major (every layer loaded once for the
//! whole chunk, the hidden states between layers spilled to disk beyond the activation budget)
//! and is committed to the output before the next starts, so an interrupted run resumes.

use super::committed::{CommittedOutput, RunIdentity};
use crate::progress::human_bytes;
use anyhow::{Context, bail};
use lit_burn::layer_major::SpillTier;
use lit_burn::models::bert::SentenceEmbedder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, UNIX_EPOCH};

/// Most sentences an automatic chunk holds: bounds the work an interruption loses and keeps the
/// progress moving; past a few thousand sentences a chunk's weight reads are negligible anyway.
pub(crate) const MAX_AUTO_CHUNK: usize = 16_384;

/// The activation budget when none is given and the memory available is unknown.
const FALLBACK_ACTIVATION_BUDGET: u64 = 1 << 30;

/// Least automatic activation budget.
const MIN_ACTIVATION_BUDGET: u64 = 64 << 20;

/// Lines sampled to estimate the tokens per sentence for an automatic chunk size.
const SAMPLE_LINES: usize = 1024;

/// One output line.
#[derive(serde::Serialize)]
struct Row<'a> {
    index: u64,
    embedding: &'a [f32],
}

pub(crate) fn run(args: &super::Args, input: &Path, output: &Path) -> anyhow::Result<ExitCode> {
    let input_meta = std::fs::metadata(input)
        .with_context(|| format!("cannot read the input {}", input.display()))?;
    if input_meta.is_dir() {
        bail!("the input {} is a directory, not a file", input.display());
    }
    let total = count_lines(input)?;
    if total == 0 {
        bail!(
            "the input {} is empty: no sentences to embed",
            input.display()
        );
    }
    let output_dir = parent(output);
    if !output_dir.is_dir() {
        bail!(
            "cannot write the output {}: {} is not a directory",
            output.display(),
            output_dir.display()
        );
    }
    let spill_dir = args.spill_dir.clone().unwrap_or(output_dir);
    let activation_budget = args
        .activation_budget
        .map_or_else(default_activation_budget, |b| b.as_u64());
    let tier = SpillTier::new(&spill_dir, activation_budget)?;

    let embedder = super::open_embedder(args)?;
    super::super::announce_budget(embedder.streamer());
    let chunk_size = match args.chunk_size {
        Some(n) => n,
        None => auto_chunk_size(&embedder, input, activation_budget)?,
    };
    let run = RunIdentity {
        store: args.common.store.clone(),
        input_bytes: input_meta.len(),
        input_modified_ns: input_meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as u64),
        max_length: args.max_length,
        batch_size: args.batch_size,
        chunk_size,
    };
    let mut out = CommittedOutput::open(output, run, args.chunk_size.is_some())?;
    let chunk_size = out.progress().run.chunk_size;
    let resumed = out.progress().rows;
    let mut offset = out.progress().input_offset;
    eprintln!(
        "embedding {total} sentences of {} into {}: chunks of {chunk_size}, {} of activations \
         in memory, spilling to {}",
        input.display(),
        output.display(),
        human_bytes(activation_budget),
        spill_dir.display()
    );
    if resumed > 0 {
        eprintln!("resuming: {resumed} rows already committed");
    }

    let mut reader = BufReader::new(
        File::open(input).with_context(|| format!("cannot read the input {}", input.display()))?,
    );
    reader
        .seek(SeekFrom::Start(offset))
        .with_context(|| format!("seeking in {}", input.display()))?;
    let start = Instant::now();
    let (mut index, mut chunks) = (resumed, 0usize);
    loop {
        let (texts, consumed) = read_lines(&mut reader, chunk_size, input, index)?;
        if texts.is_empty() {
            break;
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tokens = embedder.tokenize(&refs)?;
        let vectors = embedder.embed_layer_major(&tokens, &tier)?;
        let mut text = Vec::with_capacity(vectors.len() * 4096);
        for (k, embedding) in vectors.iter().enumerate() {
            let index = index + k as u64;
            serde_json::to_writer(&mut text, &Row { index, embedding })?;
            text.push(b'\n');
        }
        offset += consumed;
        out.commit(&text, vectors.len() as u64, offset)?;
        index += vectors.len() as u64;
        chunks += 1;
        eprintln!(
            "{}",
            progress_line(index, total.max(index), index - resumed, start, &tier)
        );
    }
    out.finish()?;

    let seconds = start.elapsed().as_secs_f64();
    let done = index - resumed;
    let spill = tier.stats();
    eprintln!(
        "embedded {done} sentences in {seconds:.1} s ({:.1} sentences/s) in {chunks} chunks; \
         activations: peak {} in memory, {} spilled to disk",
        done as f64 / seconds.max(1e-9),
        human_bytes(spill.peak_memory_bytes),
        human_bytes(spill.bytes_spilled)
    );
    let report = args.common.report(embedder.streamer(), chunks, seconds)?;
    report.finish(args.common.stats_json.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// The directory `path` is in.
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A quarter of the memory available, at least [`MIN_ACTIVATION_BUDGET`].
fn default_activation_budget() -> u64 {
    lit_burn::memory::available()
        .map_or(FALLBACK_ACTIVATION_BUDGET, |a| a.bytes / 4)
        .max(MIN_ACTIVATION_BUDGET)
}

/// Lines in `path` (a last line without a newline counts).
fn count_lines(path: &Path) -> anyhow::Result<u64> {
    let read = || -> std::io::Result<u64> {
        let mut f = File::open(path)?;
        let mut buf = vec![0u8; 1 << 20];
        let (mut lines, mut last) = (0u64, b'\n');
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            last = buf[n - 1];
        }
        Ok(lines + u64::from(last != b'\n'))
    };
    read().with_context(|| format!("cannot read the input {}", path.display()))
}

/// Up to `n` lines from `reader` (without their `\n` or `\r\n`), and the bytes they took.
/// `first` is the index of the first, for errors.
fn read_lines(
    reader: &mut impl BufRead,
    n: usize,
    path: &Path,
    first: u64,
) -> anyhow::Result<(Vec<String>, u64)> {
    let (mut lines, mut consumed) = (Vec::new(), 0u64);
    let mut buf = Vec::new();
    while lines.len() < n {
        buf.clear();
        let got = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("reading the input {}", path.display()))?;
        if got == 0 {
            break;
        }
        consumed += got as u64;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        let line = String::from_utf8(std::mem::take(&mut buf)).map_err(|_| {
            anyhow::anyhow!(
                "{} line {}: not valid UTF-8",
                path.display(),
                first + lines.len() as u64 + 1
            )
        })?;
        lines.push(line);
    }
    Ok((lines, consumed))
}

/// As many sentences as `budget` holds hidden states for, estimated from the first lines'
/// token counts (twice their hidden states: the layer's input and output), in whole
/// micro-batches, at most [`MAX_AUTO_CHUNK`].
fn auto_chunk_size(
    embedder: &SentenceEmbedder,
    input: &Path,
    budget: u64,
) -> anyhow::Result<usize> {
    let mut reader = BufReader::new(
        File::open(input).with_context(|| format!("cannot read the input {}", input.display()))?,
    );
    let (sample, _) = read_lines(&mut reader, SAMPLE_LINES, input, 0)?;
    let refs: Vec<&str> = sample.iter().map(String::as_str).collect();
    let tokens = embedder.tokenize(&refs)?;
    let mean_tokens =
        tokens.iter().map(|t| t.ids.len()).sum::<usize>() as f64 / tokens.len().max(1) as f64;
    let per_sentence = (mean_tokens * embedder.config().hidden_size as f64 * 4.0 * 2.0).max(1.0);
    let batch = embedder.batch_size();
    let fits = (budget as f64 / per_sentence) as usize;
    Ok((fits / batch * batch).clamp(batch, MAX_AUTO_CHUNK.max(batch)))
}

/// `1024/20000 sentences (5.1%), 812 sentences/s, ETA 23 s, 12.6 MB spilled`.
fn progress_line(done: u64, total: u64, this_run: u64, start: Instant, tier: &SpillTier) -> String {
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    let rate = this_run as f64 / seconds;
    let eta = if rate > 0.0 {
        format_duration((total - done) as f64 / rate)
    } else {
        "?".into()
    };
    format!(
        "{done}/{total} sentences ({:.1}%), {rate:.0} sentences/s, ETA {eta}, {} spilled",
        100.0 * done as f64 / total.max(1) as f64,
        human_bytes(tier.stats().bytes_spilled)
    )
}

/// `1h02m`, `3m20s`, `12 s`.
fn format_duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}
