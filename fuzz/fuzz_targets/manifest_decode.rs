//! Any bytes given to the manifest decoder give a manifest or an error, never a panic or an
//! allocation beyond the named limits; a decoded manifest re-encodes to a manifest that decodes to
//! itself.
//!
//! Inputs starting with an odd byte are wrapped as a payload behind a valid header and checksum,
//! so the fuzzer reaches the bincode decoder and the validation rather than stopping at the
//! checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lit_core::Manifest;
use lit_core::manifest::{FORMAT_VERSION, MAGIC};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(rest.len() as u64).to_le_bytes());
        b.extend_from_slice(&lit_core::checksum(rest).to_le_bytes());
        b.extend_from_slice(rest);
        b
    };
    if let Ok(m) = Manifest::decode(&bytes, "fuzz") {
        let again = m.encode().expect("a decoded manifest encodes");
        assert_eq!(Manifest::decode(&again, "fuzz").expect("re-decodes"), m);
    }
});
