//! One [`Architecture`] per built-in model, and the registry that finds a store's.
//!
//! Everything lit knows about a model family sits behind this trait, in the model's own file:
//! the `model_type` its Hugging Face `config.json` names, how to build the lazy skeleton from that
//! config, its tensor names ([`NameRules`]), the least weights budget it can run under, the stream
//! options it needs, and how to synthesize one. The CLI, `lit bench` and [`super::synth`] go
//! through the registry ([`architectures`], [`architecture_for`], [`architecture_of`]) and know no
//! model by name.
//!
//! ```no_run
//! use lit_burn::models::arch::architecture_of;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let source = lit_store::LocalSource::open("model.lit")?;
//! let arch = architecture_of(&source)?; // from the store's config.json
//! println!("{}: {}", arch.model_type(), arch.description());
//! # Ok(())
//! # }
//! ```
//!
//! Adding an architecture: write `models/<name>.rs` with the skeleton (a Burn `Module` built lazily
//! from the config), a unit struct implementing [`Architecture`], and (for a decoder)
//! [`CausalLm`]; then list the struct in [`architectures`].

use super::batch::{BatchOptions, Prompt};
use super::generate::{CausalLm, GenerateOptions, Generation, generate_with};
use super::synth::SynthConfig;
use crate::error::{Error, Result};
use crate::executor::{StreamOptions, Streamer};
use crate::load::{LoadOptions, load_module};
use crate::names::NameRules;
use crate::paths::ParamPaths;
use crate::weights::Resident;
use burn::tensor::Device;
use lit_core::{LayerData, Manifest, WeightSource, WeightSourceExt};
use std::fmt;
use std::sync::Arc;

/// What a model computes, which decides how `lit run` drives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Next-token generation with a causal decoder ([`Architecture::decoder`]).
    Generate,
    /// Sentence embeddings from an encoder.
    Embed,
}

/// A model family lit can build from a store: one implementation per architecture.
pub trait Architecture: Send + Sync + fmt::Debug {
    /// The `model_type` of its Hugging Face `config.json` (`llama`, `gpt2`, `bert`); also the
    /// name `lit run` and `lit synth` know it by.
    fn model_type(&self) -> &'static str;

    /// Other `model_type`s with the same tensors and computation (`mistral` for Llama).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    /// The family in words.
    fn description(&self) -> &'static str;

    /// What it computes.
    fn task(&self) -> Task;

    /// Builds the lazy skeleton that `config` (a `config.json`) describes on `device` and lists its
    /// parameters in visiting (execution) order. Nothing is allocated.
    fn skeleton_params(&self, config: &[u8], device: &Device) -> Result<ParamPaths>;

    /// Its tensor names: from module paths to store names and layouts. With a `manifest`, the
    /// names that store uses (some checkpoints add a prefix such as `transformer.`); without one,
    /// the canonical names (those [`super::synth`] writes).
    fn names(&self, manifest: Option<&Manifest>) -> NameRules;

    /// The least weights budget a store of this model runs under: by default its largest layer;
    /// more when a layer stays loaded for the whole pass (a head tied to the embedding), less
    /// when tables are read only by rows (BERT's embeddings).
    fn min_budget(&self, manifest: &Manifest) -> u64 {
        manifest.largest_layer_bytes()
    }

    /// `options` set up to stream `source` with this model: its [`names`](Self::names) and any
    /// conversion its computation needs.
    fn stream_options(&self, source: &dyn WeightSource, options: StreamOptions) -> StreamOptions {
        options.with_names(self.names(Some(source.manifest())))
    }

    /// The decoder skeleton for `source` (from its `config.json`), for [`Task::Generate`] models.
    fn decoder(&self, source: &dyn WeightSource, device: &Device) -> Result<Box<dyn Decoder>> {
        let _ = (source, device);
        Err(Error::InvalidArgument(format!(
            "{} ({}) is not a decoder: it does not generate text",
            self.model_type(),
            self.description()
        )))
    }

    /// A synthetic model of about `params` parameters, if this architecture can be synthesized.
    fn synth_config(&self, params: u64) -> Option<SynthConfig> {
        let _ = params;
        None
    }
}

/// A decoder skeleton whose type is not known to the caller: what `lit run` needs to generate
/// with any [`CausalLm`] (implemented for all of them).
pub trait Decoder: Send {
    /// A [`Streamer`] over `source` for this skeleton.
    fn streamer(&self, source: Arc<dyn WeightSource>, options: StreamOptions) -> Result<Streamer>;

    /// [`generate_with`], streamed through `streamer`.
    fn generate(
        &self,
        streamer: &Streamer,
        prompt: &[u32],
        options: &GenerateOptions,
        on_token: &mut dyn FnMut(u32),
    ) -> Result<Generation>;

    /// Builds the whole model from `layers` (every layer of the store; dropped once loaded), then
    /// [`generate_with`] it as an ordinary in-memory Burn module.
    fn generate_resident(
        &self,
        layers: Vec<LayerData>,
        load: &LoadOptions,
        prompt: &[u32],
        options: &GenerateOptions,
        on_token: &mut dyn FnMut(u32),
    ) -> Result<Generation>;

    /// Generates a continuation of every prompt (each with its options), `batch.in_flight` at a
    /// time, each weight pass serving all of them ([`crate::models::batch::generate_each`]);
    /// `on_done` gets each prompt's index and generation as it finishes.
    fn generate_many(
        &self,
        streamer: &Streamer,
        prompts: &[Prompt],
        batch: &BatchOptions,
        on_done: &mut dyn FnMut(usize, Generation) -> Result<()>,
    ) -> Result<()>;

    /// Tokens that end generation.
    fn stop_tokens(&self) -> Vec<u32>;
}

impl<M: CausalLm> Decoder for M {
    fn streamer(&self, source: Arc<dyn WeightSource>, options: StreamOptions) -> Result<Streamer> {
        Streamer::new(source, self, self.with_pieces(options))
    }

    fn generate(
        &self,
        streamer: &Streamer,
        prompt: &[u32],
        options: &GenerateOptions,
        on_token: &mut dyn FnMut(u32),
    ) -> Result<Generation> {
        generate_with(streamer, self, prompt, options, on_token)
    }

    fn generate_resident(
        &self,
        layers: Vec<LayerData>,
        load: &LoadOptions,
        prompt: &[u32],
        options: &GenerateOptions,
        on_token: &mut dyn FnMut(u32),
    ) -> Result<Generation> {
        let paths = ParamPaths::from_module(self);
        let (whole, _) = load_module(self, &paths, &layers, load)?;
        drop(layers);
        generate_with(&Resident, &whole, prompt, options, on_token)
    }

    fn generate_many(
        &self,
        streamer: &Streamer,
        prompts: &[Prompt],
        batch: &BatchOptions,
        on_done: &mut dyn FnMut(usize, Generation) -> Result<()>,
    ) -> Result<()> {
        super::batch::generate_each(streamer, self, prompts, batch, on_done)
    }

    fn stop_tokens(&self) -> Vec<u32> {
        CausalLm::stop_tokens(self)
    }
}

/// Every built-in architecture.
pub fn architectures() -> &'static [&'static dyn Architecture] {
    &[
        &super::bert::BertArch,
        &super::llama::LlamaArch,
        &super::gpt2::Gpt2Arch,
    ]
}

/// The supported `model_type`s in words: `bert, llama (or mistral), gpt2`.
pub fn supported() -> String {
    architectures()
        .iter()
        .map(|a| match a.aliases() {
            [] => a.model_type().to_string(),
            more => format!("{} (or {})", a.model_type(), more.join(", ")),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The architecture whose `model_type` (or an alias of it) is `name`.
pub fn architecture_named(name: &str) -> Result<&'static dyn Architecture> {
    architectures()
        .iter()
        .copied()
        .find(|a| a.model_type() == name || a.aliases().contains(&name))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "model_type `{name}` is not supported (supported: {})",
                supported()
            ))
        })
}

/// The architecture of a Hugging Face `config.json`, by its `model_type`.
pub fn architecture_for(config: &[u8]) -> Result<&'static dyn Architecture> {
    let v: serde_json::Value = serde_json::from_slice(config)
        .map_err(|e| Error::InvalidArgument(format!("invalid config.json: {e}")))?;
    match v.get("model_type").and_then(|t| t.as_str()) {
        Some(name) => architecture_named(name),
        None => Err(Error::InvalidArgument(format!(
            "config.json has no `model_type` (supported: {})",
            supported()
        ))),
    }
}

/// The architecture of the model in `source`, from its `config.json`.
pub fn architecture_of(source: &dyn WeightSource) -> Result<&'static dyn Architecture> {
    if source.manifest().aux_index("config.json").is_none() {
        return Err(Error::InvalidArgument(format!(
            "the store has no config.json, so its architecture is unknown (supported: {})",
            supported()
        )));
    }
    architecture_for(&futures::executor::block_on(
        source.read_aux("config.json"),
    )?)
}
