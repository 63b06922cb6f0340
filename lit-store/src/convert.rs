//! Float dtype conversion for `--dtype` (through the `half` crate; round to nearest even).

use half::{bf16, f16};
use lit_core::DType;

/// Converts little-endian `data` of float type `from` to float type `to`.
/// Returns `None` if either type is not a float type.
pub fn convert_floats(data: &[u8], from: DType, to: DType) -> Option<Vec<u8>> {
    if !from.is_float() || !to.is_float() {
        return None;
    }
    if from == to {
        return Some(data.to_vec());
    }
    let values = data.chunks_exact(from.size()).map(|c| match from {
        DType::F64 => f64::from_le_bytes(c.try_into().expect("8 bytes")),
        DType::F32 => f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64,
        DType::F16 => f16::from_le_bytes(c.try_into().expect("2 bytes")).to_f64(),
        _ => bf16::from_le_bytes(c.try_into().expect("2 bytes")).to_f64(),
    });
    let mut out = Vec::with_capacity(data.len() / from.size() * to.size());
    match to {
        DType::F64 => values.for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::F32 => values.for_each(|v| out.extend_from_slice(&(v as f32).to_le_bytes())),
        DType::F16 => values.for_each(|v| out.extend_from_slice(&f16::from_f64(v).to_le_bytes())),
        _ => values.for_each(|v| out.extend_from_slice(&bf16::from_f64(v).to_le_bytes())),
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_to_half_types_and_back() {
        let xs = [0.0f32, 1.0, -2.5, 65504.0, 1e-3, f32::INFINITY];
        let data: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
        for to in [DType::F16, DType::BF16] {
            let half = convert_floats(&data, DType::F32, to).unwrap();
            assert_eq!(half.len(), xs.len() * 2);
            let back = convert_floats(&half, to, DType::F32).unwrap();
            for (x, c) in xs.iter().zip(back.chunks_exact(4)) {
                let y = f32::from_le_bytes(c.try_into().unwrap());
                assert!(x == &y || ((x - y) / x).abs() < 1e-2, "{to}: {x} -> {y}");
            }
        }
        assert_eq!(convert_floats(&data, DType::F32, DType::I32), None);
    }
}
