//! [`SentenceEmbedder::embed_layer_major`]: a chunk of texts through the encoder one layer at a
//! time (each layer read once for the whole chunk), the hidden states in a [`SpillTier`].

use super::{BertInput, SentenceEmbedder, TokenIds, mean_pool_normalize};
use crate::error::{Error, Result};
use crate::layer_major::{LayerMajor, SpillTier};

impl SentenceEmbedder {
    /// One unit-norm embedding per text of `tokens`, in order, computed layer-major: the
    /// embeddings run over every micro-batch of the chunk, then each encoder layer, loaded once,
    /// over every micro-batch, the hidden states between layers kept in `tier` (spilled to disk
    /// beyond its budget). Micro-batches (of the batch size) group texts of similar length, so
    /// little padding is computed.
    ///
    /// The same vectors as [`SentenceEmbedder::embed_tokens`] up to rounding (padding differs).
    pub fn embed_layer_major(
        &self,
        tokens: &[TokenIds],
        tier: &SpillTier,
    ) -> Result<Vec<Vec<f32>>> {
        let Some(device) = self.streamer().device().cloned() else {
            return Err(Error::Skeleton(
                "the BERT skeleton has no parameters".into(),
            ));
        };
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_by_key(|&i| tokens[i].ids.len());
        let batches: Vec<&[usize]> = order.chunks(self.batch_size()).collect();
        let pad = self.config().pad_token_id;
        let inputs = batches
            .iter()
            .map(|rows| {
                let batch: Vec<TokenIds> = rows.iter().map(|&i| tokens[i].clone()).collect();
                BertInput::new(&batch, pad, &device)
            })
            .collect::<Result<Vec<_>>>()?;

        let model = self.model();
        let run = LayerMajor::new(self.streamer(), tier.clone());
        // The rows the chunk's tokens use, read once (the tables are never held whole), then
        // each micro-batch's lookups and the embeddings' LayerNorm.
        let rows = model.embeddings.vocabulary(self.streamer(), &inputs)?;
        let hidden = run.try_start(&model.embeddings.layer_norm, inputs.len(), |norm, i| {
            Ok(norm.forward(rows.lookups(&inputs[i])?))
        })?;
        drop(rows);
        let hidden = run.stages(&model.encoder.layer, hidden, |layer, i, x| {
            layer.forward(x, inputs[i].attention_bias.clone())
        })?;

        let d = self.config().hidden_size;
        let mut out = vec![Vec::new(); tokens.len()];
        for (i, h) in hidden.enumerate() {
            let pooled = mean_pool_normalize(h?, inputs[i].mask.clone());
            let values = pooled
                .try_into_vec_as::<f32>()
                .map_err(|e| Error::InvalidArgument(format!("reading embeddings: {e:?}")))?;
            for (row, &text) in batches[i].iter().enumerate() {
                out[text] = values[row * d..(row + 1) * d].to_vec();
            }
        }
        Ok(out)
    }
}
