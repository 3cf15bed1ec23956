//! X.509 provisioning: CA, issue, renew, rotate-ca, retire, crash repair;
//! every issued SVID checked by spiffile-tls's validation.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use spiffile_provision::{self as provision, Error, x509};
use spiffile_tls::{Reason, Usage, X509Bundle, X509BundleSet, X509Svid};

const HOUR: Duration = Duration::from_secs(3600);

fn root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    provision::init_root(dir.path(), "example.org").unwrap();
    x509::init_ca(dir.path(), x509::CaOptions::default()).unwrap();
    dir
}

fn bundles(root: &Path) -> X509BundleSet {
    let pem = fs::read(root.join("bundle.pem")).unwrap();
    X509BundleSet::new().with(X509Bundle::from_pem("example.org".parse().unwrap(), &pem).unwrap())
}

fn svid(root: &Path, name: &str) -> X509Svid {
    let dir = root.join("services").join(name);
    X509Svid::from_pem(
        &fs::read(dir.join("svid.pem")).unwrap(),
        &fs::read(dir.join("svid_key.pem")).unwrap(),
    )
    .unwrap()
}

fn verify(root: &Path, svid: &X509Svid) -> Result<(), Reason> {
    for usage in [Usage::Client, Usage::Server] {
        spiffile_tls::verify_svid(svid.chain(), &bundles(root), usage, SystemTime::now())
            .map_err(|r| r.reason())?;
    }
    Ok(())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn issued_svids_are_valid_x509_svids_with_private_keys() {
    let dir = root();
    let issued = x509::issue_svid(dir.path(), "orders", HOUR).unwrap();
    assert_eq!(issued.id.as_str(), "spiffe://example.org/orders");
    let lifetime = issued.not_after.duration_since(issued.not_before).unwrap();
    assert_eq!(lifetime, HOUR + Duration::from_secs(60));
    let s = svid(dir.path(), "orders");
    assert_eq!(s.id().as_str(), "spiffe://example.org/orders");
    verify(dir.path(), &s).unwrap();
    #[cfg(unix)]
    {
        assert_eq!(mode(&issued.key_file), 0o600);
        assert_eq!(mode(&dir.path().join("x509")), 0o700);
        assert_eq!(mode(&dir.path().join("x509/ca.pem")), 0o600);
        assert_eq!(mode(&dir.path().join("bundle.pem")), 0o644);
    }
    // A nested name and a full SPIFFE ID work; another trust domain does not.
    x509::issue_svid(dir.path(), "team/ledger", HOUR).unwrap();
    verify(dir.path(), &svid(dir.path(), "team/ledger")).unwrap();
    x509::issue_svid(dir.path(), "spiffe://example.org/billing", HOUR).unwrap();
    let e = x509::issue_svid(dir.path(), "spiffe://other.org/x", HOUR).unwrap_err();
    assert!(matches!(e, Error::TrustDomainMismatch { .. }), "{e}");
    let e = x509::issue_svid(dir.path(), "../escape", HOUR).unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e}");
    // No temporary file left behind.
    for entry in fs::read_dir(issued.svid_file.parent().unwrap()).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(!name.to_string_lossy().starts_with(".spiffile"), "{name:?}");
    }
}

#[test]
fn init_and_issue_refuse_what_they_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let e = x509::init_ca(dir.path(), x509::CaOptions::default()).unwrap_err();
    assert!(matches!(e, Error::NotARoot { .. }), "{e}");
    provision::init_root(dir.path(), "example.org").unwrap();
    let e = x509::issue_svid(dir.path(), "orders", HOUR).unwrap_err();
    assert!(matches!(e, Error::NoCa { .. }), "{e}");
    assert!(e.to_string().contains("spiffile x509 init"), "{e}");
    x509::init_ca(dir.path(), x509::CaOptions::default()).unwrap();
    let e = x509::init_ca(dir.path(), x509::CaOptions::default()).unwrap_err();
    assert!(matches!(e, Error::CaExists { .. }), "{e}");
}

#[test]
fn renew_follows_the_fraction_and_changes_the_key() {
    let dir = root();
    x509::issue_svid(dir.path(), "orders", HOUR).unwrap();
    x509::issue_svid(dir.path(), "billing", Duration::from_secs(2)).unwrap();
    let before = svid(dir.path(), "orders");
    std::thread::sleep(Duration::from_millis(1100));
    // billing lived 61 s of its 62: past half; orders not.
    let r = x509::renew_svids(dir.path(), 0.5, HOUR).unwrap();
    let renewed: Vec<&str> = r.renewed.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(renewed, ["billing"]);
    assert_eq!(r.kept.len(), 1);
    assert_eq!(r.kept[0].0, "orders");
    // 0 renews everything, each with a new key.
    let r = x509::renew_svids(dir.path(), 0.0, HOUR).unwrap();
    assert_eq!(r.renewed.len(), 2);
    let after = svid(dir.path(), "orders");
    assert_ne!(before.chain()[0], after.chain()[0]);
    assert_ne!(
        before.certified_key().key.public_key(),
        after.certified_key().key.public_key()
    );
    verify(dir.path(), &after).unwrap();
}

#[test]
fn a_mismatched_pair_left_by_a_crash_is_renewed() {
    let dir = root();
    x509::issue_svid(dir.path(), "orders", HOUR).unwrap();
    x509::issue_svid(dir.path(), "billing", HOUR).unwrap();
    // orders' key replaced by billing's, as if the certificate write never happened.
    let services = dir.path().join("services");
    fs::copy(
        services.join("billing/svid_key.pem"),
        services.join("orders/svid_key.pem"),
    )
    .unwrap();
    let pem_cert = fs::read(services.join("orders/svid.pem")).unwrap();
    let pem_key = fs::read(services.join("orders/svid_key.pem")).unwrap();
    assert!(matches!(
        X509Svid::from_pem(&pem_cert, &pem_key).unwrap_err(),
        spiffile_tls::Error::KeyMismatch { .. }
    ));
    let r = x509::renew_svids(dir.path(), 1.0, HOUR).unwrap();
    let renewed: Vec<&str> = r.renewed.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(renewed, ["orders"]);
    verify(dir.path(), &svid(dir.path(), "orders")).unwrap();
}

#[test]
fn rotate_ca_overlaps_then_retires() {
    let dir = root();
    x509::issue_svid(dir.path(), "orders", HOUR).unwrap();
    let old = svid(dir.path(), "orders");
    let info = x509::rotate_ca(dir.path(), x509::CaOptions::default()).unwrap();
    assert_eq!(info.bundle_cas, 2);
    // The overlap: the old SVID still verifies, a new one too.
    verify(dir.path(), &old).unwrap();
    x509::issue_svid(dir.path(), "billing", HOUR).unwrap();
    verify(dir.path(), &svid(dir.path(), "billing")).unwrap();
    // Retiring now would strand orders.
    let e = x509::retire_old_cas(dir.path()).unwrap_err();
    match &e {
        Error::OldCaInUse { services, .. } => assert_eq!(services, &["orders".to_owned()]),
        other => panic!("{other}"),
    }
    // renew picks the old CA's SVID whatever its age.
    let r = x509::renew_svids(dir.path(), 1.0, HOUR).unwrap();
    let renewed: Vec<&str> = r.renewed.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(renewed, ["orders"]);
    let retired = x509::retire_old_cas(dir.path()).unwrap();
    assert_eq!(retired.removed, 1);
    assert_eq!(retired.ca.bundle_cas, 1);
    // The old SVID no longer verifies; the renewed ones do.
    assert_eq!(verify(dir.path(), &old), Err(Reason::UntrustedChain));
    verify(dir.path(), &svid(dir.path(), "orders")).unwrap();
    verify(dir.path(), &svid(dir.path(), "billing")).unwrap();
}

#[test]
fn an_interrupted_ca_rotation_is_finished_or_undone() {
    // Staged but not yet in the bundle: discarded, the old CA stays.
    let dir = root();
    let x = dir.path().join("x509");
    let ca_before = fs::read(x.join("ca.pem")).unwrap();
    let other = root();
    fs::copy(
        other.path().join("x509/ca.pem"),
        x.join(".spiffile-next-ca.pem"),
    )
    .unwrap();
    x509::issue_svid(dir.path(), "orders", HOUR).unwrap();
    assert!(!x.join(".spiffile-next-ca.pem").exists());
    assert_eq!(fs::read(x.join("ca.pem")).unwrap(), ca_before);
    verify(dir.path(), &svid(dir.path(), "orders")).unwrap();

    // Staged and already in the bundle: put in place.
    let mut bundle = fs::read_to_string(dir.path().join("bundle.pem")).unwrap();
    let staged = fs::read_to_string(other.path().join("x509/ca.pem")).unwrap();
    let cert_end = staged.find("-----END CERTIFICATE-----").unwrap() + 26;
    bundle.push_str(&staged[..cert_end]);
    fs::write(dir.path().join("bundle.pem"), bundle).unwrap();
    fs::write(x.join(".spiffile-next-ca.pem"), &staged).unwrap();
    x509::issue_svid(dir.path(), "billing", HOUR).unwrap();
    assert!(!x.join(".spiffile-next-ca.pem").exists());
    assert_eq!(fs::read_to_string(x.join("ca.pem")).unwrap(), staged);
    verify(dir.path(), &svid(dir.path(), "billing")).unwrap();
}

#[test]
fn concurrent_issuers_never_lose_a_bundle_update() {
    let dir = root();
    let path = dir.path().to_owned();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                if i == 0 {
                    x509::rotate_ca(&path, x509::CaOptions::default()).unwrap();
                }
                x509::issue_svid(&path, &format!("svc{i}"), HOUR).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for i in 0..4 {
        verify(&path, &svid(&path, &format!("svc{i}"))).unwrap();
    }
}
