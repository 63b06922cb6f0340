//! `lit`: export, inspect, verify and run layer-wise weight stores.

mod commands;
mod plot;
mod process;
mod progress;
mod report;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// lit — the Lite Inference Toolkit for Burn: run models larger than memory by streaming their
/// weights layer by layer from a local disk or an object store.
#[derive(Debug, Parser)]
#[command(name = "lit", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Export a checkpoint (safetensors, Hugging Face directory, PyTorch, burnpack) into a store.
    Export(commands::export::Args),
    /// Copy a store between any two locations (local, S3, GCS, Azure), resumably.
    Cp(commands::cp::Args),
    /// List a store's layers, sizes, dtypes and tensors.
    Inspect(commands::inspect::Args),
    /// Recompute every checksum of a store; exits non-zero if any layer is bad.
    Verify(commands::verify::Args),
    /// Run a built-in architecture over a store, streaming its weights.
    Run(commands::run::Args),
    /// Write a seeded synthetic Llama or GPT-2 store of any size.
    Synth(commands::synth::Args),
    /// Measure a store: raw read, resident, load-then-compute and lit with prefetch, side by side.
    Bench(commands::bench::Args),
    /// Synthesize a model larger than a memory budget and stream it: lit end to end, offline.
    Demo(commands::demo::Args),
}

/// Keeps freed heap memory for reuse instead of handing it back to the kernel. A streamed pass
/// frees and allocates the same buffers (decoded quantized tensors) on every token; with glibc's
/// defaults each came back as fresh pages the kernel zeroes and faults in 4 KiB at a time:
/// SmolLM2 streamed at 27% of its size spent 73% of its time in the kernel, 4.5× slower than with
/// this (docs/benchmarks.md). Allocations up to 32 MiB (glibc's maximum) come from the heap, and
/// the heap is not trimmed; the weights budget, not the allocator, bounds the memory.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only sets glibc malloc parameters; it is called first thing in main, before
    // any other thread exists. A refused value leaves glibc's default (no harm).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Export(args) => commands::export::run(args),
        Command::Cp(args) => commands::cp::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Synth(args) => commands::synth::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Demo(args) => commands::demo::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's consistency checks (duplicate flags, conflicts naming unknown args, …), which
    /// release builds skip at run time.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
