//! Hostile bundles and files: each one meets a precise error or warning, and
//! the valid entries around it keep working.

use std::path::Path;

use serde_json::{Value, json};
use spiffile::bundle::{Bundle, BundleError, KeyError, MAX_BUNDLE_BYTES, Warning, WarningKind};
use spiffile::svid::{Signer, generate_pkcs8_pem};
use spiffile::{Error, Identity};
use spiffile_testkit::{Root, id};

const EVIL: &str = "spiffe://example.org/evil";

/// orders and billing, provisioned normally.
fn root() -> Root {
    let mut root = Root::new("example.org");
    root.add("orders");
    root.add("billing");
    root
}

/// The bundle document of `root` as JSON, to be tampered with.
fn document(root: &Root) -> Value {
    serde_json::from_str(&root.bundle.to_json()).unwrap()
}

fn write(root: &Root, doc: &[u8]) {
    std::fs::write(root.bundle_path(), doc).unwrap();
}

/// orders → billing still works with the bundle now on disk.
fn valid_entries_still_work(root: &Root) {
    let orders = root.identity("orders");
    let billing = root.identity("billing");
    let token = orders.token(billing.id()).unwrap();
    assert_eq!(billing.verify(&token).unwrap().id(), orders.id());
}

/// A fresh key pair and its JWK.
fn fresh_jwk() -> (Signer, Value) {
    let pem = generate_pkcs8_pem().unwrap();
    let signer = Signer::from_pkcs8_pem(id(EVIL), pem.as_bytes()).unwrap();
    let jwk = signer.public_key().to_jwk();
    (signer, jwk)
}

fn warning(kind: WarningKind, identity: &str, key_index: Option<usize>, message: &str) -> Warning {
    Warning {
        kind,
        identity: identity.into(),
        key_index,
        message: message.into(),
    }
}

#[test]
fn a_bad_key_skips_the_identity_with_a_precise_warning_and_the_rest_works() {
    let (evil_signer, good_jwk) = fresh_jwk();
    let with = |member: &str, value: Value| {
        let mut j = good_jwk.clone();
        j[member] = value;
        j
    };
    let mut without_kid = good_jwk.clone();
    without_kid.as_object_mut().unwrap().remove("kid");
    // A point off the curve: y + 1 (mod 2^256; y is never all ones here).
    let mut y = good_jwk["y"].as_str().map(b64).unwrap();
    let last = y.iter().rposition(|b| *b != 0xff).unwrap();
    y[last] += 1;
    y[last + 1..].fill(0);
    let cases: Vec<(&str, Value, KeyError)> = vec![
        (
            "private member d",
            with("d", json!("AAAA")),
            KeyError::PrivateMember,
        ),
        (
            "another curve",
            with("crv", json!("P-384")),
            KeyError::Curve("P-384".into()),
        ),
        (
            "a point off the curve",
            with("y", json!(enc(&y))),
            KeyError::NotOnCurve,
        ),
        ("a missing kid", without_kid, KeyError::Missing("kid")),
        (
            "a 31-byte coordinate",
            with("x", json!(enc(&[7u8; 31]))),
            KeyError::CoordinateLength {
                member: "x",
                len: 31,
            },
        ),
        (
            "a 33-byte coordinate",
            with("y", json!(enc(&[7u8; 33]))),
            KeyError::CoordinateLength {
                member: "y",
                len: 33,
            },
        ),
        (
            "an RSA key",
            with("kty", json!("RSA")),
            KeyError::KeyType("RSA".into()),
        ),
    ];
    let root = root();
    for (what, jwk, key_error) in cases {
        let mut doc = document(&root);
        doc["identities"][EVIL] = json!({"keys": [jwk]});
        let bytes = serde_json::to_vec(&doc).unwrap();
        let bundle = Bundle::from_json_quiet(&bytes).unwrap();
        assert_eq!(
            bundle.warnings(),
            &[
                warning(
                    WarningKind::SkippedKey,
                    EVIL,
                    Some(0),
                    &format!("key {key_error}")
                ),
                warning(
                    WarningKind::SkippedIdentity,
                    EVIL,
                    None,
                    "has no usable key"
                ),
            ],
            "{what}"
        );
        assert!(!bundle.contains(&EVIL.parse().unwrap()), "{what}");
        write(&root, &bytes);
        valid_entries_still_work(&root);
        // The skipped identity is unknown, not half-trusted.
        let billing = root.identity("billing");
        let token = evil_signer
            .mint(billing.id(), std::time::Duration::from_secs(60))
            .unwrap();
        assert!(
            matches!(billing.verify(&token), Err(Error::UnknownIdentity(u)) if u.as_str() == EVIL),
            "{what}"
        );
    }
}

#[test]
fn a_bad_key_beside_a_good_one_skips_only_that_key() {
    let root = root();
    let (evil_signer, good_jwk) = fresh_jwk();
    let mut with_d = good_jwk.clone();
    with_d["d"] = json!("c2VjcmV0");
    let mut doc = document(&root);
    doc["identities"][EVIL] = json!({"keys": [with_d, good_jwk]});
    let bytes = serde_json::to_vec(&doc).unwrap();
    let bundle = Bundle::from_json_quiet(&bytes).unwrap();
    assert_eq!(
        bundle.warnings(),
        &[warning(
            WarningKind::SkippedKey,
            EVIL,
            Some(0),
            &format!("key {}", KeyError::PrivateMember)
        )]
    );
    write(&root, &bytes);
    valid_entries_still_work(&root);
    let billing = root.identity("billing");
    let token = evil_signer
        .mint(billing.id(), std::time::Duration::from_secs(60))
        .unwrap();
    assert_eq!(billing.verify(&token).unwrap().id().as_str(), EVIL);
    // The private value is never repeated.
    assert!(!bundle.warnings()[0].to_string().contains("c2VjcmV0"));
}

#[test]
fn identities_outside_the_trust_domain_or_malformed_are_skipped() {
    let root = root();
    let (_, jwk) = fresh_jwk();
    for (name, message) in [
        (
            "spiffe://other.org/evil",
            "not in the trust domain `example.org`",
        ),
        (
            "spiffe://example.org/evil/",
            "not a SPIFFE ID: it ends with a slash; a path has no trailing slash",
        ),
        (
            "https://example.org/evil",
            "not a SPIFFE ID: it does not start with the scheme `spiffe://`",
        ),
    ] {
        let mut doc = document(&root);
        doc["identities"][name] = json!({"keys": [jwk.clone()]});
        let bytes = serde_json::to_vec(&doc).unwrap();
        let bundle = Bundle::from_json_quiet(&bytes).unwrap();
        assert_eq!(
            bundle.warnings(),
            &[warning(WarningKind::SkippedIdentity, name, None, message)]
        );
        assert_eq!(bundle.len(), 2);
        write(&root, &bytes);
        valid_entries_still_work(&root);
    }
}

#[test]
fn document_faults_fail_the_load_and_a_live_identity_keeps_its_snapshot() {
    let root = root();
    let billing = root.identity("billing");
    let orders = root.identity("orders");
    let dir = root.service_dir("billing");
    let cases: Vec<(&[u8], BundleError)> = vec![
        (
            b"{\"trust_domain\": \"example.org\", ",
            BundleError::Json {
                message: "EOF while parsing a value".into(),
                line: 1,
                column: 32,
            },
        ),
        (
            br#"{"trust_domain":"example.org","spiffile_version":2,"identities":{}}"#,
            BundleError::UnsupportedVersion("2".into()),
        ),
        (
            br#"{"trust_domain":"example.org","spiffile_version":0,"identities":{}}"#,
            BundleError::UnsupportedVersion("0".into()),
        ),
        (b"[1, 2, 3]", BundleError::NotAnObject),
    ];
    for (doc, want) in cases {
        write(&root, doc);
        let e = Identity::from_files(dir.join("id"), dir.join("key.pem"), root.bundle_path())
            .unwrap_err();
        match &e {
            Error::InvalidBundle { path, source } => {
                assert_eq!(path, &root.bundle_path());
                assert_eq!(source, &want);
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("bundle.json"), "{e}");
        // reload() refuses the bad document and keeps the good snapshot.
        assert!(matches!(billing.reload(), Err(Error::InvalidBundle { .. })));
        let token = orders.token(billing.id()).unwrap();
        assert_eq!(billing.verify(&token).unwrap().id(), orders.id());
    }
}

/// 100 000 identities, each with its own key: the document is built as text
/// (as a provisioner would write it) and must load and verify, for one of the
/// generated identities as for the original ones. Load time is measured in
/// the benchmarks, not asserted here.
#[test]
fn a_bundle_of_100_000_identities_loads_and_verifies() {
    use ring::digest::{SHA256, digest};
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

    let root = root();
    let orders = root.identity("orders");
    let rng = SystemRandom::new();
    let mut text = root.bundle.to_json();
    // Drop the closing "\n  }\n}\n" of `identities` and the document.
    let tail = text.rfind("\n  }").unwrap();
    text.truncate(tail);
    text.reserve(100_000 * 300);
    let mut push = |n: usize, x: &[u8], y: &[u8]| {
        let (x, y) = (enc(x), enc(y));
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = enc(digest(&SHA256, canonical.as_bytes()).as_ref());
        text.push_str(&format!(
            ",\n    \"spiffe://example.org/svc/{n:06}\": {{\"keys\": [{{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"{x}\", \"y\": \"{y}\", \"kid\": \"{kid}\", \"use\": \"jwt-svid\", \"alg\": \"ES256\"}}]}}"
        ));
    };
    // Half the keys are generated; each gives a second, distinct key for
    // free: its negation (x, p - y) is also on the curve.
    let mut kept = None;
    for i in 0..50_000 {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        // ring's PKCS#8 document ends with the uncompressed public point.
        let point = &doc.as_ref()[doc.as_ref().len() - 65..];
        let y: [u8; 32] = point[33..].try_into().unwrap();
        push(2 * i, &point[1..33], &y);
        push(2 * i + 1, &point[1..33], &sub256(&P, &y));
        if i == 38_888 {
            kept = Some(doc.as_ref().to_vec());
        }
    }
    text.push_str("\n  }\n}\n");
    assert!(text.len() < MAX_BUNDLE_BYTES, "{}", text.len());

    write(&root, text.as_bytes());
    let started = std::time::Instant::now();
    let billing = root.identity("billing");
    let loaded = started.elapsed();
    let token = orders.token(billing.id()).unwrap();
    assert_eq!(billing.verify(&token).unwrap().id(), orders.id());
    let svc =
        Signer::from_pkcs8_der(id("spiffe://example.org/svc/077776"), &kept.unwrap()).unwrap();
    let token = svc
        .mint(billing.id(), std::time::Duration::from_secs(60))
        .unwrap();
    assert_eq!(billing.verify(&token).unwrap().id(), svc.id());
    eprintln!(
        "100 000 identities: {} bytes; Identity load {loaded:?}",
        text.len()
    );
}

#[test]
fn a_50_mib_bundle_is_refused_before_it_is_read() {
    let root = root();
    let dir = root.service_dir("billing");
    let file = std::fs::File::create(root.bundle_path()).unwrap();
    file.set_len(50 << 20).unwrap(); // sparse: nothing is written
    let e =
        Identity::from_files(dir.join("id"), dir.join("key.pem"), root.bundle_path()).unwrap_err();
    match &e {
        Error::BadFile { path, problem } => {
            assert_eq!(path, &root.bundle_path());
            assert_eq!(
                problem,
                &format!("is 52428800 bytes, larger than the limit of {MAX_BUNDLE_BYTES} bytes")
            );
        }
        other => panic!("{other:?}"),
    }
    // The same text given to the parser directly is refused by its own cap.
    assert_eq!(
        Bundle::from_json(&vec![b' '; 50 << 20]),
        Err(BundleError::TooLarge {
            len: 50 << 20,
            max: MAX_BUNDLE_BYTES
        })
    );
}

fn assert_bad_file(e: &Error, path: &Path, problem: &str) {
    match e {
        Error::BadFile {
            path: p,
            problem: pr,
        } => {
            assert_eq!(p, path);
            assert_eq!(pr, problem);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bundle_that_is_a_directory_is_refused() {
    let root = root();
    let billing = root.identity("billing");
    let orders = root.identity("orders");
    std::fs::remove_file(root.bundle_path()).unwrap();
    std::fs::create_dir(root.bundle_path()).unwrap();
    let dir = root.service_dir("billing");
    let e =
        Identity::from_files(dir.join("id"), dir.join("key.pem"), root.bundle_path()).unwrap_err();
    assert_bad_file(
        &e,
        &root.bundle_path(),
        "is a directory; expected a regular file",
    );
    // A live identity keeps its last good snapshot.
    assert!(billing.reload().is_err());
    let token = orders.token(billing.id()).unwrap();
    assert!(billing.verify(&token).is_ok());
}

#[cfg(unix)]
#[test]
fn a_bundle_that_is_a_fifo_or_a_device_is_refused_without_blocking() {
    let root = root();
    let billing = root.identity("billing");
    let dir = root.service_dir("billing");
    std::fs::remove_file(root.bundle_path()).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(root.bundle_path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(made, "mkfifo is needed for this test");
    // Nobody writes to the FIFO: opening it for reading would block forever.
    let e =
        Identity::from_files(dir.join("id"), dir.join("key.pem"), root.bundle_path()).unwrap_err();
    let not_regular = "is not a regular file (a FIFO, socket or device); expected a regular file";
    assert_bad_file(&e, &root.bundle_path(), not_regular);
    assert!(billing.reload().is_err());
    // A symlink to an endless device.
    std::fs::remove_file(root.bundle_path()).unwrap();
    std::os::unix::fs::symlink("/dev/zero", root.bundle_path()).unwrap();
    let e =
        Identity::from_files(dir.join("id"), dir.join("key.pem"), root.bundle_path()).unwrap_err();
    assert_bad_file(&e, &root.bundle_path(), not_regular);
    // The key and identity files get the same treatment.
    std::fs::remove_file(root.bundle_path()).unwrap();
    root.write_bundle();
    let e = Identity::from_files(dir.join("id"), "/dev/zero", root.bundle_path()).unwrap_err();
    assert_bad_file(&e, Path::new("/dev/zero"), not_regular);
}

fn b64(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

fn enc(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The P-256 field prime, big-endian.
const P: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

/// `a - b` for 256-bit big-endian numbers, `a >= b`.
fn sub256(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    out
}
