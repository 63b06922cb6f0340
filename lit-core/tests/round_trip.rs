//! Property: any valid manifest encodes and decodes to itself; random bytes never panic the decoder.

use lit_core::manifest::{aux_key, layer_key};
use lit_core::{AuxFile, DType, LayerEntry, Manifest, TensorEntry};
use proptest::prelude::*;

fn arb_manifest() -> impl Strategy<Value = Manifest> {
    let tensor = (
        0usize..DType::ALL.len(),
        prop::collection::vec(0u64..6, 0..4),
        "[a-z_]{1,12}",
    );
    let layer = prop::collection::vec(tensor, 0..6);
    (
        prop::collection::vec(layer, 1..6),
        "[ -~]{0,30}",
        any::<u64>(),
        prop::collection::vec(("[a-z.]{1,12}", any::<u64>(), 0u64..1000), 0..3),
    )
        .prop_map(|(layers, model_name, seed, aux)| {
            let layers: Vec<LayerEntry> = layers
                .into_iter()
                .enumerate()
                .map(|(i, tensors)| {
                    let mut offset = 64u64;
                    let tensors = tensors
                        .into_iter()
                        .enumerate()
                        .map(|(j, (d, shape, name))| {
                            let dtype = DType::ALL[d];
                            offset = offset.next_multiple_of(8);
                            let len = shape.iter().product::<u64>() * dtype.size() as u64;
                            let t = TensorEntry {
                                name: format!("l{i}.t{j}.{name}"),
                                dtype,
                                shape,
                                offset,
                                len,
                                quant: None,
                                checksum: None,
                            };
                            offset += len;
                            t
                        })
                        .collect();
                    LayerEntry {
                        name: format!("layer.{i}"),
                        key: layer_key(i),
                        byte_len: offset,
                        checksum: seed.wrapping_mul(i as u64 + 1),
                        tensors,
                    }
                })
                .collect();
            let aux_files = aux
                .into_iter()
                .enumerate()
                .map(|(i, (name, checksum, byte_len))| AuxFile {
                    name: format!("{i}{name}"),
                    key: aux_key(i),
                    byte_len,
                    checksum,
                })
                .collect();
            Manifest {
                model_name,
                tool_version: lit_core::TOOL_VERSION.into(),
                total_bytes: layers.iter().map(|l| l.byte_len).sum(),
                total_tensors: layers.iter().map(|l| l.tensors.len() as u64).sum(),
                layers,
                aux_files,
                metadata: vec![("seed".into(), seed.to_string())],
            }
        })
}

proptest! {
    #[test]
    fn encode_decode_round_trip(m in arb_manifest()) {
        let bytes = m.encode().unwrap();
        prop_assert_eq!(Manifest::decode(&bytes, "prop").unwrap(), m);
    }

    #[test]
    fn corrupted_bytes_never_panic(m in arb_manifest(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = m.encode().unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        // Any flipped bit is caught: by the magic, version, length, or payload checksum.
        prop_assert!(Manifest::decode(&bytes, "prop").is_err());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Manifest::decode(&bytes, "prop");
    }
}
