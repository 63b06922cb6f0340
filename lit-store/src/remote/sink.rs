//! [`ObjectStoreSink`]: writing a store into an object store.

use super::fetch::Fetcher;
use super::{
    ObjectPath, ObjectStore, RemoteOptions, backend_error, child, object_store_for, runtime,
};
use crate::sink::{ObjectWriter, StoreSink};
use lit_core::checksum::checksum;
use lit_core::manifest::MANIFEST_KEY;
use lit_core::{Error, Result};
use object_store::{MultipartUpload, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// S3 and GCS refuse multipart parts below 5 MiB (but the last).
const MIN_PART: u64 = 5 << 20;

/// Parts never grow beyond this (S3's limit is 5 GiB).
const MAX_GROWN_PART: usize = 1 << 30;

/// Writes a store under a prefix of an object store.
///
/// Objects are uploaded in place (multipart when larger than one part, several parts in
/// flight); the manifest is written last with a create-only PUT. Until then nothing opens as a
/// valid store, and an interrupted upload can be resumed: [`StoreSink::existing_object`] finds
/// the objects already there with the right length and checksum.
#[derive(Debug)]
pub struct ObjectStoreSink {
    fetcher: Fetcher,
    prefix: ObjectPath,
    location: String,
    part_size: usize,
    concurrency: usize,
}

impl ObjectStoreSink {
    /// Prepares to write a store at `location` (`s3://bucket/prefix`, …). Fails if a store is
    /// already there.
    pub fn create(location: &str, options: &RemoteOptions) -> Result<Self> {
        let (store, prefix, shown) = object_store_for(location, options)?;
        Self::new(store, prefix, shown, options)
    }

    /// Prepares to write a store under `prefix` of an object store you configured yourself.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        location: String,
        options: &RemoteOptions,
    ) -> Result<Self> {
        let manifest = child(&prefix, MANIFEST_KEY);
        let probe = store.clone();
        match runtime::block_on(async move { probe.head(&manifest).await })? {
            Ok(_) => return Err(Error::AlreadyExists { path: location }),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                return Err(Error::backend(
                    format!("{location}: checking {MANIFEST_KEY}"),
                    super::hide(e, &options.config),
                ));
            }
        }
        Ok(ObjectStoreSink {
            fetcher: Fetcher::new(store, options),
            prefix,
            location,
            part_size: options.part_size.max(MIN_PART) as usize,
            concurrency: options.concurrency,
        })
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        self.fetcher.store.clone()
    }
}

impl StoreSink for ObjectStoreSink {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create_object(&mut self, key: &str) -> Result<Box<dyn ObjectWriter + '_>> {
        Ok(Box::new(RemoteObject {
            store: self.store(),
            path: child(&self.prefix, key),
            what: format!("{}/{key}", self.location),
            hidden: self.fetcher.hidden.clone(),
            part_size: self.part_size,
            concurrency: self.concurrency,
            buf: Vec::new(),
            parts: 0,
            upload: None,
            in_flight: VecDeque::new(),
        }))
    }

    fn existing_object(&mut self, key: &str, byte_len: u64, expected: u64) -> Result<bool> {
        let path = child(&self.prefix, key);
        let store = self.store();
        let probe = path.clone();
        let size = match runtime::block_on(async move { store.head(&probe).await })? {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(self.fetcher.error(format!("{}/{key}", self.location), e)),
        };
        if size != byte_len {
            return Ok(false);
        }
        let what = format!("{}/{key}", self.location);
        let fetcher = self.fetcher.clone();
        let absent = Error::not_found(what.clone());
        let bytes = futures::executor::block_on(fetcher.fetch(path, 0..size, what, absent))?;
        Ok(checksum(&bytes) == expected)
    }

    fn commit(self: Box<Self>, manifest: &[u8]) -> Result<()> {
        let path = child(&self.prefix, MANIFEST_KEY);
        let store = self.store();
        let payload = PutPayload::from(manifest.to_vec());
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let (p, s, body) = (path.clone(), store.clone(), payload.clone());
        match runtime::block_on(async move { s.put_opts(&p, body, create).await })? {
            Ok(_) => Ok(()),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(Error::AlreadyExists {
                path: self.location,
            }),
            // Backends without conditional PUT: check, then write (a narrow race remains).
            Err(
                object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. },
            ) => {
                let (p, s) = (path.clone(), store.clone());
                if runtime::block_on(async move { s.head(&p).await })?.is_ok() {
                    return Err(Error::AlreadyExists {
                        path: self.location,
                    });
                }
                runtime::block_on(async move { store.put(&path, payload).await })?
                    .map(|_| ())
                    .map_err(|e| {
                        self.fetcher
                            .error(format!("{}/{MANIFEST_KEY}", self.location), e)
                    })
            }
            Err(e) => Err(self
                .fetcher
                .error(format!("{}/{MANIFEST_KEY}", self.location), e)),
        }
    }
}

/// One object being uploaded: small objects in one PUT, larger ones as a multipart upload with
/// up to `concurrency` parts in flight.
struct RemoteObject {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    what: String,
    /// The store options, whose values no error may show.
    hidden: Arc<[(String, String)]>,
    part_size: usize,
    concurrency: usize,
    buf: Vec<u8>,
    /// Parts started so far.
    parts: usize,
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: VecDeque<JoinHandle<object_store::Result<()>>>,
}

impl RemoteObject {
    fn fail(&self, e: object_store::Error) -> Error {
        backend_error(self.what.clone(), e, &self.hidden)
    }

    /// Starts uploading the buffered bytes as the next part; waits while too many are in flight.
    fn send_part(&mut self) -> Result<()> {
        if self.upload.is_none() {
            let (store, path) = (self.store.clone(), self.path.clone());
            let upload = runtime::block_on(async move { store.put_multipart(&path).await })?
                .map_err(|e| self.fail(e))?;
            self.upload = Some(upload);
        }
        let data = std::mem::take(&mut self.buf);
        // S3 and GCS take at most 10,000 parts: double the part size every 1,000 parts, so
        // objects up to terabytes fit (8 MiB parts reach 78 GiB without it).
        self.parts += 1;
        if self.parts.is_multiple_of(1000) {
            self.part_size = (self.part_size * 2).min(MAX_GROWN_PART);
        }
        let handle = runtime::handle()?;
        let _in_runtime = handle.enter();
        let part = self
            .upload
            .as_mut()
            .expect("started above")
            .put_part(PutPayload::from(data));
        self.in_flight.push_back(handle.spawn(part));
        while self.in_flight.len() >= self.concurrency {
            self.wait_oldest()?;
        }
        Ok(())
    }

    fn wait_oldest(&mut self) -> Result<()> {
        if let Some(part) = self.in_flight.pop_front() {
            match futures::executor::block_on(part) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(self.fail(e)),
                Err(e) => return Err(Error::backend(self.what.clone(), e)),
            }
        }
        Ok(())
    }

    fn complete(&mut self) -> Result<()> {
        let Some(mut upload) = self.upload.take() else {
            let (store, path) = (self.store.clone(), self.path.clone());
            let body = PutPayload::from(std::mem::take(&mut self.buf));
            runtime::block_on(async move { store.put(&path, body).await })?
                .map_err(|e| self.fail(e))?;
            return Ok(());
        };
        let result = (|| {
            if !self.buf.is_empty() {
                let data = std::mem::take(&mut self.buf);
                let handle = runtime::handle()?;
                let _in_runtime = handle.enter();
                self.in_flight
                    .push_back(handle.spawn(upload.put_part(PutPayload::from(data))));
            }
            while !self.in_flight.is_empty() {
                self.wait_oldest()?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                let (done, upload) = runtime::block_on(async move {
                    let done = upload.complete().await;
                    (done, upload)
                })?;
                if let Err(e) = done {
                    self.upload = Some(upload); // aborted on drop
                    return Err(self.fail(e));
                }
                Ok(())
            }
            Err(e) => {
                self.upload = Some(upload);
                Err(e)
            }
        }
    }
}

impl Write for RemoteObject {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.part_size);
        }
        let n = data.len().min(self.part_size - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.part_size {
            self.send_part().map_err(std::io::Error::other)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ObjectWriter for RemoteObject {
    fn finish(mut self: Box<Self>) -> Result<()> {
        self.complete()
    }
}

impl Drop for RemoteObject {
    fn drop(&mut self) {
        // An unfinished multipart upload: abort it so its parts do not linger (stores that
        // cannot clean up on their own should also have a lifecycle rule for stale uploads).
        if let Some(mut upload) = self.upload.take() {
            for part in self.in_flight.drain(..) {
                part.abort();
            }
            if let Ok(handle) = runtime::handle() {
                handle.spawn(async move {
                    let _ = upload.abort().await;
                });
            }
        }
    }
}
