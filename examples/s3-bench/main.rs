//! Object-store throughput, measured side by side in one run against a real S3 server
//! (s3s-fs over HTTP on loopback, in this process), on one synthetic Llama store:
//!
//! - the best parallel ranged-GET rate of the server (concurrency × part size sweep, best of
//!   three rounds each): the physical limit here;
//! - one whole-object GET per layer, one after another (how matorage loads);
//! - lit's fetch pass: `ObjectStoreSource::read_object` (concurrent ranged GETs, checksum on
//!   arrival) with two layers in flight, as the executor's prefetch does, best of three rounds
//!   interleaved with the raw GETs (see `fetch.rs`);
//! - a streamed pass: the model run over the bucket under a budget, vs the same model resident;
//! - `lit cp` both ways; the second run through the disk tier vs a local store (interleaved,
//!   best of three each).
//!
//! ```sh
//! cargo run --release -p lit-examples --bin s3-bench -- [PARAMS, default 250M] [--json] [--sweep]
//! ```
//!
//! `--sweep` measures only the fetch: raw GETs and lit's fetch pass at every part size ×
//! concurrency of a grid (and lit's default shape with 1–3 layers in flight), side by side: the
//! table the defaults were chosen from.

use burn::tensor::Device;
use lit_burn::models::decoder::with_f32_compute;
use lit_burn::models::generate::{GenerateOptions, generate};
use lit_burn::models::llama::Llama;
use lit_burn::models::synth::{Synth, SynthConfig, parse_count};
use lit_burn::{StreamOptions, Streamer};
use lit_core::{NoObserver, WeightSource};
use lit_store::remote::{ObjectStoreSource, object_store_for};
use lit_store::testing::S3TestServer;
use lit_store::{DiskCachedSource, LocalSource, OpenOptions, copy_store, create_writer};
use object_store::ObjectStoreExt;
use std::sync::Arc;
use std::time::Instant;

mod fetch;

use fetch::Shape;

/// Rounds of the fetch comparison: each round measures every raw shape, each followed by one
/// lit pass; each side keeps its best.
const ROUNDS: usize = 3;
/// Layers lit fetches at once in the fetch pass (the executor's prefetch of 2).
const LAYERS_IN_FLIGHT: usize = 2;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let sweep = args.iter().any(|a| a == "--sweep");
    let params = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(|p| parse_count(p))
        .transpose()?
        .unwrap_or(250_000_000);
    let tmp = tempfile::Builder::new().prefix("lit-s3-bench").tempdir()?;
    let local = tmp.path().join("local.lit");
    let config = SynthConfig::llama_with_params(params);
    eprintln!("writing a synthetic Llama ({}) …", config.describe());
    Synth::new(config, 0).write_local(&local)?;
    let local_source = LocalSource::open(&local)?;
    let m = local_source.manifest().clone();
    let model = m.total_bytes;
    let mb = |bytes: u64, s: f64| bytes as f64 / 1e6 / s;

    let server = S3TestServer::start(tmp.path().join("s3"))?;
    server.create_bucket("bench")?;
    let url = "s3://bench/model.lit";
    let open = OpenOptions {
        remote: server.options(),
        ..Default::default()
    };

    // lit cp, both directions.
    let up = copy_store(&local_source, create_writer(url, &open)?, &NoObserver)?;
    let remote = ObjectStoreSource::open(url, &open.remote)?;
    let back_dir = tmp.path().join("back.lit");
    let down = copy_store(
        &remote,
        create_writer(back_dir.to_str().unwrap_or_default(), &open)?,
        &NoObserver,
    )?;
    let cp_up = mb(up.bytes_copied, up.seconds);
    let cp_down = mb(down.bytes_copied, down.seconds);

    // The server's best against lit's fetch pass, interleaved round by round.
    let objects = fetch::Objects::new(url, &open.remote, &m)?;
    let defaults = lit_store::remote::RemoteOptions::default();
    let default_shape = Shape {
        part: defaults.part_size,
        concurrency: defaults.concurrency,
    };
    if sweep {
        return print_sweep(&objects, default_shape, json, model, m.layers.len());
    }
    let mut shapes: Vec<Shape> = [4usize, 8, 16]
        .into_iter()
        .flat_map(|concurrency| [8u64 << 20, 16 << 20].map(|part| Shape { part, concurrency }))
        .collect();
    if !shapes.contains(&default_shape) {
        shapes.push(default_shape);
    }
    let fetches = fetch::against_best(&objects, &shapes, default_shape, LAYERS_IN_FLIGHT, ROUNDS)?;
    let (best_shape, best_rate) = fetches.best_raw();
    let best = (best_rate, best_shape.concurrency, best_shape.part);
    let lit_fetch = fetches.best_lit();
    let raw_at_default = fetches
        .raw
        .iter()
        .find(|(s, _)| *s == default_shape)
        .map(|(_, b)| b.0)
        .unwrap_or(f64::NAN);
    let mut paired = fetches.paired_same_shape.clone();
    paired.sort_by(f64::total_cmp);
    let paired_median = paired.get(paired.len() / 2).copied().unwrap_or(f64::NAN);

    // One whole-object GET per layer, sequentially.
    let (store, prefix, _) = object_store_for(url, &open.remote)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let paths: Vec<_> = m
        .layers
        .iter()
        .map(|l| {
            let key = object_store::path::Path::from(l.key.as_str());
            prefix
                .parts()
                .chain(key.parts())
                .collect::<object_store::path::Path>()
        })
        .collect();
    let start = Instant::now();
    let whole_bytes = runtime.block_on({
        let (store, paths) = (store.clone(), paths.clone());
        async move {
            let mut n = 0u64;
            for p in &paths {
                n += store.get(p).await?.bytes().await?.len() as u64;
            }
            Ok::<u64, object_store::Error>(n)
        }
    })?;
    let whole = mb(whole_bytes, start.elapsed().as_secs_f64());

    // Streamed passes: the model over the bucket (budget model/4) vs resident vs the disk tier
    // (second run) vs a local store, same budget.
    let device = Device::flex();
    let budget = model / 4;
    let pass =
        |source: Arc<dyn WeightSource>, budget: u64, tokens: usize| -> BoxResult<(f64, u64)> {
            let llama = Llama::from_source(source.as_ref(), &device)?;
            let options = StreamOptions::default()
                .with_names(Llama::names())
                .with_budget(budget)
                .with_prefetch(2);
            let options = with_f32_compute(source.as_ref(), options);
            let streamer = Streamer::new(source, &llama, options)?;
            let out = generate(&streamer, &llama, &[1], &GenerateOptions::greedy(tokens))?;
            let later = &out.steps;
            let ms = if later.is_empty() {
                out.prefill.as_secs_f64() * 1e3
            } else {
                later.iter().map(|d| d.as_secs_f64()).sum::<f64>() * 1e3 / later.len() as f64
            };
            let bytes = streamer.stats().bytes_read_total() / out.passes() as u64;
            Ok((ms, bytes))
        };
    let (resident_ms, _) = pass(Arc::new(LocalSource::open(&local)?), u64::MAX, 3)?;
    let (s3_ms, s3_bytes) = pass(
        Arc::new(ObjectStoreSource::open(url, &open.remote)?),
        budget,
        3,
    )?;
    let cache_dir = tmp.path().join("disk-tier");
    let tier = |_: ()| -> BoxResult<Arc<dyn WeightSource>> {
        Ok(Arc::new(DiskCachedSource::new(
            ObjectStoreSource::open(url, &open.remote)?,
            &cache_dir,
            u64::MAX,
        )?))
    };
    let (tier_first_ms, _) = pass(tier(())?, budget, 1)?;
    // The second run through the tier against a local store, interleaved, best of each.
    let requests = || {
        server
            .faults()
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let (mut local_ms, mut tier_ms, mut tier_requests) = (f64::INFINITY, f64::INFINITY, 0);
    for _ in 0..ROUNDS {
        local_ms = local_ms.min(pass(Arc::new(LocalSource::open(&local)?), budget, 3)?.0);
        let before = requests();
        tier_ms = tier_ms.min(pass(tier(())?, budget, 3)?.0);
        tier_requests = tier_requests.max(requests() - before);
    }
    let s3_stream_rate = mb(s3_bytes, s3_ms / 1e3);

    let report = serde_json::json!({
        "date": chrono_free_date(),
        "model_bytes": model, "layers": m.layers.len(), "largest_layer": m.largest_layer_bytes(),
        "budget": budget,
        "best_parallel_get_mb_s": best.0, "best_concurrency": best.1, "best_part_bytes": best.2,
        "whole_object_get_mb_s": whole,
        "rounds": ROUNDS, "layers_in_flight": LAYERS_IN_FLIGHT,
        "raw_get_by_shape": fetches.raw.iter().map(|(s, b)| serde_json::json!({"part_bytes": s.part, "concurrency": s.concurrency, "best_mb_s": b.0})).collect::<Vec<_>>(),
        "lit_fetch_passes_mb_s": fetches.lit,
        "lit_vs_raw_paired_at_lit_shape": fetches.paired_same_shape,
        "lit_vs_raw_paired_median": paired_median,
        "lit_fetch_pass_part_bytes": default_shape.part, "lit_fetch_pass_concurrency": default_shape.concurrency,
        "lit_fetch_pass_mb_s": lit_fetch,
        "raw_get_at_lit_shape_mb_s": raw_at_default,
        "lit_fetch_vs_best": lit_fetch / best.0,
        "lit_fetch_vs_raw_same_shape": lit_fetch / raw_at_default,
        "whole_object_vs_best": whole / best.0,
        "cp_local_to_s3_mb_s": cp_up, "cp_s3_to_local_mb_s": cp_down,
        "resident_pass_ms": resident_ms,
        "s3_streamed_pass_ms": s3_ms, "s3_streamed_bytes_per_pass": s3_bytes,
        "s3_streamed_mb_s": s3_stream_rate,
        "s3_streamed_overlap_ratio": s3_ms / (s3_bytes as f64 / 1e6 / best.0 * 1e3).max(resident_ms),
        "local_streamed_pass_ms": local_ms,
        "disk_tier_first_pass_ms": tier_first_ms,
        "disk_tier_second_run_pass_ms": tier_ms,
        "disk_tier_second_run_requests": tier_requests,
        "disk_tier_vs_local": tier_ms / local_ms,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "synthetic Llama {:.0} MB in {} layers; S3 = s3s-fs on loopback, in process",
        model as f64 / 1e6,
        m.layers.len()
    );
    println!(
        "best parallel ranged GET       {:>7.0} MB/s  ({} in flight, {} MiB parts)",
        best.0,
        best.1,
        best.2 >> 20
    );
    println!(
        "whole-object GET per layer     {:>7.0} MB/s  ({:.2} of best)",
        whole,
        whole / best.0
    );
    println!(
        "raw GET at lit's shape          {:>7.0} MB/s  ({default_shape})",
        raw_at_default
    );
    println!(
        "lit fetch pass, verified       {:>7.0} MB/s  ({default_shape}; {:.2} of best, {:.2} of raw at its shape)",
        lit_fetch,
        lit_fetch / best.0,
        lit_fetch / raw_at_default
    );
    println!(
        "  each lit pass / the raw pass just before it, same shape: median {paired_median:.2} of {}",
        paired.len()
    );
    println!("lit cp local -> s3             {:>7.0} MB/s", cp_up);
    println!("lit cp s3 -> local             {:>7.0} MB/s", cp_down);
    println!("resident pass                  {:>7.0} ms", resident_ms);
    println!(
        "streamed pass from S3          {:>7.0} ms  ({:.0} MB/pass, {:.0} MB/s; overlap ratio {:.2})",
        s3_ms,
        s3_bytes as f64 / 1e6,
        s3_stream_rate,
        report["s3_streamed_overlap_ratio"]
            .as_f64()
            .unwrap_or(f64::NAN)
    );
    println!("streamed pass from local disk  {:>7.0} ms", local_ms);
    println!("disk tier, filling (1st run)   {:>7.0} ms", tier_first_ms);
    println!(
        "disk tier, 2nd run             {:>7.0} ms  ({:.2} of local; {} requests to S3)",
        tier_ms,
        tier_ms / local_ms,
        tier_requests
    );
    Ok(())
}

/// The fetch sweep (see the module docs): a table, or JSON.
fn print_sweep(
    objects: &fetch::Objects,
    default_shape: Shape,
    json: bool,
    model: u64,
    layers: usize,
) -> BoxResult<()> {
    let mut shapes: Vec<(Shape, usize)> = [4u64 << 20, 8 << 20, 16 << 20, 32 << 20]
        .into_iter()
        .flat_map(|part| {
            [4usize, 8, 16, 32].map(|concurrency| (Shape { part, concurrency }, LAYERS_IN_FLIGHT))
        })
        .collect();
    shapes.extend([1, 3].map(|in_flight| (default_shape, in_flight)));
    let rows = fetch::sweep(objects, &shapes, SWEEP_ROUNDS)?;
    let best_raw = rows.iter().map(|r| r.raw.0).fold(0.0, f64::max);
    if json {
        let report = serde_json::json!({
            "date": chrono_free_date(),
            "model_bytes": model, "layers": layers, "rounds": SWEEP_ROUNDS,
            "best_raw_mb_s": best_raw,
            "rows": rows.iter().map(|r| serde_json::json!({
                "part_bytes": r.shape.part, "concurrency": r.shape.concurrency,
                "layers_in_flight": r.in_flight, "raw_mb_s": r.raw.0, "lit_mb_s": r.lit.0,
                "lit_vs_raw_same_shape": r.lit.0 / r.raw.0, "lit_vs_best_raw": r.lit.0 / best_raw,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "fetch sweep: {:.0} MB in {layers} layers, best of {SWEEP_ROUNDS} rounds each; best raw {best_raw:.0} MB/s",
        model as f64 / 1e6
    );
    println!(
        "| part × in flight | lit layers in flight | raw GET MB/s | lit fetch MB/s | lit / raw same shape | lit / best raw |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} |",
            r.shape,
            r.in_flight,
            r.raw.0,
            r.lit.0,
            r.lit.0 / r.raw.0,
            r.lit.0 / best_raw
        );
    }
    Ok(())
}

/// Rounds of each measurement in `--sweep`.
const SWEEP_ROUNDS: usize = 2;

/// Today's date from `date`, for the record (no time crate needed).
fn chrono_free_date() -> String {
    std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
