//! Any bytes given to the export path as a `.safetensors`, PyTorch, burnpack or GGUF file give a store
//! or an error, never a panic; a store that is produced verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lit_store::{ExportOptions, StoreWriter};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join(match kind % 4 {
        0 => "m.safetensors",
        1 => "m.pt",
        2 => "m.bpk",
        _ => "m.gguf",
    });
    std::fs::write(&src, bytes).expect("write input");
    let Ok(writer) = StoreWriter::create_local(dir.path().join("store")) else { return };
    if lit_store::export(&src, writer, &ExportOptions::default(), &lit_core::NoObserver).is_ok() {
        let source = lit_store::LocalSource::open(dir.path().join("store")).expect("exported store opens");
        let report = futures_lite_block_on(&source);
        assert!(report, "exported store does not verify");
    }
});

fn futures_lite_block_on(source: &lit_store::LocalSource) -> bool {
    use lit_core::{WeightSource, WeightSourceExt};
    let fut = source.verify(&|_, _, _| {});
    // LocalSource never awaits anything pending: poll once with a no-op waker.
    let mut fut = std::pin::pin!(fut);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => r.failed.is_empty() && r.ok.len() == source.manifest().layers.len() + source.manifest().aux_files.len(),
        std::task::Poll::Pending => panic!("LocalSource verify should complete synchronously"),
    }
}
