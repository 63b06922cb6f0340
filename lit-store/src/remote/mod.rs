//! Stores in object stores: S3 (and S3-compatible servers), GCS, Azure, HTTP, `memory://`.
//!
//! Built on the [`object_store`] crate, one cargo feature per backend. Requests run on a small
//! tokio runtime owned by lit, so the sources and sinks work from any executor and
//! from plain threads.
//!
//! - [`ObjectStoreSource`] reads a store: each layer as concurrent ranged GETs (parts of
//!   [`RemoteOptions::part_size`], at most [`RemoteOptions::concurrency`] requests in flight per
//!   source) whose bodies are copied straight into one recycled buffer, checked against the
//!   manifest's checksum on arrival.
//! - [`ObjectStoreSink`] writes one: multipart uploads for large objects, the manifest last with a
//!   create-only PUT, so an interrupted upload never opens as a valid store.
//!
//! Credentials, region and endpoint come from the standard environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `GOOGLE_*`,
//! `AZURE_*`) and from [`RemoteOptions::config`]. Secrets are never printed: locations are shown
//! by [`crate::redact::redacted`] (no user info, query or fragment), no message shows a
//! configuration value (see [`crate::redact::hide_values`]), and `RemoteOptions`' `Debug` shows
//! the keys only.

mod fetch;
pub(crate) mod runtime;
mod sink;
mod source;

pub use object_store::{BackoffConfig, ObjectStore, RetryConfig, path::Path as ObjectPath};
pub use sink::ObjectStoreSink;
pub use source::ObjectStoreSource;

use crate::redact::{hide_values, redacted};
use lit_core::error::BoxError;
use lit_core::{Error, Result};
use object_store::ObjectStoreScheme;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use url::Url;

/// The largest part S3 accepts in a multipart upload.
const MAX_PART: u64 = 5 << 30;

/// How lit talks to an object store. `Default` suits S3 over a fast network.
#[derive(Clone)]
pub struct RemoteOptions {
    /// Size of each ranged GET (and of each multipart upload part). Default 8 MiB: S3 serves
    /// ~85–90 MB/s per connection, so parallel parts of 8–16 MiB are what fill a fast link.
    pub part_size: u64,
    /// Most requests in flight per source or sink, across all layers being read. Default 16
    /// (`s3-bench --sweep` on loopback S3: 8 to 32 in flight are alike there, 4 is 15–25%
    /// slower; a real network's latency needs more in flight than loopback).
    pub concurrency: usize,
    /// Retries with exponential backoff for failed requests (5xx, throttling, dropped
    /// connections). Default: 10 retries within 60 s per request.
    pub retry: RetryConfig,
    /// Timeout of one request, from connect to the last byte of the body. Default 60 s.
    pub request_timeout: Duration,
    /// Timeout to connect. Default 5 s.
    pub connect_timeout: Duration,
    /// Total deadline for reading one object, retries included. Default 10 min.
    pub deadline: Duration,
    /// Backend settings as object_store configuration keys (`aws_region`, `aws_endpoint`,
    /// `aws_access_key_id`, `google_service_account`, `azure_storage_account_name`, …), applied
    /// over the environment.
    pub config: Vec<(String, String)>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            part_size: 8 << 20,
            concurrency: 16,
            retry: RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 10,
                retry_timeout: Duration::from_secs(60),
            },
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(600),
            config: Vec::new(),
        }
    }
}

impl std::fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Configuration values may be secrets: show the keys only.
        let keys: Vec<&str> = self.config.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("RemoteOptions")
            .field("part_size", &self.part_size)
            .field("concurrency", &self.concurrency)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("deadline", &self.deadline)
            .field("config_keys", &keys)
            .finish()
    }
}

impl RemoteOptions {
    /// Sets one backend configuration key (see [`RemoteOptions::config`]).
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    fn check(&self) -> Result<()> {
        if self.part_size == 0 || self.concurrency == 0 {
            return Err(Error::InvalidArgument(
                "remote part size and concurrency must be at least 1".into(),
            ));
        }
        if self.part_size > MAX_PART {
            return Err(Error::InvalidArgument(format!(
                "remote part size {} is above 5 GiB, the most S3 accepts",
                self.part_size
            )));
        }
        Ok(())
    }
}

/// One `InMemory` store per process, so `memory://` stores written by one part of a program can
/// be read by another.
fn memory_store() -> Arc<dyn ObjectStore> {
    static MEMORY: OnceLock<Arc<dyn ObjectStore>> = OnceLock::new();
    MEMORY
        .get_or_init(|| Arc::new(object_store::memory::InMemory::new()))
        .clone()
}

/// An object store client and the store's prefix in it, for `location`.
pub fn object_store_for(
    location: &str,
    options: &RemoteOptions,
) -> Result<(Arc<dyn ObjectStore>, ObjectPath, String)> {
    options.check()?;
    let shown = redacted(location);
    let bad = |why: String| Error::InvalidArgument(format!("store location `{shown}`: {why}"));
    let url = Url::parse(location).map_err(|e| bad(e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are not accepted: use the environment or store options".into(),
        ));
    }
    // object_store's own message would echo the URL, credentials included.
    let (scheme, path) = ObjectStoreScheme::parse(&url).map_err(|_| {
        bad(format!(
            "unsupported scheme `{}` (use a path, file://, s3://, gs://, az://, http(s):// or memory://)",
            url.scheme()
        ))
    })?;
    let prefix = ObjectPath::parse(path).map_err(|e| bad(e.to_string()))?;
    // Every cloud builder: the environment, then lit's timeouts and the user's settings as
    // configuration keys, then the retry policy.
    #[cfg(any(feature = "s3", feature = "gcs", feature = "azure", feature = "http"))]
    macro_rules! configured {
        ($builder:expr, $key:ty) => {{
            let mut builder = $builder;
            for (key, value) in settings(options) {
                let key: $key = key
                    .parse()
                    .map_err(|e| bad(hide_values(&format!("{e}"), &options.config)))?;
                builder = builder.with_config(key, value);
            }
            Arc::new(
                builder
                    .with_retry(options.retry.clone())
                    .build()
                    .map_err(|e| {
                        Error::backend(
                            format!("{shown}: configuring the client"),
                            hide(e, &options.config),
                        )
                    })?,
            )
        }};
    }
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::Memory => memory_store(),
        #[cfg(feature = "s3")]
        ObjectStoreScheme::AmazonS3 => configured!(
            object_store::aws::AmazonS3Builder::from_env().with_url(url.as_str()),
            object_store::aws::AmazonS3ConfigKey
        ),
        #[cfg(feature = "gcs")]
        ObjectStoreScheme::GoogleCloudStorage => configured!(
            object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(url.as_str()),
            object_store::gcp::GoogleConfigKey
        ),
        #[cfg(feature = "azure")]
        ObjectStoreScheme::MicrosoftAzure => configured!(
            object_store::azure::MicrosoftAzureBuilder::from_env().with_url(url.as_str()),
            object_store::azure::AzureConfigKey
        ),
        #[cfg(feature = "http")]
        ObjectStoreScheme::Http => configured!(
            object_store::http::HttpBuilder::new().with_url(&url[..url::Position::BeforePath]),
            object_store::ClientConfigKey
        ),
        other => {
            return Err(bad(format!(
                "{other:?} stores are not supported by this build (enable lit-store's feature for it)"
            )));
        }
    };
    Ok((store, prefix, shown))
}

/// lit's client defaults (timeouts), then the user's configuration, which wins.
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure", feature = "http"))]
fn settings(options: &RemoteOptions) -> Vec<(String, String)> {
    let secs = |d: Duration| format!("{}ms", d.as_millis());
    let mut all = vec![
        ("timeout".to_string(), secs(options.request_timeout)),
        ("connect_timeout".to_string(), secs(options.connect_timeout)),
    ];
    all.extend(options.config.iter().cloned());
    all
}

/// Maps an object_store error on `what` to lit's error, keeping "not found" recognisable and
/// hiding the values of the store options in `hidden`.
pub(crate) fn backend_error(
    what: String,
    e: object_store::Error,
    hidden: &[(String, String)],
) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::not_found(what),
        e => Error::backend(what, hide(e, hidden)),
    }
}

/// `e` as a boxed error that shows no value of `hidden` (see [`hide_values`]): `e` itself when
/// none of its messages echo one, else its chain of messages as one text with the values
/// replaced by their keys.
pub(crate) fn hide(e: impl Into<BoxError>, hidden: &[(String, String)]) -> BoxError {
    let e: BoxError = e.into();
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        // Many errors repeat their source in their own message: keep each text once.
        let own = c.to_string();
        if !text.contains(&own) {
            text = format!("{text}: {own}");
        }
        cause = c.source();
    }
    let shown = hide_values(&text, hidden);
    if shown == text { e } else { shown.into() }
}

/// `prefix/key` as an object path.
pub(crate) fn child(prefix: &ObjectPath, key: &str) -> ObjectPath {
    prefix
        .parts()
        .chain(ObjectPath::from(key).parts())
        .collect()
}
