//! `lit cp SRC DST`: copy a store between any two locations, resumably; `lit cp --clean DST`
//! removes what an interrupted copy to DST left.

use crate::progress::{WriteProgress, human_bytes, mb_per_s};
use anyhow::Context;
use std::process::ExitCode;

#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    /// The store to copy (a directory or an object-store URL); with --clean, the destination
    /// whose leftovers to remove.
    src: String,
    /// Where to put the copy (must not hold a store yet; what an interrupted copy left there
    /// is checked and reused).
    #[arg(required_unless_present = "clean")]
    dst: Option<String>,
    /// Remove the staging directory an interrupted or failed copy to this local destination
    /// left (kept for resuming), instead of copying: `lit cp --clean DST`.
    #[arg(long, conflicts_with_all = ["dst", "force"])]
    clean: bool,
    /// Copy even when the destination seems to lack the free space the store needs (checked
    /// before copying starts; object stores are not checked).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    reach: super::StoreArgs,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(dst) = args.dst.as_deref() else {
        return clean(&args.src);
    };
    // Reading for a copy goes to the source every time: no disk tier.
    let mut reach = args.reach.clone();
    reach.no_disk_cache = true;
    let source = reach.open(&args.src)?;
    let mut writer = reach.create(dst)?;
    if args.force {
        writer.skip_space_check();
    }
    let staging = writer.staging();
    let progress = WriteProgress::new("copying");
    let report = lit_store::copy_store(source.as_ref(), writer, &progress);
    progress.finish();
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            let what = format!(
                "cannot copy {} to {}",
                super::shown(&args.src),
                super::shown(dst)
            );
            let err = super::hint_force(e);
            return Err(match staging.filter(|s| std::path::Path::new(s).exists()) {
                Some(staging) => err.context(format!(
                    "{what}; what was copied is kept in {staging} (run the same `lit cp` again \
                     to resume, or `lit cp --clean {}` to remove it)",
                    super::shown(dst)
                )),
                None => err.context(what),
            });
        }
    };
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
        super::shown(dst),
        report.seconds,
        mb_per_s(report.bytes_copied, report.seconds)
    );
    Ok(ExitCode::SUCCESS)
}

/// `lit cp --clean DST`: removes the staging directory a failed copy to `dst` left.
fn clean(dst: &str) -> anyhow::Result<ExitCode> {
    let Some(path) = super::local_path(dst) else {
        anyhow::bail!(
            "--clean: {} is not a local directory (an interrupted copy to an object store leaves \
             its objects under that prefix, without a manifest: delete them with the store's tools)",
            super::shown(dst)
        );
    };
    let removed = lit_store::sink::remove_stale_staging(&path)
        .with_context(|| format!("cannot clean {}", path.display()))?;
    match removed.first() {
        Some(dir) => println!("removed {}", dir.display()),
        None => println!(
            "nothing to clean: no interrupted copy to {} left a staging directory",
            path.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}
