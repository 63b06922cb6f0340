//! The real all-MiniLM-L6-v2 checkpoint: export, inspect, verify, and a flipped byte caught by
//! verify and by load.

mod common;
use common::*;
use futures::executor::block_on;
use lit_core::{Error, WeightSource, WeightSourceExt};

#[test]
fn minilm_export_inspect_verify_and_corruption() {
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("minilm.lit");
    let store_s = store.to_str().unwrap();

    let out = lit(&[
        "export",
        model.to_str().unwrap(),
        store_s,
        "--name",
        "all-MiniLM-L6-v2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("exported 8 layers, 104 tensors"),
        "{}",
        stdout(&out)
    );

    let out = lit(&["inspect", store_s, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    let mut expected = vec!["embeddings".to_string()];
    expected.extend((0..6).map(|i| format!("encoder.layer.{i}")));
    expected.push("pooler".into());
    assert_eq!(names, expected);
    assert_eq!(json["total_tensors"], 104);
    assert_eq!(json["model_name"], "all-MiniLM-L6-v2");
    // Every encoder layer holds the same 16 tensors.
    for l in &json["layers"].as_array().unwrap()[1..7] {
        assert_eq!(l["tensor_count"], 16);
    }
    let aux: Vec<&str> = json["aux_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(
        aux.contains(&"config.json") && aux.contains(&"tokenizer.json"),
        "{aux:?}"
    );

    // The store's tensors are the checkpoint's, byte for byte (read independently with safetensors).
    let original = std::fs::read(model.join("model.safetensors")).unwrap();
    let original = safetensors::SafeTensors::deserialize(&original).unwrap();
    let source = lit_store::LocalSource::open(&store).unwrap();
    for (name, view) in original.tensors() {
        let (_, bytes) = block_on(source.read_tensor(&name)).unwrap();
        assert!(bytes.as_ref() == view.data(), "{name}");
    }

    let out = lit(&["inspect", store_s, "--tensors"]);
    assert!(
        stdout(&out).contains("encoder.layer.3.attention.self.query.weight  F32 [384, 384]"),
        "{}",
        stdout(&out)
    );

    let out = lit(&["verify", store_s]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("every checksum matches"));

    // Flip one byte in the middle of encoder.layer.3's tensor data.
    let key = &source.manifest().layers[4].key;
    assert_eq!(source.manifest().layers[4].name, "encoder.layer.3");
    let path = store.join(key);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let out = lit(&["verify", store_s]);
    assert!(!out.status.success(), "verify passed a corrupted store");
    let err = stderr(&out);
    assert!(
        err.contains("encoder.layer.3") && err.contains("checksum mismatch"),
        "{err}"
    );
    assert!(
        !err.contains("encoder.layer.2"),
        "only the bad layer is named: {err}"
    );

    match block_on(source.read_layer(4)) {
        Err(Error::ChecksumMismatch { layer, .. }) => assert_eq!(layer, "encoder.layer.3"),
        other => panic!("load of a corrupted layer: {other:?}"),
    }
    assert!(block_on(source.read_layer(3)).is_ok());
}
