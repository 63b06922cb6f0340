//! Choosing the next token from logits: greedy (argmax) or seeded temperature sampling.

use super::rng::Rng;

/// Picks a token from `logits`: argmax (lowest id on ties) when `temperature <= 0`, otherwise a
/// draw from `softmax(logits / temperature)`.
pub fn sample_token(logits: &[f32], temperature: f32, seed: u64) -> u32 {
    sample(logits, temperature, &mut Rng::new(seed))
}

/// [`sample_token`] drawing from `rng` (one draw per sampled token, so a generation's tokens
/// follow from its seed).
pub(crate) fn sample(logits: &[f32], temperature: f32, rng: &mut Rng) -> u32 {
    let argmax = || {
        let mut best = 0;
        for (i, &x) in logits.iter().enumerate() {
            if x > logits[best] {
                best = i;
            }
        }
        best as u32
    };
    if temperature <= 0.0 || logits.is_empty() {
        return argmax();
    }
    let t = temperature as f64;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let weights: Vec<f64> = logits
        .iter()
        .map(|&x| ((x as f64 - max) / t).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    if !total.is_finite() || total <= 0.0 {
        return argmax();
    }
    let mut r = rng.next_f64() * total;
    for (i, w) in weights.iter().enumerate() {
        r -= w;
        if r < 0.0 {
            return i as u32;
        }
    }
    argmax()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_ties_and_sampling() {
        assert_eq!(sample_token(&[1.0, 3.0, 3.0, 2.0], 0.0, 0), 1);
        let logits = [0.0, 5.0, 0.0, 0.0];
        let draws: Vec<u32> = (0..200).map(|s| sample_token(&logits, 1.0, s)).collect();
        let ones = draws.iter().filter(|&&d| d == 1).count();
        assert!(ones > 150 && ones < 200, "{ones}");
        assert_eq!(sample_token(&logits, 1.0, 9), sample_token(&logits, 1.0, 9));
    }
}
