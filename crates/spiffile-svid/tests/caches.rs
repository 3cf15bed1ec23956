//! The verified-token cache of `Verifier` and the minted-token cache of
//! `Signer`: a cached answer is always the answer a first verification would
//! give, and nothing outlives its bundle or key.

use std::time::Duration;

use spiffile_bundle::Bundle;
use spiffile_id::SpiffeId;
use spiffile_svid::{Error, Reason, Signer, Verifier, VerifyOptions, generate_pkcs8_pem};
use spiffile_svid::{UnixTime, danger};

const NOW: i64 = 1_800_000_000;

/// A time for the `danger` functions.
fn at(secs: i64) -> UnixTime {
    UnixTime::from_secs(secs)
}

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
    let token = danger::mint_at(&orders, &billing, at(NOW), at(NOW + 60)).unwrap();
    let opts = VerifyOptions::default();
    let first = danger::verify_at(&verifier, &token, &billing, &opts, at(NOW)).unwrap();
    // Kept from its second verification on: a token never presented again
    // costs no insert.
    assert_eq!(verifier.cached_tokens(), 0);
    let second = danger::verify_at(&verifier, &token, &billing, &opts, at(NOW)).unwrap();
    assert_eq!(first, second);
    assert_eq!(verifier.cached_tokens(), 1);
    let again = danger::verify_at(&verifier, &token, &billing, &opts, at(NOW + 1)).unwrap();
    assert_eq!(first, again);
    assert_eq!(again.id(), orders.id());
    assert_eq!(verifier.cached_tokens(), 1);
    // Off by default.
    let plain = Verifier::new(&bundle(&[&orders]));
    danger::verify_at(&plain, &token, &billing, &opts, at(NOW)).unwrap();
    assert_eq!((plain.cache_capacity(), plain.cached_tokens()), (0, 0));
}

#[test]
fn a_cached_token_expires_like_a_fresh_one() {
    let orders = signer("orders");
    let billing = id("spiffe://example.org/billing");
    let b = bundle(&[&orders]);
    let cached = Verifier::new(&b).with_cache_capacity(64);
    let plain = Verifier::new(&b);
    let token = danger::mint_at(&orders, &billing, at(NOW), at(NOW + 60)).unwrap();
    let opts = VerifyOptions::default().with_leeway(Duration::from_secs(5));
    danger::verify_at(&cached, &token, &billing, &opts, at(NOW)).unwrap();
    // Still valid at exp + leeway - 1, refused from exp + leeway on.
    for now in [NOW + 64, NOW + 65, NOW + 1000] {
        let from_cache = danger::verify_at(&cached, &token, &billing, &opts, at(now));
        let fresh = danger::verify_at(&plain, &token, &billing, &opts, at(now));
        assert_eq!(from_cache.is_ok(), fresh.is_ok(), "at {now}");
        assert_eq!(reason(from_cache), reason(fresh), "at {now}");
    }
    assert_eq!(
        reason(danger::verify_at(
            &cached,
            &token,
            &billing,
            &opts,
            at(NOW + 65)
        )),
        Some(Reason::Expired)
    );
    // A smaller leeway on a later call applies to the cached entry too.
    let strict = VerifyOptions::default().with_leeway(Duration::ZERO);
    assert_eq!(
        reason(danger::verify_at(
            &cached,
            &token,
            &billing,
            &strict,
            at(NOW + 60)
        )),
        Some(Reason::Expired)
    );
    // The size limit is checked before the cache.
    let tiny = VerifyOptions::default().with_max_token_bytes(10);
    assert_eq!(
        reason(danger::verify_at(&cached, &token, &billing, &tiny, at(NOW))),
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
    let token = danger::mint_at(&orders, &billing, at(NOW), at(NOW + 60)).unwrap();
    for _ in 0..2 {
        danger::verify_at(&verifier, &token, &billing, &opts, at(NOW)).unwrap();
    }
    for _ in 0..2 {
        assert_eq!(
            reason(danger::verify_at(
                &verifier,
                &token,
                &shipping,
                &opts,
                at(NOW)
            )),
            Some(Reason::Audience)
        );
    }
    let for_shipping = danger::mint_at(&orders, &shipping, at(NOW), at(NOW + 60)).unwrap();
    danger::verify_at(&verifier, &for_shipping, &shipping, &opts, at(NOW)).unwrap();
    let c = danger::verify_at(&verifier, &for_shipping, &shipping, &opts, at(NOW)).unwrap();
    assert_eq!(c.claims().aud(), &shipping);
    assert_eq!(
        reason(danger::verify_at(
            &verifier,
            &for_shipping,
            &billing,
            &opts,
            at(NOW)
        )),
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
    let good = danger::mint_at(&orders, &billing, at(NOW), at(NOW + 60)).unwrap();
    // The same claims under mallory's signature: refused every time.
    let forged = {
        let theirs = danger::mint_at(&mallory, &billing, at(NOW), at(NOW + 60)).unwrap();
        let (head, _) = good.rsplit_once('.').unwrap();
        let (_, sig) = theirs.rsplit_once('.').unwrap();
        format!("{head}.{sig}")
    };
    for _ in 0..3 {
        assert_eq!(
            reason(danger::verify_at(
                &verifier,
                &forged,
                &billing,
                &opts,
                at(NOW)
            )),
            Some(Reason::Signature)
        );
    }
    let expired = danger::mint_at(&orders, &billing, at(NOW - 100), at(NOW - 60)).unwrap();
    assert_eq!(
        reason(danger::verify_at(
            &verifier,
            &expired,
            &billing,
            &opts,
            at(NOW)
        )),
        Some(Reason::Expired)
    );
    assert_eq!(verifier.cached_tokens(), 0);
    danger::verify_at(&verifier, &good, &billing, &opts, at(NOW)).unwrap();
    danger::verify_at(&verifier, &good, &billing, &opts, at(NOW)).unwrap();
    assert_eq!(verifier.cached_tokens(), 1);
    assert_eq!(
        reason(danger::verify_at(
            &verifier,
            &forged,
            &billing,
            &opts,
            at(NOW)
        )),
        Some(Reason::Signature)
    );
}

#[test]
fn a_new_bundle_starts_with_an_empty_cache() {
    let orders = signer("orders");
    let billing = id("spiffe://example.org/billing");
    let opts = VerifyOptions::default();
    let before = Verifier::new(&bundle(&[&orders])).with_cache_capacity(64);
    let token = danger::mint_at(&orders, &billing, at(NOW), at(NOW + 60)).unwrap();
    danger::verify_at(&before, &token, &billing, &opts, at(NOW)).unwrap();
    // orders revoked: the verifier of the new bundle refuses the token.
    let after = Verifier::new(&bundle(&[])).with_cache_capacity(64);
    assert_eq!(after.cached_tokens(), 0);
    assert!(matches!(
        danger::verify_at(&after, &token, &billing, &opts, at(NOW)),
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
        .map(|i| danger::mint_at(&orders, &billing, at(NOW), at(NOW + 60 + i)).unwrap())
        .collect();
    for t in &tokens {
        danger::verify_at(&verifier, t, &billing, &opts, at(NOW)).unwrap();
    }
    assert!(verifier.cached_tokens() <= verifier.cache_capacity());
    // Evicted or not, every token still verifies.
    for t in &tokens {
        assert_eq!(
            danger::verify_at(&verifier, t, &billing, &opts, at(NOW))
                .unwrap()
                .id(),
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
        .flat_map(|s| {
            (0..8).map(move |i| {
                (
                    danger::mint_at(s, aud, at(NOW), at(NOW + 60 + i)).unwrap(),
                    s.id(),
                )
            })
        })
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
                        let c = danger::verify_at(verifier, token, billing, opts, at(NOW)).unwrap();
                        assert_eq!(c.id(), *who);
                    }
                    assert!(danger::verify_at(verifier, forged, billing, opts, at(NOW)).is_err());
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
    // An audience's first request mints without keeping the token (a
    // stream of audiences never asked for again costs no insert); from the
    // second on, the token is kept.
    let once = danger::mint_or_reuse_at(&orders, &billing, ttl, at(NOW)).unwrap();
    let first = danger::mint_or_reuse_at(&orders, &billing, ttl, at(NOW)).unwrap();
    assert_ne!(once, first);
    assert_eq!(
        danger::mint_or_reuse_at(&orders, &billing, ttl, at(NOW)).unwrap(),
        first
    );
    // Exactly half left: still reused; less than half: a new one.
    assert_eq!(
        danger::mint_or_reuse_at(&orders, &billing, ttl, at(NOW + 30)).unwrap(),
        first
    );
    let second = danger::mint_or_reuse_at(&orders, &billing, ttl, at(NOW + 31)).unwrap();
    assert_ne!(second, first);
    assert_eq!(
        danger::mint_or_reuse_at(&orders, &billing, ttl, at(NOW + 40)).unwrap(),
        second
    );
    // A clock that went backwards gets a fresh token, never one "from the future".
    assert_ne!(
        danger::mint_or_reuse_at(&orders, &billing, ttl, at(NOW)).unwrap(),
        second
    );

    let verifier = Verifier::new(&bundle(&[&orders]));
    let c = danger::verify_at(
        &verifier,
        &second,
        &billing,
        &VerifyOptions::default(),
        at(NOW + 40),
    )
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
    // Each audience and lifetime asked for once before (see above).
    for (aud, ttl) in [
        (&billing, minute),
        (&shipping, minute),
        (&billing, Duration::from_secs(120)),
    ] {
        danger::mint_or_reuse_at(&orders, aud, ttl, at(NOW)).unwrap();
    }
    let to_billing = danger::mint_or_reuse_at(&orders, &billing, minute, at(NOW)).unwrap();
    let to_shipping = danger::mint_or_reuse_at(&orders, &shipping, minute, at(NOW)).unwrap();
    let longer =
        danger::mint_or_reuse_at(&orders, &billing, Duration::from_secs(120), at(NOW)).unwrap();
    assert_ne!(to_billing, to_shipping);
    assert_ne!(to_billing, longer);
    let verifier = Verifier::new(&bundle(&[&orders]));
    let opts = VerifyOptions::default();
    assert!(danger::verify_at(&verifier, &to_shipping, &shipping, &opts, at(NOW)).is_ok());
    assert!(danger::verify_at(&verifier, &to_shipping, &billing, &opts, at(NOW)).is_err());
    assert_eq!(
        danger::mint_or_reuse_at(&orders, &shipping, minute, at(NOW + 1)).unwrap(),
        to_shipping
    );
    assert_eq!(
        danger::mint_or_reuse_at(&orders, &billing, Duration::from_secs(120), at(NOW + 60))
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
        let a = danger::mint_or_reuse_at(&orders, &billing, ttl, at(NOW)).unwrap();
        let b = danger::mint_or_reuse_at(&orders, &billing, ttl, at(NOW)).unwrap();
        assert_ne!(a, b, "ECDSA signatures are randomized");
    }
    // Invalid lifetimes are refused whether or not a token is cached.
    let orders = signer("orders").with_token_reuse(1.0);
    assert!(matches!(
        danger::mint_or_reuse_at(&orders, &billing, Duration::ZERO, at(NOW)),
        Err(Error::InvalidTtl { .. })
    ));
    // Fraction 1: reused until (not at) expiry (kept from the second request).
    danger::mint_or_reuse_at(&orders, &billing, ttl, at(NOW)).unwrap();
    let t = danger::mint_or_reuse_at(&orders, &billing, ttl, at(NOW)).unwrap();
    assert_eq!(
        danger::mint_or_reuse_at(&orders, &billing, ttl, at(NOW + 59)).unwrap(),
        t
    );
    assert_ne!(
        danger::mint_or_reuse_at(&orders, &billing, ttl, at(NOW + 60)).unwrap(),
        t
    );
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
                        let t = danger::mint_or_reuse_at(
                            orders,
                            aud,
                            Duration::from_secs(60),
                            at(NOW + round),
                        )
                        .unwrap();
                        let c = danger::verify_at(
                            verifier,
                            &t,
                            aud,
                            &VerifyOptions::default(),
                            at(NOW + round),
                        )
                        .unwrap();
                        assert_eq!(c.claims().aud(), aud);
                        assert!(c.claims().iat().unwrap() >= NOW + round - 30);
                    }
                }
            });
        }
    });
}
