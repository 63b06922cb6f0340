//! Many sequences per weight pass: [`generate_many`] keeps up to `in_flight` prompts generating
//! together, and each pass of the model ([`CausalLm::forward_many`]) loads every submodule once
//! for all of them, so a streamed model is read once per step of *all* the sequences instead of
//! once per token of each. A sequence that stops (a stop token or its token limit) is handed to
//! the caller and its slot taken by the next prompt, whose prompt pass shares the others' step.
//!
//! Each sequence keeps its own KV cache, positions and sampler (seeded as a lone run is), and
//! computes what [`generate`](super::generate::generate) computes for it alone: the same tokens,
//! and logits that differ only by the order of the sums in the matrix products its rows share
//! with the others'. The caches of all the sequences can share a memory budget and spill to disk
//! beyond it ([`BatchOptions::with_kv_tier`], [`super::kv`]), so the number of sequences in
//! flight is bounded by the disk rather than by memory.

use super::decoder::KvCache;
use super::generate::{CausalLm, GenerateOptions, Generation, check_positions, to_rows};
use super::rng::Rng;
use super::sampling::sample;
use crate::error::{Error, Result};
use crate::layer_major::SpillTier;
use crate::weights::Weights;
use std::time::Instant;

/// One sequence being generated.
struct Slot<'a> {
    index: usize,
    options: &'a GenerateOptions,
    /// Ids for its next pass: the prompt, then the last token chosen.
    input: Vec<u32>,
    cache: KvCache,
    rng: Rng,
    out: Generation,
    done: bool,
}

/// How [`generate_many`] runs its sequences.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Sequences generated together (at least one).
    pub in_flight: usize,
    /// Where the sequences' keys and values live: `None` in memory without a limit, else in
    /// this tier's memory budget and on its disk beyond it.
    pub kv_tier: Option<SpillTier>,
}

impl BatchOptions {
    /// `in_flight` sequences together, their caches in memory.
    pub fn new(in_flight: usize) -> Self {
        BatchOptions {
            in_flight,
            kv_tier: None,
        }
    }

    /// The sequences' keys and values share `tier`'s memory budget and spill to its directory.
    pub fn with_kv_tier(mut self, tier: SpillTier) -> Self {
        self.kv_tier = Some(tier);
        self
    }
}

impl From<usize> for BatchOptions {
    fn from(in_flight: usize) -> Self {
        Self::new(in_flight)
    }
}

/// One prompt for [`generate_each`]: its ids and its own options.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// Token ids.
    pub ids: Vec<u32>,
    /// How to generate its continuation.
    pub options: GenerateOptions,
}

/// Generates a continuation of every prompt of `prompts`, with `options` for each, as
/// [`generate_each`] does.
pub fn generate_many<M: CausalLm, W: Weights>(
    weights: &W,
    model: &M,
    prompts: &[Vec<u32>],
    options: &GenerateOptions,
    batch: impl Into<BatchOptions>,
    on_done: impl FnMut(usize, Generation) -> Result<()>,
) -> Result<()> {
    let prompts: Vec<Prompt> = prompts
        .iter()
        .map(|ids| Prompt {
            ids: ids.clone(),
            options: options.clone(),
        })
        .collect();
    generate_each(weights, model, &prompts, &batch.into(), on_done)
}

/// Generates a continuation of every prompt of `prompts`, each with its own options,
/// `batch.in_flight` at a time, calling `on_done(index, generation)` as each finishes (not in
/// input order: a short one finishes first). `keep_prompt_logits` is not supported here.
///
/// A [`Generation`]'s times are those of the shared passes its tokens came from. Every prompt
/// is checked before anything runs.
pub fn generate_each<M: CausalLm, W: Weights>(
    weights: &W,
    model: &M,
    prompts: &[Prompt],
    batch: &BatchOptions,
    mut on_done: impl FnMut(usize, Generation) -> Result<()>,
) -> Result<()> {
    for (i, p) in prompts.iter().enumerate() {
        if p.options.keep_prompt_logits {
            return Err(Error::InvalidArgument(
                "generating many sequences does not keep prompt logits".into(),
            ));
        }
        check_prompt(model, i, &p.ids, &p.options)?;
    }
    let mut queue = prompts.iter().enumerate();
    let mut active: Vec<Slot<'_>> = Vec::new();
    loop {
        // Fill the free slots from the queue.
        while active.len() < batch.in_flight.max(1) {
            let Some((index, prompt)) = queue.next() else {
                break;
            };
            let out = Generation::default();
            if prompt.options.max_tokens == 0 {
                on_done(index, out)?;
                continue;
            }
            active.push(Slot {
                index,
                input: prompt.ids.clone(),
                cache: model.new_cache().with_tier(batch.kv_tier.as_ref()),
                rng: Rng::new(prompt.options.seed),
                options: &prompt.options,
                out,
                done: false,
            });
        }
        if active.is_empty() {
            return Ok(());
        }
        let t = Instant::now();
        let logits = {
            let mut seqs: Vec<(&[u32], &mut KvCache)> = active
                .iter_mut()
                .map(|s| (s.input.as_slice(), &mut s.cache))
                .collect();
            model.forward_many(weights, &mut seqs)?
        };
        let took = t.elapsed();
        for (slot, logits) in active.iter_mut().zip(logits) {
            let last = to_rows(logits)?.pop().unwrap_or_default();
            if slot.out.tokens.is_empty() {
                slot.out.prefill = took;
            } else {
                slot.out.steps.push(took);
            }
            let options = slot.options;
            let next = sample(&last, options.temperature, &mut slot.rng);
            slot.out.tokens.push(next);
            slot.out.last_logits = last;
            slot.done =
                options.stop_tokens.contains(&next) || slot.out.tokens.len() == options.max_tokens;
            slot.input = vec![next];
        }
        let mut k = 0;
        while k < active.len() {
            if active[k].done {
                let mut slot = active.remove(k);
                slot.out.kv_cache_bytes = slot.cache.bytes();
                on_done(slot.index, slot.out)?;
            } else {
                k += 1;
            }
        }
    }
}

/// Prompt `i` must have ids and fit the model's positions with its new tokens.
fn check_prompt<M: CausalLm>(
    model: &M,
    i: usize,
    prompt: &[u32],
    options: &GenerateOptions,
) -> Result<()> {
    if prompt.is_empty() {
        return Err(Error::InvalidArgument(format!("prompt {i} has no tokens")));
    }
    check_positions(model, prompt.len(), options)
        .map_err(|why| Error::InvalidArgument(format!("prompt {i}: {why}")))
}
