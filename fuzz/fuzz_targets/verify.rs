//! Token verification against a fixed bundle (the conformance fixture's):
//! never panics, and anything accepted names as caller the `sub` the token
//! itself claims.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use spiffile_bundle::Bundle;
use spiffile_id::SpiffeId;
use spiffile_svid::{Verifier, VerifyOptions};

/// After the fixture token's iat (2025) and before its exp (2035).
const NOW: i64 = 1_800_000_000;

static FIXTURES: LazyLock<serde_json::Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../conformance/fixtures.json")).expect("fixtures")
});
static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    let doc = serde_json::to_vec(&FIXTURES["bundle"]).expect("bundle");
    Verifier::new(&Bundle::from_json_quiet(&doc).expect("fixture bundle"))
});
static BILLING: LazyLock<SpiffeId> =
    LazyLock::new(|| "spiffe://example.org/billing".parse().expect("id"));

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    let options = VerifyOptions::default().with_max_token_bytes(64 * 1024);
    let first = spiffile_svid::danger::verify_at(
        &VERIFIER,
        &token,
        &BILLING,
        &options,
        spiffile_svid::UnixTime::from_secs(NOW),
    );
    let second = spiffile_svid::danger::verify_at(
        &VERIFIER,
        &token,
        &BILLING,
        &options,
        spiffile_svid::UnixTime::from_secs(NOW),
    );
    assert_eq!(first, second, "verification is not deterministic");
    match first {
        Ok(caller) => {
            let claims = token.split('.').nth(1).expect("three segments");
            let json = base64_url_decode(claims).expect("claims decode");
            let v: serde_json::Value = serde_json::from_slice(&json).expect("claims parse");
            assert_eq!(v["sub"].as_str(), Some(caller.id().as_str()));
            assert_eq!(v["aud"].as_str(), Some(BILLING.as_str()));
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.len() < 400, "error message too long: {}", shown.len());
        }
    }
});

fn base64_url_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == b)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}
