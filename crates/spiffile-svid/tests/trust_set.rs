//! The trust set: per-identity (spiffile) and per-domain (SPIRE-style)
//! authorities side by side, the scoping rule between them, and the `aud`,
//! `kid` and `sub` rules of per-domain authorities. Every token here is
//! signed by this test with real keys; each refusal would be an acceptance
//! if the scoping broke.

mod common;

use common::sign_raw;
use serde_json::{Value, json};
use spiffile_bundle::{Bundle, BundleDocument, JwtBundle, JwtBundleSet};
use spiffile_id::SpiffeId;
use spiffile_svid::{
    AuthorityKind, Error, Reason, TokenError, TrustSetError, Verifier, VerifyOptions,
    generate_pkcs8_pem, public_key_of_pem,
};

const NOW: i64 = 1_800_000_000;
const BILLING: &str = "spiffe://example.org/billing";
const SPIRE_BILLING: &str = "spiffe://spire.test/billing";

fn id(s: &str) -> SpiffeId {
    s.parse().unwrap()
}

/// A key pair: its PEM, and the kid it is published under.
struct Key {
    pem: String,
    kid: String,
}

impl Key {
    fn new(kid: &str) -> Key {
        Key {
            pem: generate_pkcs8_pem().unwrap().to_string(),
            kid: kid.into(),
        }
    }

    /// The public JWK as SPIRE publishes it: no `use`, no `alg`, its own kid.
    fn spire_jwk(&self) -> Value {
        let mut jwk = public_key_of_pem(self.pem.as_bytes()).unwrap().to_jwk();
        let m = jwk.as_object_mut().unwrap();
        m.remove("use");
        m.remove("alg");
        m.insert("kid".into(), json!(self.kid));
        jwk
    }

    fn sign(&self, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": kid, "typ": "JWT"}).to_string();
        sign_raw(&self.pem, &header, &claims.to_string())
    }

    /// A token as SPIRE mints it: `aud` always an array.
    fn spire_token(&self, sub: &str, aud: &[&str]) -> String {
        self.sign(
            &self.kid,
            &json!({"sub": sub, "aud": aud, "iat": NOW, "exp": NOW + 300}),
        )
    }
}

struct World {
    /// example.org, per identity: orders' own key.
    orders: Key,
    /// spire.test, per domain: the server's two JWT authorities.
    spire_a: Key,
    spire_b: Key,
    verifier: Verifier,
}

fn spire_jwks(keys: &[&Key]) -> Vec<u8> {
    let keys: Vec<Value> = keys.iter().map(|k| k.spire_jwk()).collect();
    serde_json::to_vec(&json!({"keys": keys, "spiffe_sequence": 4})).unwrap()
}

fn world() -> World {
    let orders = Key::new("");
    let orders_key = public_key_of_pem(orders.pem.as_bytes()).unwrap();
    let orders = Key {
        kid: orders_key.kid().into(),
        ..orders
    };
    let mut spiffile = Bundle::new("example.org".parse().unwrap());
    spiffile
        .add_key(&id("spiffe://example.org/orders"), orders_key)
        .unwrap();
    let (spire_a, spire_b) = (
        Key::new("N3b0nQ2yKpIrXo3lT4c5qWbY8dZfE1gH"),
        Key::new("Zq9W8e7R6t5Y4u3I2o1P0aSdFgHjKlMn"),
    );
    let spire = JwtBundle::from_jwks(
        "spire.test".parse().unwrap(),
        &spire_jwks(&[&spire_a, &spire_b]),
    )
    .unwrap();
    let verifier = Verifier::builder()
        .bundle("/etc/spiffile/bundle.json", &spiffile)
        .unwrap()
        .jwt_bundle("/run/spire/bundles/spire.test.json", &spire)
        .unwrap()
        .build();
    World {
        orders,
        spire_a,
        spire_b,
        verifier,
    }
}

fn check(v: &Verifier, token: &str, aud: &str, opts: VerifyOptions) -> Result<SpiffeId, Error> {
    spiffile_svid::danger::verify_at(
        v,
        token,
        &id(aud),
        &opts,
        spiffile_svid::UnixTime::from_secs(NOW),
    )
    .map(|c| c.id().clone())
}

fn default() -> VerifyOptions {
    VerifyOptions::default()
}

fn invalid(e: TokenError) -> Result<SpiffeId, Error> {
    Err(Error::InvalidToken(e))
}

#[test]
fn both_kinds_verify_side_by_side() {
    let w = world();
    let spiffile = w.orders.sign(
        &w.orders.kid,
        &json!({"sub": "spiffe://example.org/orders", "aud": BILLING, "iat": NOW, "exp": NOW + 60}),
    );
    assert_eq!(
        check(&w.verifier, &spiffile, BILLING, default()),
        Ok(id("spiffe://example.org/orders"))
    );
    // Any workload of spire.test, with either of its keys.
    for (key, sub) in [
        (&w.spire_a, "spiffe://spire.test/orders"),
        (&w.spire_b, "spiffe://spire.test/team/inventory"),
    ] {
        let token = key.spire_token(sub, &[SPIRE_BILLING]);
        assert_eq!(
            check(&w.verifier, &token, SPIRE_BILLING, default()),
            Ok(id(sub))
        );
    }
    // A single audience string is fine from SPIRE's side too.
    let one = w.spire_a.sign(
        &w.spire_a.kid,
        &json!({"sub": "spiffe://spire.test/orders", "aud": SPIRE_BILLING, "exp": NOW + 60}),
    );
    assert!(check(&w.verifier, &one, SPIRE_BILLING, default()).is_ok());

    let info: Vec<_> = w.verifier.trust_domains().collect();
    assert_eq!(info.len(), 2);
    assert_eq!(info[0].trust_domain.as_str(), "example.org");
    assert_eq!(info[0].kind, AuthorityKind::PerIdentity);
    assert_eq!((info[0].keys, info[0].identities), (1, Some(1)));
    assert_eq!(info[0].source, "/etc/spiffile/bundle.json");
    assert_eq!(info[1].kind, AuthorityKind::PerDomain);
    assert_eq!((info[1].keys, info[1].sequence), (2, Some(4)));
    assert!(w.verifier.contains(&id("spiffe://example.org/orders")));
    assert!(!w.verifier.contains(&id("spiffe://example.org/billing")));
    assert!(w.verifier.contains(&id("spiffe://spire.test/anyone")));
    assert!(!w.verifier.contains(&id("spiffe://spire.test")));
    assert!(!w.verifier.contains(&id("spiffe://third.test/x")));
}

#[test]
fn a_per_identity_key_of_example_org_cannot_sign_for_spire_test() {
    let w = world();
    let claims =
        json!({"sub": "spiffe://spire.test/orders", "aud": [SPIRE_BILLING], "exp": NOW + 60});
    // With its own kid: spire.test has no such key.
    assert_eq!(
        check(
            &w.verifier,
            &w.orders.sign(&w.orders.kid, &claims),
            SPIRE_BILLING,
            default()
        ),
        invalid(TokenError::UnknownKeyId {
            kid: format!("{:?}", w.orders.kid),
            trust_domain: "spire.test".parse().unwrap(),
        })
    );
    // Claiming one of SPIRE's kids: that key does not validate it.
    assert_eq!(
        check(
            &w.verifier,
            &w.orders.sign(&w.spire_a.kid, &claims),
            SPIRE_BILLING,
            default()
        ),
        invalid(TokenError::DomainSignature {
            kid: format!("{:?}", w.spire_a.kid),
            trust_domain: "spire.test".parse().unwrap(),
        })
    );
}

#[test]
fn spire_keys_cannot_sign_for_example_org() {
    let w = world();
    for key in [&w.spire_a, &w.spire_b] {
        // An identity example.org binds: only its own key counts.
        for kid in [key.kid.as_str(), w.orders.kid.as_str()] {
            let token = key.sign(
                kid,
                &json!({"sub": "spiffe://example.org/orders", "aud": BILLING, "exp": NOW + 60}),
            );
            let refused = check(&w.verifier, &token, BILLING, default());
            if kid == w.orders.kid {
                // orders' own kid, a foreign signature: a bad signature.
                assert_eq!(
                    refused,
                    invalid(TokenError::Signature(id("spiffe://example.org/orders")))
                );
            } else {
                // SPIRE's kid is bound to no example.org identity: said so.
                assert!(
                    matches!(
                        &refused,
                        Err(Error::InvalidToken(TokenError::UnboundKey { sub, .. }))
                            if sub.as_str() == "spiffe://example.org/orders"
                    ),
                    "{refused:?}"
                );
            }
        }
        // An identity example.org does not bind: unknown, whatever signs it.
        let token = key.spire_token("spiffe://example.org/newcomer", &[BILLING]);
        assert_eq!(
            check(&w.verifier, &token, BILLING, default()),
            Err(Error::UnknownIdentity(id("spiffe://example.org/newcomer")))
        );
        // A trust domain the set does not hold.
        let token = key.spire_token("spiffe://third.test/orders", &[BILLING]);
        assert_eq!(
            check(&w.verifier, &token, BILLING, default()),
            Err(Error::UnknownIdentity(id("spiffe://third.test/orders")))
        );
    }
}

#[test]
fn spiffile_tokens_keep_one_audience_string() {
    let w = world();
    for aud in [json!([BILLING]), json!([BILLING, SPIRE_BILLING])] {
        let token = w.orders.sign(
            &w.orders.kid,
            &json!({"sub": "spiffe://example.org/orders", "aud": aud, "exp": NOW + 60}),
        );
        for opts in [default(), default().multiple_audiences(true)] {
            assert_eq!(
                check(&w.verifier, &token, BILLING, opts),
                invalid(TokenError::AudienceArray)
            );
        }
    }
}

#[test]
fn per_domain_audience_rules() {
    let w = world();
    let sub = "spiffe://spire.test/orders";
    let two = w
        .spire_a
        .spire_token(sub, &[SPIRE_BILLING, "spiffe://spire.test/audit"]);
    assert_eq!(
        check(&w.verifier, &two, SPIRE_BILLING, default()),
        invalid(TokenError::MultipleAudiences(2))
    );
    assert_eq!(
        check(
            &w.verifier,
            &two,
            SPIRE_BILLING,
            default().multiple_audiences(true)
        ),
        Ok(id(sub))
    );
    let e = check(&w.verifier, &two, SPIRE_BILLING, default()).unwrap_err();
    assert_eq!(e.reason(), Some(Reason::Audience));
    assert!(e.to_string().contains("can be replayed"), "{e}");
    // Opting in never accepts a token that does not name us.
    let others = w
        .spire_a
        .spire_token(sub, &["spiffe://spire.test/a", "spiffe://spire.test/b"]);
    assert!(matches!(
        check(
            &w.verifier,
            &others,
            SPIRE_BILLING,
            default().multiple_audiences(true)
        ),
        Err(Error::InvalidToken(TokenError::Audience { .. }))
    ));
    let wrong = w.spire_a.spire_token(sub, &["spiffe://spire.test/audit"]);
    assert_eq!(
        check(&w.verifier, &wrong, SPIRE_BILLING, default()),
        invalid(TokenError::Audience {
            found: r#"["spiffe://spire.test/audit"]"#.into(),
            expected: id(SPIRE_BILLING),
        })
    );
    for (aud, problem) in [
        (json!([]), "is an empty array"),
        (
            json!([7]),
            "is an array holding something other than strings",
        ),
        (
            json!([SPIRE_BILLING, null]),
            "is an array holding something other than strings",
        ),
    ] {
        let token = w.spire_a.sign(
            &w.spire_a.kid,
            &json!({"sub": sub, "aud": aud, "exp": NOW + 60}),
        );
        assert_eq!(
            check(
                &w.verifier,
                &token,
                SPIRE_BILLING,
                default().multiple_audiences(true)
            ),
            invalid(TokenError::InvalidClaim {
                claim: "aud",
                problem
            })
        );
    }
}

#[test]
fn per_domain_kid_sub_and_time_rules() {
    let w = world();
    let claims =
        json!({"sub": "spiffe://spire.test/orders", "aud": [SPIRE_BILLING], "exp": NOW + 60});
    // The kid must name the key: the other key of the domain is not tried.
    let token = w.spire_a.sign(&w.spire_b.kid, &claims);
    assert!(matches!(
        check(&w.verifier, &token, SPIRE_BILLING, default()),
        Err(Error::InvalidToken(TokenError::DomainSignature { .. }))
    ));
    let token = w.spire_a.sign("unknown-kid", &claims);
    let e = check(&w.verifier, &token, SPIRE_BILLING, default()).unwrap_err();
    assert_eq!(e.reason(), Some(Reason::KeyId));
    assert_eq!(
        e.to_string(),
        "invalid token: header `kid` \"unknown-kid\" names no key of trust domain `spire.test`"
    );
    // The trust domain's own ID is not a workload.
    let token = w
        .spire_a
        .spire_token("spiffe://spire.test", &[SPIRE_BILLING]);
    assert_eq!(
        check(&w.verifier, &token, SPIRE_BILLING, default()),
        invalid(TokenError::InvalidClaim {
            claim: "sub",
            problem: "names a trust domain, not a workload"
        })
    );
    // A malformed sub in a per-domain trust domain.
    let token = w
        .spire_a
        .spire_token("spiffe://spire.test/a//b", &[SPIRE_BILLING]);
    assert_eq!(
        check(&w.verifier, &token, SPIRE_BILLING, default())
            .unwrap_err()
            .reason(),
        Some(Reason::Subject)
    );
    // Expired, as for any token.
    let token = w.spire_a.sign(
        &w.spire_a.kid,
        &json!({"sub": "spiffe://spire.test/orders", "aud": [SPIRE_BILLING], "exp": NOW - 31}),
    );
    assert_eq!(
        check(&w.verifier, &token, SPIRE_BILLING, default())
            .unwrap_err()
            .reason(),
        Some(Reason::Expired)
    );
    // Header rules are the same: no alg but ES256, nothing but alg/kid/typ.
    let header = json!({"alg": "ES256", "kid": w.spire_a.kid, "typ": "JWT", "jku": "https://x"});
    let token = sign_raw(&w.spire_a.pem, &header.to_string(), &claims.to_string());
    assert_eq!(
        check(&w.verifier, &token, SPIRE_BILLING, default())
            .unwrap_err()
            .reason(),
        Some(Reason::Header)
    );
}

#[test]
fn a_trust_domain_offered_twice_names_both_sources() {
    let w = world();
    let jwks = spire_jwks(&[&w.spire_a]);
    let spire = JwtBundle::from_jwks("spire.test".parse().unwrap(), &jwks).unwrap();
    let as_spiffile = Bundle::new("spire.test".parse().unwrap());
    let mut b = Verifier::builder();
    b.jwt_bundle("dir/spire.test.json", &spire).unwrap();
    assert_eq!(
        b.bundle("dir/legacy.json", &as_spiffile).unwrap_err(),
        TrustSetError::DuplicateTrustDomain {
            trust_domain: "spire.test".parse().unwrap(),
            first: "dir/spire.test.json".into(),
            second: "dir/legacy.json".into(),
        }
    );
    // A bundle set offering it again, through a document.
    let mut set = JwtBundleSet::new();
    set.insert(spire.clone());
    let doc = BundleDocument::JwtBundleSet(set);
    let e = b.document("run/jwt_bundle.json", &doc).unwrap_err();
    assert_eq!(
        e.to_string(),
        "trust domain `spire.test` is offered by both dir/spire.test.json and run/jwt_bundle.json: a trust domain must come from exactly one bundle"
    );
}

#[test]
fn a_document_adds_every_trust_domain_of_a_set() {
    let w = world();
    let mut set = JwtBundleSet::new();
    set.insert(
        JwtBundle::from_jwks("spire.test".parse().unwrap(), &spire_jwks(&[&w.spire_a])).unwrap(),
    );
    set.insert(
        JwtBundle::from_jwks("partner.test".parse().unwrap(), &spire_jwks(&[&w.spire_b])).unwrap(),
    );
    let doc = BundleDocument::from_json(set.to_json().as_bytes(), None).unwrap();
    let v = Verifier::builder()
        .document("jwt_bundle.json", &doc)
        .unwrap()
        .build();
    let ok = w
        .spire_b
        .spire_token("spiffe://partner.test/api", &[SPIRE_BILLING]);
    assert!(check(&v, &ok, SPIRE_BILLING, default()).is_ok());
    // partner.test's key cannot sign for spire.test, though both came from one file.
    let cross = w
        .spire_b
        .spire_token("spiffe://spire.test/api", &[SPIRE_BILLING]);
    assert!(matches!(
        check(&v, &cross, SPIRE_BILLING, default()),
        Err(Error::InvalidToken(TokenError::UnknownKeyId { .. }))
    ));
    let cross = w.spire_b.sign(
        &w.spire_a.kid,
        &json!({"sub": "spiffe://spire.test/api", "aud": [SPIRE_BILLING], "exp": NOW + 60}),
    );
    assert!(matches!(
        check(&v, &cross, SPIRE_BILLING, default()),
        Err(Error::InvalidToken(TokenError::DomainSignature { .. }))
    ));
}

#[test]
fn the_shared_multi_audience_fixture_stays_refused_in_a_federated_set() {
    let fixtures: Value =
        serde_json::from_str(include_str!("../../../conformance/fixtures.json")).unwrap();
    let bundle = Bundle::from_json(&serde_json::to_vec(&fixtures["bundle"]).unwrap()).unwrap();
    let w = world();
    let spire =
        JwtBundle::from_jwks("spire.test".parse().unwrap(), &spire_jwks(&[&w.spire_a])).unwrap();
    let v = Verifier::builder()
        .bundle("fixtures", &bundle)
        .unwrap()
        .jwt_bundle("spire", &spire)
        .unwrap()
        .build();
    let multi = fixtures["token_orders_to_billing_multi_aud_exp_2035"]
        .as_str()
        .unwrap();
    let good = fixtures["token_orders_to_billing_exp_2035"]
        .as_str()
        .unwrap();
    assert!(v.verify(good, &id(BILLING), &default()).is_ok());
    for opts in [default(), default().multiple_audiences(true)] {
        let e = v.verify(multi, &id(BILLING), &opts).unwrap_err();
        assert_eq!(e.reason(), Some(Reason::Audience), "{e}");
    }
}
