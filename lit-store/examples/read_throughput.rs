//! Cold-cache read throughput of a store: `LocalSource` (pread, mmap and direct) vs `dd` of the
//! same files (through the page cache and with `iflag=direct`), measured side by side in one run.
//!
//! ```sh
//! cargo run --release -p lit-store --example read_throughput -- STORE [ROUNDS]
//! ```
//! Drops the page cache before every measurement when it can (root); otherwise says the figures
//! are warm.

use futures::executor::block_on;
use lit_core::{ObjectId, WeightSource};
use lit_store::{LocalSource, ReadMode};
use std::process::Command;
use std::time::Instant;

fn drop_caches() -> bool {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let store = args.get(1).ok_or("usage: read_throughput STORE [ROUNDS]")?;
    let rounds: usize = args.get(2).map(|r| r.parse()).transpose()?.unwrap_or(3);
    let manifest = LocalSource::open(store)?.manifest().clone();
    let total = manifest.total_bytes as f64;
    let mut cold = true;
    const WHAT: [&str; 7] = [
        "dd",
        "pread",
        "mmap",
        "pread-raw",
        "dd-direct",
        "direct",
        "direct-raw",
    ];
    let mut best = [f64::MAX; WHAT.len()];
    for _ in 0..rounds {
        let only = std::env::var("ONLY").ok();
        for (slot, what) in WHAT.iter().enumerate() {
            if only.as_deref().is_some_and(|o| o != *what) {
                continue;
            }
            cold &= drop_caches();
            let start = Instant::now();
            match *what {
                "dd" | "dd-direct" => {
                    for layer in &manifest.layers {
                        let status = Command::new("dd")
                            .arg(format!("if={store}/{}", layer.key))
                            .args(["of=/dev/null", "bs=8M", "status=none"])
                            .args((*what == "dd-direct").then_some("iflag=direct"))
                            .status()?;
                        assert!(status.success());
                    }
                }
                mode => {
                    let read_mode = match mode {
                        "mmap" => ReadMode::Mmap,
                        "direct" | "direct-raw" => ReadMode::Direct,
                        _ => ReadMode::Pread,
                    };
                    let source = LocalSource::open_with(store, read_mode)?;
                    for (i, layer) in manifest.layers.iter().enumerate() {
                        let bytes = if mode.ends_with("-raw") {
                            block_on(source.read_range(ObjectId::Layer(i), 0..layer.byte_len))?
                        } else {
                            // read_object verifies the checksum, as every load does.
                            block_on(source.read_object(ObjectId::Layer(i)))?
                        };
                        std::hint::black_box(&bytes);
                    }
                }
            }
            best[slot] = best[slot].min(start.elapsed().as_secs_f64());
        }
    }
    let cache = if cold {
        "cold page cache (dropped before each run)"
    } else {
        "WARM page cache (cannot drop caches: not root)"
    };
    println!(
        "store {store}: {} layers, {:.1} MB; best of {rounds}, {cache}",
        manifest.layers.len(),
        total / 1e6
    );
    for (name, t) in [
        "dd bs=8M",
        "LocalSource pread (+xxh3 verify)",
        "LocalSource mmap (+xxh3 verify)",
        "LocalSource pread, no verify",
        "dd bs=8M iflag=direct",
        "LocalSource direct (+xxh3 verify)",
        "LocalSource direct, no verify",
    ]
    .iter()
    .zip(best)
    {
        if t == f64::MAX {
            continue; // not measured (ONLY=...)
        }
        let ratio = if best[0] == f64::MAX {
            String::new()
        } else {
            format!("  throughput / dd {:.3}", best[0] / t)
        };
        println!(
            "  {name:<34} {:>8.1} MB/s  {:>6.3} s{ratio}",
            total / 1e6 / t,
            t
        );
    }
    Ok(())
}
