//! The verification rules of the profile, one test each, on tokens this test
//! mints and tampers with itself.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::sign_raw;
use serde_json::{Value, json};
use spiffile_bundle::Bundle;
use spiffile_id::SpiffeId;
use spiffile_svid::{
    Error, Reason, Signer, TokenError, Verifier, VerifyOptions, generate_pkcs8_pem,
};
use spiffile_svid::{UnixTime, danger};

const NOW: i64 = 1_800_000_000;

/// A time for the `danger` functions.
fn at(secs: i64) -> UnixTime {
    UnixTime::from_secs(secs)
}

struct World {
    orders: Signer,
    orders_pem: String,
    mallory: Signer,
    mallory_pem: String,
    verifier: Verifier,
    billing: SpiffeId,
}

fn id(s: &str) -> SpiffeId {
    s.parse().unwrap()
}

fn world() -> World {
    let orders_pem = generate_pkcs8_pem().unwrap().to_string();
    let mallory_pem = generate_pkcs8_pem().unwrap().to_string();
    let orders =
        Signer::from_pkcs8_pem(id("spiffe://example.org/orders"), orders_pem.as_bytes()).unwrap();
    let mallory =
        Signer::from_pkcs8_pem(id("spiffe://example.org/mallory"), mallory_pem.as_bytes()).unwrap();
    let mut bundle = Bundle::new("example.org".parse().unwrap());
    bundle
        .add_key(orders.id(), orders.public_key().clone())
        .unwrap();
    bundle
        .add_key(mallory.id(), mallory.public_key().clone())
        .unwrap();
    World {
        // The rules hold for a verifier that consumed its bundle too (the
        // adversarial suite builds with `Verifier::new`).
        verifier: Verifier::from_bundle(bundle),
        orders,
        orders_pem,
        mallory,
        mallory_pem,
        billing: id("spiffe://example.org/billing"),
    }
}

fn header(kid: &str) -> String {
    json!({"alg": "ES256", "kid": kid, "typ": "JWT"}).to_string()
}

fn claims(sub: &str, aud: Value) -> Value {
    json!({"sub": sub, "aud": aud, "iat": NOW, "exp": NOW + 60})
}

fn check(w: &World, token: &str) -> Result<SpiffeId, Error> {
    danger::verify_at(
        &w.verifier,
        token,
        &w.billing,
        &VerifyOptions::default(),
        at(NOW),
    )
    .map(|c| c.id().clone())
}

fn reason(w: &World, token: &str) -> Reason {
    match check(w, token) {
        Ok(id) => panic!("token accepted as {id}"),
        Err(e) => e
            .reason()
            .unwrap_or_else(|| panic!("not a token error: {e}")),
    }
}

#[test]
fn minted_tokens_verify_and_have_the_exact_shape() {
    let w = world();
    let token = danger::mint_at(&w.orders, &w.billing, at(NOW), at(NOW + 60)).unwrap();
    let caller = danger::verify_at(
        &w.verifier,
        &token,
        &w.billing,
        &VerifyOptions::default(),
        at(NOW),
    )
    .unwrap();
    assert_eq!(caller.id(), w.orders.id());
    assert_eq!(caller.claims().aud(), &w.billing);
    assert_eq!(caller.claims().exp(), NOW + 60);
    assert_eq!(caller.claims().iat(), Some(NOW));
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(
        String::from_utf8(B64.decode(parts[0]).unwrap()).unwrap(),
        format!(
            r#"{{"alg":"ES256","kid":"{}","typ":"JWT"}}"#,
            w.orders.kid()
        )
    );
    assert_eq!(
        String::from_utf8(B64.decode(parts[1]).unwrap()).unwrap(),
        format!(
            r#"{{"sub":"spiffe://example.org/orders","aud":"spiffe://example.org/billing","iat":{NOW},"exp":{}}}"#,
            NOW + 60
        )
    );
    assert_eq!(B64.decode(parts[2]).unwrap().len(), 64);
    assert_eq!(w.orders.kid(), w.orders.public_key().thumbprint());
}

#[test]
fn mint_with_ttl_uses_the_clock() {
    let w = world();
    let token = w
        .orders
        .mint(&w.billing, std::time::Duration::from_secs(60))
        .unwrap();
    let c = w
        .verifier
        .verify(&token, &w.billing, &VerifyOptions::default())
        .unwrap();
    assert_eq!(c.claims().exp() - c.claims().iat().unwrap(), 60);
    assert!(matches!(
        w.orders.mint(&w.billing, std::time::Duration::ZERO),
        Err(Error::InvalidTtl { .. })
    ));
    assert!(matches!(
        w.orders
            .mint(&w.billing, std::time::Duration::from_secs(86_401)),
        Err(Error::InvalidTtl { .. })
    ));
}

#[test]
fn unknown_identity_is_its_own_error() {
    let w = world();
    let stranger =
        Signer::from_pkcs8_pem(id("spiffe://example.org/stranger"), w.orders_pem.as_bytes())
            .unwrap();
    let token = danger::mint_at(&stranger, &w.billing, at(NOW), at(NOW + 60)).unwrap();
    assert_eq!(
        check(&w, &token),
        Err(Error::UnknownIdentity(id("spiffe://example.org/stranger")))
    );
    let other_td =
        Signer::from_pkcs8_pem(id("spiffe://other.org/orders"), w.orders_pem.as_bytes()).unwrap();
    let token = danger::mint_at(&other_td, &w.billing, at(NOW), at(NOW + 60)).unwrap();
    assert!(matches!(check(&w, &token), Err(Error::UnknownIdentity(_))));
}

#[test]
fn key_lookup_is_scoped_by_sub() {
    let w = world();
    // mallory signs with her own key but claims to be orders, with either kid.
    for kid in [w.mallory.kid(), w.orders.kid()] {
        let t = sign_raw(
            &w.mallory_pem,
            &header(kid),
            &claims("spiffe://example.org/orders", json!(w.billing.as_str())).to_string(),
        );
        assert_eq!(reason(&w, &t), Reason::Signature);
    }
    // With her own sub the same key works.
    let t = sign_raw(
        &w.mallory_pem,
        &header(w.mallory.kid()),
        &claims("spiffe://example.org/mallory", json!(w.billing.as_str())).to_string(),
    );
    assert_eq!(check(&w, &t).unwrap(), id("spiffe://example.org/mallory"));
}

#[test]
fn unmatched_kid_falls_back_to_the_identitys_other_keys() {
    let w = world();
    let t = sign_raw(
        &w.orders_pem,
        &header("some-old-kid"),
        &claims("spiffe://example.org/orders", json!(w.billing.as_str())).to_string(),
    );
    assert_eq!(check(&w, &t).unwrap(), *w.orders.id());
}

#[test]
fn algorithm_must_be_exactly_es256() {
    let w = world();
    for alg in [
        json!("none"),
        json!("HS256"),
        json!("ES384"),
        json!("es256"),
        json!("RS256"),
        json!(null),
        json!(["ES256"]),
    ] {
        let h = json!({"alg": alg, "kid": w.orders.kid(), "typ": "JWT"}).to_string();
        let t = sign_raw(
            &w.orders_pem,
            &h,
            &claims(w.orders.id().as_str(), json!(w.billing.as_str())).to_string(),
        );
        assert_eq!(reason(&w, &t), Reason::Algorithm, "{alg}");
    }
    let h = json!({"kid": w.orders.kid()}).to_string();
    let t = sign_raw(
        &w.orders_pem,
        &h,
        &claims(w.orders.id().as_str(), json!(w.billing.as_str())).to_string(),
    );
    assert_eq!(reason(&w, &t), Reason::Algorithm);
}

#[test]
fn header_holds_only_alg_kid_typ() {
    let w = world();
    let c = claims(w.orders.id().as_str(), json!(w.billing.as_str())).to_string();
    for extra in ["jwk", "jku", "x5u", "x5c", "crit", "b64", "cty", "zip"] {
        let mut h = json!({"alg": "ES256", "kid": w.orders.kid(), "typ": "JWT"});
        h[extra] = json!("x");
        let t = sign_raw(&w.orders_pem, &h.to_string(), &c);
        assert_eq!(reason(&w, &t), Reason::Header, "{extra}");
    }
    for typ in [json!("jwt"), json!("at+jwt"), json!(1)] {
        let h = json!({"alg": "ES256", "kid": w.orders.kid(), "typ": typ}).to_string();
        assert_eq!(
            reason(&w, &sign_raw(&w.orders_pem, &h, &c)),
            Reason::Header,
            "{typ}"
        );
    }
    for typ in ["JWT", "JOSE"] {
        let h = json!({"alg": "ES256", "kid": w.orders.kid(), "typ": typ}).to_string();
        assert!(check(&w, &sign_raw(&w.orders_pem, &h, &c)).is_ok());
    }
    let h = json!({"alg": "ES256", "kid": w.orders.kid()}).to_string();
    assert!(
        check(&w, &sign_raw(&w.orders_pem, &h, &c)).is_ok(),
        "typ is optional"
    );
    for kid in [None, Some(json!("")), Some(json!(5))] {
        let mut h = json!({"alg": "ES256", "typ": "JWT"});
        if let Some(k) = kid {
            h["kid"] = k;
        }
        assert_eq!(
            reason(&w, &sign_raw(&w.orders_pem, &h.to_string(), &c)),
            Reason::KeyId
        );
    }
}

#[test]
fn audience_is_one_string_equal_to_the_expected_one() {
    let w = world();
    let sub = w.orders.id().as_str();
    let cases = [
        (
            json!(["spiffe://example.org/billing"]),
            TokenError::AudienceArray,
        ),
        (
            json!(["spiffe://example.org/billing", "spiffe://example.org/x"]),
            TokenError::AudienceArray,
        ),
    ];
    for (aud, want) in cases {
        let t = sign_raw(
            &w.orders_pem,
            &header(w.orders.kid()),
            &claims(sub, aud).to_string(),
        );
        assert_eq!(check(&w, &t), Err(Error::InvalidToken(want)));
    }
    for aud in [
        "spiffe://example.org/other",
        "spiffe://example.org",
        "spiffe://example.org/billing/",
        "",
    ] {
        let t = sign_raw(
            &w.orders_pem,
            &header(w.orders.kid()),
            &claims(sub, json!(aud)).to_string(),
        );
        assert_eq!(reason(&w, &t), Reason::Audience, "{aud}");
    }
    let mut c = claims(sub, json!(null));
    c.as_object_mut().unwrap().remove("aud");
    let t = sign_raw(&w.orders_pem, &header(w.orders.kid()), &c.to_string());
    assert_eq!(
        check(&w, &t),
        Err(Error::InvalidToken(TokenError::MissingClaim("aud")))
    );
    // The same token is good for its own audience only.
    let t = danger::mint_at(&w.orders, &w.billing, at(NOW), at(NOW + 60)).unwrap();
    assert!(
        danger::verify_at(
            &w.verifier,
            &t,
            &id("spiffe://example.org/other"),
            &VerifyOptions::default(),
            at(NOW)
        )
        .is_err()
    );
}

#[test]
fn times_are_checked_with_leeway() {
    let w = world();
    let mint =
        |iat: i64, exp: i64| danger::mint_at(&w.orders, &w.billing, at(iat), at(exp)).unwrap();
    // exp just inside the 30 s leeway: accepted; at the edge: expired.
    assert!(check(&w, &mint(NOW - 100, NOW - 29)).is_ok());
    assert_eq!(reason(&w, &mint(NOW - 100, NOW - 30)), Reason::Expired);
    assert_eq!(reason(&w, &mint(NOW - 1000, NOW - 500)), Reason::Expired);
    // iat in the future beyond the leeway.
    assert_eq!(
        reason(&w, &mint(NOW + 31, NOW + 90)),
        Reason::IssuedInFuture
    );
    assert!(check(&w, &mint(NOW + 30, NOW + 90)).is_ok());
    // nbf
    let sub = w.orders.id().as_str();
    let mut c = claims(sub, json!(w.billing.as_str()));
    c["nbf"] = json!(NOW + 31);
    assert_eq!(
        reason(
            &w,
            &sign_raw(&w.orders_pem, &header(w.orders.kid()), &c.to_string())
        ),
        Reason::NotYetValid
    );
    // leeway is configurable
    let strict = VerifyOptions::default().with_leeway(std::time::Duration::ZERO);
    assert!(
        danger::verify_at(
            &w.verifier,
            &mint(NOW - 100, NOW - 1),
            &w.billing,
            &strict,
            at(NOW)
        )
        .is_err()
    );
}

#[test]
fn dates_must_be_numbers_in_range() {
    let w = world();
    let sub = w.orders.id().as_str();
    for (exp, ok) in [
        (json!("1900000000"), false),
        (json!(true), false),
        (json!(1.0e300), false),
        (json!(9_223_372_036_854_775_807i64), false),
        (json!(18_446_744_073_709_551_615u64), false),
        (json!(-1), false), // in range, but long expired
        (json!((NOW + 60) as f64 + 0.5), true),
    ] {
        let mut c = claims(sub, json!(w.billing.as_str()));
        c["exp"] = exp.clone();
        let t = sign_raw(&w.orders_pem, &header(w.orders.kid()), &c.to_string());
        assert_eq!(check(&w, &t).is_ok(), ok, "{exp}");
    }
    let mut c = claims(sub, json!(w.billing.as_str()));
    c.as_object_mut().unwrap().remove("exp");
    let t = sign_raw(&w.orders_pem, &header(w.orders.kid()), &c.to_string());
    assert_eq!(
        check(&w, &t),
        Err(Error::InvalidToken(TokenError::MissingClaim("exp")))
    );
}

#[test]
fn subject_must_be_a_spiffe_id() {
    let w = world();
    for (sub, want) in [
        (json!("not an id"), Reason::Subject),
        (json!("SPIFFE://example.org/orders"), Reason::Subject),
        (json!("spiffe://example.org/orders/"), Reason::Subject),
        (json!(42), Reason::Claims),
    ] {
        let c = json!({"sub": sub, "aud": w.billing.as_str(), "exp": NOW + 60});
        assert_eq!(
            reason(
                &w,
                &sign_raw(&w.orders_pem, &header(w.orders.kid()), &c.to_string())
            ),
            want,
            "{sub}"
        );
    }
}

#[test]
fn duplicate_members_are_rejected() {
    let w = world();
    let c = format!(
        r#"{{"sub":"spiffe://example.org/mallory","aud":"{}","exp":{},"sub":"spiffe://example.org/orders"}}"#,
        w.billing,
        NOW + 60
    );
    let t = sign_raw(&w.mallory_pem, &header(w.mallory.kid()), &c);
    assert_eq!(reason(&w, &t), Reason::Malformed);
    let h = format!(
        r#"{{"alg":"ES256","kid":"{}","alg":"ES256"}}"#,
        w.orders.kid()
    );
    let t = sign_raw(
        &w.orders_pem,
        &h,
        &claims(w.orders.id().as_str(), json!(w.billing.as_str())).to_string(),
    );
    assert_eq!(reason(&w, &t), Reason::Malformed);
}

#[test]
fn framing() {
    let w = world();
    let good = danger::mint_at(&w.orders, &w.billing, at(NOW), at(NOW + 60)).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    assert_eq!(
        reason(&w, &format!("{}.{}", parts[0], parts[1])),
        Reason::Malformed
    );
    assert_eq!(reason(&w, &format!("{good}.x")), Reason::Malformed);
    assert_eq!(reason(&w, &format!("{good}..")), Reason::Malformed);
    assert_eq!(reason(&w, &format!("Bearer {good}")), Reason::Malformed);
    assert_eq!(reason(&w, &format!(" {good}")), Reason::Malformed);
    assert_eq!(
        reason(&w, &format!("{}=.{}.{}", parts[0], parts[1], parts[2])),
        Reason::Malformed
    );
    assert_eq!(reason(&w, &format!("{good}=")), Reason::Malformed);
    assert_eq!(reason(&w, ""), Reason::Malformed);
    let long = format!("{good}{}", "A".repeat(9000));
    assert_eq!(
        check(&w, &long),
        Err(Error::InvalidToken(TokenError::TooLarge {
            len: long.len(),
            max: 8192
        }))
    );
    // Signature of the wrong length, and a flipped bit.
    let short = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..84]);
    assert_eq!(reason(&w, &short), Reason::Signature);
    let mut sig = B64.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    assert_eq!(
        reason(
            &w,
            &format!("{}.{}.{}", parts[0], parts[1], B64.encode(&sig))
        ),
        Reason::Signature
    );
    let mut sig65 = B64.decode(parts[2]).unwrap();
    sig65.push(0);
    assert_eq!(
        check(
            &w,
            &format!("{}.{}.{}", parts[0], parts[1], B64.encode(&sig65))
        ),
        Err(Error::InvalidToken(TokenError::SignatureLength(65)))
    );
}

#[test]
fn claims_keep_extra_members() {
    let w = world();
    let mut c = claims(w.orders.id().as_str(), json!(w.billing.as_str()));
    c["scope"] = json!("read");
    let t = sign_raw(&w.orders_pem, &header(w.orders.kid()), &c.to_string());
    let caller = danger::verify_at(
        &w.verifier,
        &t,
        &w.billing,
        &VerifyOptions::default(),
        at(NOW),
    )
    .unwrap();
    assert_eq!(caller.claims().other()["scope"], "read");
    assert_eq!(caller.claims().to_json()["scope"], "read");
}

#[test]
fn errors_name_the_part_and_never_echo_the_token() {
    let w = world();
    let t = danger::mint_at(&w.orders, &w.billing, at(NOW - 1000), at(NOW - 500)).unwrap();
    let e = check(&w, &t).unwrap_err().to_string();
    assert!(e.starts_with("invalid token: token expired at"), "{e}");
    assert!(!e.contains(t.split('.').nth(2).unwrap()));
    let e = danger::verify_at(
        &w.verifier,
        &t,
        &id("spiffe://example.org/x"),
        &VerifyOptions::default(),
        at(NOW),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("claim `aud`"), "{e}");
}

#[test]
fn debug_never_shows_key_material() {
    let w = world();
    let d = format!("{:?}", w.orders);
    assert!(d.contains(w.orders.kid()));
    let body: String = w
        .orders_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!d.contains(&body[..20]));
}

#[test]
fn types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Signer>();
    check::<Verifier>();
    check::<spiffile_svid::Caller>();
}

#[test]
fn a_key_rotated_out_is_named_in_the_refusal() {
    let w = world();
    let old = danger::mint_at(&w.orders, &w.billing, at(NOW), at(NOW + 60)).unwrap();
    // The bundle after `rotate --revoke-old`: orders holds only a new key.
    let new_key = Signer::from_pkcs8_pem(
        w.orders.id().clone(),
        generate_pkcs8_pem().unwrap().as_bytes(),
    )
    .unwrap();
    let mut bundle = Bundle::new("example.org".parse().unwrap());
    bundle
        .add_key(w.orders.id(), new_key.public_key().clone())
        .unwrap();
    let verifier = Verifier::new(&bundle);
    let e = danger::verify_at(
        &verifier,
        &old,
        &w.billing,
        &VerifyOptions::default(),
        at(NOW),
    )
    .unwrap_err();
    assert_eq!(e.reason(), Some(Reason::Signature));
    let message = e.to_string();
    assert!(
        message.contains(&format!("the token names the key \"{}\"", w.orders.kid())),
        "{message}"
    );
    assert!(message.contains("revoked or rotated out"), "{message}");
    // A bound kid with a bad signature is the plain signature error.
    assert_eq!(
        verifier.kids(w.orders.id()).collect::<Vec<_>>(),
        [new_key.kid()]
    );
    assert!(verifier.contains(w.orders.id()));
}
