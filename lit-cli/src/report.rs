//! What a command measured, as one value: printed for people on stderr (a summary, then the
//! `stats key=value …` and `timing …` lines scripts grep) and written as JSON with `--stats-json
//! FILE`, which is what `lit bench` reads back from its child processes.
//!
//! Every figure is in bytes, seconds or milliseconds. A figure this platform cannot measure (peak
//! RSS off Linux, time to first compute where nothing observes it) is `null` in the JSON and `0`
//! or `NaN` in the `stats`/`timing` lines, as those lines always printed it.

use crate::progress::{human_bytes, mb_per_s};
use anyhow::Context;
use lit_burn::Streamer;
use lit_burn::models::generate::Generation;
use lit_core::Manifest;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How a run held the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Executor {
    /// lit's streaming executor, within `budget`.
    Streamed,
    /// Plain Burn (`lit run --plain`): every layer read once, the whole model built in memory.
    Plain,
}

/// The report of one model run (`lit run bert|llama|gpt2`, `lit demo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunReport {
    /// How the weights were held.
    pub(crate) executor: Executor,
    /// Bytes of all the store's layers.
    pub(crate) model_bytes: u64,
    /// Layers in the store.
    pub(crate) layers: usize,
    /// Bytes of the store's largest layer.
    pub(crate) largest_layer: u64,
    /// The weights budget (`None`: the whole model may stay resident).
    pub(crate) budget: Option<u64>,
    /// Layers fetched ahead of the running one (`None` for plain Burn).
    pub(crate) prefetch: Option<usize>,
    /// Passes through the model.
    pub(crate) passes: usize,
    /// Seconds the passes took, all together.
    pub(crate) seconds: f64,
    /// Bytes read from the store over the whole run, prefetches discarded unused included.
    pub(crate) bytes_read: u64,
    /// Bytes read in the first pass (`None` in reports written before it was recorded).
    #[serde(default)]
    pub(crate) first_pass_bytes_read: Option<u64>,
    /// Bytes of layers resident at the end.
    pub(crate) resident_bytes: u64,
    /// Layers resident at the end.
    pub(crate) resident_layers: usize,
    /// Most bytes of layer buffers held at once.
    pub(crate) peak_held: u64,
    /// Peak resident set size of the process (`VmHWM`), if known.
    pub(crate) peak_rss: Option<u64>,
    /// From opening the store to the first layer's compute, if observed.
    pub(crate) open_to_first_compute_ms: Option<f64>,
    /// Time of each pass, when passes are timed one by one (decoders: the prompt's pass first).
    #[serde(default)]
    pub(crate) pass_ms: Vec<f64>,
    /// Time of each repetition (`lit run bert --repeat`: every batch of the texts once).
    #[serde(default)]
    pub(crate) repeat_ms: Vec<f64>,
    /// What a decoder generated.
    #[serde(default)]
    pub(crate) generation: Option<GenerationReport>,
}

/// What a decoder's generation did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct GenerationReport {
    /// Tokens in the prompt.
    pub(crate) prompt_tokens: usize,
    /// Tokens generated.
    pub(crate) new_tokens: usize,
    /// Time of the prompt's pass (which yields the first token).
    pub(crate) prefill_ms: f64,
    /// Tokens per second over the passes after the prompt's.
    pub(crate) tokens_per_second: f64,
    /// Bytes of the KV cache at the end.
    pub(crate) kv_cache_bytes: u64,
}

impl RunReport {
    /// The report of `passes` passes through `streamer`, taking `seconds`.
    pub(crate) fn streamed(
        streamer: &Streamer,
        budget: Option<u64>,
        prefetch: usize,
        passes: usize,
        seconds: f64,
    ) -> Self {
        let stats = streamer.stats();
        let m = streamer.source().manifest();
        RunReport {
            executor: Executor::Streamed,
            budget,
            prefetch: Some(prefetch),
            bytes_read: stats.bytes_read_total(),
            first_pass_bytes_read: stats.passes.first().map(|p| p.bytes_read),
            resident_bytes: stats.resident_bytes,
            resident_layers: stats.resident_layers,
            peak_held: stats.peak_bytes_held,
            ..Self::of(m, passes, seconds)
        }
    }

    /// The report of plain Burn over the model `manifest` describes: every layer read once and
    /// held until the end.
    pub(crate) fn plain(manifest: &Manifest, passes: usize, seconds: f64) -> Self {
        RunReport {
            executor: Executor::Plain,
            bytes_read: manifest.total_bytes,
            first_pass_bytes_read: Some(manifest.total_bytes),
            resident_bytes: manifest.total_bytes,
            resident_layers: manifest.layers.len(),
            peak_held: manifest.total_bytes,
            ..Self::of(manifest, passes, seconds)
        }
    }

    fn of(m: &Manifest, passes: usize, seconds: f64) -> Self {
        RunReport {
            executor: Executor::Streamed,
            model_bytes: m.total_bytes,
            layers: m.layers.len(),
            largest_layer: m.largest_layer_bytes(),
            budget: None,
            prefetch: None,
            passes,
            seconds,
            bytes_read: 0,
            first_pass_bytes_read: None,
            resident_bytes: 0,
            resident_layers: 0,
            peak_held: 0,
            peak_rss: crate::process::peak_rss(),
            open_to_first_compute_ms: None,
            pass_ms: Vec::new(),
            repeat_ms: Vec::new(),
            generation: None,
        }
    }

    /// Adds what `generation` did from a prompt of `prompt_tokens`, and its passes' times.
    pub(crate) fn with_generation(mut self, generation: &Generation, prompt_tokens: usize) -> Self {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        self.pass_ms = std::iter::once(generation.prefill)
            .chain(generation.steps.iter().copied())
            .map(ms)
            .collect();
        self.generation = Some(GenerationReport {
            prompt_tokens,
            new_tokens: generation.tokens.len(),
            prefill_ms: ms(generation.prefill),
            tokens_per_second: generation.tokens_per_second(),
            kv_cache_bytes: generation.kv_cache_bytes,
        });
        self
    }

    /// The summary for people, one line each.
    pub(crate) fn summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(g) = &self.generation {
            lines.push(format!(
                "{} prompt tokens in {:.1} ms; {} new tokens, {:.2} tokens/s after the first (KV cache {})",
                g.prompt_tokens,
                g.prefill_ms,
                g.new_tokens,
                g.tokens_per_second,
                human_bytes(g.kv_cache_bytes),
            ));
        }
        let rss = self
            .peak_rss
            .map(human_bytes)
            .unwrap_or_else(|| "unknown".into());
        match self.executor {
            Executor::Plain => {
                lines.push(format!("plain Burn: whole model in memory; peak RSS {rss}"));
            }
            Executor::Streamed => {
                let per_pass = self.seconds / self.passes.max(1) as f64;
                lines.push(format!(
                    "{} passes in {:.2} s ({:.1} ms/pass); read {} from the store ({} resident in {} layers)",
                    self.passes,
                    self.seconds,
                    per_pass * 1e3,
                    human_bytes(self.bytes_read),
                    human_bytes(self.resident_bytes),
                    self.resident_layers,
                ));
                let budget = match self.budget {
                    Some(b) => format!("weights budget {}", human_bytes(b)),
                    None => "no budget".into(),
                };
                lines.push(format!(
                    "peak RSS {rss} ({budget}; peak weights held {})",
                    human_bytes(self.peak_held)
                ));
            }
        }
        lines
    }

    /// `stats key=value …`: the counters in bytes and seconds (an unknown peak RSS and no
    /// budget are `0`).
    pub(crate) fn stats_line(&self) -> String {
        format!(
            "stats passes={} seconds={:.6} bytes_read={} resident_bytes={} peak_held={} peak_rss={} budget={} largest_layer={}",
            self.passes,
            self.seconds,
            self.bytes_read,
            self.resident_bytes,
            self.peak_held,
            self.peak_rss.unwrap_or(0),
            self.budget.unwrap_or(0),
            self.largest_layer,
        )
    }

    /// `timing …`: the times of the passes (`pass_ms`, with `open_to_first_compute_ms`) or of
    /// the repetitions (`embed_ms`), comma-separated milliseconds; `None` when neither was timed.
    pub(crate) fn timing_line(&self) -> Option<String> {
        let list = |ms: &[f64]| {
            ms.iter()
                .map(|t| format!("{t:.3}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        if !self.pass_ms.is_empty() {
            Some(format!(
                "timing open_to_first_compute_ms={:.3} pass_ms={}",
                self.open_to_first_compute_ms.unwrap_or(f64::NAN),
                list(&self.pass_ms)
            ))
        } else if !self.repeat_ms.is_empty() {
            Some(format!("timing embed_ms={}", list(&self.repeat_ms)))
        } else {
            None
        }
    }

    /// Prints the summary, the `stats` line and the `timing` line to stderr (stdout stays the
    /// command's output), and writes the JSON to `json` if given.
    pub(crate) fn finish(&self, json: Option<&Path>) -> anyhow::Result<()> {
        for line in self.summary() {
            eprintln!("{line}");
        }
        eprintln!("{}", self.stats_line());
        if let Some(line) = self.timing_line() {
            eprintln!("{line}");
        }
        json.map_or(Ok(()), |path| write_json(self, path))
    }

    /// Reads a report a `--stats-json` run wrote.
    pub(crate) fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a lit run report", path.display()))
    }
}

/// The report of `lit export`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExportReport {
    /// Where the store was written (credentials removed).
    pub(crate) destination: String,
    /// Layers in the new store.
    pub(crate) layers: usize,
    /// Tensors in the new store.
    pub(crate) tensors: u64,
    /// Bytes of layer objects written.
    pub(crate) bytes_written: u64,
    /// Wall-clock seconds of the export.
    pub(crate) seconds: f64,
    /// Bytes of the largest layer.
    pub(crate) largest_layer: u64,
    /// Peak resident set size of the process (`VmHWM`), if known.
    pub(crate) peak_rss: Option<u64>,
}

impl ExportReport {
    /// The report of `report`, an export to `destination` (as it may be printed).
    pub(crate) fn new(report: &lit_store::ExportReport, destination: String) -> Self {
        let m = &report.manifest;
        ExportReport {
            destination,
            layers: m.layers.len(),
            tensors: m.total_tensors,
            bytes_written: report.bytes_written,
            seconds: report.seconds,
            largest_layer: m.largest_layer_bytes(),
            peak_rss: crate::process::peak_rss(),
        }
    }

    /// The summary for people.
    pub(crate) fn summary(&self) -> String {
        format!(
            "exported {} layers, {} tensors, {} to {} in {:.2} s ({:.0} MB/s); peak RSS {} (largest layer {})",
            self.layers,
            self.tensors,
            human_bytes(self.bytes_written),
            self.destination,
            self.seconds,
            mb_per_s(self.bytes_written, self.seconds),
            self.peak_rss
                .map(human_bytes)
                .unwrap_or_else(|| "unknown".into()),
            human_bytes(self.largest_layer),
        )
    }

    /// `stats key=value …` in bytes and seconds (an unknown peak RSS is `0`).
    pub(crate) fn stats_line(&self) -> String {
        format!(
            "stats bytes_written={} seconds={:.6} peak_rss={} largest_layer={}",
            self.bytes_written,
            self.seconds,
            self.peak_rss.unwrap_or(0),
            self.largest_layer
        )
    }

    /// Prints the summary to stdout (what the command did) and the `stats` line to stderr, and
    /// writes the JSON to `json` if given.
    pub(crate) fn finish(&self, json: Option<&Path>) -> anyhow::Result<()> {
        println!("{}", self.summary());
        eprintln!("{}", self.stats_line());
        json.map_or(Ok(()), |path| write_json(self, path))
    }
}

/// Writes `value` as pretty JSON to `path`.
pub(crate) fn write_json<T: Serialize>(value: &T, path: &Path) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed() -> RunReport {
        RunReport {
            executor: Executor::Streamed,
            model_bytes: 4000,
            layers: 4,
            largest_layer: 1500,
            budget: Some(2000),
            prefetch: Some(1),
            passes: 3,
            seconds: 1.5,
            bytes_read: 9000,
            first_pass_bytes_read: Some(4000),
            resident_bytes: 500,
            resident_layers: 1,
            peak_held: 1900,
            peak_rss: None,
            open_to_first_compute_ms: Some(12.25),
            pass_ms: vec![700.0, 400.0, 400.0],
            repeat_ms: Vec::new(),
            generation: None,
        }
    }

    /// The lines keep the exact format they had when written by hand (scripts parse them).
    #[test]
    fn the_stats_and_timing_lines_keep_their_format() {
        let r = streamed();
        assert_eq!(
            r.stats_line(),
            "stats passes=3 seconds=1.500000 bytes_read=9000 resident_bytes=500 peak_held=1900 peak_rss=0 budget=2000 largest_layer=1500"
        );
        assert_eq!(
            r.timing_line().unwrap(),
            "timing open_to_first_compute_ms=12.250 pass_ms=700.000,400.000,400.000"
        );
        let bert = RunReport {
            pass_ms: Vec::new(),
            repeat_ms: vec![1.0, 2.5],
            budget: None,
            ..r
        };
        assert_eq!(bert.timing_line().unwrap(), "timing embed_ms=1.000,2.500");
        assert!(bert.stats_line().contains(" budget=0 "));
        assert!(
            bert.summary()[1].contains("no budget"),
            "{:?}",
            bert.summary()
        );
    }

    #[test]
    fn json_round_trips_with_nulls_for_the_unknown() {
        let r = streamed();
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["executor"], "streamed");
        assert!(json["peak_rss"].is_null());
        assert_eq!(json["budget"], 2000);
        assert_eq!(serde_json::from_value::<RunReport>(json).unwrap(), r);
    }

    #[test]
    fn a_missing_or_foreign_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.json");
        let err = format!("{:#}", RunReport::read(&missing).unwrap_err());
        assert!(err.contains("none.json"), "{err}");
        let foreign = dir.path().join("foreign.json");
        std::fs::write(&foreign, b"{\"passes\": 3}").unwrap();
        let err = format!("{:#}", RunReport::read(&foreign).unwrap_err());
        assert!(err.contains("not a lit run report"), "{err}");
    }
}
