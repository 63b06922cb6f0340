//! `lit cp SRC DST`: copy a store between any two locations, resumably.

use crate::progress::{WriteProgress, human_bytes, mb_per_s};
use anyhow::Context;
use std::process::ExitCode;

#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    /// The store to copy (a directory or an object-store URL).
    src: String,
    /// Where to put the copy (must not hold a store yet; what an interrupted copy left there
    /// is checked and reused).
    dst: String,
    #[command(flatten)]
    reach: super::StoreArgs,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Reading for a copy goes to the source every time: no disk tier.
    let mut reach = args.reach.clone();
    reach.no_disk_cache = true;
    let source = reach.open(&args.src)?;
    let writer = reach.create(&args.dst)?;
    let progress = WriteProgress::new("copying");
    let report = lit_store::copy_store(source.as_ref(), writer, &progress).with_context(|| {
        format!(
            "cannot copy {} to {}",
            super::shown(&args.src),
            super::shown(&args.dst)
        )
    });
    progress.finish();
    let report = report?;
    let resumed = if report.layers_skipped > 0 {
        format!(
            "; {} layers ({}) already there from an interrupted copy",
            report.layers_skipped,
            human_bytes(report.bytes_skipped)
        )
    } else {
        String::new()
    };
    println!(
        "copied {} layers, {} to {} in {:.2} s ({:.0} MB/s){resumed}",
        report.manifest.layers.len(),
        human_bytes(report.bytes_copied),
        super::shown(&args.dst),
        report.seconds,
        mb_per_s(report.bytes_copied, report.seconds)
    );
    Ok(ExitCode::SUCCESS)
}
