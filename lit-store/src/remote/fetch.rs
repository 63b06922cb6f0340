//! Reading a byte range of one object as concurrent ranged GETs.
//!
//! object_store's `get_ranges` coalesces adjacent ranges into one request, which would make a
//! layer one long serial download; lit issues its own concurrent `get_range` calls instead.

use super::{ObjectPath, ObjectStore, backend_error, runtime};
use crate::aligned::AlignedBuf;
use bytes::Bytes;
use futures::StreamExt;
use lit_core::{Error, Result};
use object_store::ObjectStoreExt;
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
            hidden: options.config.clone().into(),
        }
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
        let parts = split(range.clone(), self.part_size);
        let mut buf = AlignedBuf::zeroed(len);
        let mut responses = futures::stream::iter(parts)
            .map(|part| {
                let store = self.store.clone();
                let limiter = self.limiter.clone();
                let path = path.clone();
                async move {
                    let _permit = limiter.acquire_owned().await;
                    let got = store.get_range(&path, part.clone()).await;
                    (part, got)
                }
            })
            .buffer_unordered(self.concurrency);
        while let Some((part, got)) = responses.next().await {
            let bytes = match got {
                Ok(bytes) => bytes,
                Err(object_store::Error::NotFound { .. }) => return Err(absent),
                Err(e) => {
                    return Err(
                        self.error(format!("{what}: GET bytes {}..{}", part.start, part.end), e)
                    );
                }
            };
            let expected = part.end - part.start;
            if bytes.len() as u64 != expected {
                return Err(Error::backend(
                    what.to_string(),
                    format!(
                        "GET bytes {}..{} returned {} bytes (object shorter than the manifest says?)",
                        part.start,
                        part.end,
                        bytes.len()
                    ),
                ));
            }
            let at = (part.start - range.start) as usize;
            buf.as_mut_slice()[at..at + bytes.len()].copy_from_slice(&bytes);
        }
        Ok(buf.into_bytes())
    }
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
