//! Filling a clone of a (sub)module's lazy parameters with tensors from [`LayerData`].
//!
//! [`load_module`] maps a clone of the module with a `ModuleMapper`. For each parameter it
//! looks up the full path in a [`ParamPaths`], asks the [`NameMap`] for the store tensor and its
//! [`Layout`], checks kind (float/int/bool) and shape against the skeleton, builds the tensor and
//! hands it to `Param::transform_for_load`, which replaces the lazy initialiser without running
//! it. The skeleton itself stays lazy: clones share only the lazy state, which loading never
//! touches. Every problem is collected, so one error lists every bad tensor.
//!
//! **Copies.** A tensor whose bytes are aligned for its element type is wrapped with
//! `Bytes::from_shared` over the layer's buffer: no copy, the module holds a reference to the
//! layer. A misaligned tensor is copied once into an aligned buffer. Floats keep their stored
//! type unless [`LoadOptions::float_dtype`] asks for another (one converting copy).

use crate::dtype::{is_int, to_burn};
use crate::error::{Error, LoadErrors, Problem, Result};
use crate::names::{Identity, Layout, NameMap, StoreTensor};
use crate::paths::{ParamInfo, ParamKind, ParamPaths};
use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{
    AllocationProperty, Bool, Bytes, DType as BurnDType, Device, FloatDType, Int, Tensor,
    TensorData,
};
use lit_core::{DType, LayerData, TensorEntry};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// How [`load_module`] reads tensors.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Store names and layouts of the skeleton's parameters.
    pub names: Arc<dyn NameMap>,
    /// Convert float tensors to this type on load; `None` keeps the stored type.
    pub float_dtype: Option<FloatDType>,
    /// Leave parameters whose tensor is missing lazy instead of failing.
    pub allow_missing: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            names: Arc::new(Identity),
            float_dtype: None,
            allow_missing: false,
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
/// `paths` must have been built from `module` or from a module containing it.
pub fn load_module<M: Module>(
    module: &M,
    paths: &ParamPaths,
    layers: &[LayerData],
    options: &LoadOptions,
) -> Result<(M, LoadReport)> {
    let mut tensors: HashMap<&str, (&TensorEntry, bytes::Bytes)> = HashMap::new();
    for layer in layers {
        for (entry, bytes) in layer.tensors() {
            tensors.insert(entry.name.as_str(), (entry, bytes));
        }
    }
    let mut loader = Loader {
        paths,
        options,
        tensors,
        used: HashSet::new(),
        problems: Vec::new(),
        report: LoadReport::default(),
    };
    let loaded = module.clone().map(&mut loader);
    if !loader.problems.is_empty() {
        return Err(Error::Load(LoadErrors {
            problems: loader.problems,
        }));
    }
    let mut report = loader.report;
    for layer in layers {
        for t in &layer.entry.tensors {
            if !loader.used.contains(t.name.as_str()) {
                report.unused.push(t.name.clone());
            }
        }
    }
    Ok((loaded, report))
}

struct Loader<'a> {
    paths: &'a ParamPaths,
    options: &'a LoadOptions,
    tensors: HashMap<&'a str, (&'a TensorEntry, bytes::Bytes)>,
    used: HashSet<String>,
    problems: Vec<Problem>,
    report: LoadReport,
}

/// A checked tensor, ready to become a Burn tensor.
struct Prepared {
    data: TensorData,
    dtype: BurnDType,
    layout: Layout,
}

impl Loader<'_> {
    /// Finds, checks and wraps the tensor of parameter `id` (its kind and shape come from the
    /// path map, built from the same parameter); `None` after recording a problem
    /// (or a tolerated missing tensor).
    fn prepare(&mut self, id: ParamId, device: &Device) -> Option<Prepared> {
        let info = match self.paths.get(id) {
            Ok(info) => info,
            Err(p) => {
                self.problems.push(p);
                return None;
            }
        };
        let target = self.options.names.resolve(info);
        let Some((entry, bytes)) = self.tensors.get(target.name.as_str()).cloned() else {
            if self.options.allow_missing {
                self.report.missing.push(target.name);
            } else {
                self.problems.push(Problem::Missing {
                    tensor: target.name,
                    path: info.path.clone(),
                });
            }
            return None;
        };
        if let Err(p) = check_entry(info, &target, entry) {
            self.problems.push(p);
            return None;
        }
        let name = target.name;
        let stored: Vec<usize> = entry.shape.iter().map(|&d| d as usize).collect();
        let dtype = match (info.kind, self.options.float_dtype) {
            (ParamKind::Float, Some(f)) => BurnDType::from(f),
            (ParamKind::Bool, _) => device.settings().bool_dtype.into(),
            _ => to_burn(entry.dtype),
        };
        if !device.supports_dtype(dtype) {
            self.problems.push(Problem::UnsupportedDType {
                tensor: name,
                dtype: format!("{dtype:?}"),
            });
            return None;
        }
        let (raw, copied) = wrap_bytes(bytes, entry.dtype);
        if copied || dtype != to_burn(entry.dtype) {
            self.report.copied.push(name.clone());
        }
        self.used.insert(name.clone());
        self.report.applied.push(name);
        Some(Prepared {
            data: TensorData::from_bytes(raw, stored, to_burn(entry.dtype)),
            dtype,
            layout: target.layout,
        })
    }
}

/// Checks a stored tensor against the parameter it fills: element kind, layout, shape.
pub(crate) fn check_entry(
    info: &ParamInfo,
    target: &StoreTensor,
    entry: &TensorEntry,
) -> std::result::Result<(), Problem> {
    let kind_ok = match info.kind {
        ParamKind::Float => entry.dtype.is_float(),
        ParamKind::Int => is_int(entry.dtype),
        ParamKind::Bool => entry.dtype == DType::Bool,
    };
    if !kind_ok {
        return Err(Problem::DTypeMismatch {
            tensor: target.name.clone(),
            path: info.path.clone(),
            expected: match info.kind {
                ParamKind::Float => "a float type",
                ParamKind::Int => "an integer type",
                ParamKind::Bool => "BOOL",
            }
            .into(),
            found: entry.dtype,
        });
    }
    let stored: Vec<usize> = entry.shape.iter().map(|&d| d as usize).collect();
    let found = match target.layout {
        Layout::AsStored => stored,
        Layout::Transposed if stored.len() == 2 => vec![stored[1], stored[0]],
        Layout::Transposed => {
            return Err(Problem::BadLayout {
                tensor: target.name.clone(),
                reason: format!(
                    "a transposed layout needs a 2-D tensor, the store has shape {stored:?}"
                ),
            });
        }
    };
    if found != info.shape {
        return Err(Problem::ShapeMismatch {
            tensor: target.name.clone(),
            path: info.path.clone(),
            expected: info.shape.clone(),
            found,
        });
    }
    Ok(())
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

impl ModuleMapper for Loader<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let device = param.lazy_device();
        let Some(p) = self.prepare(param.id, &device) else {
            return param;
        };
        let tensor = Tensor::<D>::from_data(p.data, (&device, p.dtype));
        let tensor = match p.layout {
            Layout::AsStored => tensor,
            Layout::Transposed => tensor.transpose(),
        };
        let id = param.id;
        param.transform_for_load(tensor, id)
    }

    fn map_int<const D: usize>(&mut self, param: Param<Tensor<D, Int>>) -> Param<Tensor<D, Int>> {
        let device = param.lazy_device();
        let Some(p) = self.prepare(param.id, &device) else {
            return param;
        };
        let tensor = Tensor::<D, Int>::from_data(p.data, (&device, p.dtype));
        let tensor = match p.layout {
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
        let Some(p) = self.prepare(param.id, &device) else {
            return param;
        };
        let tensor = Tensor::<D, Bool>::from_data(p.data, &device);
        let tensor = match p.layout {
            Layout::AsStored => tensor,
            Layout::Transposed => tensor.transpose(),
        };
        let id = param.id;
        param.transform_for_load(tensor, id)
    }
}
