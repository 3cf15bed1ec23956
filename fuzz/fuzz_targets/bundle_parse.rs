//! Bundle parsing: never panics, and whatever is accepted writes a canonical
//! form that parses back to the same identities and keys, byte-stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spiffile_bundle::Bundle;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::from_json_quiet(data) else {
        return;
    };
    for w in bundle.warnings() {
        let _ = w.to_string();
    }
    let text = bundle.to_json();
    let again = Bundle::from_json_quiet(text.as_bytes()).expect("canonical form parses");
    assert_eq!(again.trust_domain(), bundle.trust_domain());
    assert_eq!(again.extra_members(), bundle.extra_members());
    assert!(
        again.identities().eq(bundle.identities()),
        "identities changed in the round trip"
    );
    assert_eq!(again.to_json(), text, "canonical form is not stable");
    // The streaming comparison agrees with comparing the whole text.
    assert!(again.is_canonical(text.as_bytes()));
    assert_eq!(bundle.is_canonical(data), data == text.as_bytes());
    let _ = spiffile_svid::Verifier::new(&bundle);
});
