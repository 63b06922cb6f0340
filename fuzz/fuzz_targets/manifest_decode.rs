//! Any bytes given to the manifest decoder give a manifest or an error, never a panic or a huge
//! allocation; a decoded manifest re-encodes to a manifest that decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lit_core::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data, "fuzz") {
        let again = m.encode().expect("a decoded manifest encodes");
        assert_eq!(Manifest::decode(&again, "fuzz").expect("re-decodes"), m);
    }
});
