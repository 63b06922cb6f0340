//! Any bytes given to lit's GGUF header parser give a header or an error, never a panic or a
//! huge allocation; a header that parses has every tensor's data inside the file, aligned and
//! without overlaps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lit_store::import::gguf::parse_header;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = parse_header(data, data.len() as u64, "fuzz.gguf") {
        let mut spans: Vec<(u64, u64)> = h
            .tensors
            .iter()
            .map(|t| (h.data_start + t.offset, h.data_start + t.offset + t.len))
            .collect();
        spans.sort_unstable();
        for s in &spans {
            assert!(s.1 <= data.len() as u64, "tensor data past the end");
        }
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "overlapping tensors");
        }
    }
});
