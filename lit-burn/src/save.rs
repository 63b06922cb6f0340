//! Saving a resident Burn module as a lit store, so a model trained or loaded with Burn can then be
//! streamed. Tensors are stored under their module paths (`blocks.3.weight`) in Burn's own layout,
//! so a [`crate::Streamer`] over the same module type needs no name adapter.

use crate::error::{Error, Result};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Bool, Int, Tensor, TensorData};
use lit_core::Manifest;
use lit_core::grouping::{GroupingOptions, TensorToGroup, plan_layers};
use lit_store::StoreWriter;
use lit_store::layer_file::TensorSpec;
use std::collections::HashSet;
use std::path::Path;

/// Writes every parameter of `module` into a new store at `dst` (which must not exist), grouped
/// into layers by lit's default rule. Reads one layer's tensors at a time.
pub fn save_module<M: Module>(module: &M, dst: &Path) -> Result<Manifest> {
    let specs = describe(module)?;
    if specs.is_empty() {
        return Err(Error::InvalidArgument(
            "the module has no parameters to save".into(),
        ));
    }
    let sizes: Vec<u64> = specs
        .iter()
        .map(|s| s.shape.iter().product::<u64>() * s.dtype.size() as u64)
        .collect();
    let to_group: Vec<TensorToGroup<'_>> = specs
        .iter()
        .zip(&sizes)
        .map(|(s, &bytes)| TensorToGroup {
            name: &s.name,
            bytes,
        })
        .collect();
    let plan = plan_layers(&to_group, &GroupingOptions::default()).map_err(Error::Source)?;
    let mut writer = StoreWriter::create_local(dst).map_err(Error::Source)?;
    for layer in &plan {
        let members: Vec<TensorSpec> = layer.members.iter().map(|&m| specs[m].clone()).collect();
        let wanted: HashSet<&str> = members.iter().map(|s| s.name.as_str()).collect();
        let data = collect(module, &wanted);
        writer
            .write_layer(&layer.name, &members, |i| {
                data.iter()
                    .find(|(path, _)| *path == members[i].name)
                    .map(|(_, d)| d.as_bytes())
                    .ok_or_else(|| {
                        lit_core::Error::not_found(format!("parameter `{}`", members[i].name))
                    })
            })
            .map_err(Error::Source)?;
    }
    writer
        .finish(
            std::any::type_name::<M>(),
            vec![("source".into(), "lit_burn::save::save_module".into())],
        )
        .map_err(Error::Source)
}

/// Every parameter of `module` as (module path, data), in visiting order: the names and bytes
/// [`save_module`] stores. Reads (so initialises) every parameter.
pub fn named_tensors<M: Module>(module: &M) -> Vec<(String, TensorData)> {
    visit(module, &|_| true)
        .into_iter()
        .filter_map(|p| p.data.map(|d| (p.path, d)))
        .collect()
}

/// Every parameter's path, stored dtype and shape, without copying data.
fn describe<M: Module>(module: &M) -> Result<Vec<TensorSpec>> {
    visit(module, &|_| false)
        .into_iter()
        .map(|p| {
            let dtype = crate::dtype::from_burn(p.dtype).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "`{}`: dtype {:?} cannot be stored",
                    p.path, p.dtype
                ))
            })?;
            Ok(TensorSpec {
                name: p.path,
                dtype,
                shape: p.shape.iter().map(|&d| d as u64).collect(),
            })
        })
        .collect()
}

/// The data of the parameters whose paths are in `wanted`.
fn collect<M: Module>(module: &M, wanted: &HashSet<&str>) -> Vec<(String, TensorData)> {
    visit(module, &|path| wanted.contains(path))
        .into_iter()
        .filter_map(|p| p.data.map(|d| (p.path, d)))
        .collect()
}

/// One parameter seen by [`visit`].
struct Visited {
    path: String,
    dtype: burn::tensor::DType,
    shape: Vec<usize>,
    /// Present when the path was wanted.
    data: Option<TensorData>,
}

/// Every parameter in visiting order, with the data of those whose path is `wanted`.
fn visit<M: Module>(module: &M, wanted: &dyn Fn(&str) -> bool) -> Vec<Visited> {
    struct V<'a> {
        stack: Vec<String>,
        wanted: &'a dyn Fn(&str) -> bool,
        out: Vec<Visited>,
    }
    impl V<'_> {
        fn push<const D: usize, K>(&mut self, t: Tensor<D, K>)
        where
            K: burn::tensor::kind::Basic,
            Tensor<D, K>: Clone,
        {
            let path = self.stack.join(".");
            let data = (self.wanted)(&path).then(|| t.clone().into_data());
            self.out.push(Visited {
                path,
                dtype: t.dtype(),
                shape: t.dims().to_vec(),
                data,
            });
        }
    }
    impl ModuleVisitor for V<'_> {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.push(p.val());
        }
        fn visit_int<const D: usize>(&mut self, p: &Param<Tensor<D, Int>>) {
            self.push(p.val());
        }
        fn visit_bool<const D: usize>(&mut self, p: &Param<Tensor<D, Bool>>) {
            self.push(p.val());
        }
    }
    let mut v = V {
        stack: Vec::new(),
        wanted,
        out: Vec::new(),
    };
    module.visit(&mut v);
    v.out
}
