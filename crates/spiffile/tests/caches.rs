//! The facade's caches on real files: reuse of minted tokens, the
//! verified-token cache, and what a reload does to both.

use spiffile::svid::generate_pkcs8_pem;
use spiffile::{Error, Identity, Reason};
use spiffile_testkit::Root;

#[test]
fn token_reuses_and_verify_caches_by_default() {
    let (_root, orders, billing) = Root::orders_and_billing();
    // An audience's first token is not kept (see Signer::with_token_reuse);
    // from the second on, it is reused.
    orders.token(billing.id()).unwrap();
    let t1 = orders.token(billing.id()).unwrap();
    let t2 = orders.token(billing.id()).unwrap();
    // The same token unless the 30 s half-life passed between the calls.
    let c1 = billing.verify(&t1).unwrap();
    let c2 = billing.verify(&t2).unwrap();
    assert_eq!(c1.id(), orders.id());
    if c1.claims().iat() == c2.claims().iat() {
        assert_eq!(t1, t2);
    }
    assert_eq!(billing.verify(&t1).unwrap(), c1);
}

#[test]
fn knobs_turn_the_caches_off() {
    let mut root = Root::new("example.org");
    let dir = root.add("orders");
    root.add("billing");
    let orders = Identity::builder()
        .token_reuse_fraction(0.0)
        .from_files(dir.join("id"), dir.join("key.pem"), root.bundle_path())
        .unwrap();
    let billing_dir = root.service_dir("billing");
    let billing = Identity::builder()
        .verify_cache_capacity(0)
        .from_files(
            billing_dir.join("id"),
            billing_dir.join("key.pem"),
            root.bundle_path(),
        )
        .unwrap();
    let t1 = orders.token(billing.id()).unwrap();
    let t2 = orders.token(billing.id()).unwrap();
    assert_ne!(t1, t2);
    for t in [&t1, &t2, &t1] {
        assert_eq!(billing.verify(t).unwrap().id(), orders.id());
    }
}

#[test]
fn audiences_are_kept_apart() {
    let mut root = Root::new("example.org");
    root.add("orders");
    root.add("billing");
    root.add("shipping");
    let orders = root.identity("orders");
    let billing = root.identity("billing");
    let shipping = root.identity("shipping");
    let to_billing = orders.token(billing.id()).unwrap();
    let to_shipping = orders.token(shipping.id()).unwrap();
    assert_ne!(to_billing, to_shipping);
    for _ in 0..2 {
        assert!(billing.verify(&to_billing).is_ok());
        assert_eq!(
            billing.verify(&to_shipping).unwrap_err().reason(),
            Some(Reason::Audience)
        );
        assert!(shipping.verify(&to_shipping).is_ok());
        assert_eq!(
            shipping.verify(&to_billing).unwrap_err().reason(),
            Some(Reason::Audience)
        );
        // One verifier, two audiences: the cached answer for one is not the
        // answer for the other.
        assert!(billing.verify_for(&to_shipping, shipping.id()).is_ok());
        assert_eq!(
            billing
                .verify_for(&to_billing, shipping.id())
                .unwrap_err()
                .reason(),
            Some(Reason::Audience)
        );
    }
}

#[test]
fn a_reloaded_bundle_revokes_cached_tokens() {
    let (mut root, orders, billing) = Root::orders_and_billing();
    let token = orders.token(billing.id()).unwrap();
    for _ in 0..3 {
        assert_eq!(billing.verify(&token).unwrap().id(), orders.id());
    }
    // orders is removed from the bundle: after the reload, the cached
    // acceptance is gone with the old bundle.
    root.bundle.remove_identity(orders.id()).unwrap();
    root.write_bundle();
    billing.reload().unwrap();
    match billing.verify(&token) {
        Err(Error::UnknownIdentity(who)) => assert_eq!(&who, orders.id()),
        other => panic!("expected UnknownIdentity, got {other:?}"),
    }
    // Revoking one key (the identity stays, with another key) works the same.
    let pem = generate_pkcs8_pem().unwrap();
    root.add_with_pem("orders", &pem);
    billing.reload().unwrap();
    orders.reload().unwrap();
    let fresh = orders.token(billing.id()).unwrap();
    assert!(billing.verify(&fresh).is_ok());
    assert!(billing.verify(&fresh).is_ok());
    let kid = orders.kid().unwrap();
    let other = generate_pkcs8_pem().unwrap();
    root.bundle
        .add_key(
            orders.id(),
            spiffile::svid::public_key_of_pem(other.as_bytes()).unwrap(),
        )
        .unwrap();
    root.bundle.remove_key(orders.id(), &kid).unwrap();
    root.write_bundle();
    billing.reload().unwrap();
    assert_eq!(
        billing.verify(&fresh).unwrap_err().reason(),
        Some(Reason::Signature)
    );
}

#[test]
fn a_new_key_is_never_paired_with_an_old_token() {
    let (mut root, orders, billing) = Root::orders_and_billing();
    orders.token(billing.id()).unwrap(); // the first is not kept
    let before = orders.token(billing.id()).unwrap();
    assert_eq!(orders.token(billing.id()).unwrap(), before);
    let old_kid = orders.kid();

    // Rotation: the new key first in the bundle, then the key file.
    let pem = generate_pkcs8_pem().unwrap();
    root.add_with_pem("orders", &pem);
    orders.reload().unwrap();
    billing.reload().unwrap();
    assert_ne!(orders.kid(), old_kid);
    let after = orders.token(billing.id()).unwrap();
    assert_ne!(after, before);
    let caller = billing.verify(&after).unwrap();
    assert_eq!(caller.id(), orders.id());
    // The token carries the new key's kid.
    let header = after.split('.').next().unwrap();
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header["kid"], orders.kid().unwrap().as_str());
}

#[test]
fn many_threads_share_one_identity() {
    let mut root = Root::new("example.org");
    root.add("orders");
    root.add("billing");
    root.add("shipping");
    let orders = root.identity("orders");
    let billing = root.identity("billing");
    let shipping = root.identity("shipping");
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (orders, billing, shipping) = (orders.clone(), billing.clone(), shipping.clone());
            scope.spawn(move || {
                for i in 0..50 {
                    let (to, other) = if (i + t) % 2 == 0 {
                        (&billing, &shipping)
                    } else {
                        (&shipping, &billing)
                    };
                    let token = orders.token(to.id()).unwrap();
                    assert_eq!(to.verify(&token).unwrap().id(), orders.id());
                    assert!(other.verify(&token).is_err());
                }
            });
        }
        // Reloads in the middle of it all.
        for _ in 0..5 {
            billing.reload().unwrap();
            orders.reload().unwrap();
        }
    });
}
