//! Every refusal of the X509-SVID standard, checked three ways: by
//! `verify_svid`, by our server in a real handshake (a client presents the
//! certificate), and by our client (a server presents it). Each case fails
//! if its rule stops being enforced.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::tls::{handshake, presenting_client, presenting_server};
use common::{Ca, Leaf};
use rcgen::{ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType};
use spiffile_tls::{Allow, Reason, Usage, X509BundleSet};

const ORDERS: &str = "spiffe://example.org/orders";
const BILLING: &str = "spiffe://example.org/billing";

struct World {
    ca: Ca,
    other: Ca,
    /// What our server and client trust: example.org and other.org.
    bundles: X509BundleSet,
    /// The honest SVIDs of our server (billing) and client (orders).
    billing: Leaf,
    orders: Leaf,
}

fn world() -> World {
    let ca = Ca::root("example.org");
    let other = Ca::root("other.org");
    let bundles = X509BundleSet::new().with(ca.bundle()).with(other.bundle());
    World {
        billing: ca.leaf(BILLING),
        orders: ca.leaf(ORDERS),
        ca,
        other,
        bundles,
    }
}

type Case = (&'static str, fn(&World) -> Leaf, Reason);

fn cases() -> Vec<Case> {
    vec![
        // another trust domain's CA signs an example.org identity
        (
            "other trust domain's chain",
            |w| w.other.leaf(ORDERS),
            Reason::UntrustedChain,
        ),
        // an identity of a trust domain we have no bundle for
        (
            "unknown trust domain",
            |_| Ca::root("elsewhere.org").leaf("spiffe://elsewhere.org/orders"),
            Reason::UnknownTrustDomain,
        ),
        (
            "expired",
            |w| {
                w.ca.leaf_with(ORDERS, |p| {
                    let now = SystemTime::now();
                    p.not_before = (now - Duration::from_secs(7200)).into();
                    p.not_after = (now - Duration::from_secs(3600)).into();
                })
            },
            Reason::Expired,
        ),
        (
            "not yet valid",
            |w| {
                w.ca.leaf_with(ORDERS, |p| {
                    let now = SystemTime::now();
                    p.not_before = (now + Duration::from_secs(3600)).into();
                    p.not_after = (now + Duration::from_secs(7200)).into();
                })
            },
            Reason::NotYetValid,
        ),
        (
            "CA certificate as a leaf",
            |w| {
                w.ca.leaf_with(ORDERS, |p| {
                    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
                    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                })
            },
            Reason::LeafIsCa,
        ),
        (
            "two URI SANs",
            |w| {
                w.ca.leaf_with(ORDERS, |p| {
                    p.subject_alt_names
                        .push(SanType::URI(BILLING.try_into().unwrap()));
                })
            },
            Reason::TooManyUriSans,
        ),
        (
            "no URI SAN",
            |w| w.ca.leaf_with(ORDERS, |p| p.subject_alt_names.clear()),
            Reason::NoUriSan,
        ),
        (
            "DNS-only certificate",
            |w| {
                w.ca.leaf_with(ORDERS, |p| {
                    p.subject_alt_names =
                        vec![SanType::DnsName("orders.example.org".try_into().unwrap())];
                })
            },
            Reason::NoUriSan,
        ),
        (
            "URI SAN that is not a SPIFFE ID",
            |w| {
                w.ca.leaf_with(ORDERS, |p| {
                    p.subject_alt_names = vec![SanType::URI(
                        "https://example.org/orders".try_into().unwrap(),
                    )];
                })
            },
            Reason::NotSpiffeId,
        ),
        (
            "SPIFFE ID without a path",
            |w| {
                w.ca.leaf_with(ORDERS, |p| {
                    p.subject_alt_names =
                        vec![SanType::URI("spiffe://example.org".try_into().unwrap())];
                })
            },
            Reason::NotSpiffeId,
        ),
        (
            "leaf signed by a key not in the bundle",
            |w| {
                // Same name as the real CA, another key.
                let impostor = Ca::root("example.org");
                let _ = w;
                impostor.leaf(ORDERS)
            },
            Reason::UntrustedChain,
        ),
        (
            "missing intermediate",
            |w| {
                let intermediate = w.ca.intermediate();
                let mut leaf = intermediate.leaf(ORDERS);
                leaf.chain.truncate(1); // the leaf alone
                leaf
            },
            Reason::UntrustedChain,
        ),
        (
            "leaf with keyCertSign",
            |w| {
                w.ca.leaf_with(ORDERS, |p| {
                    p.key_usages = vec![
                        KeyUsagePurpose::DigitalSignature,
                        KeyUsagePurpose::KeyCertSign,
                    ];
                })
            },
            Reason::KeyUsage,
        ),
        (
            "leaf with cRLSign",
            |w| {
                w.ca.leaf_with(ORDERS, |p| {
                    p.key_usages =
                        vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
                })
            },
            Reason::KeyUsage,
        ),
        (
            "leaf without digitalSignature",
            |w| {
                w.ca.leaf_with(ORDERS, |p| {
                    p.key_usages = vec![KeyUsagePurpose::KeyEncipherment]
                })
            },
            Reason::KeyUsage,
        ),
        (
            "leaf without keyUsage",
            |w| w.ca.leaf_with(ORDERS, |p| p.key_usages.clear()),
            Reason::KeyUsage,
        ),
        (
            "intermediate without keyCertSign",
            |w| {
                let intermediate =
                    w.ca.intermediate_with(|p| p.key_usages = vec![KeyUsagePurpose::CrlSign]);
                intermediate.leaf(ORDERS)
            },
            Reason::SigningCertificate,
        ),
        (
            "intermediate naming another trust domain",
            |w| {
                let intermediate = w.ca.intermediate_with(|p| {
                    p.subject_alt_names =
                        vec![SanType::URI("spiffe://other.org".try_into().unwrap())];
                });
                intermediate.leaf(ORDERS)
            },
            Reason::SigningCertificate,
        ),
        (
            "extended key usage for neither end",
            |w| {
                w.ca.leaf_with(ORDERS, |p| {
                    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
                })
            },
            Reason::ExtendedKeyUsage,
        ),
    ]
}

#[test]
fn verify_svid_refuses_each_case() {
    let w = world();
    for (name, make, reason) in cases() {
        let leaf = make(&w);
        for usage in [Usage::Client, Usage::Server] {
            let refusal =
                spiffile_tls::verify_svid(&leaf.chain, &w.bundles, usage, SystemTime::now())
                    .expect_err(name);
            assert_eq!(refusal.reason(), reason, "{name}: {refusal}");
        }
    }
}

#[test]
fn valid_svids_verify_directly_and_through_an_intermediate() {
    let w = world();
    let peer = spiffile_tls::verify_svid(
        &w.orders.chain,
        &w.bundles,
        Usage::Client,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(peer.id().as_str(), ORDERS);
    let intermediate = w.ca.intermediate().intermediate();
    let leaf = intermediate.leaf(ORDERS);
    assert_eq!(leaf.chain.len(), 3);
    let peer = spiffile_tls::verify_svid(&leaf.chain, &w.bundles, Usage::Server, SystemTime::now())
        .unwrap();
    assert_eq!(peer.id().as_str(), ORDERS);
    // A federated trust domain's own identities verify against its own CA.
    let fed = w.other.leaf("spiffe://other.org/payments");
    spiffile_tls::verify_svid(&fed.chain, &w.bundles, Usage::Client, SystemTime::now()).unwrap();
}

#[test]
fn extended_key_usage_follows_the_end() {
    let w = world();
    let client_only = w.ca.leaf_with(ORDERS, |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth]
    });
    let now = SystemTime::now();
    spiffile_tls::verify_svid(&client_only.chain, &w.bundles, Usage::Client, now).unwrap();
    let r =
        spiffile_tls::verify_svid(&client_only.chain, &w.bundles, Usage::Server, now).unwrap_err();
    assert_eq!(r.reason(), Reason::ExtendedKeyUsage);
    // No extension at all: either end (RFC 5280).
    let none = w.ca.leaf_with(ORDERS, |p| p.extended_key_usages.clear());
    spiffile_tls::verify_svid(&none.chain, &w.bundles, Usage::Server, now).unwrap();
}

#[tokio::test]
async fn our_server_refuses_each_case_in_the_handshake() {
    let w = world();
    let source = w.billing.source(w.bundles.clone());
    let server = Arc::new(spiffile_tls::server_config(&source, Allow::any()).unwrap());
    for (name, make, reason) in cases() {
        let leaf = make(&w);
        let (server_result, client_result) = handshake(
            server.clone(),
            presenting_client(leaf.certified_key()),
            "billing",
        )
        .await;
        let error = server_result.expect_err(name);
        assert_eq!(Reason::of(&error), Some(reason), "{name}: {error}");
        assert!(
            client_result.is_err(),
            "{name}: the client must see the alert"
        );
    }
    // And the honest client gets through, its ID verified.
    let (s, c) = handshake(
        server,
        presenting_client(w.orders.certified_key()),
        "billing",
    )
    .await;
    assert_eq!(s.unwrap().unwrap().id().as_str(), ORDERS);
    assert!(c.is_ok());
}

#[tokio::test]
async fn our_client_refuses_each_case_in_the_handshake() {
    let w = world();
    let source = w.orders.source(w.bundles.clone());
    let client = Arc::new(spiffile_tls::client_config(&source, Allow::any()).unwrap());
    for (name, make, reason) in cases() {
        let leaf = make(&w);
        let (server_result, client_result) = handshake(
            presenting_server(leaf.certified_key()),
            client.clone(),
            "billing",
        )
        .await;
        let error = client_result.expect_err(name);
        assert_eq!(Reason::of(&error), Some(reason), "{name}: {error}");
        assert!(server_result.is_err(), "{name}");
    }
    let (s, c) = handshake(
        presenting_server(w.billing.certified_key()),
        client,
        "billing",
    )
    .await;
    assert!(s.is_ok());
    assert_eq!(c.unwrap().unwrap().id().as_str(), BILLING);
}

#[tokio::test]
async fn authorization_on_the_spiffe_id_in_the_handshake() {
    let w = world();
    let orders: spiffile_id::SpiffeId = ORDERS.parse().unwrap();
    let billing: spiffile_id::SpiffeId = BILLING.parse().unwrap();
    let server_source = w.billing.source(w.bundles.clone());
    let client_source = w.orders.source(w.bundles.clone());
    let mallory = w.ca.leaf("spiffe://example.org/mallory");
    let mallory_source = mallory.source(w.bundles.clone());

    let server = Arc::new(
        spiffile_tls::server_config(&server_source, Allow::ids([orders.clone()])).unwrap(),
    );
    let client = Arc::new(spiffile_tls::client_config(&client_source, billing.clone()).unwrap());
    let (s, c) = handshake(server.clone(), client.clone(), "billing.internal").await;
    assert_eq!(s.unwrap().unwrap().id(), &orders);
    assert_eq!(c.unwrap().unwrap().id(), &billing);

    // mallory is a valid member of example.org but not allowed.
    let mallory_client =
        Arc::new(spiffile_tls::client_config(&mallory_source, billing.clone()).unwrap());
    let (s, c) = handshake(server.clone(), mallory_client, "billing.internal").await;
    let error = s.unwrap_err();
    assert_eq!(Reason::of(&error), Some(Reason::NotAllowed), "{error}");
    assert!(
        c.unwrap_err().to_string().contains("AccessDenied"),
        "access_denied alert"
    );

    // Our client expecting billing refuses a server that is mallory.
    let mallory_server =
        Arc::new(spiffile_tls::server_config(&mallory_source, Allow::any()).unwrap());
    let (_, c) = handshake(mallory_server.clone(), client, "billing.internal").await;
    assert_eq!(Reason::of(&c.unwrap_err()), Some(Reason::NotAllowed));

    // Per host: billing.internal must be billing, other hosts anyone of example.org.
    let per_host = spiffile_tls::ServerIds::new()
        .target("billing.internal", billing.clone())
        .default_allow(Allow::trust_domain("example.org".parse().unwrap()));
    let client = Arc::new(spiffile_tls::client_config(&client_source, per_host).unwrap());
    let (_, c) = handshake(mallory_server.clone(), client.clone(), "BILLING.internal").await;
    assert_eq!(Reason::of(&c.unwrap_err()), Some(Reason::NotAllowed));
    let (_, c) = handshake(mallory_server.clone(), client.clone(), "mallory.internal").await;
    assert!(c.is_ok());
    // An IP address is a host too; no rule for it and no default: refused.
    let only_billing_host = spiffile_tls::ServerIds::new().target("127.0.0.1", billing);
    let client = Arc::new(spiffile_tls::client_config(&client_source, only_billing_host).unwrap());
    let (_, c) = handshake(mallory_server.clone(), client.clone(), "127.0.0.1").await;
    assert_eq!(Reason::of(&c.unwrap_err()), Some(Reason::NotAllowed));
    let (_, c) = handshake(mallory_server, client, "localhost").await;
    assert_eq!(Reason::of(&c.unwrap_err()), Some(Reason::NotAllowed));
}

/// Why these checks are ours to make: rustls' stock client verifier, given
/// the same bundle, accepts leaves the X509-SVID standard refuses. If this
/// test ever fails, the stock verifier learned the rule (good news; the
/// docs then need an update).
#[tokio::test]
async fn stock_webpki_verifier_accepts_what_the_standard_refuses() {
    let w = world();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(w.ca.der.clone()).unwrap();
    let stock_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        spiffile_tls::provider().clone(),
    )
    .build()
    .unwrap();
    let stock = Arc::new(
        rustls::ServerConfig::builder_with_provider(spiffile_tls::provider().clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(stock_verifier)
            .with_cert_resolver(Arc::new(common::tls::Fixed(w.billing.certified_key()))),
    );
    let two_sans = w.ca.leaf_with(ORDERS, |p| {
        p.subject_alt_names
            .push(SanType::URI(BILLING.try_into().unwrap()));
    });
    let cert_sign = w.ca.leaf_with(ORDERS, |p| {
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
        ];
    });
    for leaf in [two_sans, cert_sign] {
        let (s, _) = handshake(
            stock.clone(),
            presenting_client(leaf.certified_key()),
            "billing",
        )
        .await;
        assert!(s.is_ok(), "the stock verifier accepted it: {s:?}");
    }
}

/// A resumed session skips the verifier (rustls resumes with the chain of
/// the first handshake), so ours offer no resumption: once the client's CA
/// has left the server's bundle, the same client cannot come back in on a
/// ticket from before, even with a stock client that asks to resume.
#[tokio::test]
async fn our_server_offers_no_resumption_past_a_bundle_change() {
    let w = world();
    let server_source = w.billing.source(w.ca.bundle_set());
    let server = Arc::new(spiffile_tls::server_config(&server_source, Allow::any()).unwrap());
    assert_eq!(server.send_tls13_tickets, 0);
    // Stock client: resumption on (rustls' default, an in-memory cache).
    let client = presenting_client(w.orders.certified_key());
    let (s, c) = handshake(server.clone(), client.clone(), "billing").await;
    s.unwrap();
    c.unwrap();
    // The CA is rotated and the old one retired: orders' SVID is no longer
    // trusted.
    server_source.set_bundles(Ca::root("example.org").bundle_set());
    let (s, _) = handshake(server, client, "billing").await;
    let error = s.expect_err("a full handshake, refused");
    assert_eq!(Reason::of(&error), Some(Reason::UntrustedChain), "{error}");
}

/// The client side of the same: against a stock server that issues
/// tickets, our client never resumes, so a server certificate its current
/// bundle no longer trusts is refused on the next connection.
#[tokio::test]
async fn our_client_never_resumes_past_a_bundle_change() {
    let w = world();
    let client_source = w.orders.source(w.ca.bundle_set());
    let client = Arc::new(spiffile_tls::client_config(&client_source, Allow::any()).unwrap());
    // Stock server: a session cache and two TLS 1.3 tickets per handshake.
    let server = presenting_server(w.billing.certified_key());
    assert!(server.send_tls13_tickets > 0);
    let (s, c) = handshake(server.clone(), client.clone(), "billing").await;
    s.unwrap();
    c.unwrap();
    client_source.set_bundles(Ca::root("example.org").bundle_set());
    let (_, c) = handshake(server, client, "billing").await;
    let error = c.expect_err("a full handshake, refused");
    assert_eq!(Reason::of(&error), Some(Reason::UntrustedChain), "{error}");
}
