//! `export --quantize`: which tensors are quantized, and the per-block error of the round trip
//! (quantize, store, dequantize) within each scheme's bound, derived from the block layout.

use futures::executor::block_on;
use lit_core::quant::dequantize;
use lit_core::{DType, QuantScheme, WeightSource, WeightSourceExt};
use lit_store::{ExportOptions, LocalSource, StoreWriter};

/// A deterministic pseudo-random value in [-1, 1).
fn noise(i: u64) -> f32 {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ 0xD1B5_4A32_D192_ED03;
    let x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

fn write(path: &std::path::Path, tensors: &[(&str, DType, Vec<usize>, Vec<u8>)]) {
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            let dt = lit_store::layer_file::to_safetensors_dtype(*d);
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(dt, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// The largest error a block of `x` may show after a round trip through `q`: half a step (a
/// whole step where Q4_0 clamps its top value), plus the f16 rounding of the scale (relative
/// 2^-11, times the largest quantized magnitude) and of Q4_1's minimum.
fn bound(q: QuantScheme, x: &[f32]) -> f32 {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let min = x.iter().fold(f32::INFINITY, |a, &v| a.min(v));
    let max = x.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    let e = 1.0 / 2048.0;
    let b = match q {
        QuantScheme::Q8_0 => {
            let d = amax / 127.0;
            0.5 * d + 127.0 * d * e
        }
        QuantScheme::Q4_0 => {
            let d = amax / 8.0;
            d + 8.0 * d * e
        }
        QuantScheme::Q4_1 => {
            let d = (max - min) / 15.0;
            0.5 * d + 15.0 * d * e + min.abs() * e
        }
        _ => unreachable!(),
    };
    b * 1.001 + 1e-7
}

#[test]
fn quantize_round_trip_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("m.safetensors");
    // Rows with varied scales, including an outlier per row and an all-zero block.
    let w: Vec<f32> = (0..8 * 96)
        .map(|i| {
            let row = (i / 96) as f32;
            let v = noise(i as u64) * (0.01 + row);
            if i % 96 == 5 {
                v * 20.0
            } else if (32..64).contains(&(i % 96)) && i / 96 == 3 {
                0.0
            } else {
                v
            }
        })
        .collect();
    let emb: Vec<half::f16> = (0..16 * 64)
        .map(|i| half::f16::from_f32(noise(1000 + i)))
        .collect();
    let f32b = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let norm: Vec<f32> = (0..96).map(|i| 1.0 + noise(5000 + i) * 0.1).collect();
    let odd: Vec<f32> = (0..4 * 40).map(|i| noise(7000 + i)).collect();
    write(
        &src,
        &[
            ("enc.layer.0.w.weight", DType::F32, vec![8, 96], f32b(&w)),
            ("enc.layer.0.w.bias", DType::F32, vec![96], f32b(&norm)),
            ("enc.layer.0.norm.weight", DType::F32, vec![96], f32b(&norm)),
            (
                "enc.layer.0.odd.weight",
                DType::F32,
                vec![4, 40],
                f32b(&odd),
            ),
            (
                "emb.weight",
                DType::F16,
                vec![16, 64],
                emb.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        ],
    );
    for q in [QuantScheme::Q8_0, QuantScheme::Q4_0, QuantScheme::Q4_1] {
        let dst = dir.path().join(format!("{q}.lit"));
        let options = ExportOptions {
            quantize: Some(q),
            ..Default::default()
        };
        lit_store::export(
            &src,
            StoreWriter::create_local(&dst).unwrap(),
            &options,
            &lit_core::NoObserver,
        )
        .unwrap();
        let store = LocalSource::open(&dst).unwrap();
        let report = block_on(store.verify(&|_, _, _| {}));
        assert!(report.failed.is_empty());
        assert_eq!(
            store.manifest().metadata_value("quantize"),
            Some(q.as_str())
        );
        // Left as they were: 1-D tensors and a matrix whose rows are not whole blocks.
        for (name, expected) in [
            ("enc.layer.0.w.bias", f32b(&norm)),
            ("enc.layer.0.norm.weight", f32b(&norm)),
            ("enc.layer.0.odd.weight", f32b(&odd)),
        ] {
            let (e, bytes) = block_on(store.read_tensor(name)).unwrap();
            assert_eq!((e.quant, e.dtype), (None, DType::F32), "{name}");
            assert_eq!(&bytes[..], &expected[..], "{name}");
        }
        let emb_f32: Vec<f32> = emb.iter().map(|x| x.to_f32()).collect();
        for (name, x, shape) in [
            ("enc.layer.0.w.weight", &w, [8u64, 96]),
            ("emb.weight", &emb_f32, [16, 64]),
        ] {
            let (e, bytes) = block_on(store.read_tensor(name)).unwrap();
            assert_eq!(
                (e.quant, e.dtype, e.shape.as_slice()),
                (Some(q), DType::U8, &shape[..]),
                "{name}"
            );
            assert_eq!(bytes.len() as u64, q.byte_len(&shape).unwrap());
            let mut y = Vec::new();
            dequantize(q, &bytes, &mut y).unwrap();
            assert_eq!(y.len(), x.len());
            let mut worst = 0f32;
            for (bx, by) in x.chunks(32).zip(y.chunks(32)) {
                let b = bound(q, bx);
                let err = bx
                    .iter()
                    .zip(by)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    err <= b,
                    "{q} {name}: block error {err} above its bound {b}"
                );
                worst = worst.max(err / b.max(1e-30));
            }
            // The bound is tight enough to mean something: the worst block uses a good part of it.
            assert!(
                worst > 0.3,
                "{q} {name}: worst error only {worst} of the bound"
            );
        }
    }
    // K-quants can be read but not produced.
    let options = ExportOptions {
        quantize: Some(QuantScheme::Q4K),
        ..Default::default()
    };
    let err = lit_store::export(
        &src,
        StoreWriter::create_local(dir.path().join("k.lit")).unwrap(),
        &options,
        &lit_core::NoObserver,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("Q4_K") && err.contains("Q8_0"), "{err}");
}
