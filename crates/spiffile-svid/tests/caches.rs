//! The verified-token cache of `Verifier` and the minted-token cache of
//! `Signer`: a cached answer is always the answer a first verification would
//! give, and nothing outlives its bundle or key.

use std::time::Duration;

use spiffile_bundle::Bundle;
use spiffile_id::SpiffeId;
use spiffile_svid::{Error, Reason, Signer, Verifier, VerifyOptions, generate_pkcs8_pem};

const NOW: i64 = 1_800_000_000;

fn id(s: &str) -> SpiffeId {
    s.parse().unwrap()
}

fn signer(name: &str) -> Signer {
    let pem = generate_pkcs8_pem().unwrap();
    Signer::from_pkcs8_pem(id(&format!("spiffe://example.org/{name}")), pem.as_bytes()).unwrap()
}

fn bundle(signers: &[&Signer]) -> Bundle {
    let mut b = Bundle::new("example.org".parse().unwrap());
    for s in signers {
        b.add_key(s.id(), s.public_key().clone()).unwrap();
    }
    b
}

fn reason(r: Result<spiffile_svid::Caller, Error>) -> Option<Reason> {
    match r {
        Err(Error::InvalidToken(t)) => Some(t.reason()),
        _ => None,
    }
}

#[test]
fn a_repeated_token_is_served_from_the_cache() {
    let orders = signer("orders");
    let billing = id("spiffe://example.org/billing");
    let verifier = Verifier::new(&bundle(&[&orders])).with_cache_capacity(64);
    assert!(verifier.cache_capacity() >= 64);
    let token = orders.mint_at(&billing, NOW, NOW + 60).unwrap();
    let opts = VerifyOptions::default();
    let first = verifier.verify_at(&token, &billing, &opts, NOW).unwrap();
    assert_eq!(verifier.cached_tokens(), 1);
    let again = verifier
        .verify_at(&token, &billing, &opts, NOW + 1)
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(again.id(), orders.id());
    assert_eq!(verifier.cached_tokens(), 1);
    // Off by default.
    let plain = Verifier::new(&bundle(&[&orders]));
    plain.verify_at(&token, &billing, &opts, NOW).unwrap();
    assert_eq!((plain.cache_capacity(), plain.cached_tokens()), (0, 0));
}

#[test]
fn a_cached_token_expires_like_a_fresh_one() {
    let orders = signer("orders");
    let billing = id("spiffe://example.org/billing");
    let b = bundle(&[&orders]);
    let cached = Verifier::new(&b).with_cache_capacity(64);
    let plain = Verifier::new(&b);
    let token = orders.mint_at(&billing, NOW, NOW + 60).unwrap();
    let opts = VerifyOptions::default().leeway(Duration::from_secs(5));
    cached.verify_at(&token, &billing, &opts, NOW).unwrap();
    // Still valid at exp + leeway - 1, refused from exp + leeway on.
    for now in [NOW + 64, NOW + 65, NOW + 1000] {
        let from_cache = cached.verify_at(&token, &billing, &opts, now);
        let fresh = plain.verify_at(&token, &billing, &opts, now);
        assert_eq!(from_cache.is_ok(), fresh.is_ok(), "at {now}");
        assert_eq!(reason(from_cache), reason(fresh), "at {now}");
    }
    assert_eq!(
        reason(cached.verify_at(&token, &billing, &opts, NOW + 65)),
        Some(Reason::Expired)
    );
    // A smaller leeway on a later call applies to the cached entry too.
    let strict = VerifyOptions::default().leeway(Duration::ZERO);
    assert_eq!(
        reason(cached.verify_at(&token, &billing, &strict, NOW + 60)),
        Some(Reason::Expired)
    );
    // The size limit is checked before the cache.
    let tiny = VerifyOptions::default().max_token_bytes(10);
    assert_eq!(
        reason(cached.verify_at(&token, &billing, &tiny, NOW)),
        Some(Reason::TooLarge)
    );
}

#[test]
fn the_audience_is_part_of_the_key() {
    let orders = signer("orders");
    let billing = id("spiffe://example.org/billing");
    let shipping = id("spiffe://example.org/shipping");
    let verifier = Verifier::new(&bundle(&[&orders])).with_cache_capacity(64);
    let opts = VerifyOptions::default();
    let token = orders.mint_at(&billing, NOW, NOW + 60).unwrap();
    verifier.verify_at(&token, &billing, &opts, NOW).unwrap();
    for _ in 0..2 {
        assert_eq!(
            reason(verifier.verify_at(&token, &shipping, &opts, NOW)),
            Some(Reason::Audience)
        );
    }
    let for_shipping = orders.mint_at(&shipping, NOW, NOW + 60).unwrap();
    let c = verifier
        .verify_at(&for_shipping, &shipping, &opts, NOW)
        .unwrap();
    assert_eq!(c.claims().aud(), &shipping);
    assert_eq!(
        reason(verifier.verify_at(&for_shipping, &billing, &opts, NOW)),
        Some(Reason::Audience)
    );
    assert_eq!(verifier.cached_tokens(), 2);
}

#[test]
fn refusals_are_not_cached() {
    let orders = signer("orders");
    let mallory = signer("mallory");
    let billing = id("spiffe://example.org/billing");
    let verifier = Verifier::new(&bundle(&[&orders, &mallory])).with_cache_capacity(64);
    let opts = VerifyOptions::default();
    let good = orders.mint_at(&billing, NOW, NOW + 60).unwrap();
    // The same claims under mallory's signature: refused every time.
    let forged = {
        let theirs = mallory.mint_at(&billing, NOW, NOW + 60).unwrap();
        let (head, _) = good.rsplit_once('.').unwrap();
        let (_, sig) = theirs.rsplit_once('.').unwrap();
        format!("{head}.{sig}")
    };
    for _ in 0..3 {
        assert_eq!(
            reason(verifier.verify_at(&forged, &billing, &opts, NOW)),
            Some(Reason::Signature)
        );
    }
    let expired = orders.mint_at(&billing, NOW - 100, NOW - 60).unwrap();
    assert_eq!(
        reason(verifier.verify_at(&expired, &billing, &opts, NOW)),
        Some(Reason::Expired)
    );
    assert_eq!(verifier.cached_tokens(), 0);
    verifier.verify_at(&good, &billing, &opts, NOW).unwrap();
    assert_eq!(verifier.cached_tokens(), 1);
    assert_eq!(
        reason(verifier.verify_at(&forged, &billing, &opts, NOW)),
        Some(Reason::Signature)
    );
}

#[test]
fn a_new_bundle_starts_with_an_empty_cache() {
    let orders = signer("orders");
    let billing = id("spiffe://example.org/billing");
    let opts = VerifyOptions::default();
    let before = Verifier::new(&bundle(&[&orders])).with_cache_capacity(64);
    let token = orders.mint_at(&billing, NOW, NOW + 60).unwrap();
    before.verify_at(&token, &billing, &opts, NOW).unwrap();
    // orders revoked: the verifier of the new bundle refuses the token.
    let after = Verifier::new(&bundle(&[])).with_cache_capacity(64);
    assert_eq!(after.cached_tokens(), 0);
    assert!(matches!(
        after.verify_at(&token, &billing, &opts, NOW),
        Err(Error::UnknownIdentity(ref who)) if who == orders.id()
    ));
}

#[test]
fn the_cache_is_bounded() {
    let orders = signer("orders");
    let billing = id("spiffe://example.org/billing");
    let verifier = Verifier::new(&bundle(&[&orders])).with_cache_capacity(16);
    let opts = VerifyOptions::default();
    let tokens: Vec<String> = (0..100)
        .map(|i| orders.mint_at(&billing, NOW, NOW + 60 + i).unwrap())
        .collect();
    for t in &tokens {
        verifier.verify_at(t, &billing, &opts, NOW).unwrap();
    }
    assert!(verifier.cached_tokens() <= verifier.cache_capacity());
    // Evicted or not, every token still verifies.
    for t in &tokens {
        assert_eq!(
            verifier.verify_at(t, &billing, &opts, NOW).unwrap().id(),
            orders.id()
        );
    }
}

#[test]
fn many_threads_share_one_cache() {
    let signers: Vec<Signer> = (0..4).map(|i| signer(&format!("svc{i}"))).collect();
    let billing = id("spiffe://example.org/billing");
    let verifier =
        Verifier::new(&bundle(&signers.iter().collect::<Vec<_>>())).with_cache_capacity(32);
    let opts = VerifyOptions::default();
    let aud = &billing;
    let tokens: Vec<(String, &SpiffeId)> = signers
        .iter()
        .flat_map(|s| (0..8).map(move |i| (s.mint_at(aud, NOW, NOW + 60 + i).unwrap(), s.id())))
        .collect();
    let forged = format!("{}x", tokens[0].0);
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (verifier, tokens, billing, opts, forged) =
                (&verifier, &tokens, &billing, &opts, &forged);
            scope.spawn(move || {
                for round in 0..20 {
                    for (i, (token, who)) in tokens.iter().enumerate() {
                        if (i + t + round) % 3 == 0 {
                            continue;
                        }
                        let c = verifier.verify_at(token, billing, opts, NOW).unwrap();
                        assert_eq!(c.id(), *who);
                    }
                    assert!(verifier.verify_at(forged, billing, opts, NOW).is_err());
                }
            });
        }
    });
    assert!(verifier.cached_tokens() <= verifier.cache_capacity());
}

#[test]
fn minted_tokens_are_reused_for_half_their_lifetime() {
    let orders = signer("orders").with_token_reuse(0.5);
    assert_eq!(orders.token_reuse_fraction(), 0.5);
    let billing = id("spiffe://example.org/billing");
    let ttl = Duration::from_secs(60);
    let first = orders.mint_or_reuse_at(&billing, ttl, NOW).unwrap();
    assert_eq!(orders.mint_or_reuse_at(&billing, ttl, NOW).unwrap(), first);
    // Exactly half left: still reused; less than half: a new one.
    assert_eq!(
        orders.mint_or_reuse_at(&billing, ttl, NOW + 30).unwrap(),
        first
    );
    let second = orders.mint_or_reuse_at(&billing, ttl, NOW + 31).unwrap();
    assert_ne!(second, first);
    assert_eq!(
        orders.mint_or_reuse_at(&billing, ttl, NOW + 40).unwrap(),
        second
    );
    // A clock that went backwards gets a fresh token, never one "from the future".
    assert_ne!(orders.mint_or_reuse_at(&billing, ttl, NOW).unwrap(), second);

    let verifier = Verifier::new(&bundle(&[&orders]));
    let c = verifier
        .verify_at(&second, &billing, &VerifyOptions::default(), NOW + 40)
        .unwrap();
    assert_eq!(
        (c.claims().iat(), c.claims().exp()),
        (Some(NOW + 31), NOW + 91)
    );
}

#[test]
fn minted_tokens_are_kept_per_audience_and_lifetime() {
    let orders = signer("orders").with_token_reuse(0.5);
    let billing = id("spiffe://example.org/billing");
    let shipping = id("spiffe://example.org/shipping");
    let minute = Duration::from_secs(60);
    let to_billing = orders.mint_or_reuse_at(&billing, minute, NOW).unwrap();
    let to_shipping = orders.mint_or_reuse_at(&shipping, minute, NOW).unwrap();
    let longer = orders
        .mint_or_reuse_at(&billing, Duration::from_secs(120), NOW)
        .unwrap();
    assert_ne!(to_billing, to_shipping);
    assert_ne!(to_billing, longer);
    let verifier = Verifier::new(&bundle(&[&orders]));
    let opts = VerifyOptions::default();
    assert!(
        verifier
            .verify_at(&to_shipping, &shipping, &opts, NOW)
            .is_ok()
    );
    assert!(
        verifier
            .verify_at(&to_shipping, &billing, &opts, NOW)
            .is_err()
    );
    assert_eq!(
        orders.mint_or_reuse_at(&shipping, minute, NOW + 1).unwrap(),
        to_shipping
    );
    assert_eq!(
        orders
            .mint_or_reuse_at(&billing, Duration::from_secs(120), NOW + 60)
            .unwrap(),
        longer
    );
}

#[test]
fn without_reuse_every_call_mints() {
    let billing = id("spiffe://example.org/billing");
    let ttl = Duration::from_secs(60);
    for fraction in [0.0, -1.0, f64::NAN] {
        let orders = signer("orders").with_token_reuse(fraction);
        assert_eq!(orders.token_reuse_fraction(), 0.0);
        let a = orders.mint_or_reuse_at(&billing, ttl, NOW).unwrap();
        let b = orders.mint_or_reuse_at(&billing, ttl, NOW).unwrap();
        assert_ne!(a, b, "ECDSA signatures are randomized");
    }
    // Invalid lifetimes are refused whether or not a token is cached.
    let orders = signer("orders").with_token_reuse(1.0);
    assert!(matches!(
        orders.mint_or_reuse_at(&billing, Duration::ZERO, NOW),
        Err(Error::InvalidTtl { .. })
    ));
    // Fraction 1: reused until (not at) expiry.
    let t = orders.mint_or_reuse_at(&billing, ttl, NOW).unwrap();
    assert_eq!(orders.mint_or_reuse_at(&billing, ttl, NOW + 59).unwrap(), t);
    assert_ne!(orders.mint_or_reuse_at(&billing, ttl, NOW + 60).unwrap(), t);
}

#[test]
fn many_threads_mint_and_reuse() {
    let orders = signer("orders").with_token_reuse(0.5);
    let audiences: Vec<SpiffeId> = (0..6)
        .map(|i| id(&format!("spiffe://example.org/svc{i}")))
        .collect();
    let verifier = Verifier::new(&bundle(&[&orders]));
    std::thread::scope(|scope| {
        for _ in 0..6 {
            let (orders, audiences, verifier) = (&orders, &audiences, &verifier);
            scope.spawn(move || {
                for round in 0..30 {
                    for aud in audiences {
                        let t = orders
                            .mint_or_reuse_at(aud, Duration::from_secs(60), NOW + round)
                            .unwrap();
                        let c = verifier
                            .verify_at(&t, aud, &VerifyOptions::default(), NOW + round)
                            .unwrap();
                        assert_eq!(c.claims().aud(), aud);
                        assert!(c.claims().iat().unwrap() >= NOW + round - 30);
                    }
                }
            });
        }
    });
}
