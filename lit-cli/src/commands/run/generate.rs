//! `lit run llama|gpt2 STORE --prompt P --max-tokens N`

use crate::report::RunReport;
use anyhow::Context;
use lit_burn::models::decoder::{Resident, Weights};
use lit_burn::models::generate::{
    CausalLm, GenerateOptions, Generation, Tokenizer, decode, encode, generate_with,
    store_tokenizer, with_f32_compute,
};
use lit_burn::models::gpt2::Gpt2;
use lit_burn::models::llama::Llama;
use lit_burn::{NameMap, StreamOptions, Streamer};
use lit_core::{Event, Observer, WeightSource, WeightSourceExt};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Which decoder.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arch {
    Llama,
    Gpt2,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: super::Common,
    /// The prompt (tokenized with the store's tokenizer.json), or comma-separated token ids with
    /// `--ids`.
    #[arg(long)]
    pub(crate) prompt: String,
    /// Treat the prompt as comma-separated token ids.
    #[arg(long)]
    pub(crate) ids: bool,
    /// Tokens to generate.
    #[arg(long, default_value_t = 16)]
    pub(crate) max_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) temperature: f32,
    /// Seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Drop the page cache before every pass (root only), to measure cold reads.
    #[arg(long)]
    pub(crate) drop_caches: bool,
    /// Plain Burn, for comparison: read every layer, build the whole model in memory, then run it
    /// without the streaming executor (the model must fit in memory).
    #[arg(long, conflicts_with_all = ["budget", "events"])]
    pub(crate) plain: bool,
    /// Write every fetch and compute event, with times, to this JSON file (for `lit bench --plot`).
    #[arg(long, value_name = "FILE")]
    pub(crate) events: Option<std::path::PathBuf>,
}

pub(crate) fn run(args: Args, arch: Arch) -> anyhow::Result<ExitCode> {
    if args.drop_caches {
        anyhow::ensure!(
            crate::process::drop_page_cache(),
            "--drop-caches needs root (cannot write /proc/sys/vm/drop_caches)"
        );
    }
    let opened = Instant::now();
    let source = args.common.open()?;
    let device = args.common.device()?;
    let tokenizer = if args.ids {
        None
    } else {
        store_tokenizer(source.as_ref())?
    };
    let prompt = match &tokenizer {
        _ if args.ids => parse_ids(&args.prompt)?,
        Some(t) => encode(t, &args.prompt)?,
        None => anyhow::bail!(
            "{} has no tokenizer.json: pass token ids with --ids (e.g. --prompt 1,2,3 --ids)",
            super::super::shown(&args.common.store)
        ),
    };
    let first_compute = Arc::new(RunObserver::new(opened, args.events.is_some()));
    let options = with_f32_compute(source.as_ref(), args.common.stream_options()).with_observer({
        let first_compute = first_compute.clone();
        move |e: &Event<'_>| first_compute.on_event(e)
    });
    let run = |model: &dyn RunModel| -> anyhow::Result<ExitCode> {
        let ctx = Ctx {
            args: &args,
            prompt: &prompt,
            tokenizer: tokenizer.as_ref(),
            opened,
            observer: &first_compute,
        };
        model.run(ctx, source.clone(), options.clone())
    };
    match arch {
        Arch::Llama => {
            let model = Llama::from_source(source.as_ref(), device.device())?;
            let eos = model.config().eos_ids();
            run(&(model, Llama::names(), eos))
        }
        Arch::Gpt2 => {
            let model = Gpt2::from_source(source.as_ref(), device.device())?;
            let names = Gpt2::names_for(source.as_ref());
            let eos = model.config().eos_ids();
            run(&(model, names, eos))
        }
    }
}

/// What every model's run shares.
struct Ctx<'a> {
    args: &'a Args,
    prompt: &'a [u32],
    tokenizer: Option<&'a Tokenizer>,
    opened: Instant,
    observer: &'a RunObserver,
}

/// A decoder skeleton with its store names and end-of-sequence ids, run streamed or (with `--plain`) whole.
trait RunModel {
    fn run(
        &self,
        ctx: Ctx<'_>,
        source: Arc<dyn WeightSource>,
        options: StreamOptions,
    ) -> anyhow::Result<ExitCode>;
}

impl<M: CausalLm, N: NameMap + Clone + 'static> RunModel for (M, N, Vec<u32>) {
    fn run(
        &self,
        ctx: Ctx<'_>,
        source: Arc<dyn WeightSource>,
        options: StreamOptions,
    ) -> anyhow::Result<ExitCode> {
        let (model, names, eos) = self;
        let eos = eos.clone();
        let options = options.with_names(names.clone());
        if !ctx.args.plain {
            let streamer = Streamer::new(source, model, options)?;
            super::announce_budget(&streamer);
            let out = go(&ctx, &streamer, model, eos)?;
            let report = ctx
                .args
                .common
                .report(&streamer, out.passes(), out.total().as_secs_f64());
            return finish(&ctx, report, &out);
        }
        // Plain Burn: every layer read, the whole model built, then run as an ordinary module.
        let m = source.manifest();
        let layers = (0..m.layers.len())
            .map(|i| futures::executor::block_on(source.read_layer(i)))
            .collect::<lit_core::Result<Vec<_>>>()?;
        let paths = lit_burn::ParamPaths::from_module(model);
        let (whole, _) = lit_burn::load_module(model, &paths, &layers, &options.load)?;
        drop(layers);
        let out = go(&ctx, &Resident, &whole, eos)?;
        let report = RunReport::plain(m, out.passes(), out.total().as_secs_f64());
        finish(&ctx, report, &out)
    }
}

/// Remembers when the first layer started computing and, for `--events`, every event.
struct RunObserver {
    opened: Instant,
    first_compute: std::sync::OnceLock<Instant>,
    timeline: Option<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl RunObserver {
    fn new(opened: Instant, record: bool) -> Self {
        RunObserver {
            opened,
            first_compute: std::sync::OnceLock::new(),
            timeline: record.then(|| std::sync::Mutex::new(Vec::new())),
        }
    }

    fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.opened).as_secs_f64() * 1e3
    }

    /// Writes the recorded events and the end time of each pass as JSON.
    fn write(&self, path: &std::path::Path, pass_ends: &[Instant]) -> anyhow::Result<()> {
        let Some(timeline) = &self.timeline else {
            return Ok(());
        };
        let events = timeline.lock().map(|e| e.clone()).unwrap_or_default();
        let ends: Vec<f64> = pass_ends.iter().map(|t| self.ms(*t)).collect();
        let doc = serde_json::json!({ "pass_end_ms": ends, "events": events });
        std::fs::write(path, serde_json::to_vec(&doc)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

impl Observer for RunObserver {
    fn on_event(&self, event: &Event<'_>) {
        let (kind, layer, bytes, at) = match *event {
            Event::FetchStarted { index, bytes, at } => ("fetch_start", index, bytes, at),
            Event::FetchFinished { index, bytes, at } => ("fetch_end", index, bytes, at),
            Event::ComputeStarted { index, at } => {
                let _ = self.first_compute.set(at);
                ("compute_start", index, 0, at)
            }
            Event::ComputeFinished { index, at } => ("compute_end", index, 0, at),
            _ => return,
        };
        if let Some(timeline) = &self.timeline
            && let Ok(mut events) = timeline.lock()
        {
            events.push(serde_json::json!({
                "t_ms": self.ms(at), "kind": kind, "layer": layer, "bytes": bytes,
            }));
        }
    }
}

/// Generates and prints the tokens.
fn go<M: CausalLm, W: Weights>(
    ctx: &Ctx<'_>,
    weights: &W,
    model: &M,
    eos: Vec<u32>,
) -> anyhow::Result<Generation> {
    let args = ctx.args;
    let options = GenerateOptions::greedy(args.max_tokens)
        .with_temperature(args.temperature, args.seed)
        .with_stop_tokens(eos);
    let mut pass_ends = Vec::new();
    let out = generate_with(weights, model, ctx.prompt, &options, |_| {
        pass_ends.push(Instant::now());
        if args.drop_caches {
            crate::process::drop_page_cache();
        }
    })
    .context("generation failed")?;
    let ids: Vec<String> = out.tokens.iter().map(u32::to_string).collect();
    println!("{}", ids.join(","));
    if let Some(t) = ctx.tokenizer {
        println!("{}", decode(t, &out.tokens)?);
    }
    if let Some(path) = &args.events {
        ctx.observer.write(path, &pass_ends)?;
    }
    Ok(out)
}

/// Closes the run: its report, with the generation and the time from opening the store to the
/// first compute, printed and (with `--stats-json`) written.
fn finish(ctx: &Ctx<'_>, report: RunReport, generation: &Generation) -> anyhow::Result<ExitCode> {
    let first = ctx
        .observer
        .first_compute
        .get()
        .map(|t| t.duration_since(ctx.opened).as_secs_f64() * 1e3);
    let report = RunReport {
        open_to_first_compute_ms: first,
        ..report.with_generation(generation, ctx.prompt.len())
    };
    report.finish(ctx.args.common.stats_json.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

fn parse_ids(s: &str) -> anyhow::Result<Vec<u32>> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .with_context(|| format!("`{t}` is not a token id"))
        })
        .collect::<anyhow::Result<Vec<u32>>>()
        .and_then(|ids| {
            anyhow::ensure!(!ids.is_empty(), "--ids needs at least one token id");
            Ok(ids)
        })
}
