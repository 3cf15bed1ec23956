//! Properties of the SPIFFE bundle, JWT bundle set and format detection, on
//! generated inputs: no input panics, every accepted document writes a form
//! that parses back to the same keys, a document of each format is detected
//! as that format, and a half-written document is never accepted as a
//! smaller one.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use proptest::prelude::*;
use spiffile_bundle::{
    Bundle, BundleDocument, BundleFormat, JwtBundle, JwtBundleSet, PublicKey, TrustDomain,
    detect_format,
};

/// Points of P-256 known to be valid (the generator's multiples 1..=4, as
/// affine coordinates), so generated keys pass the on-curve check.
const POINTS: [(&str, &str); 4] = [
    (
        "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY",
        "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU",
    ),
    (
        "fPJ7GI0DT36KUjgDBLUaw8CJaeJ38hs1pgtI_EdmmXg",
        "B3dVENuO0EApPZrGn3Qw27p9reY86YIpngS3nSJ4c9E",
    ),
    (
        "Xsvk0aYzCkTI9--VHUvxZebGtyHvramF-0FmG8bn_Ww",
        "hzRkDEmY_343SwbOGmSi7NgqsDY4T7g9mnmxJ6J9UDI",
    ),
    (
        "4lNKNTLQj7ugLd5lnuYr0AMf4tt4VZbvUJMCRGsDCFI",
        "4PFXWkxjPMcZ3-5f2oYtdk78lsPzDuAFXELCPxhO2MY",
    ),
];

fn td() -> TrustDomain {
    "spire.test".parse().unwrap()
}

/// A generated JWK: one of the points, a kid, and optional members in the
/// shapes SPIRE and others write.
fn jwk() -> impl Strategy<Value = serde_json::Value> {
    (
        0..POINTS.len(),
        "[a-zA-Z0-9]{1,32}",
        prop::option::of(Just("jwt-svid")),
        prop::option::of(Just("ES256")),
    )
        .prop_map(|(p, kid, use_, alg)| {
            let (x, y) = POINTS[p];
            let mut k =
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid});
            if let Some(u) = use_ {
                k["use"] = u.into();
            }
            if let Some(a) = alg {
                k["alg"] = a.into();
            }
            k
        })
}

fn jwks() -> impl Strategy<Value = serde_json::Value> {
    (
        prop::collection::vec(jwk(), 1..6),
        prop::option::of(any::<u64>()),
        prop::option::of(0u64..100_000),
    )
        .prop_map(|(keys, seq, hint)| {
            let mut d = serde_json::json!({ "keys": keys });
            if let Some(s) = seq {
                d["spiffe_sequence"] = s.into();
            }
            if let Some(h) = hint {
                d["spiffe_refresh_hint"] = h.into();
            }
            d
        })
}

#[test]
fn the_points_are_on_the_curve() {
    for (x, y) in POINTS {
        let (x, y) = (B64.decode(x).unwrap(), B64.decode(y).unwrap());
        assert!(PublicKey::from_coordinates(x.try_into().unwrap(), y.try_into().unwrap()).is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = detect_format(&data);
        let _ = JwtBundle::from_jwks_quiet(td(), &data);
        let _ = JwtBundleSet::from_json_quiet(&data);
        if let Ok(doc) = BundleDocument::from_json_quiet(&data, Some(&td())) {
            for (_, w) in doc.warnings() {
                prop_assert!(!w.is_empty());
            }
        }
    }

    #[test]
    fn json_shaped_input_never_panics(
        members in prop::collection::vec(("[a-z_.]{0,12}", prop_oneof![
            Just(serde_json::json!(null)),
            any::<i64>().prop_map(serde_json::Value::from),
            "[ -~]{0,20}".prop_map(serde_json::Value::from),
            Just(serde_json::json!([])),
            Just(serde_json::json!({"keys": []})),
            jwks(),
            prop::collection::vec(jwk(), 0..3).prop_map(serde_json::Value::from),
        ]), 0..6)
    ) {
        let doc: serde_json::Map<String, serde_json::Value> = members.into_iter().collect();
        let text = serde_json::to_vec(&doc).unwrap();
        let _ = BundleDocument::from_json_quiet(&text, Some(&td()));
    }

    #[test]
    fn jwks_round_trips(doc in jwks()) {
        let text = serde_json::to_vec(&doc).unwrap();
        prop_assert_eq!(detect_format(&text).unwrap(), BundleFormat::Spiffe);
        match JwtBundle::from_jwks_quiet(td(), &text) {
            Ok(b) => {
                let again = JwtBundle::from_jwks_quiet(td(), b.to_jwks().as_bytes()).unwrap();
                prop_assert_eq!(again.keys(), b.keys());
                prop_assert_eq!(again.sequence(), b.sequence());
                prop_assert_eq!(again.refresh_hint(), b.refresh_hint());
                // Kids are unique in what was kept.
                for (i, k) in b.keys().iter().enumerate() {
                    prop_assert!(b.keys()[..i].iter().all(|o| o.kid() != k.kid()));
                }
            }
            // Only when every key repeated the first one's kid... never:
            // the first key is always kept.
            Err(e) => prop_assert!(false, "refused: {e}"),
        }
    }

    #[test]
    fn bundle_sets_round_trip_and_are_detected(
        domains in prop::collection::btree_map("[a-z]{1,8}\\.test", jwks(), 1..4)
    ) {
        let doc: serde_json::Map<String, serde_json::Value> = domains
            .iter()
            .map(|(td, jwks)| (td.clone(), STANDARD.encode(jwks.to_string()).into()))
            .collect();
        let text = serde_json::to_vec(&doc).unwrap();
        prop_assert_eq!(detect_format(&text).unwrap(), BundleFormat::JwtBundleSet);
        let set = JwtBundleSet::from_json_quiet(&text).unwrap();
        prop_assert_eq!(set.len(), domains.len());
        // What was kept round-trips; what was skipped (a repeated kid) is
        // not written, so the rewritten set has nothing to warn about.
        let again = JwtBundleSet::from_json_quiet(set.to_json().as_bytes()).unwrap();
        prop_assert!(again.warnings().is_empty(), "{:?}", again.warnings());
        prop_assert_eq!(again.len(), set.len());
        for (a, b) in again.bundles().zip(set.bundles()) {
            prop_assert_eq!(a.trust_domain(), b.trust_domain());
            prop_assert_eq!(a.keys(), b.keys());
            prop_assert_eq!(a.sequence(), b.sequence());
            prop_assert_eq!(a.refresh_hint(), b.refresh_hint());
        }
        let parsed = BundleDocument::from_json_quiet(&text, None).unwrap();
        prop_assert_eq!(parsed.domains().len(), domains.len());
    }

    #[test]
    fn a_truncated_document_is_never_accepted(doc in jwks(), cut in any::<prop::sample::Index>()) {
        let set = serde_json::json!({"spire.test": STANDARD.encode(doc.to_string())}).to_string();
        for text in [doc.to_string(), set] {
            let n = cut.index(text.len());
            let prefix = &text.as_bytes()[..n];
            prop_assert!(BundleDocument::from_json_quiet(prefix, Some(&td())).is_err());
        }
    }

    #[test]
    fn spiffile_bundles_are_detected_as_such(n in 0usize..4) {
        let mut b = Bundle::new("example.org".parse().unwrap());
        for (i, (x, y)) in POINTS.iter().take(n).enumerate() {
            let x = B64.decode(x).unwrap().try_into().unwrap();
            let y = B64.decode(y).unwrap().try_into().unwrap();
            let id = format!("spiffe://example.org/s{i}").parse().unwrap();
            b.add_key(&id, PublicKey::from_coordinates(x, y).unwrap()).unwrap();
        }
        let text = b.to_json();
        prop_assert_eq!(detect_format(text.as_bytes()).unwrap(), BundleFormat::Spiffile);
        let doc = BundleDocument::from_json_quiet(text.as_bytes(), None).unwrap();
        prop_assert_eq!(doc, BundleDocument::Spiffile(b));
    }
}
