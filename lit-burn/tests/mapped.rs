//! A streamer over a mapped store (`ReadMode::Mmap`) whose layer files are truncated between
//! and during uses: every load after that is an error naming the layer, never a crash or a
//! result computed from zeros without one.
#![cfg(target_os = "linux")]

mod common;

use burn::nn::LinearLayout;
use burn::tensor::Device;
use common::*;
use lit_burn::{Error, StreamOptions, Streamer};
use lit_core::WeightSource;
use lit_store::{LocalSource, ReadMode};
use std::path::Path;
use std::sync::Arc;

fn truncate(path: &Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(100)
        .unwrap();
}

/// A mapped store of [`Net`], every layer resident (so its mapping is reused across passes).
/// Returns the reference model, the skeleton the streamer loads, the streamer and the source.
fn mapped(
    seed: u64,
    device: &Device,
) -> (Net, Net, Streamer, Arc<dyn WeightSource>, tempfile::TempDir) {
    let (net, _, tmp) = exported(seed, device);
    let source: Arc<dyn WeightSource> =
        Arc::new(LocalSource::open_with(tmp.path().join("store"), ReadMode::Mmap).unwrap());
    let options = StreamOptions::default()
        .with_budget(source.manifest().total_bytes)
        .with_prefetch(0);
    let skeleton = Net::new(LinearLayout::Row, device);
    let streamer = Streamer::new(source.clone(), &skeleton, options).unwrap();
    (net, skeleton, streamer, source, tmp)
}

fn layer_file(source: &dyn WeightSource, root: &Path, name: &str) -> std::path::PathBuf {
    let layer = source
        .manifest()
        .layers
        .iter()
        .find(|l| l.name == name)
        .unwrap();
    root.join("store").join(&layer.key)
}

#[test]
fn a_resident_mapped_layer_truncated_between_passes_is_an_error() {
    let device = Device::flex();
    let (net, skeleton, streamer, source, tmp) = mapped(7, &device);
    let expected = bits(net.forward(input(&device)));
    let out = streamed_forward(&streamer, &skeleton, input(&device)).unwrap();
    assert_eq!(bits(out), expected);
    truncate(&layer_file(source.as_ref(), tmp.path(), "blocks.1"));
    match streamed_forward(&streamer, &skeleton, input(&device)) {
        Err(Error::Source(lit_core::Error::LengthMismatch { layer, actual, .. })) => {
            assert_eq!(layer, "blocks.1");
            assert_eq!(actual, 100);
        }
        other => panic!("expected LengthMismatch, got {:?}", other.map(bits)),
    }
}

#[test]
fn a_mapped_layer_truncated_while_its_module_computes_fails_the_next_load() {
    let device = Device::flex();
    let (_, skeleton, streamer, source, tmp) = mapped(8, &device);
    let embed = streamer.load(&skeleton.embed).unwrap();
    let h = embed.forward(input(&device));
    drop(embed);
    let block = streamer.load(&skeleton.blocks[0]).unwrap();
    truncate(&layer_file(source.as_ref(), tmp.path(), "blocks.0"));
    // Computes on pages that vanished (zeros, not SIGBUS); dropping the module checks it.
    let _ = bits(block.forward(h));
    drop(block);
    match streamer.load(&skeleton.blocks[1]) {
        Err(Error::Source(lit_core::Error::LengthMismatch { layer, .. })) => {
            assert_eq!(layer, "blocks.0")
        }
        other => panic!("expected LengthMismatch, got {:?}", other.err()),
    }
}
