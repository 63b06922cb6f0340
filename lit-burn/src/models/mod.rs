//! Built-in architectures, each built as a skeleton from the `config.json` kept in the store and
//! run through the [`crate::Streamer`].
//!
//! Decoders ([`llama`], [`gpt2`]) share [`decoder`] (how weights arrive, the KV cache, RoPE,
//! attention) and [`generate`] (greedy and temperature sampling over any [`generate::CausalLm`]).
//! [`synth`] writes seeded synthetic checkpoints of any size for them.

pub mod bert;
pub mod decoder;
pub mod generate;
pub mod gpt2;
pub mod linear;
pub mod llama;
mod rng;
pub mod synth;
