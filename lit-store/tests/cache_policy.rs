//! The RAM tier keeps a fixed resident set: bytes read per pass = model − resident.

use futures::executor::block_on;
use lit_core::conformance::Fixture;
use lit_core::{ObjectId, WeightSource};
use lit_store::{CachedSource, MemorySource};

#[test]
fn cyclic_sweeps_read_model_minus_resident() {
    let fx = Fixture::new();
    let sizes: Vec<u64> = fx.layer_bytes.iter().map(|b| b.len() as u64).collect();
    let model: u64 = sizes.iter().sum();
    for budget in [
        0,
        sizes[0],
        sizes[0] + sizes[1],
        model / 2,
        model - 1,
        model,
    ] {
        let cache = CachedSource::new(MemorySource::from_objects(fx.objects()).unwrap(), budget);
        // The resident set: layers admitted in order while they fit (first-fit, never evicted).
        let mut resident = 0;
        for &s in &sizes {
            if resident + s <= budget {
                resident += s;
            }
        }
        let mut last = 0;
        for pass in 0..4 {
            for i in 0..sizes.len() {
                block_on(cache.read_object(ObjectId::Layer(i))).unwrap();
            }
            let read = cache.stats().bytes_from_inner - last;
            last = cache.stats().bytes_from_inner;
            let expected = if pass == 0 { model } else { model - resident };
            assert_eq!(read, expected, "budget {budget}, pass {pass}");
        }
        assert!(cache.stats().resident_bytes <= budget);
    }
}

#[test]
fn lru_would_get_no_hits_here_but_this_does() {
    // Budget of 3 of 5 equal-ish layers: LRU evicts each layer just before its reuse.
    let fx = Fixture::new();
    let budget = fx.layer_bytes.iter().map(|b| b.len() as u64).sum::<u64>() * 3 / 5;
    let cache = CachedSource::new(MemorySource::from_objects(fx.objects()).unwrap(), budget);
    for _ in 0..3 {
        for i in 0..fx.layer_bytes.len() {
            block_on(cache.read_object(ObjectId::Layer(i))).unwrap();
        }
    }
    let stats = cache.stats();
    assert!(
        stats.hits >= 2 * stats.resident_objects as u64 && stats.resident_objects > 0,
        "{stats:?}"
    );
}
