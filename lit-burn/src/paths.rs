//! [`ParamPaths`]: every parameter of a skeleton by [`ParamId`], with its full dotted path.
//!
//! Built once from the whole skeleton, so that any submodule (`&model.blocks[3]`) can be loaded
//! without the user spelling its prefix: visiting the submodule yields its parameters' ids, and
//! the map gives their full paths (`blocks.3.fc1.weight`). Burn's `*_with_path` visitor hooks are
//! never called by the framework, so the visitor keeps its own path stack from
//! `enter_module`/`exit_module`. Visiting reads only `lazy_shape()`: no parameter is initialised.

use crate::error::Problem;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::{Bool, Int, Tensor};
use std::collections::HashMap;

/// The element kind of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    /// A float tensor.
    Float,
    /// An integer tensor.
    Int,
    /// A boolean tensor.
    Bool,
}

/// One parameter of a skeleton.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    /// Full dotted path from the skeleton's root, e.g. `blocks.3.fc1.weight`.
    pub path: String,
    /// The struct or enum that owns the field, as Burn names it, e.g. `Struct:Linear`.
    pub owner: String,
    /// Element kind.
    pub kind: ParamKind,
    /// Shape the skeleton declares (`lazy_shape`, read without initialising).
    pub shape: Vec<usize>,
}

impl ParamInfo {
    /// The last component of the path (`weight`, `bias`, `gamma`, …).
    pub fn field(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }

    /// The owner's type name without its `Struct:`/`Enum:` prefix (`Linear`, `LayerNorm`, …).
    pub fn owner_type(&self) -> &str {
        self.owner
            .split_once(':')
            .map(|(_, name)| name)
            .unwrap_or(&self.owner)
    }
}

#[derive(Debug, Clone)]
enum Slot {
    Unique(ParamInfo),
    /// One id reached through several paths (a module cloned into two places).
    Shared(Vec<String>),
}

/// Map from [`ParamId`] to [`ParamInfo`] for every parameter of one skeleton.
#[derive(Debug, Clone, Default)]
pub struct ParamPaths {
    by_id: HashMap<ParamId, Slot>,
    order: Vec<ParamId>,
}

impl ParamPaths {
    /// Visits `root` once (without initialising anything) and records every parameter.
    pub fn from_module<M: Module>(root: &M) -> Self {
        let mut paths = ParamPaths::default();
        for (id, info) in visit_params(root) {
            match paths.by_id.get_mut(&id) {
                None => {
                    paths.order.push(id);
                    paths.by_id.insert(id, Slot::Unique(info));
                }
                Some(slot) => {
                    let mut all = match slot {
                        Slot::Unique(first) => vec![first.path.clone()],
                        Slot::Shared(list) => std::mem::take(list),
                    };
                    all.push(info.path);
                    *slot = Slot::Shared(all);
                }
            }
        }
        paths
    }

    /// Number of distinct parameters.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the skeleton has no parameters.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The parameter with `id`: an error when it is unknown or shared by several paths.
    pub fn get(&self, id: ParamId) -> Result<&ParamInfo, Problem> {
        match self.by_id.get(&id) {
            Some(Slot::Unique(info)) => Ok(info),
            Some(Slot::Shared(paths)) => Err(Problem::AmbiguousParam {
                paths: paths.clone(),
            }),
            None => Err(Problem::UnknownParam { id: id.to_string() }),
        }
    }

    /// Every parameter, in visiting order (shared ones omitted).
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &ParamInfo)> + '_ {
        self.order.iter().filter_map(|id| match &self.by_id[id] {
            Slot::Unique(info) => Some((*id, info)),
            Slot::Shared(_) => None,
        })
    }

    /// Groups of paths that share one parameter id (modules cloned into several places).
    pub fn shared(&self) -> impl Iterator<Item = &[String]> + '_ {
        self.order.iter().filter_map(|id| match &self.by_id[id] {
            Slot::Shared(paths) => Some(paths.as_slice()),
            Slot::Unique(_) => None,
        })
    }

    /// The parameters of `module` (the root or any submodule of it), with their full paths, in
    /// visiting order; problems for parameters the map does not know or cannot tell apart.
    pub fn params_of<M: Module>(&self, module: &M) -> Vec<(ParamId, Result<&ParamInfo, Problem>)> {
        visit_params(module)
            .into_iter()
            .map(|(id, _)| (id, self.get(id)))
            .collect()
    }
}

/// Every parameter of `module` with its path relative to `module`, in visiting order.
pub fn visit_params<M: Module>(module: &M) -> Vec<(ParamId, ParamInfo)> {
    let mut visitor = PathVisitor::default();
    module.visit(&mut visitor);
    visitor.found
}

#[derive(Default)]
struct PathVisitor {
    /// (name, container type) of each module entered and not yet exited.
    stack: Vec<(String, String)>,
    found: Vec<(ParamId, ParamInfo)>,
}

impl PathVisitor {
    fn record(&mut self, id: ParamId, kind: ParamKind, shape: Vec<usize>) {
        let path = self
            .stack
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(".");
        let owner = self
            .stack
            .last()
            .map(|(_, container)| container.clone())
            .unwrap_or_default();
        self.found.push((
            id,
            ParamInfo {
                path,
                owner,
                kind,
                shape,
            },
        ));
    }
}

impl ModuleVisitor for PathVisitor {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.record(param.id, ParamKind::Float, param.lazy_shape().to_vec());
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
        self.record(param.id, ParamKind::Int, param.lazy_shape().to_vec());
    }

    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
        self.record(param.id, ParamKind::Bool, param.lazy_shape().to_vec());
    }
}

/// Whether every parameter of `module` is still lazy (nothing allocated).
pub fn is_lazy<M: Module>(module: &M) -> bool {
    struct Lazy(bool);
    impl ModuleVisitor for Lazy {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0 &= !p.is_initialized();
        }
        fn visit_int<const D: usize>(&mut self, p: &Param<Tensor<D, Int>>) {
            self.0 &= !p.is_initialized();
        }
        fn visit_bool<const D: usize>(&mut self, p: &Param<Tensor<D, Bool>>) {
            self.0 &= !p.is_initialized();
        }
    }
    let mut v = Lazy(true);
    module.visit(&mut v);
    v.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Block {
        fc1: Linear,
        norm: LayerNorm,
        fc2: Option<Linear>,
    }

    #[derive(Module, Debug)]
    struct Net {
        blocks: Vec<Block>,
        head: Linear,
    }

    fn net(device: &Device) -> Net {
        let block = |out_bias| Block {
            fc1: LinearConfig::new(4, 8).init(device),
            norm: LayerNormConfig::new(8).init(device),
            fc2: Some(LinearConfig::new(8, 4).with_bias(out_bias).init(device)),
        };
        Net {
            blocks: vec![block(true), block(false)],
            head: LinearConfig::new(4, 2).init(device),
        }
    }

    #[test]
    fn full_paths_without_initialising() {
        let device = Device::flex();
        let net = net(&device);
        let paths = ParamPaths::from_module(&net);
        assert!(is_lazy(&net));
        let all: Vec<&str> = paths.iter().map(|(_, i)| i.path.as_str()).collect();
        assert_eq!(
            all,
            [
                "blocks.0.fc1.weight",
                "blocks.0.fc1.bias",
                "blocks.0.norm.gamma",
                "blocks.0.norm.beta",
                "blocks.0.fc2.weight",
                "blocks.0.fc2.bias",
                "blocks.1.fc1.weight",
                "blocks.1.fc1.bias",
                "blocks.1.norm.gamma",
                "blocks.1.norm.beta",
                "blocks.1.fc2.weight",
                "head.weight",
                "head.bias",
            ]
        );
        // A submodule's parameters come back with their full paths.
        let sub: Vec<String> = paths
            .params_of(&net.blocks[1].fc2)
            .into_iter()
            .map(|(_, info)| info.unwrap().path.clone())
            .collect();
        assert_eq!(sub, ["blocks.1.fc2.weight"]);
        let (_, w) = paths.iter().next().unwrap();
        assert_eq!(w.owner, "Struct:Linear");
        assert_eq!(w.owner_type(), "Linear");
        assert_eq!(w.field(), "weight");
        assert_eq!(w.shape, [4, 8]);
        assert_eq!(w.kind, ParamKind::Float);
        assert!(is_lazy(&net), "building the map must not initialise params");
    }

    #[test]
    fn cloned_modules_are_ambiguous_and_foreign_ones_unknown() {
        let device = Device::flex();
        let b = LinearConfig::new(2, 2).init(&device);
        let pair = vec![b.clone(), b];
        let paths = ParamPaths::from_module(&pair);
        match paths.get(pair[0].weight.id) {
            Err(Problem::AmbiguousParam { paths }) => {
                assert_eq!(paths, ["0.weight", "1.weight"])
            }
            other => panic!("{other:?}"),
        }
        let other = LinearConfig::new(2, 2).init(&device);
        assert!(matches!(
            paths.get(other.weight.id),
            Err(Problem::UnknownParam { .. })
        ));
    }
}
