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

/// `text` that already holds its special tokens as text (a rendered chat template, see
/// [`super::chat`]) as token ids: special tokens such as `<|im_start|>` are recognised, none are
/// added (the template wrote the BOS if the model wants one), as `transformers`'
/// `apply_chat_template(tokenize=True)`.
pub fn encode_chat(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    let encoding = tokenizer
        .encode(text, false)
        .map_err(|e| Error::InvalidArgument(format!("cannot tokenize the chat prompt: {e}")))?;
    Ok(encoding.get_ids().to_vec())
}

/// The ids of those `tokens` the tokenizer knows as single tokens (e.g. `<|im_end|>`).
pub fn token_ids_of(tokenizer: &Tokenizer, tokens: &[&str]) -> Vec<u32> {
    tokens
        .iter()
        .filter_map(|t| tokenizer.token_to_id(t))
        .collect()
}

/// Text of generated ids as they arrive, in whole characters: each [`push`](Self::push) decodes
/// the whole sequence so far (special tokens skipped) and returns what it adds to the text
/// already returned. A character whose bytes are split across tokens (byte-level BPE) is held
/// back until its last byte arrives, so no replacement character (`U+FFFD`) is ever returned for a
/// character that is still coming. With decoders that only append to the text (byte-level BPE,
/// SentencePiece), the pieces put together equal [`decode`] of all the ids.
#[derive(Debug)]
pub struct TextStream<'a> {
    tokenizer: &'a Tokenizer,
    ids: Vec<u32>,
    shown: String,
}

impl<'a> TextStream<'a> {
    /// A stream with no ids yet.
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        TextStream {
            tokenizer,
            ids: Vec::new(),
            shown: String::new(),
        }
    }

    /// Adds `id`; returns the new complete text (empty while a character is incomplete).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = decode(self.tokenizer, &self.ids)?;
        // Hold back a trailing replacement character: the start of a character whose other bytes
        // are in tokens still to come.
        let complete = text.trim_end_matches(char::REPLACEMENT_CHARACTER);
        Ok(self.advance(complete))
    }

    /// The text not returned yet, once no more ids will come: what an incomplete last character
    /// decodes to (replacement characters), or nothing.
    pub fn finish(&mut self) -> Result<String> {
        let text = decode(self.tokenizer, &self.ids)?;
        Ok(self.advance(&text))
    }

    /// All the text returned so far.
    pub fn text(&self) -> &str {
        &self.shown
    }

    /// What `text` (the decoding of every id so far) adds to what was shown. Decoders of
    /// byte-level BPE only ever append; should one rewrite the end of the text (WordPiece's
    /// clean-up joining a word to the one before), the text from where the two differ is returned.
    fn advance(&mut self, text: &str) -> String {
        if text.len() <= self.shown.len() && self.shown.starts_with(text) {
            return String::new();
        }
        let common = self
            .shown
            .char_indices()
            .zip(text.chars())
            .find(|((_, a), b)| a != b)
            .map_or(self.shown.len().min(text.len()), |((i, _), _)| i);
        let new = text[common..].to_string();
        self.shown.truncate(common);
        self.shown.push_str(&new);
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-level BPE with no merges: one token per byte, so multi-byte characters always
    /// arrive split across tokens.
    fn bytes_tokenizer() -> Tokenizer {
        let mut alphabet: Vec<String> =
            tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
                .into_iter()
                .map(String::from)
                .collect();
        alphabet.sort();
        let vocab: serde_json::Map<String, serde_json::Value> = alphabet
            .into_iter()
            .enumerate()
            .map(|(i, c)| (c, i.into()))
            .collect();
        let byte_level = serde_json::json!({"type": "ByteLevel", "add_prefix_space": false,
            "trim_offsets": true, "use_regex": true});
        let json = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": byte_level, "post_processor": byte_level,
            "decoder": byte_level,
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
                "byte_fallback": false, "vocab": vocab, "merges": []},
        });
        Tokenizer::from_bytes(serde_json::to_vec(&json).unwrap()).unwrap()
    }

    #[test]
    fn streamed_text_holds_back_split_characters() {
        let t = bytes_tokenizer();
        let text = "a é€😀 z";
        let ids = encode(&t, text).unwrap();
        assert_eq!(ids.len(), text.len(), "one token per byte");
        let mut stream = TextStream::new(&t);
        let mut pieces = Vec::new();
        for &id in &ids {
            pieces.push(stream.push(id).unwrap());
        }
        assert_eq!(stream.finish().unwrap(), "");
        // A character appears with its last byte, whole; nothing before.
        let expected: Vec<String> = text
            .chars()
            .flat_map(|c| {
                let mut per_byte = vec![String::new(); c.len_utf8() - 1];
                per_byte.push(c.to_string());
                per_byte
            })
            .collect();
        assert_eq!(pieces, expected);
        assert_eq!(stream.text(), text);
    }

    #[test]
    fn an_unfinished_character_comes_out_at_the_end() {
        let t = bytes_tokenizer();
        let ids = encode(&t, "x😀").unwrap();
        let mut stream = TextStream::new(&t);
        let shown: String = ids[..3]
            .iter()
            .map(|&id| stream.push(id).unwrap())
            .collect();
        assert_eq!(shown, "x", "the emoji's first two bytes are held back");
        // Generation ended mid-character: the partial bytes decode as a replacement character.
        assert_eq!(stream.finish().unwrap(), "\u{FFFD}");
    }
}
