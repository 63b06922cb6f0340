//! The streamer's shared core: the source, the path map, the scheduling state, and the load
//! and prefetch loops that run on callers' and workers' threads.

use super::loaded::Loaded;
use super::state::{Acquire, State};
use super::units::Units;
use crate::error::{Error, LoadErrors, Result};
use crate::load::{LayerSlot, fill, param_ids};
use crate::paths::ParamPaths;
use crate::plan::LoadPlan;
use burn::module::{Module, ParamId};
use burn::tensor::Device;
use lit_core::{Event, LayerData, Observer, WeightSource, WeightSourceExt};
use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// Everything the [`Streamer`](super::Streamer), its workers and its loaded modules share.
pub(crate) struct Inner {
    pub(crate) source: Arc<dyn WeightSource>,
    pub(crate) paths: ParamPaths,
    /// Every parameter's tensor and how it is built, resolved once by `Streamer::new`.
    pub(crate) plan: LoadPlan,
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) budget: u64,
    pub(crate) budget_choice: super::BudgetChoice,
    pub(crate) device: Option<Device>,
    /// Per layer, the tensors it is read and held without (tables read only by rows; see
    /// [`super::StreamOptions::rows_only`]); empty for a layer read whole.
    pub(crate) parts: Vec<Vec<usize>>,
    /// What is read and held as one buffer: the layers, some maybe split into pieces. The
    /// state's indices are units.
    pub(crate) units: Units,
    pub(crate) state: Mutex<State>,
    pub(crate) cond: Condvar,
    /// A store file found changed after a module computed on its mapped bytes
    /// ([`lit_store::check_mapped`]): the next load returns it, so the results computed from
    /// those bytes are not followed by more.
    pub(crate) changed: Mutex<Option<lit_core::Error>>,
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent counters (updates are single steps).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.cond.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn emit(&self, event: Event<'_>) {
        self.observer.on_event(&event);
    }

    /// Reads unit `unit` from the source, with events (under its layer's index): a whole
    /// layer, a layer without its tables read only by rows, or a run of a piece.
    fn fetch(&self, unit: usize) -> lit_core::Result<LayerData> {
        let (index, run) = {
            let u = self.units.get(unit);
            (u.layer, u.run.clone())
        };
        let layer = &self.source.manifest().layers[index];
        let without = &self.parts[index];
        let bytes = match &run {
            Some((_, range)) => range.end - range.start,
            None => layer.byte_len - without.iter().map(|&t| layer.tensors[t].len).sum::<u64>(),
        };
        self.emit(Event::FetchStarted {
            index,
            bytes,
            at: Instant::now(),
        });
        let result = match run {
            Some((tensors, range)) => self.fetch_run(index, tensors, range),
            None if without.is_empty() => {
                futures::executor::block_on(self.source.read_layer(index))
            }
            None => self.fetch_part(index, without),
        };
        self.emit(Event::FetchFinished {
            index,
            bytes: if result.is_ok() { bytes } else { 0 },
            at: Instant::now(),
        });
        result
    }

    /// Layer `index` without tensors `without`: the others read by range, all in flight
    /// together, into one buffer (each at a 64-byte aligned offset); the tensors left out have
    /// no bytes (offset and length 0). Checked for length only: the layer's checksum covers the
    /// whole object.
    fn fetch_part(&self, index: usize, without: &[usize]) -> lit_core::Result<LayerData> {
        let mut entry = self.source.manifest().layers[index].clone();
        let keep: Vec<usize> = (0..entry.tensors.len())
            .filter(|t| !without.contains(t))
            .collect();
        let reads = keep.iter().map(|&t| {
            let e = &entry.tensors[t];
            self.source
                .read_range(lit_core::ObjectId::Layer(index), e.offset..e.offset + e.len)
        });
        let chunks = futures::executor::block_on(futures::future::try_join_all(reads))?;
        let mut buf: Vec<u8> = Vec::new();
        for (&t, chunk) in keep.iter().zip(&chunks) {
            let e = &mut entry.tensors[t];
            if chunk.len() as u64 != e.len {
                return Err(lit_core::Error::LengthMismatch {
                    layer: format!("{} (tensor `{}`)", entry.name, e.name),
                    key: entry.key.clone(),
                    expected: e.len,
                    actual: chunk.len() as u64,
                });
            }
            buf.resize(buf.len().next_multiple_of(64), 0);
            e.offset = buf.len() as u64;
            buf.extend_from_slice(chunk);
        }
        for &t in without {
            let e = &mut entry.tensors[t];
            e.offset = 0;
            e.len = 0;
        }
        entry.byte_len = buf.len() as u64;
        Ok(LayerData {
            index,
            entry,
            bytes: bytes::Bytes::from(buf),
        })
    }

    /// Tensors `tensors` of layer `index`, bytes `range` of the layer object, each tensor
    /// checked against its own checksum; the layer's other tensors have no bytes (offset and
    /// length 0).
    fn fetch_run(
        &self,
        index: usize,
        tensors: std::ops::Range<usize>,
        range: std::ops::Range<u64>,
    ) -> lit_core::Result<LayerData> {
        let bytes = futures::executor::block_on(self.source.read_tensors(index, range.clone()))?;
        let mut entry = self.source.manifest().layers[index].clone();
        for (t, e) in entry.tensors.iter_mut().enumerate() {
            if tensors.contains(&t) {
                e.offset -= range.start;
            } else {
                e.offset = 0;
                e.len = 0;
            }
        }
        entry.byte_len = bytes.len() as u64;
        Ok(LayerData {
            index,
            entry,
            bytes,
        })
    }

    /// The first parameter of `ids` whose tensor a layer is held without (a table read only
    /// by rows), by store name.
    fn rows_only_in(&self, ids: &[ParamId]) -> Option<String> {
        ids.iter().find_map(|id| {
            let entry = self.plan.get(id)?;
            self.parts[entry.layer]
                .contains(&entry.tensor)
                .then(|| entry.name.clone())
        })
    }

    pub(crate) fn prefetch_loop(&self) {
        loop {
            let layer = {
                let mut s = self.lock();
                loop {
                    if s.shutdown {
                        return;
                    }
                    if let Some(layer) = s.next_prefetch() {
                        break layer;
                    }
                    s = self.wait(s);
                }
            };
            let result = self.fetch(layer);
            self.lock().prefetched(layer, result);
            self.cond.notify_all();
        }
    }

    /// The ids of `module`'s parameters and the units they live in (in index order). Ids the
    /// plan lacks are either tolerated missing tensors or not part of the skeleton (an error).
    fn units_of<M: Module>(&self, module: &M) -> Result<(Vec<ParamId>, Vec<usize>)> {
        let ids = param_ids(module);
        let mut problems = Vec::new();
        let mut layers = BTreeSet::new();
        for id in &ids {
            match self.plan.get(id) {
                Some(entry) => {
                    layers.insert(self.units.of(entry.layer, entry.tensor));
                }
                None if self.plan.missing(id).is_some() => {}
                None => problems.extend(self.paths.get(*id).err()),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Load(LoadErrors { problems }));
        }
        Ok((ids, layers.into_iter().collect()))
    }

    pub(crate) fn load<M: Module>(self: &Arc<Self>, module: &M) -> Result<Loaded<M>> {
        self.load_observed(module, true)
    }

    /// [`Inner::load`]; with `observe` false the load neither counts in the pass's order nor
    /// ends a pass (a table's rows taken from its layer, ahead of the layer's own load).
    pub(crate) fn load_observed<M: Module>(
        self: &Arc<Self>,
        module: &M,
        observe: bool,
    ) -> Result<Loaded<M>> {
        let (ids, need) = self.units_of(module)?;
        // The layers of the units, each once (for names, events and the load report).
        let mut layers: Vec<usize> = need.iter().map(|&u| self.units.get(u).layer).collect();
        layers.sort_unstable();
        layers.dedup();
        if let Some(name) = self.rows_only_in(&ids) {
            return Err(Error::InvalidArgument(format!(
                "`{name}` is read only by rows under this budget (StreamOptions::rows_only): \
                 take its rows with Streamer::rows instead of loading it"
            )));
        }
        let manifest = self.source.manifest();
        // In held bytes (converted copies included), as the budget counts them.
        let need_bytes: u64 = {
            let s = self.lock();
            need.iter().map(|&l| s.size(l)).sum()
        };
        let names = || {
            layers
                .iter()
                .map(|&l| format!("`{}`", manifest.layers[l].name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if need_bytes > self.budget {
            return Err(Error::BudgetTooSmall {
                what: format!("loading layers {} together", names()),
                needed: need_bytes,
                budget: self.budget,
            });
        }
        let mut owned = 0u64;
        let mut data = Vec::with_capacity(need.len());
        let mut resident_hits = Vec::new();
        let mut s = self.lock();
        if observe {
            s.begin_load(&need);
        }
        for &layer in &need {
            let size = s.size(layer);
            loop {
                match s.acquire(layer, &need) {
                    Acquire::Have { data: d, owned: o } => {
                        if o {
                            owned += size;
                        } else {
                            resident_hits.push(layer);
                        }
                        data.push(d);
                        break;
                    }
                    Acquire::Wait => s = self.wait(s),
                    Acquire::FetchHere => {
                        drop(s);
                        let result = self.fetch(layer);
                        s = self.lock();
                        let o = s.fetched_here(layer, result.as_ref().ok());
                        self.cond.notify_all();
                        match result {
                            Ok(d) => {
                                owned += if o { size } else { 0 };
                                data.push(d);
                                break;
                            }
                            Err(e) => return Err(self.abort(s, owned, e.into())),
                        }
                    }
                    Acquire::NoRoom(held) => {
                        let err = Error::BudgetHeld {
                            what: format!("layers {}", names()),
                            needed: need_bytes,
                            held,
                            budget: self.budget,
                        };
                        return Err(self.abort(s, owned, err));
                    }
                    Acquire::Failed(e) => return Err(self.abort(s, owned, e.into())),
                }
            }
        }
        s.demand = 0;
        // Mapped layers (`ReadMode::Mmap`) are the store's pages, not a copy: a file truncated
        // or replaced since they were read (a resident layer, between passes) is an error here,
        // before anything computes on zeros or on another file's bytes.
        let stale = self
            .changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let intact = match stale {
            Some(e) => Err(e),
            None => data
                .iter()
                .try_for_each(|d| lit_store::check_mapped(&d.bytes)),
        };
        if let Err(e) = intact {
            return Err(self.abort(s, owned, e.into()));
        }
        // Watched, not held: a module that copied its tensors must not keep the mapping.
        let watches = data
            .iter()
            .filter_map(|d| lit_store::watch_mapped(&d.bytes))
            .collect();
        let slots: Vec<LayerSlot<'_>> = need
            .iter()
            .zip(&data)
            .map(|(&unit, data)| {
                let u = self.units.get(unit);
                LayerSlot {
                    layer: u.layer,
                    tensors: u.run.as_ref().map(|(t, _)| t.clone()),
                    data,
                    converted: s.converted(unit),
                }
            })
            .collect();
        drop(s);
        self.cond.notify_all();
        for unit in resident_hits {
            self.emit_resident_hit(self.units.get(unit).layer);
        }
        let (module, filled) = match fill(module, &self.plan, &slots) {
            Ok(filled) => filled,
            Err(e) => {
                let s = self.lock();
                return Err(self.abort(s, owned, e));
            }
        };
        if filled.converted > 0 {
            self.lock().count_converted(filled.converted);
        }
        let now = Instant::now();
        for &index in &layers {
            self.emit(Event::ComputeStarted { index, at: now });
        }
        Ok(Loaded::new(
            module,
            ids,
            filled.copied,
            self.clone(),
            owned,
            layers,
            watches,
        ))
    }

    fn emit_resident_hit(&self, index: usize) {
        let at = Instant::now();
        self.emit(Event::FetchStarted {
            index,
            bytes: 0,
            at,
        });
        self.emit(Event::FetchFinished {
            index,
            bytes: 0,
            at,
        });
    }

    /// Gives back the bytes a failed load owned and returns `err`.
    fn abort(&self, mut s: MutexGuard<'_, State>, owned: u64, err: Error) -> Error {
        s.release(owned);
        s.demand = 0;
        drop(s);
        self.cond.notify_all();
        err
    }

    /// A loaded module was dropped; `watches` watch its mapped layers, checked after use (a
    /// mapped page that vanished while the module was filled or computed read as zeros: the
    /// next load says so).
    pub(crate) fn finish(&self, owned: u64, layers: &[usize], watches: &[lit_store::MappedWatch]) {
        if let Some(e) = watches.iter().find_map(|w| w.check().err()) {
            self.changed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(e);
        }
        self.lock().release(owned);
        self.cond.notify_all();
        let at = Instant::now();
        for &index in layers {
            self.emit(Event::ComputeFinished { index, at });
        }
    }
}
