//! [`Streamer`]: runs a Burn model whose weights stay in a lit store, one submodule at a time.
//!
//! ```text
//! let streamer = Streamer::new(source, &skeleton, StreamOptions::default().with_budget(1 << 30))?;
//! let mut h = input;
//! for block in &skeleton.blocks {
//!     let block = streamer.load(block)?;   // a filled clone; the skeleton stays lazy
//!     h = block.forward(h);
//! }                                         // each clone dropped here: its layer is released
//! ```
//!
//! **Order.** Layers are planned in manifest order; once a pass ends (a `load` asks again for a
//! layer already used in the pass, or [`Streamer::end_pass`]), the order the pass observed
//! becomes the plan, and only the layers the model used are planned.
//!
//! **Prefetch.** With prefetch depth `k > 0`, `k` background threads read the next `k`
//! non-resident layers of the plan (wrapping around into the next pass) while the current one
//! computes. They call the source's async methods through `futures::executor::block_on`, so
//! callers need no async runtime. With `k = 0` each `load` reads its layers itself.
//!
//! **Budget.** Resident layers + reads in flight + prefetched layers + layers of modules still
//! loaded never exceed the byte budget (see the `state` module). A budget below the largest
//! layer the model needs is an error at [`Streamer::new`]. By default the budget is
//! [`Budget::Auto`]: the whole model when it fits in the memory available, otherwise a share of
//! that memory ([`Streamer::budget`] says what was chosen).

mod budget;
mod inner;
mod loaded;
mod rows;
mod state;
pub mod stats;
mod units;

pub use budget::{AUTO_SHARE, Budget, BudgetChoice, PROCESS_RESERVE};
use inner::Inner;
pub use loaded::Loaded;
pub use stats::{PassStats, StreamStats};

use crate::error::{Error, LoadErrors, Problem, Result};
use crate::load::LoadOptions;
use crate::names::NameMap;
use crate::paths::ParamPaths;
use crate::plan::LoadPlan;
use burn::module::{Module, Param, ParamId};
use burn::tensor::{Device, Tensor};
use lit_core::{NoObserver, Observer, WeightSource};
use state::State;
use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use units::Units;

/// Most prefetch threads a streamer starts, whatever [`StreamOptions::prefetch`] asks: more
/// reads in flight than this gain nothing on any storage lit was measured on.
pub const MAX_PREFETCH_THREADS: usize = 16;

/// Options of a [`Streamer`].
#[derive(Clone)]
pub struct StreamOptions {
    /// Most bytes of layer buffers held at once. Default: [`Budget::Auto`], sized from the
    /// memory available (everything stays resident when the model fits).
    pub budget: Budget,
    /// How many layers to read ahead in the background (0: read on demand). Default: 1.
    pub prefetch: usize,
    /// Names, layouts and dtype handling of the tensors.
    pub load: LoadOptions,
    /// Store tensors whose layers the model keeps loaded through a whole pass (a tied embedding
    /// used again by the head): the least budget is their layers plus the largest other layer.
    pub held_through_pass: Vec<String>,
    /// Store tensors the model only reads by rows ([`Streamer::rows`]: an embedding table),
    /// never loads whole. When the budget cannot keep the whole model, their layers are read
    /// and held without them (the other tensors by range) and the rows always by range, so a
    /// table larger than the budget does not stop a model whose other layers fit it.
    pub rows_only: Vec<String>,
    /// Submodules the model loads one after another, each on its own (the parameter ids of
    /// each; see [`StreamOptions::with_piece`]).
    pub pieces: Vec<Vec<ParamId>>,
    /// Streams whole layers even where pieces would be streamed (for comparisons). Default:
    /// `false`.
    pub whole_layers: bool,
    /// Receives fetch and compute events.
    pub observer: Arc<dyn Observer>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            budget: Budget::Auto,
            prefetch: 1,
            load: LoadOptions::default(),
            held_through_pass: Vec::new(),
            rows_only: Vec::new(),
            pieces: Vec::new(),
            whole_layers: false,
            observer: Arc::new(NoObserver),
        }
    }
}

impl fmt::Debug for StreamOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamOptions")
            .field("budget", &self.budget)
            .field("prefetch", &self.prefetch)
            .field("load", &self.load)
            .finish_non_exhaustive()
    }
}

impl StreamOptions {
    /// Holds at most `budget` of layers at once: a number of bytes, [`Budget::All`] or
    /// [`Budget::Auto`].
    pub fn with_budget(mut self, budget: impl Into<Budget>) -> Self {
        self.budget = budget.into();
        self
    }

    /// Reads `k` layers ahead in the background.
    pub fn with_prefetch(mut self, k: usize) -> Self {
        self.prefetch = k;
        self
    }

    /// Finds tensors with `names` (see [`crate::names`]).
    pub fn with_names(mut self, names: impl NameMap + 'static) -> Self {
        self.load.names = Arc::new(names);
        self
    }

    /// Declares that the layer holding store tensor `name` stays loaded through each pass (see
    /// [`StreamOptions::held_through_pass`]); unknown names are ignored.
    pub fn with_held_through_pass(mut self, name: impl Into<String>) -> Self {
        self.held_through_pass.push(name.into());
        self
    }

    /// Declares that store tensor `name` is only read by rows (see
    /// [`StreamOptions::rows_only`]); unknown names are ignored.
    pub fn with_rows_only(mut self, name: impl Into<String>) -> Self {
        self.rows_only.push(name.into());
        self
    }

    /// Declares `module` (a submodule of the skeleton, or a tuple of several) a **piece**: a
    /// part of a layer that the model loads on its own, the layer's other pieces before or
    /// after it. When prefetching under a budget that cannot hold two of the largest layers
    /// holding pieces, those layers are then streamed piece by piece, so the next piece is read
    /// while one computes (with whole layers, such a budget reads and computes in series). The model must then
    /// load the pieces, not the whole layer: [`Streamer::loads_pieces`] says which to do.
    ///
    /// Layers are split only when every layer holding a piece can be: stored without
    /// conversion, with per-tensor checksums (format version 3; older stores stream whole).
    pub fn with_piece<M: Module>(mut self, module: &M) -> Self {
        self.pieces.push(crate::load::param_ids(module));
        self
    }

    /// Streams whole layers even where [pieces](StreamOptions::with_piece) would be streamed.
    pub fn with_whole_layers(mut self, whole: bool) -> Self {
        self.whole_layers = whole;
        self
    }

    /// Replaces the load options.
    pub fn with_load_options(mut self, load: LoadOptions) -> Self {
        self.load = load;
        self
    }

    /// Sends events to `observer`.
    pub fn with_observer(mut self, observer: impl Observer + 'static) -> Self {
        self.observer = Arc::new(observer);
        self
    }
}

/// Streams a model's weights from a [`WeightSource`] into clones of its submodules.
///
/// Cheap to share by reference across threads; `load` may be called from several threads.
pub struct Streamer {
    inner: Arc<Inner>,
    workers: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Streamer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streamer")
            .field("source", &self.inner.source.location())
            .field("params", &self.inner.paths.len())
            .field("budget", &self.inner.budget)
            .field("prefetch", &self.workers.len())
            .finish()
    }
}

impl Streamer {
    /// Registers `skeleton` (built lazily; nothing is initialised) against `source`: builds the
    /// path map, finds every parameter's tensor and checks its kind and shape against the
    /// manifest, plans the order, and starts the prefetch threads.
    ///
    /// Errors list every missing or mismatched tensor, or name the layer the budget cannot hold.
    pub fn new<M: Module>(
        source: Arc<dyn WeightSource>,
        skeleton: &M,
        options: StreamOptions,
    ) -> Result<Self> {
        let paths = ParamPaths::from_module(skeleton);
        let manifest = source.manifest();
        let shared: Vec<Problem> = paths
            .shared()
            .map(|p| Problem::AmbiguousParam { paths: p.to_vec() })
            .collect();
        let device = skeleton.devices().first().cloned();
        let plan = LoadPlan::build(
            paths.iter(),
            manifest.layers.iter().enumerate(),
            options.load.rules(),
            device.as_ref(),
        );
        let plan = match (plan, shared.is_empty()) {
            (Ok(plan), true) => plan,
            (Ok(_), false) => return Err(Error::Load(LoadErrors { problems: shared })),
            (Err(Error::Load(mut e)), _) => {
                e.problems.splice(0..0, shared);
                return Err(Error::Load(e));
            }
            (Err(e), _) => return Err(e),
        };
        let used: BTreeSet<usize> = plan.entries().map(|(_, e)| e.layer).collect();
        let whole: Vec<u64> = manifest
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| plan.held_bytes(i, l.byte_len))
            .collect();
        // Tables read only by rows, by layer: their layers can be held without them.
        let mut rows_only: Vec<Vec<usize>> = vec![Vec::new(); manifest.layers.len()];
        for name in &options.rows_only {
            if let Some((l, _)) = manifest.find_tensor(name)
                && let Some(t) = manifest.layers[l]
                    .tensors
                    .iter()
                    .position(|t| &t.name == name)
                && !rows_only[l].contains(&t)
            {
                rows_only[l].push(t);
            }
        }
        let part: Vec<u64> = whole
            .iter()
            .zip(&rows_only)
            .zip(&manifest.layers)
            .map(|((&w, without), l)| {
                let tables: u64 = without.iter().map(|&t| l.tensors[t].len).sum();
                w.saturating_sub(tables)
            })
            .collect();
        // The least budget: the layers held through each pass, plus the largest other layer.
        let pinned: BTreeSet<usize> = options
            .held_through_pass
            .iter()
            .filter_map(|name| manifest.find_tensor(name).map(|(l, _)| l))
            .filter(|l| used.contains(l))
            .collect();
        let least_of = |sizes: &[u64]| {
            let pinned_bytes: u64 = pinned.iter().map(|&l| sizes[l]).sum();
            let other = used
                .iter()
                .filter(|l| !pinned.contains(l))
                .max_by_key(|&&l| sizes[l])
                .copied();
            let other_bytes = other.map_or(0, |l| sizes[l]);
            (pinned_bytes + other_bytes, other, other_bytes)
        };
        let model_bytes: u64 = used.iter().map(|&l| whole[l]).sum();
        let largest = used.iter().map(|&l| whole[l]).max().unwrap_or(0);
        // An automatic budget leaves room to fetch the largest streamed layer ahead. Tables read
        // only by rows lower the least budget only for a budget below the whole model.
        let (least, _, other_bytes) = least_of(&part);
        let choice = BudgetChoice::for_this_process(
            options.budget,
            model_bytes,
            least,
            least + other_bytes,
            largest,
        );
        let budget = choice.bytes;
        let partial = budget < model_bytes && rows_only.iter().any(|t| !t.is_empty());
        let (sizes, parts) = if partial {
            (part, rows_only)
        } else {
            (whole, vec![Vec::new(); manifest.layers.len()])
        };
        let (least, other, _) = least_of(&sizes);
        if least > budget {
            let mut names: Vec<String> = pinned
                .iter()
                .map(|&l| format!("`{}` (held through each pass)", manifest.layers[l].name))
                .collect();
            names.extend(other.map(|l| format!("`{}`", manifest.layers[l].name)));
            return Err(Error::BudgetTooSmall {
                what: format!("layer {}", names.join(" with ")),
                needed: least,
                budget,
            });
        }
        // Reading further ahead than the model is long means nothing, and each slot is a
        // thread: bound them whatever was asked.
        let prefetch = options
            .prefetch
            .min(used.len().saturating_sub(1))
            .min(MAX_PREFETCH_THREADS);
        let mut read_sizes: Vec<u64> = manifest
            .layers
            .iter()
            .zip(&parts)
            .map(|(l, without)| l.byte_len - without.iter().map(|&t| l.tensors[t].len).sum::<u64>())
            .collect();
        let mut sizes = sizes;
        let units = if prefetch > 0 && !options.whole_layers {
            split_pieces(manifest, &plan, &options.pieces, &parts, &pinned, budget)
        } else {
            None
        }
        .unwrap_or_else(|| Units::whole(manifest.layers.len()));
        let mut order = Vec::with_capacity(units.len());
        if units.any_split() {
            sizes.resize(units.len(), 0);
            read_sizes.resize(units.len(), 0);
            for u in 0..units.len() {
                if let Some((_, bytes)) = &units.get(u).run {
                    sizes[u] = bytes.end - bytes.start;
                    read_sizes[u] = sizes[u];
                }
            }
        }
        for &l in &used {
            order.extend_from_slice(units.of_layer(l));
        }
        let state = State::new(sizes, order, budget, prefetch)
            .with_read_sizes(read_sizes)
            .with_groups(units.groups());
        let inner = Arc::new(Inner {
            source,
            paths,
            plan,
            observer: options.observer,
            budget,
            budget_choice: choice,
            device,
            parts,
            units,
            state: Mutex::new(state),
            cond: Condvar::new(),
            changed: Mutex::new(None),
        });
        let workers = (0..prefetch)
            .map(|k| {
                let inner = inner.clone();
                std::thread::Builder::new()
                    .name(format!("lit-prefetch-{k}"))
                    .spawn(move || inner.prefetch_loop())
                    .map_err(|e| {
                        Error::InvalidArgument(format!("cannot start a prefetch thread: {e}"))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Streamer { inner, workers })
    }

    /// A clone of `module` (the skeleton or any submodule of it) filled with its weights.
    /// Dropping the returned [`Loaded`] releases them. Blocks while the layers are read.
    pub fn load<M: Module>(&self, module: &M) -> Result<Loaded<M>> {
        self.inner.load(module)
    }

    /// [`Streamer::load`] without blocking the calling task: the load runs on its own thread and
    /// the future resolves when it is done (any executor will do).
    pub fn load_async<M: Module + 'static>(
        &self,
        module: &M,
    ) -> impl Future<Output = Result<Loaded<M>>> + Send + 'static {
        let (tx, rx) = futures::channel::oneshot::channel();
        let inner = self.inner.clone();
        let module = module.clone();
        let spawned = std::thread::Builder::new()
            .name("lit-load".into())
            .spawn(move || {
                // The receiver may be gone (future dropped): the module is then dropped here.
                let _ = tx.send(inner.load(&module));
            });
        async move {
            spawned
                .map_err(|e| Error::InvalidArgument(format!("cannot start a load thread: {e}")))?;
            rx.await
                .unwrap_or_else(|_| Err(Error::InvalidArgument("the load thread panicked".into())))
        }
    }

    /// Whether this streamer streams the pieces declared with [`StreamOptions::with_piece`]
    /// one at a time: the model must then load each piece on its own, never a whole layer
    /// made of pieces (that would hold all its pieces at once; allowed, but no faster).
    /// `false`: load whole layers (loading their pieces one after another would read each
    /// layer once per piece).
    pub fn loads_pieces(&self) -> bool {
        self.inner.units.any_split()
    }

    /// Rows `ids` of the 2-D float parameter `weight` of the skeleton (an embedding table),
    /// `[ids.len(), cols]` in its type: from its layer when the layer is in memory, otherwise
    /// read by range (a few KiB for a step's tokens instead of the whole table; see
    /// `executor/rows.rs`). Neither counts as a load of the layer in the pass.
    pub fn rows(&self, weight: &Param<Tensor<2>>, ids: &[usize]) -> Result<Tensor<2>> {
        let device = self.inner.device.clone().unwrap_or_default();
        if let Some(data) = self.inner.read_rows(weight.id, ids)? {
            let dtype = self.inner.plan.get(&weight.id).map(|e| e.dtype);
            let t = Tensor::<2>::from_data(data, &device);
            return Ok(match dtype {
                Some(d) if d != t.dtype() => t.cast(d),
                _ => t,
            });
        }
        // Loaded without counting in the pass's order: the model loads the table again later in
        // the pass (a tied head), and that is where it belongs.
        let loaded = self.inner.load_observed(weight, false)?;
        crate::blocks::rows(&loaded, ids)
    }

    /// Loads `module`, runs `f` on it, and releases it.
    pub fn run<M: Module, R>(&self, module: &M, f: impl FnOnce(&M) -> R) -> Result<R> {
        let loaded = self.load(module)?;
        Ok(f(&loaded))
    }

    /// Ends the current pass now (otherwise a pass ends when a layer is loaded a second time).
    pub fn end_pass(&self) {
        self.inner.lock().end_pass();
        self.inner.cond.notify_all();
    }

    /// An error if a mapped layer's file changed (truncated, replaced, rewritten) while a
    /// module computed on it ([`lit_store::check_mapped`]: vanished pages read as zeros), so
    /// results computed since are not to be trusted. Every load checks this itself; call it
    /// after the last use, whose check has no load after it.
    pub fn check_store(&self) -> Result<()> {
        match self
            .inner
            .changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> StreamStats {
        let s = self.inner.lock();
        let (resident_bytes, resident_layers) = s.resident();
        StreamStats {
            passes: s.passes.clone(),
            peak_bytes_held: s.peak(),
            bytes_held: s.held(),
            resident_bytes,
            resident_layers,
            bytes_discarded: s.discarded,
            budget: self.inner.budget,
        }
    }

    /// Names of the layers in the planned order (a layer streamed in pieces once per unit).
    pub fn plan(&self) -> Vec<String> {
        let layers = &self.inner.source.manifest().layers;
        self.inner
            .lock()
            .plan()
            .iter()
            .map(|&u| layers[self.inner.units.get(u).layer].name.clone())
            .collect()
    }

    /// The budget this streamer works within, and how it was chosen (print it: an automatic
    /// budget says what it found).
    pub fn budget(&self) -> &BudgetChoice {
        &self.inner.budget_choice
    }

    /// The skeleton's parameter paths.
    pub fn paths(&self) -> &ParamPaths {
        &self.inner.paths
    }

    /// The source the weights come from.
    pub fn source(&self) -> &Arc<dyn WeightSource> {
        &self.inner.source
    }

    /// The device the skeleton was built on (where loaded tensors go), if it has parameters.
    pub fn device(&self) -> Option<&Device> {
        self.inner.device.as_ref()
    }
}

/// The units of `manifest` with each layer that holds a piece split into its pieces, or `None`
/// when splitting would not pay or cannot be done: no pieces; `budget` holds two of the
/// largest layer holding pieces (whole layers then already overlap: one computes while the next
/// is read); or a layer holding a piece cannot be split: stored with conversions (their working
/// copies are per layer), held without tables, held through each pass, or without per-tensor
/// checksums.
fn split_pieces(
    manifest: &lit_core::Manifest,
    plan: &LoadPlan,
    pieces: &[Vec<ParamId>],
    parts: &[Vec<usize>],
    pinned: &BTreeSet<usize>,
    budget: u64,
) -> Option<Units> {
    let mut assigned: Vec<Option<Vec<Option<usize>>>> = vec![None; manifest.layers.len()];
    for (p, ids) in pieces.iter().enumerate() {
        for id in ids {
            let Some(entry) = plan.get(id) else { continue };
            let layer = &manifest.layers[entry.layer];
            assigned[entry.layer].get_or_insert_with(|| vec![None; layer.tensors.len()])
                [entry.tensor] = Some(p);
        }
    }
    let largest = (0..manifest.layers.len())
        .filter(|&l| assigned[l].is_some())
        .map(|l| plan.held_bytes(l, manifest.layers[l].byte_len))
        .max()?;
    if largest.saturating_mul(2) <= budget {
        return None;
    }
    let mut units = Units::whole(manifest.layers.len());
    for (l, piece) in assigned.iter().enumerate() {
        let Some(piece) = piece else { continue };
        let layer = &manifest.layers[l];
        let splittable = plan.held_bytes(l, layer.byte_len) == layer.byte_len
            && parts[l].is_empty()
            && !pinned.contains(&l)
            && layer.tensors.iter().all(|t| t.checksum.is_some());
        if !splittable {
            return None;
        }
        units.split(l, layer, piece);
    }
    units.any_split().then_some(units)
}

impl Drop for Streamer {
    fn drop(&mut self) {
        self.inner.lock().shutdown = true;
        self.inner.cond.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
