//! The block kernels and lazy block parameters against lit-core's dequantizer (itself checked bit
//! for bit against the `gguf` package's in `tests/smollm2.rs`) and an f64 matmul.

use super::*;
use crate::{LoadOptions, NameRules, ParamPaths, load_module};
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, LinearLayout};
use lit_core::{DType, LayerData, LayerEntry, TensorEntry};

const SCHEMES: [QuantScheme; 6] = [
    QuantScheme::Q8_0,
    QuantScheme::Q4_0,
    QuantScheme::Q4_1,
    QuantScheme::Q4K,
    QuantScheme::Q5K,
    QuantScheme::Q6K,
];

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

fn f16_bytes(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_le_bytes()
}

/// `rows` rows of random blocks of `scheme` (`cols` elements each), with finite scales: every
/// bit pattern of the quants is exercised, and the scales stay in a realistic range.
fn random_blocks(scheme: QuantScheme, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let block = scheme.block_bytes() as usize;
    let blocks = rows * cols / scheme.block_elems() as usize;
    let mut out = Vec::with_capacity(blocks * block);
    for _ in 0..blocks {
        let mut b: Vec<u8> = (0..block).map(|_| rng.next() as u8).collect();
        let d = f16_bytes(0.01 + 0.05 * rng.unit().abs());
        let m = f16_bytes(0.02 * rng.unit());
        match scheme {
            QuantScheme::Q8_0 | QuantScheme::Q4_0 => b[..2].copy_from_slice(&d),
            QuantScheme::Q4_1 | QuantScheme::Q4K | QuantScheme::Q5K => {
                b[..2].copy_from_slice(&d);
                b[2..4].copy_from_slice(&m);
            }
            QuantScheme::Q6K => b[block - 2..].copy_from_slice(&d),
        }
        out.extend_from_slice(&b);
    }
    out
}

fn cols_for(scheme: QuantScheme) -> usize {
    // Several blocks per row, and not a power of two of them.
    3 * scheme.block_elems() as usize
}

/// `x · Wᵀ` in f64 from lit-core's decoded `W` (`[rows, cols]`).
fn reference(w: &[f32], rows: usize, cols: usize, x: &[f32], n: usize) -> Vec<f64> {
    let mut y = vec![0f64; n * rows];
    for i in 0..n {
        for r in 0..rows {
            y[i * rows + r] = (0..cols)
                .map(|c| f64::from(x[i * cols + c]) * f64::from(w[r * cols + c]))
                .sum();
        }
    }
    y
}

fn decoded(scheme: QuantScheme, bytes: &[u8]) -> Vec<f32> {
    let mut w = Vec::new();
    quant::dequantize(scheme, bytes, &mut w).unwrap();
    w
}

#[test]
fn block_matmul_equals_the_decoded_matmul_for_every_scheme() {
    let device = Device::flex();
    let mut rng = Rng(0x5eed);
    for scheme in SCHEMES {
        let (rows, cols) = (37, cols_for(scheme));
        let bytes = random_blocks(scheme, rows, cols, &mut rng);
        let w = decoded(scheme, &bytes);
        let m = BlockMatrix::new(scheme, rows, cols, bytes.into()).unwrap();
        // Few rows take the dot kernels, many the decoded tiles.
        // The portable kernels too, where the CPU takes the SIMD ones.
        for (n, portable) in [
            (1, false),
            (1, true),
            (3, false),
            (3, true),
            (DOT_ROWS, false),
            (DOT_ROWS, true),
            (DOT_ROWS + 1, false),
            (40, false),
        ] {
            let x: Vec<f32> = (0..n * cols).map(|_| rng.unit()).collect();
            let want = reference(&w, rows, cols, &x, n);
            let got = if portable {
                // One thread: the flag is per thread.
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .unwrap();
                pool.install(|| kernels::portable(|| m.matmul_transposed_f32(&x, n)))
            } else {
                // Through Burn: dot products, or decoded tiles above DOT_ROWS.
                let t = Tensor::<2>::from_data(TensorData::new(x.clone(), [n, cols]), &device);
                m.matmul_transposed(t)
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap()
            };
            assert_eq!(got.len(), want.len());
            let scale: f64 = want.iter().map(|v| v.abs()).sum::<f64>() / want.len() as f64;
            for (k, (g, e)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(*g) - e).abs() <= 1e-5 * scale.max(1.0) * cols as f64,
                    "{scheme} n={n} portable={portable} element {k}: {g} vs {e}"
                );
            }
        }
        assert_eq!(m.decode(), w, "{scheme}: decode is the dequantizer's");
    }
}

#[test]
fn weight_groups_and_tasks_do_not_change_the_product() {
    // 6000 rows × 8 activation rows: more than one task's multiply-adds (4 × MIN_TASK_MACS for
    // several rows), so the weight is split between tasks, and within a task walked in groups of
    // 1, 3 and all rows (a remainder too).
    let mut rng = Rng(0x6709);
    for scheme in SCHEMES {
        let (rows, cols, n) = (6000, cols_for(scheme), 8);
        assert!(rows * cols * n > 4 * MIN_TASK_MACS, "one task only");
        let bytes = random_blocks(scheme, rows, cols, &mut rng);
        let w = decoded(scheme, &bytes);
        let m = BlockMatrix::new(scheme, rows, cols, bytes.into()).unwrap();
        let x: Vec<f32> = (0..n * cols).map(|_| rng.unit()).collect();
        let want = reference(&w, rows, cols, &x, n);
        let whole = m.dot_rows(&x, n, usize::MAX);
        let scale: f64 = want.iter().map(|v| v.abs()).sum::<f64>() / want.len() as f64;
        for (k, (g, e)) in whole.iter().zip(&want).enumerate() {
            assert!(
                (f64::from(*g) - e).abs() <= 1e-5 * scale.max(1.0) * cols as f64,
                "{scheme} element {k}: {g} vs {e}"
            );
        }
        for group_bytes in [1, 3 * m.row_bytes, GROUP_BYTES] {
            assert_eq!(
                m.dot_rows(&x, n, group_bytes),
                whole,
                "{scheme}, groups of {group_bytes} bytes"
            );
        }
        // Each activation row alone gives its row of the product, bit for bit.
        for (i, xi) in x.chunks_exact(cols).enumerate() {
            assert_eq!(
                m.matmul_transposed_f32(xi, 1),
                whole[i * rows..(i + 1) * rows],
                "{scheme}, activation row {i}"
            );
        }
    }
}

#[test]
fn rows_decode_exactly_and_out_of_range_ids_are_none() {
    let mut rng = Rng(7);
    for scheme in SCHEMES {
        let (rows, cols) = (9, cols_for(scheme));
        let bytes = random_blocks(scheme, rows, cols, &mut rng);
        let w = decoded(scheme, &bytes);
        let m = BlockMatrix::new(scheme, rows, cols, bytes.into()).unwrap();
        let got = m.decode_rows(&[8, 0, 8, 3]).unwrap();
        let want: Vec<f32> = [8, 0, 8, 3]
            .iter()
            .flat_map(|&r| w[r * cols..(r + 1) * cols].iter().copied())
            .collect();
        assert_eq!(got, want, "{scheme}");
        assert!(m.decode_rows(&[9]).is_none());
        assert!(m.decode_rows(&[usize::MAX]).is_none());
    }
}

#[test]
fn a_length_that_is_not_the_matrix_is_an_error() {
    let scheme = QuantScheme::Q4_0;
    let bytes = vec![0u8; 18 * 3];
    let err = BlockMatrix::new(scheme, 2, 64, bytes.into()).unwrap_err();
    assert!(err.to_string().contains("2×64"), "{err}");
}

#[derive(Module, Debug)]
struct Net {
    embed: Embedding,
    row: Linear,
    col: Linear,
}

fn tensor(
    name: &str,
    scheme: QuantScheme,
    shape: [usize; 2],
    at: &mut Vec<u8>,
    rng: &mut Rng,
) -> TensorEntry {
    let bytes = random_blocks(scheme, shape[0], shape[1], rng);
    let offset = at.len() as u64;
    at.extend_from_slice(&bytes);
    TensorEntry {
        name: name.into(),
        dtype: DType::U8,
        shape: shape.iter().map(|&d| d as u64).collect(),
        offset,
        len: bytes.len() as u64,
        quant: Some(scheme),
        checksum: None,
    }
}

/// A module loaded with block compute holds its blocks lazily, computes on them, and gives the
/// same tensors as a decoding load when asked for them.
#[test]
fn loaded_blocks_compute_like_decoded_weights() {
    let device = Device::flex();
    let (vocab, hidden, out) = (11, 64, 96);
    let skeleton = Net {
        embed: EmbeddingConfig::new(vocab, hidden).init(&device),
        // Row layout with the stored `[out, in]` named transposed, and Col layout as stored.
        row: LinearConfig::new(hidden, out).init(&device),
        col: LinearConfig::new(hidden, out)
            .with_layout(LinearLayout::Col)
            .init(&device),
    };
    let mut rng = Rng(99);
    let mut bytes = Vec::new();
    let mut tensors = vec![
        tensor(
            "embed.weight",
            QuantScheme::Q8_0,
            [vocab, hidden],
            &mut bytes,
            &mut rng,
        ),
        tensor(
            "row.weight",
            QuantScheme::Q4_1,
            [out, hidden],
            &mut bytes,
            &mut rng,
        ),
        tensor(
            "col.weight",
            QuantScheme::Q4_0,
            [out, hidden],
            &mut bytes,
            &mut rng,
        ),
    ];
    for name in ["row.bias", "col.bias"] {
        let values: Vec<f32> = (0..out).map(|_| rng.unit()).collect();
        let offset = bytes.len() as u64;
        bytes.extend_from_slice(bytemuck::cast_slice(&values));
        tensors.push(TensorEntry {
            name: name.into(),
            dtype: DType::F32,
            shape: vec![out as u64],
            offset,
            len: (out * 4) as u64,
            quant: None,
            checksum: None,
        });
    }
    let layer = LayerData {
        index: 0,
        entry: LayerEntry {
            name: "all".into(),
            key: "all".into(),
            byte_len: bytes.len() as u64,
            checksum: 0,
            tensors,
        },
        bytes: bytes.into(),
    };
    let paths = ParamPaths::from_module(&skeleton);
    let names = NameRules::default().transpose_if(|p| p.path == "row.weight");
    let options = LoadOptions::default().with_names(names);
    let (decoded, _) =
        load_module(&skeleton, &paths, std::slice::from_ref(&layer), &options).unwrap();
    let (kept, report) = load_module(
        &skeleton,
        &paths,
        std::slice::from_ref(&layer),
        &options.clone().with_block_compute(true),
    )
    .unwrap();
    assert!(
        report.copied.iter().all(|n| !n.ends_with("weight")),
        "{report:?}"
    );
    for w in [&kept.embed.weight, &kept.row.weight, &kept.col.weight] {
        assert!(of(w).is_some(), "kept as blocks");
    }

    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![3i64, 0, 10, 3], [2, 2]), &device);
    let want = decoded.embed.forward(ids).into_data();
    let got = rows(&kept.embed.weight, &[3, 0, 10, 3])
        .unwrap()
        .reshape([2, 2, hidden])
        .into_data();
    assert_eq!(got, want, "embedding rows are decoded exactly");
    assert!(rows(&kept.embed.weight, &[11]).is_err());

    let x_values: Vec<f32> = (0..2 * 3 * hidden).map(|_| rng.unit()).collect();
    let x = Tensor::<3>::from_data(TensorData::new(x_values, [2, 3, hidden]), &device);
    for (k, d) in [(&kept.row, &decoded.row), (&kept.col, &decoded.col)] {
        let want = d.forward(x.clone()).into_data();
        let got = crate::models::linear::linear(k, x.clone()).into_data();
        got.assert_approx_eq::<f32>(&want, burn::tensor::Tolerance::absolute(1e-4));
    }
    let head = matmul_transposed(x.clone(), &kept.embed.weight).into_data();
    let want = x
        .matmul(decoded.embed.weight.val().transpose().unsqueeze::<3>())
        .into_data();
    head.assert_approx_eq::<f32>(&want, burn::tensor::Tolerance::absolute(1e-4));

    // Anything else that reads the weights gets them decoded, in the parameter's own layout.
    for (k, d) in [
        (&kept.embed.weight, &decoded.embed.weight),
        (&kept.row.weight, &decoded.row.weight),
        (&kept.col.weight, &decoded.col.weight),
    ] {
        assert_eq!(k.val().into_data(), d.val().into_data());
        assert!(of(k).is_none(), "decoded now");
    }
}

#[test]
fn the_registry_does_not_keep_blocks_alive() {
    let device = Device::flex();
    let mut rng = Rng(3);
    let bytes = random_blocks(QuantScheme::Q8_0, 4, 32, &mut rng);
    let m = BlockMatrix::new(QuantScheme::Q8_0, 4, 32, bytes.into()).unwrap();
    let param: Param<Tensor<2>> = lazy_param(m, false, device, vec![4, 32]);
    let weak = Arc::downgrade(&of(&param).unwrap().matrix);
    drop(param);
    assert!(weak.upgrade().is_none());
}

/// Mean wall time of `f` over `reps` calls.
fn seconds_per_call(reps: u32, mut f: impl FnMut()) -> f64 {
    let t = std::time::Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() / f64::from(reps)
}

#[test]
#[ignore]
fn microbench() {
    let mut rng = Rng(1);
    for (scheme, rows, cols) in [
        (QuantScheme::Q4_1, 1536, 576),
        (QuantScheme::Q4_1, 576, 1536),
        (QuantScheme::Q8_0, 49152, 576),
        (QuantScheme::Q4K, 576, 1536),
        (QuantScheme::Q6K, 576, 1536),
    ] {
        let bytes = random_blocks(scheme, rows, cols, &mut rng);
        let m = BlockMatrix::new(scheme, rows, cols, bytes.into()).unwrap();
        let x: Vec<f32> = (0..cols).map(|_| rng.unit()).collect();
        let s = seconds_per_call(200, || {
            std::hint::black_box(m.matmul_transposed_f32(&x, 1));
        });
        let mut out = vec![0f32; rows];
        let s1 = seconds_per_call(200, || {
            kernels::rows_dot(scheme, &m.bytes, m.row_bytes, &x, &mut out).unwrap();
        });
        println!(
            "{scheme} {rows}x{cols}: {:.3} ms ({:.2} GMAC/s), one thread {:.3} ms ({:.2} GMAC/s)",
            s * 1e3,
            (rows * cols) as f64 / s / 1e9,
            s1 * 1e3,
            (rows * cols) as f64 / s1 / 1e9
        );
        // Several activation rows: one call (the weight walked once) against one call per row
        // (walked once per row, as before weight groups).
        for n in [2, 4, 8] {
            let x: Vec<f32> = (0..n * cols).map(|_| rng.unit()).collect();
            let together = seconds_per_call(50, || {
                std::hint::black_box(m.matmul_transposed_f32(&x, n));
            });
            let apart = seconds_per_call(50, || {
                for xi in x.chunks_exact(cols) {
                    std::hint::black_box(m.matmul_transposed_f32(xi, 1));
                }
            });
            println!(
                "  {n} rows: together {:.3} ms, one row at a time {:.3} ms ({:.2}x)",
                together * 1e3,
                apart * 1e3,
                apart / together
            );
        }
    }
}
