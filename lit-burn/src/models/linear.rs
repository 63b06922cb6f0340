//! [`linear`]: `Linear::forward` without a hidden copy of the weight.
//!
//! Checkpoints store linear weights as PyTorch's `[out, in]`; lit loads them zero-copy into
//! `LinearLayout::Col`, where Burn's parameter is a transposed (strided) view. For an input of
//! rank 3 or more, Burn 0.22's `linear` may reshape the weight to `[1, in, out]` for a batched
//! matmul, and reshaping a transposed view copies it: the whole weight, on every call. Measured on
//! a 988 MB Llama decoding one token at a time on Flex: 78% of the time went to that copy, 191 ms
//! a token against candle's 24 ms. Folding the leading dimensions into rows keeps it one strided
//! 2-D matmul (`gemm` reads the view in place).
//!
//! A weight kept as quantized blocks is multiplied on its blocks ([`crate::blocks::matmul`]).

use crate::blocks;
use burn::nn::Linear;
use burn::tensor::Tensor;

/// `layer.forward(x)`, computed as `x.reshape([rows, in]) · W (+ b)` so the weight is never
/// copied, whatever its layout; on the quantized blocks when the weight holds them
/// ([`crate::blocks`]).
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let y = blocks::matmul(x, &layer.weight);
    match &layer.bias {
        Some(bias) => y + bias.val().unsqueeze::<D>(),
        None => y,
    }
}

#[cfg(test)]
mod tests {
    use super::linear;
    use burn::nn::{LinearConfig, LinearLayout};
    use burn::tensor::{Device, Tensor, TensorData};

    #[test]
    fn equals_burns_linear_for_both_layouts_and_ranks() {
        let device = Device::flex();
        for layout in [LinearLayout::Row, LinearLayout::Col] {
            let layer = LinearConfig::new(6, 5).with_layout(layout).init(&device);
            let data: Vec<f32> = (0..2 * 3 * 6).map(|i| (i as f32 * 0.37).sin()).collect();
            let x3 = Tensor::<3>::from_data(TensorData::new(data.clone(), [2, 3, 6]), &device);
            let expected = layer.forward(x3.clone()).into_data();
            linear(&layer, x3)
                .into_data()
                .assert_approx_eq::<f32>(&expected, Default::default());
            let x2 = Tensor::<2>::from_data(TensorData::new(data, [6, 6]), &device);
            let expected = layer.forward(x2.clone()).into_data();
            linear(&layer, x2)
                .into_data()
                .assert_approx_eq::<f32>(&expected, Default::default());
        }
    }
}
