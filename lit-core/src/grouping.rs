//! How tensors are grouped into layers, and in which order the layers are stored.
//!
//! **Default rule.** A tensor whose dotted name has a numeric component belongs to the group named
//! by the prefix through the first such component (`encoder.layer.3.attention.self.query.weight` →
//! `encoder.layer.3`, `model.layers.12.mlp.up_proj.weight` → `model.layers.12`). Any other tensor
//! belongs to its top-level module (`embeddings`, `pooler`, `lm_head`), where "top level" skips
//! modules that only wrap a numbered list: in Llama's `model.embed_tokens.weight`, `model` also
//! holds `model.layers.N`, so the group is `model.embed_tokens`, and `model.norm` stays apart.
//!
//! **Order.** Checkpoints do not record execution order (safetensors sorts its header), so layers
//! are ordered by a heuristic: embeddings (`embed`, `wte`, `wpe`, …) first, then numbered groups in
//! natural numeric order (`layer.2` before `layer.10`), then final norms (`norm`, `ln_f`), then the
//! rest (heads, poolers) in natural order. The streaming executor corrects this order with the one
//! it observes on the first pass.
//!
//! **Overrides.** A regex replaces the rule for the tensors it matches: the group is its first
//! capture group, or the whole match when it has none. A maximum layer size splits larger groups
//! into parts named `group#0`, `group#1`, … (a single tensor above the maximum gets a part of its own).

use crate::error::{Error, Result};
use regex::Regex;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

/// A tensor to place: its name and byte length.
#[derive(Debug, Clone, Copy)]
pub struct TensorToGroup<'a> {
    /// Full dotted name.
    pub name: &'a str,
    /// Bytes it will take in the store.
    pub bytes: u64,
}

/// Options of [`plan_layers`].
#[derive(Debug, Clone, Default)]
pub struct GroupingOptions {
    /// Overrides the default rule for the tensors it matches.
    pub regex: Option<Regex>,
    /// Splits groups larger than this many bytes.
    pub max_layer_bytes: Option<u64>,
}

/// One planned layer: its name and the indices (into the input slice) of its tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLayer {
    /// Layer name.
    pub name: String,
    /// Indices of the member tensors in the input, in natural name order.
    pub members: Vec<usize>,
    /// Sum of the members' bytes.
    pub bytes: u64,
}

/// Groups `tensors` into layers in execution order (see the module docs).
pub fn plan_layers(
    tensors: &[TensorToGroup<'_>],
    options: &GroupingOptions,
) -> Result<Vec<PlannedLayer>> {
    if tensors.is_empty() {
        return Err(Error::InvalidArgument("no tensors to group".into()));
    }
    let wrappers = list_wrappers(tensors.iter().map(|t| t.name));
    let mut regex_hits = 0usize;
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, t) in tensors.iter().enumerate() {
        let by_regex = options.regex.as_ref().and_then(|re| {
            let caps = re.captures(t.name)?;
            let m = caps.get(1).or_else(|| caps.get(0))?;
            (!m.as_str().is_empty()).then(|| m.as_str().to_string())
        });
        regex_hits += by_regex.is_some() as usize;
        let group = by_regex.unwrap_or_else(|| default_group(t.name, &wrappers));
        groups.entry(group).or_default().push(i);
    }
    if let Some(re) = &options.regex
        && regex_hits == 0
    {
        return Err(Error::InvalidArgument(format!(
            "--group regex `{re}` matched none of the {} tensors",
            tensors.len()
        )));
    }

    let mut names: Vec<String> = groups.keys().cloned().collect();
    names.sort_by(|a, b| {
        execution_rank(a)
            .cmp(&execution_rank(b))
            .then_with(|| natural_cmp(a, b))
    });

    let mut layers = Vec::with_capacity(names.len());
    for name in names {
        let mut members = groups.remove(&name).unwrap_or_default();
        members.sort_by(|&a, &b| natural_cmp(tensors[a].name, tensors[b].name));
        match options.max_layer_bytes {
            Some(max) if members.iter().map(|&m| tensors[m].bytes).sum::<u64>() > max => {
                let mut part: Vec<usize> = Vec::new();
                let mut part_bytes = 0u64;
                let mut parts = Vec::new();
                for m in members {
                    let b = tensors[m].bytes;
                    if !part.is_empty() && part_bytes.saturating_add(b) > max {
                        parts.push((std::mem::take(&mut part), part_bytes));
                        part_bytes = 0;
                    }
                    part.push(m);
                    part_bytes = part_bytes.saturating_add(b);
                }
                parts.push((part, part_bytes));
                for (k, (members, bytes)) in parts.into_iter().enumerate() {
                    layers.push(PlannedLayer {
                        name: format!("{name}#{k}"),
                        members,
                        bytes,
                    });
                }
            }
            _ => {
                let bytes = members.iter().map(|&m| tensors[m].bytes).sum();
                layers.push(PlannedLayer {
                    name,
                    members,
                    bytes,
                });
            }
        }
    }
    Ok(layers)
}

/// Prefixes (e.g. `model`, `encoder`) that contain a numbered list of submodules.
fn list_wrappers<'a>(names: impl Iterator<Item = &'a str>) -> HashSet<String> {
    let mut wrappers = HashSet::new();
    for name in names {
        let parts: Vec<&str> = name.split('.').collect();
        if let Some(k) = parts.iter().position(|p| is_number(p)) {
            // `model.layers.3` → proper prefixes of the list path `model.layers`: `model`.
            for j in 1..k {
                wrappers.insert(parts[..j].join("."));
            }
        }
    }
    wrappers
}

fn default_group(name: &str, wrappers: &HashSet<String>) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    if let Some(k) = parts.iter().position(|p| is_number(p)) {
        return parts[..=k].join(".");
    }
    if parts.len() == 1 {
        return name.to_string();
    }
    // The shortest prefix that is not a wrapper of a numbered list, never the whole name.
    for j in 1..parts.len() {
        let prefix = parts[..j].join(".");
        if !wrappers.contains(&prefix) {
            return prefix;
        }
    }
    parts[..parts.len() - 1].join(".")
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// 0: inputs (embeddings), 1: numbered blocks, 2: final norms, 3: everything else (heads, poolers).
fn execution_rank(group: &str) -> u8 {
    let base = group.split('#').next().unwrap_or(group);
    let last = base.rsplit('.').next().unwrap_or(base).to_ascii_lowercase();
    let lower = base.to_ascii_lowercase();
    if base.split('.').any(is_number) {
        1
    } else if lower.contains("embed") || ["wte", "wpe", "tok_embeddings"].contains(&last.as_str()) {
        0
    } else if last.contains("norm") || last == "ln_f" {
        2
    } else {
        3
    }
}

/// Compares strings treating runs of digits as numbers (`layer.2` < `layer.10`).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na
                    .len()
                    .cmp(&nb.len())
                    .then_with(|| na.cmp(nb))
                    .then_with(|| da.cmp(&db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let nz = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    &digits[nz..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(names: &[&str], options: &GroupingOptions) -> Vec<(String, Vec<String>)> {
        let tensors: Vec<_> = names
            .iter()
            .map(|n| TensorToGroup { name: n, bytes: 10 })
            .collect();
        plan_layers(&tensors, options)
            .unwrap()
            .into_iter()
            .map(|l| {
                (
                    l.name,
                    l.members.iter().map(|&m| names[m].to_string()).collect(),
                )
            })
            .collect()
    }

    fn layer_names(names: &[&str]) -> Vec<String> {
        plan(names, &GroupingOptions::default())
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn bert_groups_in_execution_order() {
        let names = [
            "pooler.dense.weight",
            "encoder.layer.10.output.dense.weight",
            "encoder.layer.2.output.dense.weight",
            "embeddings.word_embeddings.weight",
            "embeddings.LayerNorm.weight",
            "encoder.layer.2.attention.self.query.weight",
        ];
        assert_eq!(
            layer_names(&names),
            [
                "embeddings",
                "encoder.layer.2",
                "encoder.layer.10",
                "pooler"
            ]
        );
    }

    #[test]
    fn llama_separates_embeddings_norm_and_head() {
        let names = [
            "lm_head.weight",
            "model.norm.weight",
            "model.layers.1.mlp.up_proj.weight",
            "model.layers.0.self_attn.q_proj.weight",
            "model.embed_tokens.weight",
        ];
        assert_eq!(
            layer_names(&names),
            [
                "model.embed_tokens",
                "model.layers.0",
                "model.layers.1",
                "model.norm",
                "lm_head"
            ]
        );
    }

    #[test]
    fn gpt2_without_prefix() {
        let names = [
            "ln_f.weight",
            "h.1.attn.c_attn.weight",
            "wpe.weight",
            "h.0.ln_1.bias",
            "wte.weight",
        ];
        assert_eq!(layer_names(&names), ["wpe", "wte", "h.0", "h.1", "ln_f"]);
    }

    #[test]
    fn regex_overrides_and_must_match() {
        let names = ["a.b.0.w", "a.b.1.w", "c.w"];
        let options = GroupingOptions {
            regex: Some(Regex::new(r"^(a\.b)\.").unwrap()),
            ..Default::default()
        };
        let got = plan(&names, &options);
        assert_eq!(
            got[0],
            (
                "a.b".to_string(),
                vec!["a.b.0.w".to_string(), "a.b.1.w".to_string()]
            )
        );
        let never = GroupingOptions {
            regex: Some(Regex::new("zzz").unwrap()),
            ..Default::default()
        };
        let tensors: Vec<_> = names
            .iter()
            .map(|n| TensorToGroup { name: n, bytes: 1 })
            .collect();
        let err = plan_layers(&tensors, &never).unwrap_err().to_string();
        assert!(err.contains("matched none"), "{err}");
    }

    #[test]
    fn max_size_splits_groups() {
        let names = ["l.0.a", "l.0.b", "l.0.c", "l.1.a"];
        let options = GroupingOptions {
            max_layer_bytes: Some(20),
            ..Default::default()
        };
        let got: Vec<String> = plan(&names, &options).into_iter().map(|(n, _)| n).collect();
        assert_eq!(got, ["l.0#0", "l.0#1", "l.1"]);
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["x10", "x9", "x010", "x1", "y", "x"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["x", "x1", "x9", "x10", "x010", "y"]);
    }
}
