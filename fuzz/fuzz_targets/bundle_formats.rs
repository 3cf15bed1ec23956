//! Any bundle file: detection and parsing in every format never panic, and
//! whatever is accepted as a SPIFFE bundle or a JWT bundle set writes a form
//! that parses back to the same keys; any accepted document builds a trust
//! set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spiffile_bundle::{BundleDocument, JwtBundle, JwtBundleSet, TrustDomain};

fuzz_target!(|data: &[u8]| {
    let td: TrustDomain = "spire.test".parse().expect("trust domain");
    let _ = spiffile_bundle::detect_format(data);
    if let Ok(b) = JwtBundle::from_jwks_quiet(td.clone(), data) {
        let again = JwtBundle::from_jwks_quiet(td.clone(), b.to_jwks().as_bytes())
            .expect("written SPIFFE bundle parses");
        assert_eq!(again.keys(), b.keys());
        assert_eq!(again.sequence(), b.sequence());
    }
    if let Ok(s) = JwtBundleSet::from_json_quiet(data) {
        let again = JwtBundleSet::from_json_quiet(s.to_json().as_bytes())
            .expect("written bundle set parses");
        assert_eq!(again.len(), s.len());
    }
    if let Ok(doc) = BundleDocument::from_json_quiet(data, Some(&td)) {
        for (_, w) in doc.warnings() {
            assert!(!w.is_empty());
        }
        let _ = spiffile_svid::Verifier::builder().document("fuzz", &doc).map(|b| b.build());
    }
});
