//! Filling a clone of a (sub)module's lazy parameters with tensors from [`LayerData`].
//!
//! A [`LoadPlan`] says, for each parameter id, which tensor of which layer fills it and how
//! (see [`crate::plan`]); filling maps a clone of the module with a
//! `ModuleMapper` that follows it: each parameter's bytes are sliced out of its layer, wrapped as
//! a `TensorData` and handed to `Param::transform_for_load`, which replaces the lazy initialiser
//! without running it. The skeleton itself stays lazy: clones share only the lazy state, which
//! loading never touches. [`load_module`] plans and fills in one call, listing every problem.
//!
//! **Copies.** A tensor whose bytes are aligned for its element type is wrapped with
//! `Bytes::from_shared` over the layer's buffer: no copy, the module holds a reference to the
//! layer. A misaligned tensor is copied once into an aligned buffer. Floats keep their stored
//! type unless [`LoadOptions::float_dtype`] asks for another (one converting copy).

use crate::blocks::{self, BlockMatrix};
use crate::dtype::to_burn;
use crate::error::{Error, LoadErrors, Problem, Result};
use crate::names::{Identity, Layout, NameMap};
use crate::paths::ParamPaths;
use crate::plan::{LoadPlan, PlanRules, Step};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{
    AllocationProperty, Bool, Bytes, DType as BurnDType, Device, FloatDType, Int, Tensor,
    TensorData,
};
use lit_core::quant::{self, QuantError, QuantScheme};
use lit_core::{DType, LayerData, LayerEntry};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, RwLock};

/// How [`load_module`] reads tensors.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Store names and layouts of the skeleton's parameters.
    pub names: Arc<dyn NameMap>,
    /// Convert float tensors to this type on load; `None` keeps the stored type.
    pub float_dtype: Option<FloatDType>,
    /// Leave parameters whose tensor is missing lazy instead of failing.
    pub allow_missing: bool,
    /// Keep quantized `Linear`/`Embedding` weights as blocks and compute on them
    /// ([`crate::blocks`]) instead of decoding them on load.
    pub block_compute: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            names: Arc::new(Identity),
            float_dtype: None,
            allow_missing: false,
            block_compute: false,
        }
    }
}

impl LoadOptions {
    /// Uses `names` to find each parameter's tensor.
    pub fn with_names(mut self, names: impl NameMap + 'static) -> Self {
        self.names = Arc::new(names);
        self
    }

    /// Converts float tensors to `dtype` on load.
    pub fn with_float_dtype(mut self, dtype: FloatDType) -> Self {
        self.float_dtype = Some(dtype);
        self
    }

    /// Leaves parameters whose tensor is missing lazy instead of failing.
    pub fn with_allow_missing(mut self, allow: bool) -> Self {
        self.allow_missing = allow;
        self
    }

    /// Keeps the quantized weights of `Linear` and `Embedding` modules as their blocks (on a
    /// CPU device, f32 compute) instead of decoding them on load: a layer then holds only its
    /// stored bytes. Code that computes through [`crate::blocks`] (`matmul`, `embedding`, as
    /// the built-in models do) works on the blocks; anything else that reads such a weight
    /// (`Linear::forward`, [`Param::val`]) gets it decoded then, once per load. Off by default.
    pub fn with_block_compute(mut self, on: bool) -> Self {
        self.block_compute = on;
        self
    }
}

/// What a load did, by store tensor name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Tensors loaded into parameters.
    pub applied: Vec<String>,
    /// Tensors the module needs that the layers do not hold (only with `allow_missing`).
    pub missing: Vec<String>,
    /// Tensors of the layers that no parameter of the module used.
    pub unused: Vec<String>,
    /// Loaded tensors that needed a copy (misaligned bytes or a dtype conversion).
    pub copied: Vec<String>,
}

/// Returns a clone of `module` whose parameters are filled from `layers` (see the module docs).
///
/// `paths` must have been built from `module` or from a module containing it. This plans the
/// module against `layers` and fills it; a [`Streamer`](crate::Streamer) plans once and fills
/// many times.
pub fn load_module<M: Module>(
    module: &M,
    paths: &ParamPaths,
    layers: &[LayerData],
    options: &LoadOptions,
) -> Result<(M, LoadReport)> {
    let mut problems = Vec::new();
    let mut params = Vec::new();
    let ids = param_ids(module);
    for id in &ids {
        match paths.get(*id) {
            Ok(info) => params.push((*id, info)),
            Err(p) => problems.push(p),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Load(LoadErrors { problems }));
    }
    let device = module.devices().into_iter().next();
    let plan = LoadPlan::build(
        params,
        layers.iter().enumerate().map(|(i, l)| (i, &l.entry)),
        options.rules(),
        device.as_ref(),
    )?;
    let slots: Vec<LayerSlot<'_>> = layers
        .iter()
        .enumerate()
        .map(|(layer, data)| LayerSlot {
            layer,
            tensors: None,
            data,
            converted: None,
        })
        .collect();
    let (loaded, filled) = fill(module, &plan, &slots)?;
    let report = LoadReport::of(&plan, &ids, &filled.copied, layers.iter().map(|l| &l.entry));
    Ok((loaded, report))
}

impl LoadOptions {
    pub(crate) fn rules(&self) -> PlanRules<'_> {
        PlanRules {
            names: self.names.as_ref(),
            float_dtype: self.float_dtype,
            allow_missing: self.allow_missing,
            block_compute: self.block_compute,
        }
    }
}

impl LoadReport {
    /// The report of a load of the parameters `ids` that followed `plan` from `layers`;
    /// `copied` lists the parameters whose bytes were copied.
    pub(crate) fn of<'a>(
        plan: &LoadPlan,
        ids: &[ParamId],
        copied: &[ParamId],
        layers: impl IntoIterator<Item = &'a LayerEntry>,
    ) -> Self {
        let mut report = LoadReport::default();
        let mut used = HashSet::new();
        for id in ids {
            if let Some(e) = plan.get(id) {
                used.insert(e.name.as_str());
                report.applied.push(e.name.clone());
            } else if let Some(name) = plan.missing(id) {
                report.missing.push(name.to_string());
            }
        }
        report.copied = copied
            .iter()
            .filter_map(|id| plan.get(id).map(|e| e.name.clone()))
            .collect();
        for layer in layers {
            for t in &layer.tensors {
                if !used.contains(t.name.as_str()) {
                    report.unused.push(t.name.clone());
                }
            }
        }
        report
    }
}

/// The ids of `module`'s parameters, in visiting order (no names are built).
pub(crate) fn param_ids<M: Module>(module: &M) -> Vec<ParamId> {
    struct Ids(Vec<ParamId>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push(p.id);
        }
        fn visit_int<const D: usize>(&mut self, p: &Param<Tensor<D, Int>>) {
            self.0.push(p.id);
        }
        fn visit_bool<const D: usize>(&mut self, p: &Param<Tensor<D, Bool>>) {
            self.0.push(p.id);
        }
    }
    let mut ids = Ids(Vec::new());
    module.visit(&mut ids);
    ids.0
}

/// Tensors a resident layer's steps already built (converted or dequantized), by position in
/// the layer, so that later loads of the layer reuse them instead of converting again. Their
/// bytes are shared: a clone costs nothing. The budget counts them (see [`crate::plan`]).
pub(crate) type Converted = Arc<Mutex<HashMap<usize, TensorData>>>;

/// A layer's bytes for [`fill`]: its index in the plan, its data, and its converted tensors
/// when it is resident.
pub(crate) struct LayerSlot<'a> {
    pub(crate) layer: usize,
    /// The tensors `data` holds when it is a run of the layer (a piece); `None`: all of them.
    pub(crate) tensors: Option<std::ops::Range<usize>>,
    pub(crate) data: &'a LayerData,
    pub(crate) converted: Option<Converted>,
}

/// A clone of `module` filled by following `plan` from `layers`; returns it with the parameters
/// whose bytes were copied or converted. Parameters the plan does not hold (tolerated missing)
/// stay lazy.
pub(crate) fn fill<M: Module>(
    module: &M,
    plan: &LoadPlan,
    layers: &[LayerSlot<'_>],
) -> Result<(M, Filled)> {
    let mut filler = Filler {
        plan,
        layers,
        copied: Vec::new(),
        converted: 0,
        problems: Vec::new(),
    };
    let loaded = module.clone().map(&mut filler);
    if !filler.problems.is_empty() {
        return Err(Error::Load(LoadErrors {
            problems: filler.problems,
        }));
    }
    Ok((
        loaded,
        Filled {
            copied: filler.copied,
            converted: filler.converted,
        },
    ))
}

/// What [`fill`] did besides filling.
pub(crate) struct Filled {
    /// Parameters whose bytes were copied or converted (from a cache or not).
    pub(crate) copied: Vec<ParamId>,
    /// Tensors a step converted in this fill (cache hits not counted).
    pub(crate) converted: usize,
}

struct Filler<'a> {
    plan: &'a LoadPlan,
    layers: &'a [LayerSlot<'a>],
    copied: Vec<ParamId>,
    converted: usize,
    problems: Vec<Problem>,
}

impl Filler<'_> {
    /// The data of parameter `id` as its plan says, and its layout; `None` when it stays lazy.
    fn data(&mut self, id: ParamId) -> Option<(TensorData, BurnDType, Layout)> {
        let entry = self.plan.get(&id)?;
        let slot = self.layers.iter().find(|s| {
            s.layer == entry.layer && s.tensors.as_ref().is_none_or(|t| t.contains(&entry.tensor))
        })?;
        let converts = entry.step != Step::AsStored;
        if converts {
            self.copied.push(id);
            let cached = slot.converted.as_ref().and_then(|c| {
                let c = c.lock().unwrap_or_else(|e| e.into_inner());
                c.get(&entry.tensor).cloned()
            });
            if let Some(data) = cached {
                return Some((data, entry.dtype, entry.layout));
            }
        }
        let t = slot.data.entry.tensors.get(entry.tensor)?;
        let bytes = slot
            .data
            .bytes
            .slice(t.offset as usize..(t.offset + t.len) as usize);
        if converts {
            self.converted += 1;
        }
        let data = match entry.step {
            Step::Dequantize { scheme, to, .. } => {
                let values = match dequantize(scheme, &bytes) {
                    Ok(v) => v,
                    Err(e) => {
                        self.problems.push(Problem::Decode {
                            tensor: entry.name.clone(),
                            reason: e.to_string(),
                        });
                        return None;
                    }
                };
                let data = TensorData::from_bytes(values, entry.shape.clone(), BurnDType::F32);
                if to == FloatDType::F32 {
                    data
                } else {
                    data.convert_dtype(to.into())
                }
            }
            step => {
                let (raw, copied) = wrap_bytes(bytes, entry.stored);
                if copied && !converts {
                    self.copied.push(id);
                }
                let stored =
                    TensorData::from_bytes(raw, entry.shape.clone(), to_burn(entry.stored));
                match step {
                    Step::Cast { to, .. } => stored.convert_dtype(to.into()),
                    _ => stored,
                }
            }
        };
        let data = match &slot.converted {
            Some(cache) if converts => {
                // Shared bytes: the cache and the module hold one copy.
                let (bytes, shape, dtype) = data.into_parts();
                let data = TensorData::from_bytes(bytes.shared(), shape, dtype);
                let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
                c.insert(entry.tensor, data.clone());
                data
            }
            _ => data,
        };
        Some((data, entry.dtype, entry.layout))
    }
}

/// Decodes quantized `bytes` to f32 (native-endian bytes for Burn), on several threads for large
/// tensors (whole blocks each).
///
/// A large tensor decodes into an anonymous mapping advised for transparent huge pages, each thread
/// writing its share straight into its part through a small scratch buffer that stays in cache.
/// A streamed quantized layer is decoded again every pass, into fresh memory: measured on a
/// 1B-parameter q8_0 Llama (3.6 GB of decoded f32 per token), faulting in that memory 4 KiB at a
/// time, plus per-thread buffers joined by a copy, took most of each pass; huge pages and the
/// direct writes cut the pass from 2.5 s to 0.7–1.3 s (docs/benchmarks.md, "Bytes read set the
/// speed").
fn dequantize(scheme: QuantScheme, bytes: &[u8]) -> Result<Bytes, QuantError> {
    const PER_THREAD: usize = 1 << 20;
    const SCRATCH_ELEMS: usize = 1 << 15;
    let block = scheme.block_bytes() as usize;
    let elems = scheme.block_elems() as usize;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let blocks = bytes.len() / block;
    let map = if bytes.len() < 2 * PER_THREAD || !bytes.len().is_multiple_of(block) {
        // Small tensors, and a length that is not whole blocks (the decoder's error names it).
        None
    } else {
        blocks
            .checked_mul(elems * 4)
            .and_then(|len| memmap2::MmapMut::map_anon(len).ok())
    };
    let Some(mut map) = map else {
        let mut out = Vec::new();
        quant::dequantize(scheme, bytes, &mut out)?;
        return Ok(Bytes::from_elems(out));
    };
    // Only a hint: without transparent huge pages the mapping still works, 4 KiB at a time.
    let _ = map.advise(memmap2::Advice::HugePage);
    let out: &mut [f32] = bytemuck::cast_slice_mut(&mut map[..]);
    let per_thread = blocks.div_ceil(threads);
    let per_scratch = (SCRATCH_ELEMS / elems).max(1);
    let results: Vec<Result<(), QuantError>> = std::thread::scope(|s| {
        let handles: Vec<_> = bytes
            .chunks(per_thread * block)
            .zip(out.chunks_mut(per_thread * elems))
            .map(|(src, dst)| {
                s.spawn(move || {
                    let mut scratch = Vec::with_capacity(per_scratch * elems);
                    for (b, o) in src
                        .chunks(per_scratch * block)
                        .zip(dst.chunks_mut(per_scratch * elems))
                    {
                        scratch.clear();
                        quant::dequantize(scheme, b, &mut scratch)?;
                        o.copy_from_slice(&scratch);
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(QuantError::Length {
                        scheme,
                        reason: "a decoding thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    for r in results {
        r?;
    }
    Ok(Bytes::from_shared(
        bytes::Bytes::from_owner(map),
        AllocationProperty::Other,
    ))
}

/// Wraps a tensor's bytes for Burn without a copy when aligned for `dtype`; returns whether it
/// had to copy.
pub(crate) fn wrap_bytes(bytes: bytes::Bytes, dtype: DType) -> (Bytes, bool) {
    if (bytes.as_ptr() as usize).is_multiple_of(dtype.size()) {
        (Bytes::from_shared(bytes, AllocationProperty::Other), false)
    } else {
        (Bytes::from_bytes_vec(bytes.to_vec()), true)
    }
}

/// Whether `param`'s load mapper transposes the tensor it is given, found with a tiny probe
/// once per parameter (a streamed model fills its block weights on every pass).
fn mapper_transposes<const D: usize>(param: &Param<Tensor<D>>, device: &Device) -> bool {
    static SEEN: LazyLock<RwLock<HashMap<ParamId, bool>>> = LazyLock::new(Default::default);
    if let Some(t) = SEEN.read().ok().and_then(|m| m.get(&param.id).copied()) {
        return t;
    }
    let mut probe = [1usize; D];
    probe[D - 1] = 2;
    let mapped = param
        .clone()
        .transform_for_load(Tensor::<D>::zeros(probe, device), param.id);
    let transposes = mapped.val().dims()[D - 1] != 2;
    if let Ok(mut m) = SEEN.write() {
        m.insert(param.id, transposes);
    }
    transposes
}

impl Filler<'_> {
    /// `param` filled with its blocks when the plan keeps them ([`Step::Blocks`]); `Err` gives
    /// the parameter back otherwise.
    fn blocks<const D: usize>(
        &mut self,
        param: Param<Tensor<D>>,
    ) -> std::result::Result<Param<Tensor<D>>, Param<Tensor<D>>> {
        let Some(entry) = self.plan.get(&param.id) else {
            return Err(param);
        };
        let Step::Blocks { scheme } = entry.step else {
            return Err(param);
        };
        let Some(slot) = self.layers.iter().find(|s| s.layer == entry.layer) else {
            return Err(param);
        };
        let Some(t) = slot.data.entry.tensors.get(entry.tensor) else {
            return Err(param);
        };
        let bytes = slot
            .data
            .bytes
            .slice(t.offset as usize..(t.offset + t.len) as usize);
        let [rows, cols] = [entry.shape[0], entry.shape[1]];
        let matrix = match BlockMatrix::new(scheme, rows, cols, bytes) {
            Ok(m) => m,
            Err(e) => {
                self.problems.push(Problem::Decode {
                    tensor: entry.name.clone(),
                    reason: e.to_string(),
                });
                return Ok(param);
            }
        };
        // The tensor Burn would have given the parameter: the stored matrix, transposed by the
        // plan's layout and again by the parameter's own load mapper (`LinearLayout::Col`),
        // which a tiny probe reveals.
        let device = param.lazy_device();
        let mapper_transposes = mapper_transposes(&param, &device);
        let transposed = (entry.layout == Layout::Transposed) != mapper_transposes;
        let shape = if transposed {
            vec![cols, rows]
        } else {
            vec![rows, cols]
        };
        Ok(blocks::lazy_param(matrix, transposed, device, shape))
    }
}

impl ModuleMapper for Filler<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let param = match self.blocks(param) {
            Ok(filled) => return filled,
            Err(param) => param,
        };
        let device = param.lazy_device();
        let Some((data, dtype, layout)) = self.data(param.id) else {
            return param;
        };
        let tensor = Tensor::<D>::from_data(data, (&device, dtype));
        let tensor = match layout {
            Layout::AsStored => tensor,
            Layout::Transposed => tensor.transpose(),
        };
        let id = param.id;
        param.transform_for_load(tensor, id)
    }

    fn map_int<const D: usize>(&mut self, param: Param<Tensor<D, Int>>) -> Param<Tensor<D, Int>> {
        let device = param.lazy_device();
        let Some((data, dtype, layout)) = self.data(param.id) else {
            return param;
        };
        let tensor = Tensor::<D, Int>::from_data(data, (&device, dtype));
        let tensor = match layout {
            Layout::AsStored => tensor,
            Layout::Transposed => tensor.transpose(),
        };
        let id = param.id;
        param.transform_for_load(tensor, id)
    }

    fn map_bool<const D: usize>(
        &mut self,
        param: Param<Tensor<D, Bool>>,
    ) -> Param<Tensor<D, Bool>> {
        let device = param.lazy_device();
        let Some((data, _, layout)) = self.data(param.id) else {
            return param;
        };
        let tensor = Tensor::<D, Bool>::from_data(data, &device);
        let tensor = match layout {
            Layout::AsStored => tensor,
            Layout::Transposed => tensor.transpose(),
        };
        let id = param.id;
        param.transform_for_load(tensor, id)
    }
}
