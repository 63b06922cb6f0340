//! [`SentenceEmbedder`]: texts in, unit vectors out, with the config, tokenizer and weights all
//! read from one store.

use super::{Bert, BertConfig, TokenIds};
use crate::error::{Error, Result};
use crate::executor::{StreamOptions, Streamer};
use crate::models::tokenizer::{Tokenizer, tokenizer_from_json};
use burn::tensor::Device;
use futures::executor::block_on;
use lit_core::{WeightSource, WeightSourceExt};
use std::sync::Arc;

/// Longest input in tokens, special tokens included: `max_seq_length` of
/// `sentence-transformers` models such as all-MiniLM-L6-v2.
pub const DEFAULT_MAX_LENGTH: usize = 256;

/// Texts per encoder pass in [`SentenceEmbedder::embed`].
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// A BERT sentence encoder streamed from a store: tokenizer, skeleton and [`Streamer`].
#[derive(Debug)]
pub struct SentenceEmbedder {
    config: BertConfig,
    model: Bert,
    tokenizer: Tokenizer,
    streamer: Streamer,
    batch_size: usize,
}

impl SentenceEmbedder {
    /// Opens the model in `source`: reads its `config.json` and `tokenizer.json`, builds the
    /// skeleton on `device` and a [`Streamer`] with `options` (its names are replaced by
    /// [`Bert::names_for`] the store).
    pub fn open(
        source: Arc<dyn WeightSource>,
        device: &Device,
        options: StreamOptions,
    ) -> Result<Self> {
        let json = block_on(source.read_aux("tokenizer.json"))?;
        let tokenizer = tokenizer_from_json(&json, DEFAULT_MAX_LENGTH)?;
        Self::with_tokenizer(source, tokenizer, device, options)
    }

    /// [`SentenceEmbedder::open`] with a tokenizer of the caller's (see
    /// [`tokenizer_from_json`]; padding must be off).
    pub fn with_tokenizer(
        source: Arc<dyn WeightSource>,
        tokenizer: Tokenizer,
        device: &Device,
        options: StreamOptions,
    ) -> Result<Self> {
        let config = BertConfig::from_json(&block_on(source.read_aux("config.json"))?)?;
        let model = config.init(device);
        let names = Bert::names_for(source.manifest());
        let options = Bert::rows_only(source.manifest(), options.with_names(names));
        let streamer = Streamer::new(source, &model, options)?;
        Ok(SentenceEmbedder {
            config,
            model,
            tokenizer,
            streamer,
            batch_size: DEFAULT_BATCH_SIZE,
        })
    }

    /// Runs at most `n` texts per encoder pass (each pass streams the whole model once).
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Token ids of `texts` (`[CLS] … [SEP]`, truncated, not padded).
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<TokenIds>> {
        let max = self.config.max_position_embeddings;
        texts
            .iter()
            .map(|&text| {
                let enc = self
                    .tokenizer
                    .encode(text, true)
                    .map_err(|e| Error::InvalidArgument(format!("tokenizing {text:?}: {e}")))?;
                if enc.get_ids().len() > max {
                    return Err(Error::InvalidArgument(format!(
                        "{} tokens exceed the model's {max} positions (enable truncation)",
                        enc.get_ids().len()
                    )));
                }
                Ok(TokenIds {
                    ids: enc.get_ids().to_vec(),
                    type_ids: enc.get_type_ids().to_vec(),
                })
            })
            .collect()
    }

    /// One unit-norm embedding per text, in order; texts are batched by the batch size.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_tokens(&self.tokenize(texts)?)
    }

    /// [`SentenceEmbedder::embed`] for texts already tokenized.
    pub fn embed_tokens(&self, tokens: &[TokenIds]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(tokens.len());
        for batch in tokens.chunks(self.batch_size) {
            out.extend(
                self.model
                    .embed(&self.streamer, batch, self.config.pad_token_id)?,
            );
        }
        Ok(out)
    }

    /// Texts per encoder pass (per micro-batch in [`SentenceEmbedder::embed_layer_major`]).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The model configuration.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The lazy skeleton.
    pub fn model(&self) -> &Bert {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The streamer (statistics, plan).
    pub fn streamer(&self) -> &Streamer {
        &self.streamer
    }
}
