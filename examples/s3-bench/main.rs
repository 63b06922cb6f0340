//! Object-store throughput, measured side by side in one run against a real S3 server
//! (s3s-fs over HTTP on loopback, in this process), on one synthetic Llama store:
//!
//! - the best parallel ranged-GET rate of the server (concurrency × part size sweep): the
//!   physical limit here;
//! - one whole-object GET per layer, one after another (how matorage loads);
//! - lit's fetch pass: `ObjectStoreSource::read_object` (concurrent ranged GETs, checksum on
//!   arrival) with two layers in flight, as the executor's prefetch does;
//! - a streamed pass: the model run over the bucket under a budget, vs the same model resident;
//! - `lit cp` both ways; the second run through the disk tier vs a local store.
//!
//! ```sh
//! cargo run --release -p lit-examples --bin s3-bench -- [PARAMS, default 250M] [--json]
//! ```

use burn::tensor::Device;
use futures::StreamExt;
use lit_burn::models::decoder::with_f32_compute;
use lit_burn::models::generate::{GenerateOptions, generate};
use lit_burn::models::llama::Llama;
use lit_burn::models::synth::{Synth, SynthConfig, parse_count};
use lit_burn::{StreamOptions, Streamer};
use lit_core::{NoObserver, ObjectId, WeightSource};
use lit_store::remote::{ObjectStoreSource, object_store_for};
use lit_store::testing::S3TestServer;
use lit_store::{DiskCachedSource, LocalSource, OpenOptions, copy_store, create_writer};
use object_store::ObjectStoreExt;
use std::sync::Arc;
use std::time::Instant;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
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

    // The server's best: every layer as parallel ranged GETs, no checksum, swept.
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
            (
                prefix
                    .parts()
                    .chain(key.parts())
                    .collect::<object_store::path::Path>(),
                l.byte_len,
            )
        })
        .collect();
    let mut best = (0.0f64, 0usize, 0u64);
    for concurrency in [4usize, 8, 16] {
        for part in [8u64 << 20, 16 << 20] {
            let ranges: Vec<_> = paths
                .iter()
                .flat_map(|(p, len)| {
                    (0..len.div_ceil(part))
                        .map(move |i| (p.clone(), i * part..((i + 1) * part).min(*len)))
                })
                .collect();
            let store = store.clone();
            let start = Instant::now();
            let bytes = runtime.block_on(async move {
                futures::stream::iter(ranges)
                    .map(|(p, r)| {
                        let store = store.clone();
                        async move { store.get_range(&p, r).await.map(|b| b.len() as u64) }
                    })
                    .buffer_unordered(concurrency)
                    .fold(Ok(0u64), |acc, n| async move {
                        Ok::<u64, object_store::Error>(acc? + n?)
                    })
                    .await
            })?;
            let rate = mb(bytes, start.elapsed().as_secs_f64());
            if rate > best.0 {
                best = (rate, concurrency, part);
            }
        }
    }

    // One whole-object GET per layer, sequentially.
    let start = Instant::now();
    let whole_bytes = runtime.block_on({
        let (store, paths) = (store.clone(), paths.clone());
        async move {
            let mut n = 0u64;
            for (p, _) in &paths {
                n += store.get(p).await?.bytes().await?.len() as u64;
            }
            Ok::<u64, object_store::Error>(n)
        }
    })?;
    let whole = mb(whole_bytes, start.elapsed().as_secs_f64());

    // lit's fetch pass: verified layers, two in flight, at a few part sizes.
    let mut lit_fetches = Vec::new();
    for (part, concurrency) in [(8u64 << 20, 8), (16 << 20, 8), (8 << 20, 16)] {
        let options = lit_store::remote::RemoteOptions {
            part_size: part,
            concurrency,
            ..open.remote.clone()
        };
        let source = ObjectStoreSource::open(url, &options)?;
        let start = Instant::now();
        let fetched: u64 = futures::executor::block_on(
            futures::stream::iter(0..m.layers.len())
                .map(|i| source.read_object(ObjectId::Layer(i)))
                .buffered(2)
                .fold(Ok(0u64), |acc, b| async move {
                    Ok::<u64, lit_core::Error>(acc? + b?.len() as u64)
                }),
        )?;
        lit_fetches.push((
            part,
            concurrency,
            mb(fetched, start.elapsed().as_secs_f64()),
        ));
    }
    let defaults = lit_store::remote::RemoteOptions::default();
    let lit_fetch = lit_fetches
        .iter()
        .find(|(p, c, _)| *p == defaults.part_size && *c == defaults.concurrency)
        .map(|(_, _, r)| *r)
        .unwrap_or(f64::NAN);

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
    let (local_ms, _) = pass(Arc::new(LocalSource::open(&local)?), budget, 3)?;
    let cache_dir = tmp.path().join("disk-tier");
    let tier = |_: ()| -> BoxResult<Arc<dyn WeightSource>> {
        Ok(Arc::new(DiskCachedSource::new(
            ObjectStoreSource::open(url, &open.remote)?,
            &cache_dir,
            u64::MAX,
        )?))
    };
    let (tier_first_ms, _) = pass(tier(())?, budget, 1)?;
    let requests_before = server
        .faults()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let (tier_ms, _) = pass(tier(())?, budget, 3)?;
    let tier_requests = server
        .faults()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed)
        - requests_before;
    let s3_stream_rate = mb(s3_bytes, s3_ms / 1e3);

    let report = serde_json::json!({
        "date": chrono_free_date(),
        "model_bytes": model, "layers": m.layers.len(), "largest_layer": m.largest_layer_bytes(),
        "budget": budget,
        "best_parallel_get_mb_s": best.0, "best_concurrency": best.1, "best_part_bytes": best.2,
        "whole_object_get_mb_s": whole,
        "lit_fetch_pass_mb_s": lit_fetch,
        "lit_fetch_pass_by_part_size": lit_fetches.iter().map(|(p, c, r)| serde_json::json!({"part_bytes": p, "concurrency": c, "mb_s": r})).collect::<Vec<_>>(),
        "lit_fetch_vs_best": lit_fetch / best.0,
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
    for (part, concurrency, rate) in &lit_fetches {
        println!(
            "lit fetch pass, {:>2} MiB x {:>2}   {:>7.0} MB/s  ({:.2} of best)",
            part >> 20,
            concurrency,
            rate,
            rate / best.0
        );
    }
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

/// Today's date from `date`, for the record (no time crate needed).
fn chrono_free_date() -> String {
    std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
