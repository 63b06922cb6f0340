//! A skeleton for a 30 GB model allocates almost nothing: parameters stay lazy until a
//! submodule is loaded. Measured with a counting global allocator, not RSS, so it is exact.

use burn::module::Module;
use lit_burn::models::llama::{Llama, LlamaConfig};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(live, Ordering::SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn a_30_gb_llama_skeleton_allocates_under_10_mib() {
    // Llama-2-7B's shape with 36 layers instead of 32: ~7.5B parameters = ~30 GB in f32.
    let config = LlamaConfig::from_json(
        br#"{"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32,
             "num_key_value_heads": 32, "num_hidden_layers": 36, "rms_norm_eps": 1e-5,
             "rope_theta": 10000.0, "vocab_size": 32000, "max_position_embeddings": 4096,
             "tie_word_embeddings": false}"#,
    )
    .unwrap();
    let device = burn::tensor::Device::flex();
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let model = Llama::new(&config, &device).unwrap();
    let bytes_f32 = model.num_params() as u64 * 4;
    let peak = PEAK.load(Ordering::SeqCst) - before;
    assert!(
        bytes_f32 >= 30_000_000_000,
        "the config describes {bytes_f32} bytes, expected ≥ 30 GB"
    );
    assert!(
        peak < 10 << 20,
        "building the skeleton allocated {peak} bytes at peak"
    );
    assert!(
        lit_burn::paths::is_lazy(&model),
        "parameters were initialised"
    );
    eprintln!(
        "skeleton of {:.1} GB: peak {} KiB allocated",
        bytes_f32 as f64 / 1e9,
        peak >> 10
    );
}
