//! The file layouts, the cert/key pair rule and bundle grouping.

#[path = "common/mod.rs"]
mod common;

use std::fs;
use std::time::SystemTime;

use common::Ca;
use spiffile_tls::{Error, Reason, Usage, X509Files, X509Source};

fn write_layout(
    dir: &std::path::Path,
    cert: &str,
    key: &str,
    bundle: &str,
    leaf: &common::Leaf,
    ca: &Ca,
) {
    fs::write(dir.join(cert), leaf.chain_pem()).unwrap();
    fs::write(dir.join(key), leaf.key_pem()).unwrap();
    fs::write(dir.join(bundle), common::pem_block("CERTIFICATE", &ca.der)).unwrap();
}

#[test]
fn every_layout_loads() {
    let ca = Ca::root("example.org");
    let intermediate = ca.intermediate();
    let leaf = intermediate.leaf("spiffe://example.org/orders");
    let cases = [
        (
            (|d: &std::path::Path| X509Files::spiffe_helper(d))
                as fn(&std::path::Path) -> X509Files,
            "svid.pem",
            "svid_key.pem",
            "svid_bundle.pem",
        ),
        (
            |d: &std::path::Path| X509Files::spire_agent(d),
            "svid.0.pem",
            "svid.0.key",
            "bundle.0.pem",
        ),
        (
            |d: &std::path::Path| X509Files::csi_driver(d),
            "tls.crt",
            "tls.key",
            "ca.crt",
        ),
    ];
    for (layout, cert, key, bundle) in cases {
        let dir = tempfile::tempdir().unwrap();
        write_layout(dir.path(), cert, key, bundle, &leaf, &ca);
        let source = X509Source::from_files(layout(dir.path())).unwrap();
        assert_eq!(source.svid().id().as_str(), "spiffe://example.org/orders");
        assert_eq!(source.svid().chain().len(), 2, "leaf then intermediate");
        let peer = spiffile_tls::verify_svid(
            source.svid().chain(),
            &source.bundles(),
            Usage::Client,
            SystemTime::now(),
        );
        assert!(peer.is_ok(), "{cert}");
    }
}

#[test]
fn spire_federated_bundles_are_found_and_scoped_to_their_trust_domain() {
    let ca = Ca::root("example.org");
    let fed = Ca::root("partner.org");
    let dir = tempfile::tempdir().unwrap();
    write_layout(
        dir.path(),
        "svid.0.pem",
        "svid.0.key",
        "bundle.0.pem",
        &ca.leaf("spiffe://example.org/orders"),
        &ca,
    );
    fs::write(
        dir.path().join("federated_bundle.0.0.pem"),
        common::pem_block("CERTIFICATE", &fed.der),
    )
    .unwrap();
    let source = X509Source::from_files(X509Files::spire_agent(dir.path())).unwrap();
    let bundles = source.bundles();
    assert_eq!(bundles.len(), 2);
    let now = SystemTime::now();
    spiffile_tls::verify_svid(
        &fed.leaf("spiffe://partner.org/pay").chain,
        &bundles,
        Usage::Client,
        now,
    )
    .unwrap();
    // The partner's CA never signs for example.org.
    let r = spiffile_tls::verify_svid(
        &fed.leaf("spiffe://example.org/orders").chain,
        &bundles,
        Usage::Client,
        now,
    )
    .unwrap_err();
    assert_eq!(r.reason(), Reason::UntrustedChain);
}

#[test]
fn a_mixed_bundle_file_is_split_by_the_cas_own_trust_domain() {
    // spiffe-helper's include_federated_domains appends federated CAs to
    // svid_bundle.pem: they must not become example.org roots.
    let ca = Ca::root("example.org");
    let fed = Ca::root("partner.org");
    let dir = tempfile::tempdir().unwrap();
    write_layout(
        dir.path(),
        "svid.pem",
        "svid_key.pem",
        "svid_bundle.pem",
        &ca.leaf("spiffe://example.org/orders"),
        &ca,
    );
    let mut mixed = fs::read_to_string(dir.path().join("svid_bundle.pem")).unwrap();
    mixed.push_str(&common::pem_block("CERTIFICATE", &fed.der));
    fs::write(dir.path().join("svid_bundle.pem"), mixed).unwrap();
    let source = X509Source::from_files(X509Files::spiffe_helper(dir.path())).unwrap();
    let now = SystemTime::now();
    let r = spiffile_tls::verify_svid(
        &fed.leaf("spiffe://example.org/x").chain,
        &source.bundles(),
        Usage::Client,
        now,
    )
    .unwrap_err();
    assert_eq!(r.reason(), Reason::UntrustedChain);
    spiffile_tls::verify_svid(
        &fed.leaf("spiffe://partner.org/x").chain,
        &source.bundles(),
        Usage::Client,
        now,
    )
    .unwrap();
}

#[test]
fn a_certificate_without_its_key_never_replaces_the_pair() {
    let ca = Ca::root("example.org");
    let dir = tempfile::tempdir().unwrap();
    let first = ca.leaf("spiffe://example.org/orders");
    write_layout(
        dir.path(),
        "svid.pem",
        "svid_key.pem",
        "svid_bundle.pem",
        &first,
        &ca,
    );
    let source = X509Source::from_files(X509Files::spiffe_helper(dir.path())).unwrap();
    assert_eq!(source.svid().chain(), first.chain.as_slice());

    // The writer updates the certificate first; the key is still the old one.
    let second = ca.leaf("spiffe://example.org/orders");
    fs::write(dir.path().join("svid.pem"), second.chain_pem()).unwrap();
    let e = source.reload().unwrap_err();
    assert!(matches!(e, Error::KeyMismatch { .. }), "{e}");
    assert_eq!(
        source.svid().chain(),
        first.chain.as_slice(),
        "the good pair stays"
    );
    let status = source.status();
    assert!(status.svid_error.unwrap().contains("does not match"));
    assert!(status.bundle_error.is_none());

    // Then the key arrives: the new pair is served.
    fs::write(dir.path().join("svid_key.pem"), second.key_pem()).unwrap();
    assert!(source.reload().unwrap());
    assert_eq!(source.svid().chain(), second.chain.as_slice());
    assert!(source.status().svid_error.is_none());

    // A half-written (empty) certificate file is no better.
    fs::write(dir.path().join("svid.pem"), "").unwrap();
    assert!(source.reload().is_err());
    assert_eq!(source.svid().chain(), second.chain.as_slice());
}

#[test]
fn our_own_svid_must_be_a_valid_x509_svid() {
    let ca = Ca::root("example.org");
    let dir = tempfile::tempdir().unwrap();
    let bad = ca.leaf_with("spiffe://example.org/orders", |p| {
        p.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://example.org/billing".try_into().unwrap(),
        ));
    });
    write_layout(dir.path(), "tls.crt", "tls.key", "ca.crt", &bad, &ca);
    let e = X509Source::from_files(X509Files::csi_driver(dir.path())).unwrap_err();
    match &e {
        Error::Svid { what, refusal } => {
            assert!(what.contains("tls.crt"), "{what}");
            assert_eq!(refusal.reason(), Reason::TooManyUriSans);
        }
        other => panic!("{other}"),
    }
    // Errors never contain key material.
    assert!(!e.to_string().contains("PRIVATE KEY"));
}

#[test]
fn a_watching_source_follows_the_pair_on_its_own_and_never_serves_a_mismatch() {
    let ca = Ca::root("example.org");
    let dir = tempfile::tempdir().unwrap();
    let first = ca.leaf("spiffe://example.org/orders");
    write_layout(
        dir.path(),
        "svid.pem",
        "svid_key.pem",
        "svid_bundle.pem",
        &first,
        &ca,
    );
    let source = X509Source::watch(
        X509Files::spiffe_helper(dir.path()),
        spiffile_watch::WatchOptions::default(),
    )
    .unwrap();
    assert_eq!(source.svid().chain(), first.chain.as_slice());
    // spiffe-helper's way: truncate-and-write in place, certificate first.
    let second = ca.leaf("spiffe://example.org/orders");
    fs::write(dir.path().join("svid.pem"), second.chain_pem()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    // The watcher may first catch the certificate half-written (its own
    // error); wait for the mismatch itself.
    let mismatch = |s: &spiffile_tls::SourceStatus| {
        s.svid_error
            .as_deref()
            .is_some_and(|e| e.contains("does not match"))
    };
    while !mismatch(&source.status()) && std::time::Instant::now() < deadline {
        assert_eq!(
            source.svid().chain(),
            first.chain.as_slice(),
            "never the mismatched pair"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(mismatch(&source.status()), "{:?}", source.status());
    assert_eq!(source.svid().chain(), first.chain.as_slice());
    fs::write(dir.path().join("svid_key.pem"), second.key_pem()).unwrap();
    while source.svid().chain() != second.chain.as_slice() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(
        source.svid().chain(),
        second.chain.as_slice(),
        "followed without reload()"
    );
    assert!(source.status().svid_error.is_none());
    // A new bundle is followed too.
    let next_ca = Ca::root("example.org");
    let mut both = common::pem_block("CERTIFICATE", &ca.der);
    both.push_str(&common::pem_block("CERTIFICATE", &next_ca.der));
    fs::write(dir.path().join("svid_bundle.pem"), both).unwrap();
    let leaf = next_ca.leaf("spiffe://example.org/billing");
    while spiffile_tls::verify_svid(
        &leaf.chain,
        &source.bundles(),
        Usage::Client,
        SystemTime::now(),
    )
    .is_err()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    spiffile_tls::verify_svid(
        &leaf.chain,
        &source.bundles(),
        Usage::Client,
        SystemTime::now(),
    )
    .unwrap();
}
