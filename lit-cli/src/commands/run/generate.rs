//! `lit run llama|gpt2 STORE --prompt P --max-tokens N`: generation with any decoder of the
//! architecture registry (the subcommand is its `model_type`).
//!
//! With a text prompt the text is written to stdout as each token arrives (whole characters
//! only), then a newline; `--print-ids` adds the generated ids as a last line. With `--ids` stdout
//! is one line of comma-separated ids. `--chat` wraps the prompt in the store's chat template.

use crate::report::RunReport;
use anyhow::Context;
use lit_burn::Budget;
use lit_burn::models::arch::architecture_named;
use lit_burn::models::chat::{ChatMessage, ChatTemplate};
use lit_burn::models::generate::{GenerateOptions, Generation};
use lit_burn::models::tokenizer::{
    TextStream, Tokenizer, encode, encode_chat, store_tokenizer, token_ids_of,
};
use lit_core::{Event, Observer, WeightSourceExt};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: super::Common,
    /// The prompt (tokenized with the store's tokenizer.json), or comma-separated token ids with
    /// `--ids`.
    #[arg(long, required_unless_present = "prompts")]
    pub(crate) prompt: Option<String>,
    /// A file of prompts, one per line (comma-separated token ids with `--ids`), all generated
    /// `--batch` at a time: each pass through the model serves every sequence in flight, so a
    /// streamed model is read once per step of all of them. A line may instead be a JSON object
    /// with its own options: `{"prompt": "…", "max_tokens": 8, "temperature": 0.7, "seed": 1}`
    /// (or `"ids": [1, 2]` for the prompt). Stdout is one JSON object per prompt, in the file's
    /// order: `{"index", "tokens", "text"}`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prompt", "plain", "events", "print_ids"])]
    pub(crate) prompts: Option<std::path::PathBuf>,
    /// Sequences generated together with `--prompts` (a finished one's slot takes the next
    /// prompt).
    #[arg(long, default_value_t = 8, value_parser = super::super::at_least_one)]
    pub(crate) batch: usize,
    /// Memory for the keys and values of the sequences of `--prompts`: a size, `all` (no
    /// limit) or `auto` (half the memory left beside the weights' budget). Beyond it a layer's
    /// keys and values go to a file in `--kv-dir` and are read back when the layer runs.
    #[arg(long, value_name = "SIZE|all|auto", default_value = "auto", value_parser = super::parse_budget)]
    pub(crate) kv_budget: Budget,
    /// Directory for the keys and values beyond `--kv-budget` (anonymous files, gone when lit
    /// exits). Default: the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) kv_dir: Option<std::path::PathBuf>,
    /// Treat the prompt as comma-separated token ids.
    #[arg(long)]
    pub(crate) ids: bool,
    /// Apply the store's chat template to the prompt (one user turn, then the assistant's turn to
    /// answer); generation stops at the end of the answer (EOS or the end-of-turn token).
    #[arg(long, conflicts_with = "ids")]
    pub(crate) chat: bool,
    /// After the generated text, print the generated token ids as a last line
    /// (comma-separated). With `--ids` the ids are all stdout holds anyway.
    #[arg(long)]
    pub(crate) print_ids: bool,
    /// Tokens to generate.
    #[arg(long, default_value_t = 16, value_parser = super::super::at_least_one)]
    pub(crate) max_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0, value_parser = super::super::temperature)]
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

/// Generates with the decoder `model_type` names in the registry.
pub(crate) fn run(args: Args, model_type: &str) -> anyhow::Result<ExitCode> {
    let arch = architecture_named(model_type)?;
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
    let shown = || super::super::shown(&args.common.store);
    let mut stop = Vec::new();
    let template = match &tokenizer {
        Some(t) if args.chat => {
            let template = ChatTemplate::from_store(source.as_ref())?.with_context(|| {
                format!(
                    "{} has no chat template (no `chat_template` in its tokenizer_config.json): \
                     --chat needs one; run without --chat to continue the prompt as plain text",
                    shown()
                )
            })?;
            stop = token_ids_of(t, &template.stop_strings());
            Some(template)
        }
        _ => None,
    };
    // A prompt's token ids, as the flags say.
    let ids_of = |text: &str| -> anyhow::Result<Vec<u32>> {
        match (&tokenizer, &template) {
            _ if args.ids => parse_ids(text),
            (Some(t), Some(template)) => {
                let text = template
                    .render(&[ChatMessage::user(text)], true)
                    .with_context(|| format!("the chat template of {}", shown()))?;
                Ok(encode_chat(t, &text)?)
            }
            (Some(t), None) => Ok(encode(t, text)?),
            (None, _) => anyhow::bail!(
                "{} has no tokenizer.json: pass token ids with --ids (e.g. --prompt 1,2,3 --ids)",
                shown()
            ),
        }
    };
    let prompt = match (&args.prompts, &args.prompt) {
        (Some(_), _) => Vec::new(),
        (None, Some(p)) => ids_of(p)?,
        (None, None) => anyhow::bail!("--prompt or --prompts is needed"),
    };
    let first_compute = Arc::new(RunObserver::new(opened, args.events.is_some()));
    let options = args
        .common
        .overrides(arch.stream_options(source.as_ref(), args.common.stream_options()))
        .with_observer({
            let first_compute = first_compute.clone();
            move |e: &Event<'_>| first_compute.on_event(e)
        });
    let decoder = arch.decoder(source.as_ref(), device.device())?;
    let ctx = Ctx {
        args: &args,
        prompt: &prompt,
        tokenizer: tokenizer.as_ref(),
        opened,
        observer: &first_compute,
    };
    let mut eos = decoder.stop_tokens();
    for t in stop {
        if !eos.contains(&t) {
            eos.push(t);
        }
    }
    if let Some(file) = &args.prompts {
        let generate = GenerateOptions::greedy(args.max_tokens)
            .with_temperature(args.temperature, args.seed)
            .with_stop_tokens(eos);
        let prompts = super::prompts::read(file, &generate, ids_of)?;
        let streamer = decoder.streamer(source.clone(), options)?;
        super::announce_budget(&streamer);
        let batch = super::prompts::batch_options(
            args.batch,
            args.kv_budget,
            args.kv_dir.as_deref(),
            &streamer,
        )?;
        return super::prompts::generate(
            decoder.as_ref(),
            &streamer,
            &prompts,
            &batch,
            tokenizer.as_ref(),
            &args.common,
        );
    }
    if !args.plain {
        let streamer = decoder.streamer(source.clone(), options)?;
        super::announce_budget(&streamer);
        let out = go(&ctx, eos, |prompt, options, on_token| {
            decoder.generate(&streamer, prompt, options, on_token)
        })?;
        let report = args
            .common
            .report(&streamer, out.passes(), out.total().as_secs_f64())?;
        return finish(&ctx, report, &out);
    }
    // Plain Burn: every layer read, the whole model built, then run as an ordinary module.
    let m = source.manifest();
    let layers = (0..m.layers.len())
        .map(|i| futures::executor::block_on(source.read_layer(i)))
        .collect::<lit_core::Result<Vec<_>>>()?;
    // Mapped layers are checked after use, as the streamer checks its own.
    let watches: Vec<_> = layers
        .iter()
        .filter_map(|l| lit_store::watch_mapped(&l.bytes))
        .collect();
    let out = go(&ctx, eos, |prompt, generate, on_token| {
        decoder.generate_resident(layers, &options.load, prompt, generate, on_token)
    })?;
    for watch in &watches {
        watch.check()?;
    }
    let report = RunReport::plain(m, out.passes(), out.total().as_secs_f64());
    finish(&ctx, report, &out)
}

/// What every model's run shares.
struct Ctx<'a> {
    args: &'a Args,
    prompt: &'a [u32],
    tokenizer: Option<&'a Tokenizer>,
    opened: Instant,
    observer: &'a RunObserver,
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

/// Generates with `generate` (prompt, options, per-token callback) and prints the tokens: the text
/// as it comes with a tokenizer, the ids otherwise.
fn go(
    ctx: &Ctx<'_>,
    eos: Vec<u32>,
    generate: impl FnOnce(&[u32], &GenerateOptions, &mut dyn FnMut(u32)) -> lit_burn::Result<Generation>,
) -> anyhow::Result<Generation> {
    let args = ctx.args;
    let options = GenerateOptions::greedy(args.max_tokens)
        .with_temperature(args.temperature, args.seed)
        .with_stop_tokens(eos);
    let mut pass_ends = Vec::new();
    let mut text = ctx.tokenizer.map(TextStream::new);
    let mut stdout = std::io::stdout().lock();
    // The first failure to decode or write (a closed pipe); the text stops there.
    let mut failed: Option<anyhow::Error> = None;
    let out = generate(ctx.prompt, &options, &mut |token| {
        pass_ends.push(Instant::now());
        if let Some(stream) = &mut text
            && failed.is_none()
            && let Err(e) = show(&mut stdout, stream.push(token))
        {
            failed = Some(e);
        }
        if args.drop_caches {
            crate::process::drop_page_cache();
        }
    })
    .context("generation failed")?;
    if let Some(e) = failed {
        return Err(e);
    }
    if let Some(stream) = &mut text {
        show(&mut stdout, stream.finish())?;
        writeln!(stdout)?;
    }
    if text.is_none() || args.print_ids {
        let ids: Vec<String> = out.tokens.iter().map(u32::to_string).collect();
        writeln!(stdout, "{}", ids.join(","))?;
    }
    stdout.flush()?;
    if let Some(path) = &args.events {
        ctx.observer.write(path, &pass_ends)?;
    }
    Ok(out)
}

/// Writes a piece of streamed text and flushes it, so it shows at once.
fn show(out: &mut impl Write, piece: lit_burn::Result<String>) -> anyhow::Result<()> {
    let piece = piece.context("cannot decode the generated tokens")?;
    if !piece.is_empty() {
        let written = out.write_all(piece.as_bytes()).and_then(|()| out.flush());
        if let Err(e) = &written
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            // The reader is gone (`| head`): nobody will see the rest, so stop generating now,
            // with the status a process killed by SIGPIPE has (Rust ignores the signal).
            std::process::exit(128 + 13);
        }
        written?;
    }
    Ok(())
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
    anyhow::ensure!(
        !s.trim().is_empty(),
        "--ids needs at least one token id (e.g. --prompt 1,2,3)"
    );
    s.split(',')
        .map(str::trim)
        .enumerate()
        .map(|(i, t)| {
            anyhow::ensure!(
                !t.is_empty(),
                "--prompt `{s}`: token id {} is empty (ids are separated by single commas)",
                i + 1
            );
            t.parse::<u32>()
                .with_context(|| format!("--prompt: `{t}` is not a token id"))
        })
        .collect()
}
