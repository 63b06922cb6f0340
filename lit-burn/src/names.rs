//! From Burn module paths to store tensor names and layouts: the per-model adapter.
//!
//! lit stores tensors under the checkpoint's own names and layouts (PyTorch `[out, in]` linear
//! weights for Hugging Face checkpoints). A model's Burn modules may be named differently
//! (`layers.3.attn.q.weight` vs `model.layers.3.self_attn.q_proj.weight`, `gamma` vs `weight`)
//! and Burn's [`Linear`](burn::nn::Linear) stores `[in, out]` unless built with
//! [`LinearLayout::Col`](burn::nn::LinearLayout::Col). A [`NameMap`] bridges the two; the loader
//! applies it to every parameter.
//!
//! Transposes cost nothing on Flex: a transposed tensor is a strided view of the stored bytes,
//! and Flex's f32/f16 matmul reads strides directly. With `LinearLayout::Col` the skeleton itself
//! expects `[out, in]` and Burn transposes on load, so such models need [`Layout::AsStored`].

use crate::paths::ParamInfo;
use std::fmt;
use std::sync::Arc;

/// How a stored tensor relates to the parameter it fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Same shape and layout as the parameter.
    #[default]
    AsStored,
    /// A 2-D tensor stored transposed (`[out, in]` for a Row-layout `Linear` weight).
    Transposed,
}

/// Where a parameter's data lives in the store: the tensor name and its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTensor {
    /// Full tensor name in the store.
    pub name: String,
    /// Layout relative to the parameter.
    pub layout: Layout,
}

/// Maps a skeleton's parameters to store tensors. One per model architecture.
pub trait NameMap: Send + Sync + fmt::Debug {
    /// The store tensor that fills `param`.
    fn resolve(&self, param: &ParamInfo) -> StoreTensor;
}

/// Store names equal module paths; every tensor as stored. For stores exported from a Burn model.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

impl NameMap for Identity {
    fn resolve(&self, param: &ParamInfo) -> StoreTensor {
        StoreTensor {
            name: param.path.clone(),
            layout: Layout::AsStored,
        }
    }
}

type Rename = Arc<dyn Fn(&str) -> String + Send + Sync>;
type Predicate = Arc<dyn Fn(&ParamInfo) -> bool + Send + Sync>;

/// A [`NameMap`] built from rules applied in order to the module path.
///
/// ```
/// use lit_burn::names::NameRules;
/// // A Burn BERT with `layers.N` and LayerNorm `gamma`/`beta`, Row-layout linears, loading
/// // Hugging Face names:
/// let map = NameRules::new()
///     .replace_prefix("layers.", "encoder.layer.")
///     .rename_field("LayerNorm", "gamma", "weight")
///     .rename_field("LayerNorm", "beta", "bias")
///     .transpose_linear_weights();
/// # let _ = map;
/// ```
#[derive(Clone, Default)]
pub struct NameRules {
    renames: Vec<Rename>,
    field_renames: Vec<(String, String, String)>,
    transposed: Vec<Predicate>,
}

impl fmt::Debug for NameRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NameRules")
            .field("renames", &self.renames.len())
            .field("field_renames", &self.field_renames)
            .field("transposed", &self.transposed.len())
            .finish()
    }
}

impl NameRules {
    /// No rules: the identity.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces a leading `from` of the path with `to` (paths not starting with `from` pass).
    pub fn replace_prefix(self, from: &str, to: &str) -> Self {
        let (from, to) = (from.to_string(), to.to_string());
        self.rename(move |path| match path.strip_prefix(from.as_str()) {
            Some(rest) => format!("{to}{rest}"),
            None => path.to_string(),
        })
    }

    /// Replaces every dotted component equal to `from` with `to` (`attn` → `self_attn`).
    pub fn replace_component(self, from: &str, to: &str) -> Self {
        let (from, to) = (from.to_string(), to.to_string());
        self.rename(move |path| {
            path.split('.')
                .map(|c| if c == from { to.as_str() } else { c })
                .collect::<Vec<_>>()
                .join(".")
        })
    }

    /// Renames the last component `from` to `to` for parameters owned by type `owner`
    /// (`"LayerNorm"`, `"gamma"`, `"weight"`). Applied before the path rules.
    pub fn rename_field(mut self, owner: &str, from: &str, to: &str) -> Self {
        self.field_renames
            .push((owner.to_string(), from.to_string(), to.to_string()));
        self
    }

    /// Any rename of the path; rules run in the order they were added.
    pub fn rename(mut self, f: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        self.renames.push(Arc::new(f));
        self
    }

    /// Marks the parameters `pred` accepts as stored transposed.
    pub fn transpose_if(
        mut self,
        pred: impl Fn(&ParamInfo) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.transposed.push(Arc::new(pred));
        self
    }

    /// Marks every 2-D `weight` of a Burn `Linear` as stored `[out, in]` (PyTorch) while the
    /// skeleton is Row layout `[in, out]`. Do not use with `LinearLayout::Col` skeletons.
    pub fn transpose_linear_weights(self) -> Self {
        self.transpose_if(|p| {
            p.owner_type() == "Linear" && p.field() == "weight" && p.shape.len() == 2
        })
    }
}

impl NameMap for NameRules {
    fn resolve(&self, param: &ParamInfo) -> StoreTensor {
        let mut name = param.path.clone();
        for (owner, from, to) in &self.field_renames {
            if param.owner_type() == owner && param.field() == from {
                let stem = &param.path[..param.path.len() - from.len()];
                name = format!("{stem}{to}");
            }
        }
        for rename in &self.renames {
            name = rename(&name);
        }
        let layout = if self.transposed.iter().any(|p| p(param)) {
            Layout::Transposed
        } else {
            Layout::AsStored
        };
        StoreTensor { name, layout }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::ParamKind;

    fn info(path: &str, owner: &str, shape: &[usize]) -> ParamInfo {
        ParamInfo {
            path: path.into(),
            owner: format!("Struct:{owner}"),
            kind: ParamKind::Float,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn rules_rename_and_transpose() {
        let map = NameRules::new()
            .replace_prefix("layers.", "model.layers.")
            .replace_component("attn", "self_attn")
            .rename_field("LayerNorm", "gamma", "weight")
            .transpose_linear_weights();
        let r = map.resolve(&info("layers.3.attn.q.weight", "Linear", &[8, 4]));
        assert_eq!(r.name, "model.layers.3.self_attn.q.weight");
        assert_eq!(r.layout, Layout::Transposed);
        let r = map.resolve(&info("layers.3.attn.q.bias", "Linear", &[4]));
        assert_eq!(r.layout, Layout::AsStored);
        let r = map.resolve(&info("layers.0.ln.gamma", "LayerNorm", &[4]));
        assert_eq!(r.name, "model.layers.0.ln.weight");
        let r = map.resolve(&info("norm.gamma", "RmsNorm", &[4]));
        assert_eq!(r.name, "norm.gamma", "rename_field is per owner type");
        assert_eq!(
            Identity.resolve(&info("a.b", "X", &[1])),
            StoreTensor {
                name: "a.b".into(),
                layout: Layout::AsStored
            }
        );
    }
}
