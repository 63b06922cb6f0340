//! Burn's own quantized tensors against lit's dequantize-on-load, on Flex, for decoder-sized
//! matmuls (issue 13, item 3: "measure both ways and keep the faster").
//!
//! ```sh
//! cargo run --release -p lit-burn --example quant_matmul [-- ROUNDS]
//! ```
//!
//! For each weight `W` `[out, in]` (PyTorch layout, blocks of 32 along `in`, as in a store) and
//! each input `x` `[tokens, in]`, one run times, interleaved, the median of `ROUNDS` calls of:
//!
//! - `lit resident`: `x · Wᵀ` on the f32 weight lit decoded once when the layer was loaded (a
//!   resident layer; Flex's f32 matmul on a transposed view, as `lit_burn::models::linear` runs);
//! - `lit streamed`: decode the GGML blocks to f32 (lit-core's decoder, split over the cores into
//!   huge-page memory as lit-burn's loader does) and then the f32 matmul: what a streamed layer
//!   costs per pass;
//! - `burn resident`: `x · Wqᵀ` with `Wq` a Burn quantized tensor (`QFloat`, Q8S or Q4F, blocks of
//!   32, f16 scales: the schemes GGUF Q8_0 and Q4_0 map onto). Burn 0.22 has no quantized matmul
//!   kernel on Flex: `q_matmul` dequantizes `Wq` whole, then runs the f32 matmul, on every call;
//! - `burn streamed`: build `Wq` from its serialized bytes (`Tensor::from_data` of a `QFloat`
//!   `TensorData`, what a loader would do per pass), then the matmul.
//!
//! Burn's tensor is quantized from the same f32 weights by Burn itself (`quantize_dynamic`), so
//! its scales are Burn's, not the GGUF file's; the timing does not depend on the values.

use burn::tensor::quantization::{QuantScheme, QuantStore, QuantValue, ScaleDtype};
use burn::tensor::{AllocationProperty, Bytes, DType, Device, Tensor, TensorData};
use lit_core::quant::{self, QuantScheme as LitScheme};
use std::time::Instant;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let device = Device::flex();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("Flex, {threads} threads, median of {rounds} calls each (ms); ratio = burn / lit");
    println!(
        "{:<6} {:>11} {:>6} | {:>12} {:>13} {:>6} | {:>12} {:>13} {:>6} | {:>11}",
        "scheme",
        "weight",
        "tokens",
        "lit resident",
        "burn resident",
        "ratio",
        "lit streamed",
        "burn streamed",
        "ratio",
        "lit decode"
    );
    let mut rows = Vec::new();
    for (out_dim, in_dim) in [(1536usize, 576usize), (4096, 4096)] {
        let values: Vec<f32> = (0..out_dim * in_dim)
            .map(|i| ((i as f32) * 0.618_034).sin() * 0.05)
            .collect();
        for (lit_scheme, value) in [
            (LitScheme::Q8_0, QuantValue::Q8S),
            (LitScheme::Q4_0, QuantValue::Q4F),
        ] {
            // lit: GGML blocks, as stored; the f32 weight a resident layer holds after decoding.
            let mut blocks = Vec::new();
            quant::quantize(lit_scheme, &values, &mut blocks).expect("quantize");
            let decoded = decode(lit_scheme, &blocks);
            let w_f32 = Tensor::<2>::from_data(
                TensorData::from_bytes(decoded, [out_dim, in_dim], DType::F32),
                &device,
            );
            // Burn: its block scheme, packed as Burn stores it.
            let scheme = QuantScheme::default()
                .with_value(value)
                .with_store(QuantStore::PackedU32(0))
                .per_block([32], ScaleDtype::F16);
            let w_q =
                Tensor::<2>::from_data(TensorData::new(values.clone(), [out_dim, in_dim]), &device)
                    .quantize_dynamic(&scheme);
            let w_q_data = w_q.clone().into_data();
            let w_q_bytes = w_q_data.as_bytes().len();
            for tokens in [1usize, 8] {
                let x_values: Vec<f32> = (0..tokens * in_dim)
                    .map(|i| ((i as f32) * 0.37).cos())
                    .collect();
                let x =
                    Tensor::<2>::from_data(TensorData::new(x_values, [tokens, in_dim]), &device);
                let mut t = [Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new()];
                let mut check = 0.0f32;
                for _ in 0..rounds {
                    let s = Instant::now();
                    let y = x.clone().matmul(w_f32.clone().transpose());
                    let y0 = y.into_data();
                    t[0].push(s.elapsed().as_secs_f64());

                    let s = Instant::now();
                    let y = x.clone().matmul(w_q.clone().transpose());
                    let y1 = y.into_data();
                    t[1].push(s.elapsed().as_secs_f64());

                    let s = Instant::now();
                    let w = Tensor::<2>::from_data(
                        TensorData::from_bytes(
                            decode(lit_scheme, &blocks),
                            [out_dim, in_dim],
                            DType::F32,
                        ),
                        &device,
                    );
                    let _ = x.clone().matmul(w.transpose()).into_data();
                    t[2].push(s.elapsed().as_secs_f64());

                    let s = Instant::now();
                    let w = Tensor::<2>::from_data(w_q_data.clone(), &device);
                    let _ = x.clone().matmul(w.transpose()).into_data();
                    t[3].push(s.elapsed().as_secs_f64());

                    let s = Instant::now();
                    let d = decode(lit_scheme, &blocks);
                    t[4].push(s.elapsed().as_secs_f64());
                    drop(d);

                    // Both ways compute the same product (up to each one's quantization error).
                    let (a, b) = (y0.as_slice::<f32>().unwrap(), y1.as_slice::<f32>().unwrap());
                    let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
                    check = a
                        .iter()
                        .zip(b)
                        .fold(0.0f32, |m, (p, q)| m.max((p - q).abs()))
                        / scale;
                }
                let m: Vec<f64> = t.iter_mut().map(|v| median(v) * 1e3).collect();
                println!(
                    "{:<6} {:>11} {:>6} | {:>12.3} {:>13.3} {:>6.2} | {:>12.3} {:>13.3} {:>6.2} | {:>11.3}",
                    format!("{lit_scheme}"),
                    format!("{in_dim}x{out_dim}"),
                    tokens,
                    m[0],
                    m[1],
                    m[1] / m[0],
                    m[2],
                    m[3],
                    m[3] / m[2],
                    m[4]
                );
                rows.push(format!(
                    "{{\"scheme\":\"{lit_scheme}\",\"in\":{in_dim},\"out\":{out_dim},\"tokens\":{tokens},\
                     \"lit_resident_ms\":{:.4},\"burn_resident_ms\":{:.4},\"lit_streamed_ms\":{:.4},\
                     \"burn_streamed_ms\":{:.4},\"lit_decode_only_ms\":{:.4},\"lit_block_bytes\":{},\"lit_f32_bytes\":{},\
                     \"burn_serialized_bytes\":{w_q_bytes},\"max_rel_diff\":{check:.2e}}}",
                    m[0],
                    m[1],
                    m[2],
                    m[3],
                    m[4],
                    blocks.len(),
                    out_dim * in_dim * 4
                ));
            }
        }
    }
    println!("JSON [{}]", rows.join(","));
}

/// lit-burn's loader's decode (`load::dequantize`): an anonymous mapping advised for transparent
/// huge pages, whole blocks per thread written in place through a small scratch buffer.
fn decode(scheme: LitScheme, bytes: &[u8]) -> Bytes {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let block = scheme.block_bytes() as usize;
    let elems = scheme.block_elems() as usize;
    let blocks = bytes.len() / block;
    let mut map = memmap2::MmapMut::map_anon(blocks * elems * 4).expect("map");
    let _ = map.advise(memmap2::Advice::HugePage);
    let out: &mut [f32] = bytemuck::cast_slice_mut(&mut map[..]);
    let per_thread = blocks.div_ceil(threads).max(1);
    let per_scratch = ((1 << 15) / elems).max(1);
    std::thread::scope(|s| {
        for (src, dst) in bytes
            .chunks(per_thread * block)
            .zip(out.chunks_mut(per_thread * elems))
        {
            s.spawn(move || {
                let mut scratch = Vec::with_capacity(per_scratch * elems);
                for (b, o) in src
                    .chunks(per_scratch * block)
                    .zip(dst.chunks_mut(per_scratch * elems))
                {
                    scratch.clear();
                    quant::dequantize(scheme, b, &mut scratch).expect("dequantize");
                    o.copy_from_slice(&scratch);
                }
            });
        }
    });
    Bytes::from_shared(bytes::Bytes::from_owner(map), AllocationProperty::Other)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
