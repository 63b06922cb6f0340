//! A Hugging Face model directory: `config.json`, tokenizer files, and one `model.safetensors` or
//! several shards listed by `model.safetensors.index.json`.

use super::{Checkpoint, Listed, SafetensorsFile, SourceTensor, TensorData};
use lit_core::{Error, Result};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Small files copied into the store when present, so it is self-contained.
pub const CARRIED_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
];

/// A model directory opened for export.
pub type HfDirectory = Listed<HfShards>;

/// The directory's safetensors shards and where each listed tensor is in them.
#[derive(Debug)]
pub struct HfShards {
    files: Vec<SafetensorsFile>,
    /// For each tensor: (file index, index in that file).
    locations: Vec<(usize, usize)>,
}

impl Listed<HfShards> {
    /// Opens `dir`, every safetensors shard in it, and its carried files.
    pub fn open(dir: &Path) -> Result<Self> {
        let shown = dir.display().to_string();
        let index_path = dir.join("model.safetensors.index.json");
        let shard_names: Vec<String> = if index_path.exists() {
            let text = std::fs::read_to_string(&index_path)
                .map_err(|e| Error::io(index_path.display(), e))?;
            let index: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::InvalidCheckpoint {
                    file: index_path.display().to_string(),
                    reason: format!("invalid JSON: {e}"),
                })?;
            let map = index
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::InvalidCheckpoint {
                    file: index_path.display().to_string(),
                    reason: "no `weight_map` object".into(),
                })?;
            let names: BTreeSet<String> = map
                .values()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            for n in &names {
                if n.contains('/') || n.contains('\\') || n.starts_with('.') {
                    return Err(Error::InvalidCheckpoint {
                        file: index_path.display().to_string(),
                        reason: format!("shard name `{n}` is not a plain file name"),
                    });
                }
            }
            names.into_iter().collect()
        } else {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .map_err(|e| Error::io(&shown, e))?
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.ends_with(".safetensors"))
                .collect();
            names.sort();
            names
        };
        if shard_names.is_empty() {
            return Err(Error::InvalidCheckpoint {
                file: shown,
                reason: "no *.safetensors file in this directory".into(),
            });
        }
        let mut files = Vec::new();
        let mut tensors = Vec::new();
        let mut locations = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for (f, name) in shard_names.iter().enumerate() {
            let file = SafetensorsFile::open(&dir.join(name))?;
            for (i, t) in file.tensors().iter().enumerate() {
                if let Some(other) = seen.insert(t.name.clone(), name.clone()) {
                    return Err(Error::InvalidTensor {
                        file: shown.clone(),
                        tensor: t.name.clone(),
                        reason: format!("appears in both {other} and {name}"),
                    });
                }
                tensors.push(t.clone());
                locations.push((f, i));
            }
            files.push(file);
        }
        let mut aux = Vec::new();
        for name in CARRIED_FILES {
            let p = dir.join(name);
            if p.is_file() {
                aux.push((
                    name.to_string(),
                    std::fs::read(&p).map_err(|e| Error::io(p.display(), e))?,
                ));
            }
        }
        Ok(Listed::new(shown, tensors, HfShards { files, locations }).with_aux(aux))
    }
}

impl TensorData for HfShards {
    fn read_into(&self, _: &str, index: usize, _: &SourceTensor, out: &mut Vec<u8>) -> Result<()> {
        let (f, i) = self.locations[index];
        self.files[f].read_into(i, out)
    }
}
