//! The tokio runtime object-store requests run on.
//!
//! object_store's clients need a tokio reactor, but lit's sources are called from any executor
//! (the streaming executor's fetch threads use `futures::executor::block_on`). Every request is
//! therefore spawned onto one process-wide runtime owned by lit, and awaited through its
//! `JoinHandle`, which any executor can poll.

use lit_core::{Error, Result};
use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::{Builder, Handle, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// lit's I/O runtime: a few worker threads, created on first use.
pub(crate) fn handle() -> Result<&'static Handle> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime.handle());
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get().clamp(2, 4))
        .unwrap_or(2);
    let runtime = Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("lit-io")
        .enable_all()
        .build()
        .map_err(|e| Error::io("lit I/O runtime (tokio)", e))?;
    // Two threads may race here; the loser's runtime is leaked (two idle threads) rather than
    // dropped, which tokio forbids inside an async context.
    if let Err(loser) = RUNTIME.set(runtime) {
        std::mem::forget(loser);
    }
    Ok(RUNTIME.get().expect("set above").handle())
}

/// Runs `future` on lit's runtime; the returned future can be awaited from any executor.
pub(crate) async fn spawn<F>(future: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match handle()?.spawn(future).await {
        Ok(output) => Ok(output),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::backend("lit I/O runtime", e)),
    }
}

/// Runs `future` on lit's runtime and blocks the calling thread until it completes. Safe to call
/// from inside another runtime's task (it does not nest runtimes), though that blocks a worker.
pub(crate) fn block_on<F>(future: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    futures::executor::block_on(spawn(future))
}
