//! Reading a byte range of one object as concurrent ranged GETs.
//!
//! object_store's `get_ranges` coalesces adjacent ranges into one request, which would make a
//! layer one long serial download; lit issues its own concurrent ranged GETs instead, and copies
//! each body's chunks straight into the layer's buffer as they arrive (`get_range` would first
//! collect each part into a buffer of its own: one more copy of every byte, on the cores a
//! local server also needs).

use super::{ObjectPath, ObjectStore, backend_error, runtime};
use crate::aligned::BufferPool;
use bytes::Bytes;
use futures::StreamExt;
use lit_core::{Error, Result};
use object_store::GetOptions;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Fetches ranges of objects of one store within a shared request limit.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    pub(crate) store: Arc<dyn ObjectStore>,
    part_size: u64,
    concurrency: usize,
    /// Shared by every read of the source, so k prefetched layers do not make k × more requests.
    limiter: Arc<Semaphore>,
    deadline: Duration,
    /// Buffers recycled across layers: a fresh one costs a page fault per 4 KiB, CPU that the
    /// transfer itself needs (see [`Fetcher::recycle_up_to`]).
    buffers: Arc<BufferPool>,
    /// The store options, whose values no error may show.
    pub(crate) hidden: Arc<[(String, String)]>,
}

impl Fetcher {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, options: &super::RemoteOptions) -> Self {
        Fetcher {
            store,
            part_size: options.part_size,
            concurrency: options.concurrency,
            limiter: Arc::new(Semaphore::new(options.concurrency)),
            deadline: options.deadline,
            buffers: BufferPool::new(0),
            hidden: options.config.clone().into(),
        }
    }

    /// Keeps up to `bytes` of returned buffers for reuse (twice the largest layer: the one being
    /// used and the one being fetched).
    pub(crate) fn recycle_up_to(&mut self, bytes: u64) {
        self.buffers = BufferPool::new(usize::try_from(bytes).unwrap_or(usize::MAX));
    }

    /// An object_store error on `what` as lit's error (see [`backend_error`]).
    pub(crate) fn error(&self, what: String, e: object_store::Error) -> Error {
        backend_error(what, e, &self.hidden)
    }

    /// Bytes `range` of `path` in one 64-byte aligned buffer (so tensors in it can be handed to
    /// Burn without another copy). `what` names the object in errors; `absent` is the error
    /// when the object does not exist. Gives up after the deadline, retries included.
    pub(crate) async fn fetch(
        &self,
        path: ObjectPath,
        range: Range<u64>,
        what: String,
        absent: Error,
    ) -> Result<Bytes> {
        let this = self.clone();
        runtime::spawn(async move {
            let deadline = this.deadline;
            let fetched = this.fetch_parts(&path, range, &what, absent);
            match tokio::time::timeout(deadline, fetched).await {
                Ok(result) => result,
                Err(_) => Err(Error::backend(
                    what,
                    format!(
                        "not received within the deadline of {:.1} s",
                        deadline.as_secs_f64()
                    ),
                )),
            }
        })
        .await?
    }

    async fn fetch_parts(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        what: &str,
        absent: Error,
    ) -> Result<Bytes> {
        let len = usize::try_from(range.end - range.start)
            .map_err(|_| Error::InvalidArgument(format!("{what}: range too large for memory")))?;
        if len == 0 {
            return Ok(Bytes::new());
        }
        let part_size = self.part_size.max(1);
        let parts = split(range.clone(), part_size);
        // Each part's body is copied chunk by chunk straight into its slice of the one buffer:
        // collecting a part first (`get_range`) would copy every byte twice.
        let mut buf = self.buffers.take(len);
        let slices = buf
            .as_mut_slice()
            .chunks_mut(usize::try_from(part_size).unwrap_or(usize::MAX));
        // The futures are built first: a closure in the stream would trip the compiler's check
        // that the spawned future is `Send` for every lifetime of the slices.
        let requests: Vec<_> = parts
            .into_iter()
            .zip(slices)
            .map(|(part, slice)| self.fetch_part(path, part, slice))
            .collect();
        let mut responses = futures::stream::iter(requests).buffer_unordered(self.concurrency);
        while let Some((part, got)) = responses.next().await {
            match got {
                Ok(()) => {}
                Err(PartError::Store(object_store::Error::NotFound { .. })) => return Err(absent),
                Err(PartError::Store(e)) => {
                    return Err(
                        self.error(format!("{what}: GET bytes {}..{}", part.start, part.end), e)
                    );
                }
                Err(PartError::Length(got)) => {
                    return Err(Error::backend(
                        what.to_string(),
                        format!(
                            "GET bytes {}..{} returned {got} bytes (object shorter than the manifest says?)",
                            part.start, part.end,
                        ),
                    ));
                }
            }
        }
        drop(responses);
        Ok(buf.into_bytes())
    }

    /// GETs `part` into `into` (exactly its length), chunk by chunk as the body arrives, within
    /// the request limit; returns the part with the outcome.
    async fn fetch_part(
        &self,
        path: &ObjectPath,
        part: Range<u64>,
        into: &mut [u8],
    ) -> (Range<u64>, std::result::Result<(), PartError>) {
        let _permit = self.limiter.acquire().await;
        let got = self.get_into(path, part.clone(), into).await;
        (part, got)
    }

    async fn get_into(
        &self,
        path: &ObjectPath,
        part: Range<u64>,
        into: &mut [u8],
    ) -> std::result::Result<(), PartError> {
        let options = GetOptions::new().with_range(Some(part));
        let mut body = self
            .store
            .get_opts(path, options)
            .await
            .map_err(PartError::Store)?
            .into_stream();
        let mut filled = 0usize;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(PartError::Store)?;
            let end = filled + chunk.len();
            if end > into.len() {
                return Err(PartError::Length(end as u64));
            }
            into[filled..end].copy_from_slice(&chunk);
            filled = end;
        }
        if filled != into.len() {
            return Err(PartError::Length(filled as u64));
        }
        Ok(())
    }
}

/// Why one part could not be fetched.
enum PartError {
    Store(object_store::Error),
    /// The body was not the part's length: this many bytes (at least) came.
    Length(u64),
}

/// `range` cut into consecutive parts of at most `part_size` bytes.
pub(crate) fn split(range: Range<u64>, part_size: u64) -> Vec<Range<u64>> {
    let mut parts = Vec::new();
    let mut start = range.start;
    while start < range.end {
        let end = range.end.min(start.saturating_add(part_size));
        parts.push(start..end);
        start = end;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn split_covers_the_range_exactly() {
        assert_eq!(split(0..0, 8), Vec::<std::ops::Range<u64>>::new());
        assert_eq!(split(3..11, 8), vec![3..11]);
        assert_eq!(split(0..17, 8), vec![0..8, 8..16, 16..17]);
        assert_eq!(split(5..u64::MAX, u64::MAX).len(), 1);
    }
}
