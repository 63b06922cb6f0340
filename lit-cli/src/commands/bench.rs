//! `lit bench STORE`: where the time goes, measured side by side in one run.
//!
//! Each mode runs in its own `lit run` process (so peak RSS is that mode's), on the same store and
//! prompt: the raw sequential read of the store (the physical limit), plain Burn with all weights
//! resident, naive load-then-compute (prefetch 0) and lit with prefetch, each warm and (as root)
//! cold. Ratios: `overlap_ratio` = streamed pass / max(T_io, T_compute), where T_io is the time to
//! read the non-resident bytes at the raw read rate and T_compute the resident pass.

use crate::progress::human_bytes;
use anyhow::Context;
use lit_burn::models::{Task, architecture_of};
use lit_core::{ObjectId, WeightSource};
use serde_json::json;
use std::process::{Command, ExitCode};
use std::time::Instant;

#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    /// The store (a Llama or GPT-2 store; `lit synth` makes one), at any location `lit run` takes.
    store: String,
    #[command(flatten)]
    reach: super::StoreArgs,
    /// Weights budget for the streamed modes (default: a quarter of the model, at least the
    /// least budget the architecture runs under).
    #[arg(long, value_name = "SIZE")]
    budget: Option<bytesize::ByteSize>,
    /// Prefetch depth of the lit mode.
    #[arg(long, default_value_t = 2)]
    prefetch: usize,
    /// Passes (tokens) per mode; the first pass also fills resident layers and is reported apart.
    #[arg(long, default_value_t = 4, value_parser = super::at_least_one)]
    passes: usize,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    /// Draw the modes and the timeline of one lit pass (fetch lane vs compute lane) to this SVG.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
    /// Leave out the mmap-everything mode (all weights mapped, the OS pages them in and out).
    #[arg(long)]
    no_mmap: bool,
    /// Also run the lit and lit-mmap modes with this other `lit` binary (a build from before a
    /// change), reported as `lit@baseline` and `lit-mmap@baseline`: before and after in one run,
    /// against the same raw rate and resident pass.
    #[arg(long, value_name = "LIT")]
    baseline: Option<std::path::PathBuf>,
}

/// One mode's figures, from the report its `lit run` process wrote (`--stats-json`).
#[derive(Debug, Clone, serde::Serialize)]
struct Run {
    mode: String,
    cache: &'static str,
    budget: u64,
    prefetch: usize,
    first_pass_ms: f64,
    /// Mean of the passes after the first.
    pass_ms: f64,
    bytes_read_per_pass: f64,
    resident_bytes: u64,
    peak_rss: u64,
    open_to_first_compute_ms: f64,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let source = args.reach.open(&args.store)?;
    let manifest = source.manifest().clone();
    // `lit run` names each architecture by its `model_type` in the registry.
    let arch = architecture_of(source.as_ref()).context("lit bench cannot run this store")?;
    let embeds = arch.task() == Task::Embed;
    let model = manifest.total_bytes;
    let budget = args
        .budget
        .map(|b| b.as_u64())
        .unwrap_or_else(|| (model / 4).max(arch.min_budget(&manifest)));
    let can_drop = crate::process::drop_page_cache();
    // A model larger than memory is never warm: every pass reads it from the disk.
    let fits = crate::process::mem_available().is_none_or(|free| model < free / 10 * 8);
    let caches: &[&'static str] = match (can_drop, fits) {
        (true, true) => &["cold", "warm"],
        (true, false) => &["cold"],
        (false, _) => &["warm"],
    };

    let local = super::local_path(&args.store).is_some();
    // The raw rate is read as before `auto` mapped stores that fit in memory: with pread there
    // (a copy and a hash per byte), so overlap ratios compare with earlier runs
    // (docs/benchmarks.md); where the store does not fit, `auto` reads directly, as it did.
    let raw_source = if args.reach.read_mode == "auto" && local && fits {
        let mut reach = args.reach.clone();
        reach.read_mode = "pread".into();
        reach.open(&args.store)?
    } else {
        source.clone()
    };
    // The physical limit: every layer read once, by as many readers as the prefetch has.
    let mut raw = Vec::new();
    for &cache in caches {
        if cache == "cold" {
            crate::process::drop_page_cache();
        } else {
            read_all(raw_source.as_ref(), 2)?; // warm it
        }
        let start = Instant::now();
        read_all(raw_source.as_ref(), args.prefetch.max(2))?;
        raw.push((cache, model as f64 / start.elapsed().as_secs_f64()));
    }

    let events_file = tempfile::NamedTempFile::new()?;
    let mut timeline = None;
    let mut runs = Vec::new();
    for &cache in caches {
        // Modes that hold the whole model only when it fits in memory (with room to spare).
        let mut modes: Vec<Mode> = Vec::new();
        if fits {
            if !embeds {
                modes.push(Mode::new("plain-burn", None, 0, "pread"));
            }
            modes.push(Mode::new("resident", None, 1, "pread"));
        } else if cache == caches[0] {
            eprintln!("bench: the model does not fit in memory: no plain-burn or resident mode");
        }
        modes.push(Mode::new("load-then-compute", Some(budget), 0, "pread"));
        // lit as shipped: `--read-mode auto` (mapped where the store fits in memory).
        modes.push(Mode::new("lit", Some(budget), args.prefetch, "auto"));
        if local {
            // lit copying each layer out of the page cache.
            modes.push(Mode::new("lit-pread", Some(budget), args.prefetch, "pread"));
            // lit with mapped layers: no copy out of the page cache, pages mapped lazily.
            modes.push(Mode::new("lit-mmap", Some(budget), args.prefetch, "mmap"));
            // lit with direct reads: no page cache at all.
            modes.push(Mode::new(
                "lit-direct",
                Some(budget),
                args.prefetch,
                "direct",
            ));
        }
        if let Some(baseline) = &args.baseline {
            for (name, read_mode) in [("lit", "auto"), ("lit-mmap", "mmap")] {
                let mut mode = Mode::new(name, Some(budget), args.prefetch, read_mode);
                mode.exe = Some(baseline.clone());
                modes.push(mode);
            }
        }
        if !args.no_mmap && local {
            // How llama.cpp and candle behave: everything mapped, no budget, the OS pages.
            modes.push(Mode::new("mmap-everything", None, 0, "mmap"));
        }
        for mode in modes {
            eprintln!("bench: {} ({cache}) ...", mode.label());
            // The timeline comes from the first lit run (cold when caches can be dropped).
            let record =
                (mode.name == "lit" && mode.exe.is_none() && !embeds && timeline.is_none())
                    .then(|| events_file.path());
            runs.push(run_mode(
                &args,
                arch.model_type(),
                embeds,
                model,
                &mode,
                cache,
                record,
            )?);
            if let Some(path) = record {
                let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
                timeline = crate::plot::timeline_from_events(
                    &doc,
                    &format!(
                        "one lit pass ({cache} cache, prefetch {}, budget {})",
                        args.prefetch,
                        human_bytes(mode.budget.unwrap_or(0))
                    ),
                );
            }
        }
    }

    let raw_rate = |cache: &str| {
        raw.iter()
            .find(|(c, _)| *c == cache)
            .map(|(_, r)| *r)
            .unwrap_or(f64::NAN)
    };
    let compute_ms = runs
        .iter()
        .find(|r| r.mode == "resident" && r.cache == "warm")
        .map(|r| r.pass_ms)
        .unwrap_or(f64::NAN);
    let warm_pass = |mode: &str| {
        runs.iter()
            .find(|r| r.mode == mode && r.cache == "warm")
            .map(|r| r.pass_ms)
            .unwrap_or(f64::NAN)
    };
    // lit with a budget that holds the whole model, against plain Burn (target ≤ 1.02).
    let resident_over_plain = warm_pass("resident") / warm_pass("plain-burn");
    let ratios: Vec<serde_json::Value> = runs
        .iter()
        .filter(|r| r.mode != "resident" && r.mode != "plain-burn")
        .map(|r| {
            let io_ms = (model - r.resident_bytes) as f64 / raw_rate(r.cache) * 1e3;
            json!({
                "mode": r.mode, "cache": r.cache,
                "overlap_ratio": r.pass_ms / io_ms.max(compute_ms),
                "t_io_ms": io_ms, "t_compute_ms": compute_ms,
                "bandwidth_vs_raw": (r.bytes_read_per_pass / (r.pass_ms / 1e3)) / raw_rate(r.cache),
                "peak_rss_over_budget": r.peak_rss as f64 / r.budget as f64,
                "bytes_read_over_model_minus_resident": r.bytes_read_per_pass / (model - r.resident_bytes).max(1) as f64,
            })
        })
        .collect();

    if let Some(path) = &args.plot {
        let bars: Vec<crate::plot::Bar> = runs
            .iter()
            .map(|r| crate::plot::Bar {
                label: format!("{} ({})", r.mode, r.cache),
                ms: r.pass_ms,
            })
            .collect();
        let title = format!(
            "{}: {} in {} layers, budget {}",
            super::shown(&args.store),
            human_bytes(model),
            manifest.layers.len(),
            human_bytes(budget)
        );
        std::fs::write(path, crate::plot::chart(&title, &bars, timeline.as_ref()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("bench: plot written to {}", path.display());
    }
    if args.json {
        let out = json!({
            "store": super::shown(&args.store), "model_bytes": model, "layers": manifest.layers.len(),
            "largest_layer": manifest.largest_layer_bytes(), "budget": budget, "prefetch": args.prefetch,
            "raw_read_bytes_per_s": raw.iter().map(|(c, r)| json!({"cache": c, "bytes_per_s": r})).collect::<Vec<_>>(),
            "runs": runs, "ratios": ratios, "resident_over_plain_burn": resident_over_plain,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "store {}: {} in {} layers (largest {}); budget {}; {} passes per mode{}",
        super::shown(&args.store),
        human_bytes(model),
        manifest.layers.len(),
        human_bytes(manifest.largest_layer_bytes()),
        human_bytes(budget),
        args.passes,
        if can_drop {
            ""
        } else {
            "; WARM page cache only (not root: cannot drop caches)"
        }
    );
    for (cache, rate) in &raw {
        println!(
            "raw sequential read ({cache}): {:.0} MB/s → {:.0} ms for the whole store",
            rate / 1e6,
            model as f64 / rate * 1e3
        );
    }
    println!(
        "{:<18} {:<5} {:>8} {:>10} {:>9} {:>11} {:>10} {:>12}",
        "mode", "cache", "prefetch", "1st pass", "pass", "read/pass", "peak RSS", "first comp."
    );
    for r in &runs {
        println!(
            "{:<18} {:<5} {:>8} {:>8.0}ms {:>7.0}ms {:>11} {:>10} {:>10.1}ms",
            r.mode,
            r.cache,
            r.prefetch,
            r.first_pass_ms,
            r.pass_ms,
            human_bytes(r.bytes_read_per_pass as u64),
            human_bytes(r.peak_rss),
            r.open_to_first_compute_ms
        );
    }
    if resident_over_plain.is_finite() {
        println!("lit with everything resident / plain Burn: {resident_over_plain:.3} (warm)");
    }
    for v in &ratios {
        println!(
            "{} ({}): overlap_ratio {:.3} (T_io {:.0} ms, T_compute {:.0} ms); bandwidth/raw {:.2}; peak RSS/budget {:.2}; read/(model−resident) {:.2}",
            v["mode"].as_str().unwrap_or(""),
            v["cache"].as_str().unwrap_or(""),
            v["overlap_ratio"].as_f64().unwrap_or(f64::NAN),
            v["t_io_ms"].as_f64().unwrap_or(f64::NAN),
            v["t_compute_ms"].as_f64().unwrap_or(f64::NAN),
            v["bandwidth_vs_raw"].as_f64().unwrap_or(f64::NAN),
            v["peak_rss_over_budget"].as_f64().unwrap_or(f64::NAN),
            v["bytes_read_over_model_minus_resident"]
                .as_f64()
                .unwrap_or(f64::NAN),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads every layer once (checksummed, as loads are) with `threads` readers taking layers in
/// turn: the storage's best rate, as parallel as the executor's prefetch can be.
fn read_all(source: &dyn WeightSource, threads: usize) -> anyhow::Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let layers = source.manifest().layers.len();
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| -> lit_core::Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= layers {
                            return Ok(());
                        }
                        std::hint::black_box(futures::executor::block_on(
                            source.read_object(ObjectId::Layer(i)),
                        )?);
                    }
                })
            })
            .collect();
        readers
            .into_iter()
            .try_for_each(|r| r.join().unwrap_or_else(|_| Ok(())))
    })?;
    Ok(())
}

/// What `lit bench` embeds on encoder stores each pass (8 sentences, one batch).
const BERT_TEXTS: [&str; 8] = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "The stock market crashed after the announcement of new tariffs.",
];

/// One way of running the model: which memory budget, prefetch depth and read path.
struct Mode {
    name: &'static str,
    budget: Option<u64>,
    prefetch: usize,
    read_mode: &'static str,
    /// Another `lit` binary to run it with (`--baseline`); `None`: this one.
    exe: Option<std::path::PathBuf>,
}

impl Mode {
    /// The name runs are reported under.
    fn label(&self) -> String {
        match self.exe {
            Some(_) => format!("{}@baseline", self.name),
            None => self.name.to_string(),
        }
    }

    fn new(
        name: &'static str,
        budget: Option<u64>,
        prefetch: usize,
        read_mode: &'static str,
    ) -> Self {
        Mode {
            name,
            budget,
            prefetch,
            read_mode,
            exe: None,
        }
    }
}

/// Runs `mode` in its own `lit run <arch>` process on a store of `model_bytes` (an encoder's when
/// `embeds`), and reads its figures.
fn run_mode(
    args: &Args,
    arch: &str,
    embeds: bool,
    model_bytes: u64,
    mode: &Mode,
    cache: &'static str,
    events: Option<&std::path::Path>,
) -> anyhow::Result<Run> {
    let label = mode.label();
    let exe = match &mode.exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe()?,
    };
    let Mode {
        name: mode,
        budget,
        prefetch,
        read_mode,
        ..
    } = *mode;
    let mut cmd = Command::new(exe);
    cmd.args(["run", arch]).arg(&args.store);
    if embeds {
        cmd.args(["--repeat", &args.passes.to_string()]);
        cmd.args(BERT_TEXTS);
    } else {
        cmd.args([
            "--ids",
            "--prompt",
            "1",
            "--max-tokens",
            &args.passes.to_string(),
        ]);
    }
    if mode == "plain-burn" {
        cmd.arg("--plain");
    } else {
        cmd.args(["--prefetch", &prefetch.to_string()]);
    }
    let mut reach = args.reach.clone();
    reach.read_mode = read_mode.to_string();
    cmd.args(reach.to_args());
    if let Some(path) = events {
        cmd.arg("--events").arg(path);
    }
    if let Some(b) = budget {
        cmd.args(["--budget", &format!("{b}B")]);
    }
    if cache == "cold" {
        cmd.arg("--drop-caches");
    }
    let report_file = tempfile::NamedTempFile::new()?;
    cmd.arg("--stats-json").arg(report_file.path());
    let out = cmd.output().context("cannot run lit run")?;
    anyhow::ensure!(
        out.status.success(),
        "{mode} run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = crate::report::RunReport::read(report_file.path())
        .with_context(|| format!("the {mode} run's report"))?;
    let passes = if embeds {
        &report.repeat_ms
    } else {
        &report.pass_ms
    };
    let later = &passes[passes.len().min(1)..];
    let passes_n = report.passes.max(1) as f64;
    let bytes_read = report.bytes_read as f64;
    // The first pass reads the whole model, but the rows of tables it reads by range.
    let first_pass_bytes = report.first_pass_bytes_read.unwrap_or(model_bytes) as f64;
    Ok(Run {
        mode: label,
        cache,
        budget: budget.unwrap_or(0),
        prefetch,
        first_pass_ms: passes.first().copied().unwrap_or(f64::NAN),
        pass_ms: later.iter().sum::<f64>() / later.len().max(1) as f64,
        bytes_read_per_pass: if passes_n > 1.0 {
            ((bytes_read - first_pass_bytes) / (passes_n - 1.0)).max(0.0)
        } else {
            bytes_read
        },
        resident_bytes: report.resident_bytes,
        peak_rss: report.peak_rss.unwrap_or(0),
        open_to_first_compute_ms: report.open_to_first_compute_ms.unwrap_or(f64::NAN),
    })
}
