//! A real S3 server on loopback for tests and benchmarks (feature `s3-test-server`).
//!
//! [`S3TestServer`] runs [s3s-fs](https://crates.io/crates/s3s-fs) in-process: the S3 protocol
//! over HTTP on `127.0.0.1`, objects as files under a directory (each top-level directory is a
//! bucket). [`Faults`] injects what networks do: `503 SlowDown` on every k-th request, latency,
//! a response body cut midway; [`S3TestServer::stop`] and [`S3TestServer::restart`] drop every
//! connection at once.

use crate::remote::RemoteOptions;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lit_core::{Error, Result};
use s3s::Body;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Access key the server accepts.
pub const ACCESS_KEY: &str = "lit-test-access";
/// Secret key the server accepts (tests check it is never printed).
pub const SECRET_KEY: &str = "lit-test-secret-6e1f0c2b";

/// Faults the server injects; all off (0) by default, changeable while it runs.
#[derive(Debug, Default)]
pub struct Faults {
    /// Answer `503 SlowDown` to every k-th request.
    pub fail_every: AtomicU64,
    /// Delay every request by this many milliseconds.
    pub delay_ms: AtomicU64,
    /// Cut the body of every k-th successful GET halfway and drop the connection.
    pub cut_every: AtomicU64,
    /// Requests seen.
    pub requests: AtomicU64,
    /// Faults injected (503s and cut bodies).
    pub injected: AtomicU64,
}

impl Faults {
    /// Turns every fault off.
    pub fn clear(&self) {
        self.fail_every.store(0, Ordering::Relaxed);
        self.delay_ms.store(0, Ordering::Relaxed);
        self.cut_every.store(0, Ordering::Relaxed);
    }
}

/// An s3s-fs server on loopback (see the module docs). Stops when dropped.
#[derive(Debug)]
pub struct S3TestServer {
    root: PathBuf,
    addr: SocketAddr,
    faults: Arc<Faults>,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl S3TestServer {
    /// Serves directory `root` (created if missing) on a free port of 127.0.0.1.
    pub fn start(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(&root).map_err(|e| Error::io(root.display(), e))?;
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("127.0.0.1:0", e))?;
        let mut server = S3TestServer {
            root,
            addr,
            faults: Arc::new(Faults::default()),
            running: None,
        };
        server.serve(listener)?;
        Ok(server)
    }

    /// The endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The directory holding the buckets.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file behind `key` in `bucket` (to damage an object behind the server's back).
    pub fn object_file(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    /// Creates bucket `name`.
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))
    }

    /// The live fault switches.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Options that reach this server (endpoint, credentials, plain HTTP), with the defaults
    /// otherwise.
    pub fn options(&self) -> RemoteOptions {
        self.env()
            .into_iter()
            .fold(RemoteOptions::default(), |o, (k, v)| {
                o.with_config(k.to_ascii_lowercase(), v)
            })
    }

    /// The same as environment variables, for a `lit` child process.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Stops serving: every open connection is dropped, new ones are refused.
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            let _ = running.thread.join();
        }
    }

    /// Serves again on the same port (after [`S3TestServer::stop`], or as a restart).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let listener =
            std::net::TcpListener::bind(self.addr).map_err(|e| Error::io(self.addr, e))?;
        self.serve(listener)
    }

    fn serve(&mut self, listener: std::net::TcpListener) -> Result<()> {
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io(self.addr, e))?;
        let fs = s3s_fs::FileSystem::new(&self.root).map_err(|e| {
            Error::backend(
                format!("s3s-fs on {}", self.root.display()),
                format!("{e:?}"),
            )
        })?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let s3 = builder.build();
        let faults = self.faults.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("s3 test server runtime", e))?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                loop {
                    let socket = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok((socket, _)) => socket,
                            Err(_) => continue,
                        },
                        _ = &mut stopped => break,
                    };
                    let (s3, faults) = (s3.clone(), faults.clone());
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        handle(s3.clone(), faults.clone(), req)
                    });
                    let connection = http
                        .serve_connection(TokioIo::new(socket), service)
                        .into_owned();
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                }
            });
            // Drops every connection still open, mid-body or not.
            runtime.shutdown_background();
        });
        self.running = Some(Running { stop, thread });
        Ok(())
    }
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn handle(
    s3: s3s::service::S3Service,
    faults: Arc<Faults>,
    req: Request<Incoming>,
) -> std::result::Result<Response<Body>, BoxError> {
    let n = faults.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let delay = faults.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let every = |k: &AtomicU64| {
        let k = k.load(Ordering::Relaxed);
        k > 0 && n.is_multiple_of(k)
    };
    if every(&faults.fail_every) {
        faults.injected.fetch_add(1, Ordering::Relaxed);
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
            <Error><Code>SlowDown</Code><Message>injected by the lit test server</Message></Error>";
        return Ok(Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(Body::from(body.to_string()))?);
    }
    let is_get = req.method() == Method::GET;
    let response = s3.call(req.map(Body::from)).await.map_err(BoxError::from)?;
    if !(is_get && response.status().is_success() && every(&faults.cut_every)) {
        return Ok(response);
    }
    // Send the headers (with the full Content-Length) and half the body, then fail the stream:
    // the client sees a connection that died mid-body.
    let (parts, body) = response.into_parts();
    let full = body.collect().await?.to_bytes();
    if full.len() < 2 {
        return Ok(Response::from_parts(parts, Body::from(full)));
    }
    faults.injected.fetch_add(1, Ordering::Relaxed);
    let half = full.slice(..full.len() / 2);
    let frames: Vec<std::result::Result<Frame<Bytes>, std::io::Error>> = vec![
        Ok(Frame::data(half)),
        Err(std::io::Error::other("body cut by the lit test server")),
    ];
    let cut = http_body_util::StreamBody::new(futures::stream::iter(frames));
    Ok(Response::from_parts(parts, Body::http_body(cut)))
}
