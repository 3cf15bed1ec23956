//! The shared cross-implementation fixture set (conformance/fixtures.json),
//! the same data the Python, Go and TypeScript implementations are pinned to.

use spiffile::bundle::{Bundle, PublicKey};
use spiffile::svid::public_key_of_pem;
use spiffile::{Error, Reason, SpiffeId};
use spiffile_testkit::{Root, fixtures};

#[test]
fn jwk_and_kid_derive_from_each_pinned_private_key() {
    let f = fixtures();
    for who in ["orders", "billing"] {
        let pem = f[format!("{who}_private_key_pem")].as_str().unwrap();
        let derived = public_key_of_pem(pem.as_bytes()).unwrap();
        let expected = &f[format!("{who}_jwk")];
        assert_eq!(derived.to_jwk(), *expected, "{who}");
        assert_eq!(derived.thumbprint(), expected["kid"].as_str().unwrap());
        assert_eq!(PublicKey::from_jwk(expected).unwrap(), derived);
    }
}

#[test]
fn the_fixture_bundle_parses_without_warnings() {
    let f = fixtures();
    let b = Bundle::from_json(&serde_json::to_vec(&f["bundle"]).unwrap()).unwrap();
    assert_eq!(b.trust_domain().as_str(), "example.org");
    assert_eq!(b.len(), 2);
    assert!(b.warnings().is_empty());
}

fn billing_with_fixture_bundle(f: &serde_json::Value) -> (Root, spiffile::Identity) {
    let mut root = Root::new("example.org");
    root.add_with_pem("billing", f["billing_private_key_pem"].as_str().unwrap());
    std::fs::write(
        root.bundle_path(),
        serde_json::to_vec_pretty(&f["bundle"]).unwrap(),
    )
    .unwrap();
    let billing = root.identity("billing");
    (root, billing)
}

#[test]
fn the_python_minted_token_verifies_as_orders_for_billing() {
    let f = fixtures();
    let (_root, billing) = billing_with_fixture_bundle(&f);
    let token = f["token_orders_to_billing_exp_2035"].as_str().unwrap();
    let caller = billing.verify(token).unwrap();
    assert_eq!(caller.id().as_str(), "spiffe://example.org/orders");
    assert_eq!(caller.claims().exp(), 2_051_222_400);
    assert_eq!(caller.claims().iat(), Some(1_750_000_000));
    // Addressed to billing, so refused for any other audience.
    let other: SpiffeId = "spiffe://example.org/orders".parse().unwrap();
    assert_eq!(
        billing.verify_for(token, &other).unwrap_err().reason(),
        Some(Reason::Audience)
    );
}

#[test]
fn the_multi_audience_token_is_rejected() {
    let f = fixtures();
    let (_root, billing) = billing_with_fixture_bundle(&f);
    let token = f["token_orders_to_billing_multi_aud_exp_2035"]
        .as_str()
        .unwrap();
    match billing.verify(token) {
        Err(Error::InvalidToken(e)) => assert_eq!(e.reason(), Reason::Audience),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tokens_minted_here_match_the_python_shape_byte_for_byte() {
    // Same key, same claims → same header and claims segments as the
    // Python-minted fixture token (the signature differs: ECDSA is randomized).
    let f = fixtures();
    let pem = f["orders_private_key_pem"].as_str().unwrap();
    let signer = spiffile::svid::Signer::from_pkcs8_pem(
        "spiffe://example.org/orders".parse().unwrap(),
        pem.as_bytes(),
    )
    .unwrap();
    let ours = spiffile::svid::danger::mint_at(
        &signer,
        &"spiffe://example.org/billing".parse().unwrap(),
        spiffile::svid::UnixTime::from_secs(1_750_000_000),
        spiffile::svid::UnixTime::from_secs(2_051_222_400),
    )
    .unwrap();
    let theirs = f["token_orders_to_billing_exp_2035"].as_str().unwrap();
    let head = |t: &str| t.rsplit_once('.').unwrap().0.to_owned();
    assert_eq!(head(&ours), head(theirs));
}

#[test]
fn spiffe_id_vectors() {
    let f = fixtures();
    for v in f["valid_spiffe_ids"].as_array().unwrap() {
        let s = v.as_str().unwrap();
        assert_eq!(s.parse::<SpiffeId>().unwrap().to_string(), s);
    }
    for v in f["invalid_spiffe_ids"].as_array().unwrap() {
        assert!(v.as_str().unwrap().parse::<SpiffeId>().is_err(), "{v}");
    }
}
