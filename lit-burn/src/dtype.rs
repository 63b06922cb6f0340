//! Element types: lit's stored [`DType`] to Burn's.

use burn::tensor::{BoolStore, DType as BurnDType};
use lit_core::DType;

/// Burn's element type for a stored lit type. Stored booleans are one byte each (`BoolStore::U8`
/// would also fit; `Native` is Rust's `bool`, which is what safetensors' BOOL holds).
pub fn to_burn(d: DType) -> BurnDType {
    match d {
        DType::F64 => BurnDType::F64,
        DType::F32 => BurnDType::F32,
        DType::F16 => BurnDType::F16,
        DType::BF16 => BurnDType::BF16,
        DType::I64 => BurnDType::I64,
        DType::I32 => BurnDType::I32,
        DType::I16 => BurnDType::I16,
        DType::I8 => BurnDType::I8,
        DType::U64 => BurnDType::U64,
        DType::U32 => BurnDType::U32,
        DType::U16 => BurnDType::U16,
        DType::U8 => BurnDType::U8,
        DType::Bool => BurnDType::Bool(BoolStore::Native),
    }
}

/// lit's stored type for a Burn element type, if lit can store it.
pub fn from_burn(d: BurnDType) -> Option<DType> {
    Some(match d {
        BurnDType::F64 => DType::F64,
        BurnDType::F32 | BurnDType::Flex32 => DType::F32,
        BurnDType::F16 => DType::F16,
        BurnDType::BF16 => DType::BF16,
        BurnDType::I64 => DType::I64,
        BurnDType::I32 => DType::I32,
        BurnDType::I16 => DType::I16,
        BurnDType::I8 => DType::I8,
        BurnDType::U64 => DType::U64,
        BurnDType::U32 => DType::U32,
        BurnDType::U16 => DType::U16,
        BurnDType::U8 => DType::U8,
        BurnDType::Bool(BoolStore::Native | BoolStore::U8) => DType::Bool,
        _ => return None,
    })
}

/// Whether `d` is an integer type.
pub fn is_int(d: DType) -> bool {
    !d.is_float() && d != DType::Bool
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_sizes() {
        for d in DType::ALL {
            let b = to_burn(d);
            assert_eq!(from_burn(b), Some(d));
            assert_eq!(b.size(), d.size(), "{d}");
        }
    }
}
