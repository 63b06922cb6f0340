//! Many sequences per weight pass: [`generate_many`] keeps up to `in_flight` prompts generating
//! together, and each pass of the model ([`CausalLm::forward_many`]) loads every submodule once
//! for all of them, so a streamed model is read once per step of *all* the sequences instead of
//! once per token of each. A sequence that stops (a stop token or its token limit) is handed to
//! the caller and its slot taken by the next prompt, whose prompt pass shares the others' step.
//!
//! Each sequence keeps its own KV cache, positions and sampler (seeded as a lone run is), and
//! computes exactly what [`generate`](super::generate::generate) computes for it alone: the
//! outputs are the same, token for token and logit for logit.

use super::decoder::KvCache;
use super::generate::{CausalLm, GenerateOptions, Generation, check_positions, to_rows};
use super::rng::Rng;
use super::sampling::sample;
use crate::error::{Error, Result};
use crate::weights::Weights;
use std::time::Instant;

/// One sequence being generated.
struct Slot {
    index: usize,
    /// Ids for its next pass: the prompt, then the last token chosen.
    input: Vec<u32>,
    cache: KvCache,
    rng: Rng,
    out: Generation,
    done: bool,
}

/// Generates a continuation of every prompt of `prompts`, `in_flight` at a time (at least one),
/// calling `on_done(index, generation)` as each finishes (not in input order: a short one
/// finishes first). `options` apply to each (`keep_prompt_logits` is not supported here).
///
/// A [`Generation`]'s times are those of the shared passes its tokens came from.
pub fn generate_many<M: CausalLm, W: Weights>(
    weights: &W,
    model: &M,
    prompts: &[Vec<u32>],
    options: &GenerateOptions,
    in_flight: usize,
    mut on_done: impl FnMut(usize, Generation) -> Result<()>,
) -> Result<()> {
    if options.keep_prompt_logits {
        return Err(Error::InvalidArgument(
            "generating many sequences does not keep prompt logits".into(),
        ));
    }
    for (i, p) in prompts.iter().enumerate() {
        check_prompt(model, i, p, options)?;
    }
    let mut queue = prompts.iter().enumerate();
    let mut active: Vec<Slot> = Vec::new();
    loop {
        // Fill the free slots from the queue.
        while active.len() < in_flight.max(1) {
            let Some((index, prompt)) = queue.next() else {
                break;
            };
            let out = Generation::default();
            if options.max_tokens == 0 {
                on_done(index, out)?;
                continue;
            }
            active.push(Slot {
                index,
                input: prompt.clone(),
                cache: model.new_cache(),
                rng: Rng::new(options.seed),
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
