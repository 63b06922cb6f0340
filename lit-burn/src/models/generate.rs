//! The generation loop, for any causal LM ([`CausalLm`]): one forward pass per token, the KV cache
//! kept across passes while the weights stream. Tokens are chosen by [`super::sampling`]; prompts
//! are tokenized by [`super::tokenizer`].

use super::decoder::KvCache;
use super::rng::Rng;
use super::sampling::sample;
use crate::error::{Error, Result};
use crate::weights::Weights;
use burn::module::Module;
use burn::tensor::{FloatDType, Tensor};
use std::time::{Duration, Instant};

/// A decoder that runs token ids to next-token logits, one pass at a time.
pub trait CausalLm: Module {
    /// Runs `ids` (positions `cache.len()..`) through the model, loading each submodule through
    /// `weights` once, and appends their keys/values to `cache`. Returns the logits
    /// (`[ids.len(), vocab]` with `all_logits`, else `[1, vocab]` for the last position).
    fn forward_tokens<W: Weights>(
        &self,
        weights: &W,
        ids: &[u32],
        cache: &mut KvCache,
        all_logits: bool,
    ) -> Result<Tensor<2>>;

    /// Runs one step of each sequence of `seqs` (`(ids, cache)`: positions `cache.len()..`),
    /// appending to its cache, and returns each one's last-position logits (`[1, vocab]`).
    /// Models load each submodule once for all of them (one weight pass serves every
    /// sequence); the default runs them one after another.
    fn forward_many<W: Weights>(
        &self,
        weights: &W,
        seqs: &mut [(&[u32], &mut KvCache)],
    ) -> Result<Vec<Tensor<2>>> {
        seqs.iter_mut()
            .map(|(ids, cache)| self.forward_tokens(weights, ids, cache, false))
            .collect()
    }

    /// An empty KV cache for this model.
    fn new_cache(&self) -> KvCache;

    /// Vocabulary size (width of the logits).
    fn vocab_size(&self) -> usize;

    /// Most positions the model can take, if bounded.
    fn max_positions(&self) -> Option<usize>;

    /// Tokens that end generation (the config's `eos_token_id`); none by default.
    fn stop_tokens(&self) -> Vec<u32> {
        Vec::new()
    }

    /// `options` with the pieces this model can load one at a time
    /// ([`StreamOptions::with_piece`](crate::StreamOptions::with_piece)) declared; models that
    /// declare pieces load them separately when [`Weights::loads_pieces`] says so. None by
    /// default.
    fn with_pieces(&self, options: crate::StreamOptions) -> crate::StreamOptions {
        options
    }
}

/// Options of [`generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Softmax temperature; `0` (or less) is greedy (ties go to the lowest id).
    pub temperature: f32,
    /// Seed of the sampler.
    pub seed: u64,
    /// Generation stops after any of these tokens.
    pub stop_tokens: Vec<u32>,
    /// Keep the logits of every prompt position in [`Generation::prompt_logits`].
    pub keep_prompt_logits: bool,
}

impl GenerateOptions {
    /// Greedy decoding of `max_tokens` tokens.
    pub fn greedy(max_tokens: usize) -> Self {
        GenerateOptions {
            max_tokens,
            temperature: 0.0,
            seed: 0,
            stop_tokens: Vec::new(),
            keep_prompt_logits: false,
        }
    }

    /// Samples at `temperature` with `seed`.
    pub fn with_temperature(mut self, temperature: f32, seed: u64) -> Self {
        self.temperature = temperature;
        self.seed = seed;
        self
    }

    /// Stops after any of `tokens`.
    pub fn with_stop_tokens(mut self, tokens: Vec<u32>) -> Self {
        self.stop_tokens = tokens;
        self
    }

    /// Keeps the prompt's logits.
    pub fn with_prompt_logits(mut self, keep: bool) -> Self {
        self.keep_prompt_logits = keep;
        self
    }
}

/// What [`generate`] produced.
#[derive(Debug, Clone, Default)]
pub struct Generation {
    /// Generated ids (the prompt not included).
    pub tokens: Vec<u32>,
    /// Logits of every prompt position, if asked for.
    pub prompt_logits: Option<Vec<Vec<f32>>>,
    /// Logits from which the last token was chosen.
    pub last_logits: Vec<f32>,
    /// Time of the prompt's pass (which yields the first token).
    pub prefill: Duration,
    /// Time of each later pass, one per further token.
    pub steps: Vec<Duration>,
    /// Bytes of the KV cache at the end.
    pub kv_cache_bytes: u64,
}

impl Generation {
    /// Passes run (prefill included).
    pub fn passes(&self) -> usize {
        1 + self.steps.len()
    }

    /// Decoding speed: tokens per second over the passes after the prefill (or the prefill's
    /// rate when there were none).
    pub fn tokens_per_second(&self) -> f64 {
        let (n, t) = if self.steps.is_empty() {
            (self.tokens.len(), self.prefill)
        } else {
            (self.steps.len(), self.steps.iter().sum())
        };
        n as f64 / t.as_secs_f64().max(1e-9)
    }

    /// Total time of all passes.
    pub fn total(&self) -> Duration {
        self.prefill + self.steps.iter().sum::<Duration>()
    }
}

/// Generates from `prompt`: one pass over the prompt, then one pass per token with the KV cache.
pub fn generate<M: CausalLm, W: Weights>(
    weights: &W,
    model: &M,
    prompt: &[u32],
    options: &GenerateOptions,
) -> Result<Generation> {
    generate_with(weights, model, prompt, options, |_| {})
}

/// [`generate`], calling `on_token` with each token as soon as it is chosen.
pub fn generate_with<M: CausalLm, W: Weights>(
    weights: &W,
    model: &M,
    prompt: &[u32],
    options: &GenerateOptions,
    mut on_token: impl FnMut(u32),
) -> Result<Generation> {
    check_positions(model, prompt.len(), options).map_err(Error::InvalidArgument)?;
    let mut rng = Rng::new(options.seed);
    let mut cache = model.new_cache();
    let mut out = Generation::default();
    if options.max_tokens == 0 && !options.keep_prompt_logits {
        return Ok(out);
    }
    let t0 = Instant::now();
    let logits = model.forward_tokens(weights, prompt, &mut cache, options.keep_prompt_logits)?;
    let mut rows = to_rows(logits)?;
    out.prefill = t0.elapsed();
    let mut last = rows.pop().unwrap_or_default();
    if options.keep_prompt_logits {
        rows.push(last.clone());
        out.prompt_logits = Some(rows);
    }
    while out.tokens.len() < options.max_tokens {
        let next = sample(&last, options.temperature, &mut rng);
        out.tokens.push(next);
        on_token(next);
        if options.stop_tokens.contains(&next) || out.tokens.len() == options.max_tokens {
            break;
        }
        let t = Instant::now();
        let logits = model.forward_tokens(weights, &[next], &mut cache, false)?;
        last = to_rows(logits)?.pop().unwrap_or_default();
        out.steps.push(t.elapsed());
    }
    out.last_logits = last;
    out.kv_cache_bytes = cache.bytes();
    Ok(out)
}

/// Why a prompt of `prompt_len` tokens cannot take `options.max_tokens` more within the model's
/// positions, if it cannot.
pub(crate) fn check_positions<M: CausalLm>(
    model: &M,
    prompt_len: usize,
    options: &GenerateOptions,
) -> std::result::Result<(), String> {
    match model.max_positions() {
        Some(max) if prompt_len + options.max_tokens > max + 1 => Err(format!(
            "{prompt_len} prompt tokens + {} new ones exceed the model's {max} positions",
            options.max_tokens
        )),
        _ => Ok(()),
    }
}

/// Logits of every position of `ids` (`[ids.len()][vocab]`), in one pass with a fresh cache.
pub fn logits<M: CausalLm, W: Weights>(
    weights: &W,
    model: &M,
    ids: &[u32],
) -> Result<Vec<Vec<f32>>> {
    let mut cache = model.new_cache();
    to_rows(model.forward_tokens(weights, ids, &mut cache, true)?)
}

/// A `[n, vocab]` tensor as `n` rows of `f32`.
pub fn to_rows(t: Tensor<2>) -> Result<Vec<Vec<f32>>> {
    let [n, v] = t.dims();
    let data = t
        .cast(FloatDType::F32)
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| Error::InvalidArgument(format!("cannot read logits: {e:?}")))?;
    Ok((0..n).map(|i| data[i * v..(i + 1) * v].to_vec()).collect())
}
