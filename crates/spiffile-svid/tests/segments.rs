//! Segment decoding and member parsing on the sizes and spellings that take
//! the verifier off its fast path (stack buffers, borrowed strings): the
//! answers must be the same as on it.

mod common;

use common::sign_raw;
use spiffile_bundle::Bundle;
use spiffile_id::SpiffeId;
use spiffile_svid::{Error, Reason, Signer, Verifier, VerifyOptions, generate_pkcs8_pem};
use spiffile_svid::{UnixTime, danger};

const NOW: i64 = 1_800_000_000;

/// A time for the `danger` functions.
fn at(secs: i64) -> UnixTime {
    UnixTime::from_secs(secs)
}

struct World {
    pem: String,
    orders: Signer,
    verifier: Verifier,
    billing: SpiffeId,
}

fn world() -> World {
    let pem = generate_pkcs8_pem().unwrap().to_string();
    let orders = Signer::from_pkcs8_pem(
        "spiffe://example.org/orders".parse().unwrap(),
        pem.as_bytes(),
    )
    .unwrap();
    let mut bundle = Bundle::new("example.org".parse().unwrap());
    bundle
        .add_key(orders.id(), orders.public_key().clone())
        .unwrap();
    World {
        pem,
        verifier: Verifier::new(&bundle),
        orders,
        billing: "spiffe://example.org/billing".parse().unwrap(),
    }
}

fn verify(w: &World, token: &str) -> Result<spiffile_svid::Caller, Error> {
    danger::verify_at(
        &w.verifier,
        token,
        &w.billing,
        &VerifyOptions::default(),
        at(NOW),
    )
}

fn reason(r: Result<spiffile_svid::Caller, Error>) -> Option<Reason> {
    match r {
        Err(Error::InvalidToken(t)) => Some(t.reason()),
        _ => None,
    }
}

const CLAIMS: &str = r#"{"sub":"spiffe://example.org/orders","aud":"spiffe://example.org/billing","iat":1800000000,"exp":1800000060}"#;

#[test]
fn large_segments_are_decoded_on_the_heap() {
    let w = world();
    // A kid of 400 characters: the header does not fit the stack buffer;
    // it names no key, so the identity's keys are tried.
    let long_kid = "k".repeat(400);
    let header = format!(r#"{{"alg":"ES256","kid":"{long_kid}","typ":"JWT"}}"#);
    let c = verify(&w, &sign_raw(&w.pem, &header, CLAIMS)).unwrap();
    assert_eq!(c.id(), w.orders.id());
    // 3 KB of extra claims.
    let big = "x".repeat(3000);
    let claims = format!(
        r#"{{"sub":"spiffe://example.org/orders","aud":"spiffe://example.org/billing","exp":1800000060,"note":"{big}"}}"#
    );
    let header = format!(r#"{{"alg":"ES256","kid":"{}"}}"#, w.orders.kid());
    let c = verify(&w, &sign_raw(&w.pem, &header, &claims)).unwrap();
    assert_eq!(c.claims().other()["note"], big.as_str());
    // A segment that is not base64url is refused whatever its size.
    let token = sign_raw(&w.pem, &header, &claims);
    let (h, rest) = token.split_once('.').unwrap();
    let bad = format!("{h}.*{}", &rest[1..]);
    assert_eq!(reason(verify(&w, &bad)), Some(Reason::Malformed));
}

#[test]
fn escaped_strings_mean_what_they_say() {
    let w = world();
    let header = format!(
        r#"{{"alg":"ES\u0032\u0035\u0036","kid":"{}","typ":"J\u0057T"}}"#,
        w.orders.kid()
    );
    let claims = r#"{"sub":"spiffe:\/\/example.org\/orders","aud":"spiffe:\/\/example.org\/billing","exp":1800000060}"#;
    let c = verify(&w, &sign_raw(&w.pem, &header, claims)).unwrap();
    assert_eq!(c.id(), w.orders.id());
    // An escaped wrong algorithm is still wrong.
    let header = format!(
        r#"{{"alg":"ES\u0033\u0038\u0034","kid":"{}"}}"#,
        w.orders.kid()
    );
    assert_eq!(
        reason(verify(&w, &sign_raw(&w.pem, &header, claims))),
        Some(Reason::Algorithm)
    );
}

#[test]
fn non_string_members_are_named_in_the_error() {
    let w = world();
    let kid = w.orders.kid();
    for (header, expected) in [
        (format!(r#"{{"alg":256,"kid":"{kid}"}}"#), "256"),
        (
            format!(r#"{{"alg":["ES256"],"kid":"{kid}"}}"#),
            "[\"ES256\"]",
        ),
        (
            format!(r#"{{"alg":{{"a":null}},"kid":"{kid}"}}"#),
            "{\"a\":null}",
        ),
        (format!(r#"{{"alg":true,"kid":"{kid}"}}"#), "true"),
    ] {
        let e = verify(&w, &sign_raw(&w.pem, &header, CLAIMS)).unwrap_err();
        assert_eq!(reason(Err(e.clone())), Some(Reason::Algorithm));
        assert!(
            e.to_string().contains(expected),
            "{e} should name {expected}"
        );
    }
    let header = format!(r#"{{"alg":"ES256","kid":"{kid}","typ":1.5}}"#);
    let e = verify(&w, &sign_raw(&w.pem, &header, CLAIMS)).unwrap_err();
    assert!(e.to_string().contains("1.5"), "{e}");
    let header = r#"{"alg":"ES256","kid":7}"#.to_string();
    assert_eq!(
        reason(verify(&w, &sign_raw(&w.pem, &header, CLAIMS))),
        Some(Reason::KeyId)
    );
    let header = format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#);
    for claims in [
        r#"{"sub":["spiffe://example.org/orders"],"aud":"spiffe://example.org/billing","exp":1800000060}"#,
        r#"{"sub":"spiffe://example.org/orders","aud":{"a":1},"exp":1800000060}"#,
    ] {
        assert_eq!(
            reason(verify(&w, &sign_raw(&w.pem, &header, claims))),
            Some(Reason::Claims)
        );
    }
    let claims = r#"{"sub":"spiffe://example.org/orders","aud":["spiffe://example.org/billing"],"exp":1800000060}"#;
    assert_eq!(
        reason(verify(&w, &sign_raw(&w.pem, &header, claims))),
        Some(Reason::Audience)
    );
}
