//! Mint → verify round trip: for any audience, issue time and lifetime,
//! a minted token verifies for its audience with the same claims, and is
//! refused for any other audience.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use spiffile_bundle::Bundle;
use spiffile_id::SpiffeId;
use spiffile_svid::{Error, Signer, TokenError, Verifier, VerifyOptions};

static FIXTURES: LazyLock<serde_json::Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../conformance/fixtures.json")).expect("fixtures")
});
static SIGNER: LazyLock<Signer> = LazyLock::new(|| {
    let pem = FIXTURES["orders_private_key_pem"].as_str().expect("pem");
    Signer::from_pkcs8_pem(
        "spiffe://example.org/orders".parse().expect("id"),
        pem.as_bytes(),
    )
    .expect("fixture key")
});
static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    let doc = serde_json::to_vec(&FIXTURES["bundle"]).expect("bundle");
    Verifier::new(&Bundle::from_json_quiet(&doc).expect("fixture bundle"))
});

fuzz_target!(|data: &[u8]| {
    if data.len() < 12 {
        return;
    }
    let iat = i64::from(u32::from_le_bytes([data[0], data[1], data[2], data[3]])) << 5;
    let ttl = i64::from(u32::from_le_bytes([data[4], data[5], data[6], data[7]]) % 86_400) + 1;
    let skew = i64::from(i16::from_le_bytes([data[8], data[9]]));
    let path: String = data[10..data.len().min(1010)]
        .iter()
        .map(|b| match b % 66 {
            n @ 0..=25 => (b'a' + n) as char,
            n @ 26..=51 => (b'A' + n - 26) as char,
            n @ 52..=61 => (b'0' + n - 52) as char,
            62 => '.',
            63 => '-',
            64 => '_',
            _ => '/',
        })
        .collect();
    let Ok(audience) = format!("spiffe://example.org/{path}").parse::<SpiffeId>() else {
        return;
    };
    let exp = iat + ttl;
    let token = spiffile_svid::danger::mint_at(
        &SIGNER,
        &audience,
        spiffile_svid::UnixTime::from_secs(iat),
        spiffile_svid::UnixTime::from_secs(exp),
    )
    .expect("mint");
    let options = VerifyOptions::default();
    let leeway = options.leeway().as_secs() as i64;
    let now = iat + skew;
    let got = spiffile_svid::danger::verify_at(
        &VERIFIER,
        &token,
        &audience,
        &options,
        spiffile_svid::UnixTime::from_secs(now),
    );
    let expected_ok = exp + leeway > now && iat <= now + leeway;
    match got {
        Ok(caller) => {
            assert!(expected_ok, "accepted at now={now} iat={iat} exp={exp}");
            assert_eq!(caller.id(), SIGNER.id());
            assert_eq!(caller.claims().aud(), &audience);
            assert_eq!(caller.claims().iat(), Some(iat));
            assert_eq!(caller.claims().exp(), exp);
        }
        Err(e) => {
            assert!(
                !expected_ok,
                "refused at now={now} iat={iat} exp={exp}: {e}"
            );
            assert!(matches!(
                e,
                Error::InvalidToken(TokenError::Expired { .. } | TokenError::IssuedInFuture { .. })
            ));
        }
    }
    let other: SpiffeId = format!("{audience}x").parse().expect("still an ID");
    assert!(matches!(
        spiffile_svid::danger::verify_at(
            &VERIFIER,
            &token,
            &other,
            &options,
            spiffile_svid::UnixTime::from_secs(iat)
        ),
        Err(Error::InvalidToken(TokenError::Audience { .. }))
    ));
});
