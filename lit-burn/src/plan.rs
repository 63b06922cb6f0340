//! The load plan: every parameter's tensor resolved once, then followed by every load.
//!
//! Building a [`LoadPlan`] runs the [`NameMap`] over the skeleton's parameters a single time, finds
//! each tensor in the store (layer and position in the layer), checks kind, shape and layout, and
//! decides how its bytes become a Burn tensor (a [`Step`]). A load then only looks parameters up
//! by [`ParamId`]: no names are built, no tensor is searched for, nothing is checked again.
//!
//! The plan also knows what a layer costs while it is held: its stored bytes plus the working
//! copies its steps make (a bf16 tensor computed in f32 holds both), which is what the streamer's
//! budget counts.

use crate::dtype::{is_int, to_burn};
use crate::error::{Error, LoadErrors, Problem, Result};
use crate::names::{Layout, NameMap, StoreTensor};
use crate::paths::{ParamInfo, ParamKind};
use burn::module::ParamId;
use burn::tensor::{DType as BurnDType, Device, FloatDType};
use lit_core::quant::QuantScheme;
use lit_core::{DType, LayerEntry, TensorEntry};
use std::collections::HashMap;

/// How a parameter's stored bytes become its tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The stored bytes as they are (wrapped without a copy when aligned).
    AsStored,
    /// Floats converted to another type: one working copy of `bytes` bytes.
    Cast {
        /// The type the parameter gets.
        to: FloatDType,
        /// Bytes of the converted copy.
        bytes: u64,
    },
    /// Quantized blocks decoded to f32 (then converted to `to` if that is another type): one
    /// working copy of `bytes` bytes.
    Dequantize {
        /// The block scheme of the stored bytes.
        scheme: QuantScheme,
        /// The type the parameter gets.
        to: FloatDType,
        /// Bytes of the decoded copy.
        bytes: u64,
    },
    /// Quantized blocks kept as they are, in a [`BlockMatrix`](crate::blocks::BlockMatrix) that
    /// [`crate::blocks`] computes on (no working copy; see [`LoadOptions::with_block_compute`]).
    ///
    /// [`LoadOptions::with_block_compute`]: crate::LoadOptions::with_block_compute
    Blocks {
        /// The block scheme of the stored bytes.
        scheme: QuantScheme,
    },
}

impl Step {
    /// Bytes this step allocates beside the stored ones while the tensor is alive.
    pub fn working_bytes(&self) -> u64 {
        match self {
            Step::AsStored | Step::Blocks { .. } => 0,
            Step::Cast { bytes, .. } | Step::Dequantize { bytes, .. } => *bytes,
        }
    }
}

/// Where one parameter's tensor is and how it is built.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEntry {
    /// The layer holding the tensor (an index into the manifest, or into the layers given to
    /// [`load_module`](crate::load_module)).
    pub layer: usize,
    /// Position of the tensor in that layer's tensor list.
    pub tensor: usize,
    /// The tensor's store name (for reports and errors).
    pub name: String,
    /// Layout of the stored tensor relative to the parameter.
    pub layout: Layout,
    /// The stored element type.
    pub stored: DType,
    /// The stored shape.
    pub shape: Vec<usize>,
    /// The element type of the parameter's tensor.
    pub dtype: BurnDType,
    /// How the bytes become the tensor.
    pub step: Step,
}

/// Every parameter's [`PlanEntry`], by [`ParamId`] (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct LoadPlan {
    entries: HashMap<ParamId, PlanEntry>,
    /// Parameters whose tensor is missing and allowed to be, with the name looked up.
    missing: HashMap<ParamId, String>,
    /// Working bytes each layer's steps add while it is held, by layer.
    working: HashMap<usize, u64>,
}

/// Options that decide the plan's steps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanRules<'a> {
    pub(crate) names: &'a dyn NameMap,
    pub(crate) float_dtype: Option<FloatDType>,
    pub(crate) allow_missing: bool,
    pub(crate) block_compute: bool,
}

impl LoadPlan {
    /// Plans `params` against the tensors of `layers` (`(index, entry)` pairs): resolves each
    /// name once, checks it, and picks its step. Lists every problem in one error.
    pub(crate) fn build<'a>(
        params: impl IntoIterator<Item = (ParamId, &'a ParamInfo)>,
        layers: impl IntoIterator<Item = (usize, &'a LayerEntry)>,
        rules: PlanRules<'_>,
        device: Option<&Device>,
    ) -> Result<Self> {
        let index: HashMap<&str, (usize, usize, &TensorEntry)> = layers
            .into_iter()
            .flat_map(|(l, entry)| {
                entry
                    .tensors
                    .iter()
                    .enumerate()
                    .map(move |(t, e)| (e.name.as_str(), (l, t, e)))
            })
            .collect();
        let mut plan = LoadPlan::default();
        let mut problems = Vec::new();
        for (id, info) in params {
            let target = rules.names.resolve(info);
            let Some(&(layer, tensor, entry)) = index.get(target.name.as_str()) else {
                if rules.allow_missing {
                    plan.missing.insert(id, target.name);
                } else {
                    problems.push(Problem::Missing {
                        tensor: target.name,
                        path: info.path.clone(),
                    });
                }
                continue;
            };
            match plan_entry(info, target, entry, layer, tensor, &rules, device) {
                Ok(e) => {
                    *plan.working.entry(layer).or_default() += e.step.working_bytes();
                    plan.entries.insert(id, e);
                }
                Err(p) => problems.push(p),
            }
        }
        if problems.is_empty() {
            Ok(plan)
        } else {
            Err(Error::Load(LoadErrors { problems }))
        }
    }

    /// The entry of parameter `id`, if it has a tensor.
    pub fn get(&self, id: &ParamId) -> Option<&PlanEntry> {
        self.entries.get(id)
    }

    /// The store name looked up for `id` when its tensor is missing and that is allowed.
    pub fn missing(&self, id: &ParamId) -> Option<&str> {
        self.missing.get(id).map(String::as_str)
    }

    /// Every planned entry (any order).
    pub fn entries(&self) -> impl Iterator<Item = (&ParamId, &PlanEntry)> + '_ {
        self.entries.iter()
    }

    /// Memory layer `layer` takes while held: `stored` bytes plus its steps' working copies.
    pub fn held_bytes(&self, layer: usize, stored: u64) -> u64 {
        stored + self.working.get(&layer).copied().unwrap_or(0)
    }
}

/// Checks a stored tensor against its parameter and picks the step.
fn plan_entry(
    info: &ParamInfo,
    target: StoreTensor,
    entry: &TensorEntry,
    layer: usize,
    tensor: usize,
    rules: &PlanRules<'_>,
    device: Option<&Device>,
) -> std::result::Result<PlanEntry, Problem> {
    let shape = check_entry(info, &target, entry)?;
    let stored = to_burn(entry.dtype);
    let elems: u64 = entry.shape.iter().product();
    let (dtype, step) = match (info.kind, rules.float_dtype, entry.quant) {
        (_, None | Some(FloatDType::F32), Some(scheme))
            if rules.block_compute && computes_on_blocks(info, scheme, &shape, device) =>
        {
            (BurnDType::F32, Step::Blocks { scheme })
        }
        (_, to, Some(scheme)) => {
            let to = to.unwrap_or(FloatDType::F32);
            let bytes = elems * BurnDType::from(to).size() as u64;
            (BurnDType::from(to), Step::Dequantize { scheme, to, bytes })
        }
        (ParamKind::Float, Some(to), None) if BurnDType::from(to) != stored => {
            let elems = entry.len / entry.dtype.size() as u64;
            let size = BurnDType::from(to).size() as u64;
            (
                BurnDType::from(to),
                Step::Cast {
                    to,
                    bytes: elems * size,
                },
            )
        }
        (ParamKind::Bool, _, None) => (
            device.map_or(stored, |d| d.settings().bool_dtype.into()),
            Step::AsStored,
        ),
        _ => (stored, Step::AsStored),
    };
    if let Some(device) = device
        && !device.supports_dtype(dtype)
    {
        return Err(Problem::UnsupportedDType {
            tensor: target.name,
            dtype: format!("{dtype:?}"),
        });
    }
    Ok(PlanEntry {
        layer,
        tensor,
        name: target.name,
        layout: target.layout,
        stored: entry.dtype,
        shape,
        dtype,
        step,
    })
}

/// Whether [`crate::blocks`] computes on `info`'s blocks: the weight of a `Linear` or an
/// `Embedding`, 2-D with whole blocks per stored row, on a device whose tensors live in host
/// memory (the kernels read the activations there).
fn computes_on_blocks(
    info: &ParamInfo,
    scheme: QuantScheme,
    stored: &[usize],
    device: Option<&Device>,
) -> bool {
    let on_host = device.is_none_or(|d| *d == Device::flex());
    on_host
        && matches!(info.owner_type(), "Linear" | "Embedding")
        && info.field() == "weight"
        && stored.len() == 2
        && (stored[1] as u64).is_multiple_of(scheme.block_elems())
}

/// Checks a stored tensor against the parameter it fills (element kind, layout, shape) and
/// returns the stored shape.
fn check_entry(
    info: &ParamInfo,
    target: &StoreTensor,
    entry: &TensorEntry,
) -> std::result::Result<Vec<usize>, Problem> {
    let kind_ok = match info.kind {
        // Quantized blocks decode to floats.
        ParamKind::Float => entry.dtype.is_float() || entry.quant.is_some(),
        ParamKind::Int => is_int(entry.dtype) && entry.quant.is_none(),
        ParamKind::Bool => entry.dtype == DType::Bool && entry.quant.is_none(),
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
        Layout::AsStored => stored.clone(),
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
    Ok(stored)
}
