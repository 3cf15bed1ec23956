//! The SPIFFE ID vectors of the shared cross-implementation fixture set.

use spiffile_id::SpiffeId;

fn fixtures() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../conformance/fixtures.json"
    );
    let text = std::fs::read_to_string(path).expect("conformance/fixtures.json");
    serde_json::from_str(&text).expect("fixtures parse")
}

fn strings(v: &serde_json::Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing"))
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

#[test]
fn valid_vectors_parse_and_round_trip() {
    let f = fixtures();
    let valid = strings(&f, "valid_spiffe_ids");
    assert!(!valid.is_empty());
    for s in valid {
        let id: SpiffeId = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(id.to_string(), s);
    }
}

#[test]
fn invalid_vectors_are_rejected() {
    let f = fixtures();
    let invalid = strings(&f, "invalid_spiffe_ids");
    assert!(!invalid.is_empty());
    for s in invalid {
        assert!(s.parse::<SpiffeId>().is_err(), "{s} must be rejected");
    }
}
