//! `lit run llama|gpt2 STORE --prompt P --max-tokens N`

use anyhow::Context;
use lit_burn::Streamer;
use lit_burn::models::generate::{
    CausalLm, GenerateOptions, Tokenizer, decode, encode, generate, store_tokenizer,
    with_f32_compute,
};
use lit_burn::models::gpt2::Gpt2;
use lit_burn::models::llama::Llama;
use std::process::ExitCode;

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
}

pub(crate) fn run(args: Args, arch: Arch) -> anyhow::Result<ExitCode> {
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
            args.common.store.display()
        ),
    };
    let options = with_f32_compute(source.as_ref(), args.common.stream_options());
    let budget = args.common.budget.map(|b| b.as_u64());
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
                budget,
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
                budget,
            )
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
    budget: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let options = GenerateOptions::greedy(args.max_tokens)
        .with_temperature(args.temperature, args.seed)
        .with_stop_tokens(eos);
    let out = generate(streamer, model, prompt, &options).context("generation failed")?;
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
