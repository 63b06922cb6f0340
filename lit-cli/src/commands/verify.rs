//! `lit verify STORE`

use crate::progress::{draw_target, human_bytes, mb_per_s};
use indicatif::{ProgressBar, ProgressStyle};
use lit_core::{WeightSource, WeightSourceExt};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    /// The store: a directory, file://, s3://, gs://, az://, http(s):// or memory:// location.
    store: String,
    #[command(flatten)]
    reach: super::StoreArgs,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let source = args.reach.open(&args.store)?;
    let m = source.manifest();
    let bar = ProgressBar::with_draw_target(Some(m.total_bytes), draw_target());
    bar.set_style(
        ProgressStyle::with_template("verifying [{bar:30}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let report = futures::executor::block_on(source.verify(&|name, bytes, _ok| {
        bar.inc(bytes);
        bar.set_message(name.to_string());
    }));
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    for (name, err) in &report.failed {
        eprintln!("BAD  {name}: {err}");
    }
    let objects = report.ok.len() + report.failed.len();
    if report.failed.is_empty() {
        println!(
            "ok: {objects} objects ({} layers), {} verified in {seconds:.2} s ({:.0} MB/s); every checksum matches",
            m.layers.len(),
            human_bytes(report.bytes),
            mb_per_s(report.bytes, seconds)
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "FAILED: {} of {objects} objects are bad",
            report.failed.len()
        );
        Ok(ExitCode::FAILURE)
    }
}
