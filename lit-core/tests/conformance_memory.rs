//! The conformance fixture itself is sound, so the suite can be trusted on real sources.

use lit_core::conformance::Fixture;
use lit_core::manifest::MANIFEST_KEY;

#[test]
fn fixture_objects_include_a_decodable_manifest() {
    let fx = Fixture::new();
    let objects = fx.objects();
    let (_, manifest) = objects.iter().find(|(k, _)| k == MANIFEST_KEY).unwrap();
    assert_eq!(
        lit_core::Manifest::decode(manifest, "fx").unwrap(),
        fx.manifest
    );
    let flipped = fx.with_flipped_byte(2);
    assert_ne!(flipped.layer_bytes[2], fx.layer_bytes[2]);
    assert_eq!(flipped.manifest, fx.manifest);
}
