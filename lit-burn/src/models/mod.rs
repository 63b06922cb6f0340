//! Built-in architectures, each built as a skeleton from the `config.json` kept in the store and
//! run through the [`crate::Streamer`].
//!
//! Each architecture is one file ([`bert`], [`llama`], [`gpt2`]) holding its config, skeleton,
//! forward pass and its [`arch::Architecture`]; [`arch`] is the registry that finds a store's.
//! Decoders share [`decoder`] (the KV cache, RoPE, attention), [`generate`] (the generation loop
//! over any [`generate::CausalLm`]), [`batch`] (many sequences per weight pass, their rows
//! packed into one matrix product per weight) and
//! [`sampling`]; [`tokenizer`] reads a store's
//! `tokenizer.json` and decodes generated text as it comes; [`chat`] renders the store's chat
//! template. [`synth`] writes seeded synthetic checkpoints of any size, with the tensors
//! each architecture's skeleton has.

pub mod arch;
pub mod batch;
pub mod bert;
pub mod chat;
pub mod decoder;
pub mod generate;
pub mod gpt2;
pub mod kv;
pub mod linear;
pub mod llama;
pub mod packed;
mod rng;
pub mod sampling;
pub mod synth;
pub mod tokenizer;

pub use arch::{Architecture, Task, architecture_for, architecture_of, architectures};
