//! The fetch comparison: the server's raw parallel ranged-GET rate against lit's verified fetch
//! pass, on the same objects, side by side and interleaved round by round so that the machine's
//! noise falls on both alike.
//!
//! Both sides read every layer of the store once per measurement (the same bytes, the same
//! objects, the same part boundaries), each through its own object_store client on a tokio
//! runtime of the same size (two workers: lit's runtime on this 2-core machine). The raw side
//! only counts the bytes `get_range` returns; lit's side is `ObjectStoreSource::read_object`
//! (parts copied into one aligned buffer, checksum checked) with a few layers in flight, as the
//! executor's prefetch reads them.

use futures::StreamExt;
use lit_core::{Manifest, ObjectId, WeightSource};
use lit_store::remote::{ObjectPath, ObjectStore, ObjectStoreSource, RemoteOptions};
use object_store::ObjectStoreExt;
use std::sync::Arc;
use std::time::Instant;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// One request shape: part size and requests in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) part: u64,
    pub(crate) concurrency: usize,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>2} MiB x {:>2}", self.part >> 20, self.concurrency)
    }
}

/// What both sides read: the store's layers.
pub(crate) struct Objects {
    store: Arc<dyn ObjectStore>,
    paths: Vec<(ObjectPath, u64)>,
    runtime: tokio::runtime::Runtime,
    url: String,
    options: RemoteOptions,
    layers: usize,
}

impl Objects {
    pub(crate) fn new(url: &str, options: &RemoteOptions, manifest: &Manifest) -> BoxResult<Self> {
        let (store, prefix, _) = lit_store::remote::object_store_for(url, options)?;
        let paths = manifest
            .layers
            .iter()
            .map(|l| {
                let key = ObjectPath::from(l.key.as_str());
                (prefix.parts().chain(key.parts()).collect(), l.byte_len)
            })
            .collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(Objects {
            store,
            paths,
            runtime,
            url: url.to_string(),
            options: options.clone(),
            layers: manifest.layers.len(),
        })
    }

    /// MB/s of every layer as ranged GETs of `shape`, no checksum, bodies dropped.
    pub(crate) fn raw(&self, shape: Shape) -> BoxResult<f64> {
        let part = shape.part;
        let ranges: Vec<_> = self
            .paths
            .iter()
            .flat_map(|(p, len)| {
                (0..len.div_ceil(part))
                    .map(move |i| (p.clone(), i * part..((i + 1) * part).min(*len)))
            })
            .collect();
        let store = self.store.clone();
        let start = Instant::now();
        let bytes = self.runtime.block_on(async move {
            futures::stream::iter(ranges)
                .map(|(p, r)| {
                    let store = store.clone();
                    async move { store.get_range(&p, r).await.map(|b| b.len() as u64) }
                })
                .buffer_unordered(shape.concurrency)
                .fold(Ok(0u64), |acc, n| async move {
                    Ok::<u64, object_store::Error>(acc? + n?)
                })
                .await
        })?;
        Ok(bytes as f64 / 1e6 / start.elapsed().as_secs_f64())
    }

    /// A lit source reading with `shape` (open it once, measure it several times: its buffers
    /// are recycled from one pass to the next, as in a run).
    pub(crate) fn lit_source(&self, shape: Shape) -> BoxResult<ObjectStoreSource> {
        let options = RemoteOptions {
            part_size: shape.part,
            concurrency: shape.concurrency,
            ..self.options.clone()
        };
        Ok(ObjectStoreSource::open(&self.url, &options)?)
    }

    /// MB/s of lit's verified fetch pass over every layer, `in_flight` layers at a time.
    pub(crate) fn lit(&self, source: &ObjectStoreSource, in_flight: usize) -> BoxResult<f64> {
        let start = Instant::now();
        let fetched: u64 = futures::executor::block_on(
            futures::stream::iter(0..self.layers)
                .map(|i| source.read_object(ObjectId::Layer(i)))
                .buffered(in_flight)
                .fold(Ok(0u64), |acc, b| async move {
                    Ok::<u64, lit_core::Error>(acc? + b?.len() as u64)
                }),
        )?;
        Ok(fetched as f64 / 1e6 / start.elapsed().as_secs_f64())
    }
}

/// The best of several rounds of one measurement.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Best(pub f64);

impl Best {
    pub(crate) fn add(&mut self, rate: f64) {
        self.0 = self.0.max(rate);
    }
}

/// One row of a sweep: the raw rate and lit's at one shape (and lit's layers in flight).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    pub(crate) shape: Shape,
    pub(crate) in_flight: usize,
    pub(crate) raw: Best,
    pub(crate) lit: Best,
}

/// Measures raw GETs and lit's fetch at every shape of `shapes` (lit with `in_flight` layers
/// at a time), `rounds` times each, interleaved: round 1 of every shape (raw, then lit), then
/// round 2, …
pub(crate) fn sweep(
    objects: &Objects,
    shapes: &[(Shape, usize)],
    rounds: usize,
) -> BoxResult<Vec<Row>> {
    let mut rows: Vec<Row> = shapes
        .iter()
        .map(|&(shape, in_flight)| Row {
            shape,
            in_flight,
            raw: Best::default(),
            lit: Best::default(),
        })
        .collect();
    let sources: Vec<ObjectStoreSource> = shapes
        .iter()
        .map(|&(shape, _)| objects.lit_source(shape))
        .collect::<BoxResult<_>>()?;
    for round in 0..rounds {
        eprintln!("round {} of {rounds} …", round + 1);
        for (row, source) in rows.iter_mut().zip(&sources) {
            row.raw.add(objects.raw(row.shape)?);
            row.lit.add(objects.lit(source, row.in_flight)?);
        }
    }
    Ok(rows)
}

/// lit's fetch at one shape against the best raw rate over `raw_shapes`: per round, every raw
/// shape is measured, each followed by one lit pass, so both sides get the same number of tries
/// (the best of many tries is biased upwards by noise, alike for both).
pub(crate) struct AgainstBest {
    /// The best raw rate of each raw shape.
    pub(crate) raw: Vec<(Shape, Best)>,
    /// Every lit pass, in order.
    pub(crate) lit: Vec<f64>,
    /// Each lit pass over the raw pass just before it, at lit's own shape.
    pub(crate) paired_same_shape: Vec<f64>,
}

impl AgainstBest {
    pub(crate) fn best_raw(&self) -> (Shape, f64) {
        self.raw
            .iter()
            .map(|(s, b)| (*s, b.0))
            .fold((self.raw[0].0, 0.0), |a, b| if b.1 > a.1 { b } else { a })
    }

    pub(crate) fn best_lit(&self) -> f64 {
        self.lit.iter().copied().fold(0.0, f64::max)
    }
}

pub(crate) fn against_best(
    objects: &Objects,
    raw_shapes: &[Shape],
    lit_shape: Shape,
    in_flight: usize,
    rounds: usize,
) -> BoxResult<AgainstBest> {
    let source = objects.lit_source(lit_shape)?;
    let mut out = AgainstBest {
        raw: raw_shapes.iter().map(|&s| (s, Best::default())).collect(),
        lit: Vec::new(),
        paired_same_shape: Vec::new(),
    };
    for round in 0..rounds {
        eprintln!("round {} of {rounds} …", round + 1);
        for (shape, best) in &mut out.raw {
            let raw = objects.raw(*shape)?;
            best.add(raw);
            let lit = objects.lit(&source, in_flight)?;
            out.lit.push(lit);
            if *shape == lit_shape {
                out.paired_same_shape.push(lit / raw);
            }
        }
    }
    Ok(out)
}
