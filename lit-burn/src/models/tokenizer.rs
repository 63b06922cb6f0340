//! Tokenizers kept in a store (`tokenizer.json`, Hugging Face `tokenizers`): loading one,
//! encoding a prompt, decoding generated ids.

use crate::error::{Error, Result};
use lit_core::{WeightSource, WeightSourceExt};
use tokenizers::TruncationParams;

pub use tokenizers::Tokenizer;

/// The store's `tokenizer.json`, if it has one, with padding and truncation off.
pub fn store_tokenizer(source: &dyn WeightSource) -> Result<Option<Tokenizer>> {
    if source.manifest().aux_index("tokenizer.json").is_none() {
        return Ok(None);
    }
    let bytes = futures::executor::block_on(source.read_aux("tokenizer.json"))?;
    let bad = |e: tokenizers::Error| Error::InvalidArgument(format!("tokenizer.json: {e}"));
    let mut tokenizer = Tokenizer::from_bytes(&bytes).map_err(bad)?;
    // Prompts are neither padded nor cut (some tokenizer.json files pad to a fixed length).
    tokenizer.with_padding(None);
    tokenizer.with_truncation(None).map_err(bad)?;
    Ok(Some(tokenizer))
}

/// Loads a `tokenizer.json`, with padding off (an encoder pads each batch to its longest text)
/// and truncation at `max_length` tokens.
///
/// Hugging Face `tokenizer.json` files of sentence-transformers models often pad every input to
/// a fixed 128 and truncate there; both are overridden.
pub fn tokenizer_from_json(bytes: &[u8], max_length: usize) -> Result<Tokenizer> {
    let mut tokenizer = Tokenizer::from_bytes(bytes)
        .map_err(|e| Error::InvalidArgument(format!("tokenizer.json: {e}")))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length,
            ..TruncationParams::default()
        }))
        .map_err(|e| Error::InvalidArgument(format!("tokenizer truncation: {e}")))?;
    Ok(tokenizer)
}

/// `text` as token ids (with the tokenizer's special tokens, e.g. a BOS).
pub fn encode(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    let encoding = tokenizer
        .encode(text, true)
        .map_err(|e| Error::InvalidArgument(format!("cannot tokenize the prompt: {e}")))?;
    Ok(encoding.get_ids().to_vec())
}

/// `ids` as text (special tokens skipped).
pub fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> Result<String> {
    tokenizer
        .decode(ids, true)
        .map_err(|e| Error::InvalidArgument(format!("cannot decode ids: {e}")))
}
