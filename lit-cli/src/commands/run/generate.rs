//! `lit run llama|gpt2 STORE --prompt P --max-tokens N`

use anyhow::Context;
use lit_burn::Streamer;
use lit_burn::models::generate::{
    CausalLm, GenerateOptions, Tokenizer, decode, encode, generate_with, store_tokenizer,
    with_f32_compute,
};
use lit_burn::models::gpt2::Gpt2;
use lit_burn::models::llama::Llama;
use lit_core::{Event, Observer};
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
}

pub(crate) fn run(args: Args, arch: Arch) -> anyhow::Result<ExitCode> {
    let opened = Instant::now();
    if args.drop_caches {
        anyhow::ensure!(
            super::drop_page_cache(),
            "--drop-caches needs root (cannot write /proc/sys/vm/drop_caches)"
        );
    }
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
    let first_compute = Arc::new(FirstCompute::default());
    let options = with_f32_compute(source.as_ref(), args.common.stream_options()).with_observer({
        let first_compute = first_compute.clone();
        move |e: &Event<'_>| first_compute.on_event(e)
    });
    match arch {
        Arch::Llama => {
            let model = Llama::from_source(source.as_ref(), device.device())?;
            let eos = model.config().eos_ids();
            let streamer = Streamer::new(source, &model, options.with_names(Llama::names()))?;
            go(
                &args,
                &streamer,
                &model,
                &prompt,
                eos,
                tokenizer.as_ref(),
                (opened, &first_compute),
            )
        }
        Arch::Gpt2 => {
            let model = Gpt2::from_source(source.as_ref(), device.device())?;
            let eos = model.config().eos_ids();
            let names = Gpt2::names_for(source.as_ref());
            let streamer = Streamer::new(source, &model, options.with_names(names))?;
            go(
                &args,
                &streamer,
                &model,
                &prompt,
                eos,
                tokenizer.as_ref(),
                (opened, &first_compute),
            )
        }
    }
}

/// Remembers when the first layer started computing.
#[derive(Default)]
struct FirstCompute(std::sync::OnceLock<Instant>);

impl Observer for FirstCompute {
    fn on_event(&self, event: &Event<'_>) {
        if let Event::ComputeStarted { at, .. } = event {
            let _ = self.0.set(*at);
        }
    }
}

fn go<M: CausalLm>(
    args: &Args,
    streamer: &Streamer,
    model: &M,
    prompt: &[u32],
    eos: Vec<u32>,
    tokenizer: Option<&Tokenizer>,
    (opened, first_compute): (Instant, &FirstCompute),
) -> anyhow::Result<ExitCode> {
    let budget = args.common.budget.map(|b| b.as_u64());
    let options = GenerateOptions::greedy(args.max_tokens)
        .with_temperature(args.temperature, args.seed)
        .with_stop_tokens(eos);
    let mut pass_ms = Vec::new();
    let mut pass_start = Instant::now();
    let out = generate_with(streamer, model, prompt, &options, |_| {
        pass_ms.push(pass_start.elapsed().as_secs_f64() * 1e3);
        if args.drop_caches {
            super::drop_page_cache();
        }
        pass_start = Instant::now();
    })
    .context("generation failed")?;
    let ids: Vec<String> = out.tokens.iter().map(u32::to_string).collect();
    println!("{}", ids.join(","));
    if let Some(t) = tokenizer {
        println!("{}", decode(t, &out.tokens)?);
    }
    eprintln!(
        "{} prompt tokens in {:.1} ms; {} new tokens, {:.2} tokens/s after the first (KV cache {})",
        prompt.len(),
        out.prefill.as_secs_f64() * 1e3,
        out.tokens.len(),
        out.tokens_per_second(),
        crate::progress::human_bytes(out.kv_cache_bytes),
    );
    super::report(streamer, out.passes(), out.total().as_secs_f64(), budget);
    let first = first_compute
        .0
        .get()
        .map(|t| t.duration_since(opened).as_secs_f64() * 1e3);
    let passes: Vec<String> = pass_ms.iter().map(|ms| format!("{ms:.3}")).collect();
    eprintln!(
        "timing open_to_first_compute_ms={:.3} pass_ms={}",
        first.unwrap_or(f64::NAN),
        passes.join(",")
    );
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
