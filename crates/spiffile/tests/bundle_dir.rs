//! A bundle directory (`SPIFFILE_BUNDLE_DIR`): every `*.json` of it a
//! bundle in any format, trust domains added, changed and removed with the
//! files, a trust domain offered twice refused while the last good trust set
//! keeps serving, and the Kubernetes `..data` layout.
//!
//! The per-domain authority here is a key this test holds (standing in for
//! a central issuer's); the same flows against a real SPIRE server are in
//! the `spire_*` tests of `spiffile-testinfra`'s users.

use std::path::Path;
use std::time::{Duration, Instant};

use spiffile::bundle::JwtBundle;
use spiffile::svid::{Signer, generate_pkcs8_pem, public_key_of_pem};
use spiffile::{BundleSource, Error, Identity, IdentitySources, SpiffeId};
use spiffile_testkit::{Root, id};

const DEADLINE: Duration = Duration::from_secs(10);

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < DEADLINE,
            "not seen within {DEADLINE:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A central issuer for a trust domain: one key, published as SPIRE does
/// (no `use`, no `alg`), signing for any workload of its trust domain.
struct Issuer {
    pem: String,
    trust_domain: String,
}

impl Issuer {
    fn new(trust_domain: &str) -> Issuer {
        Issuer {
            pem: generate_pkcs8_pem().unwrap().to_string(),
            trust_domain: trust_domain.into(),
        }
    }

    fn jwks(&self) -> String {
        let mut jwk = public_key_of_pem(self.pem.as_bytes()).unwrap().to_jwk();
        let m = jwk.as_object_mut().unwrap();
        m.remove("use");
        m.remove("alg");
        let text = format!(r#"{{"keys":[{jwk}],"spiffe_sequence":1}}"#);
        // What SPIRE writes parses back (checked here, not assumed).
        JwtBundle::from_jwks(self.trust_domain.parse().unwrap(), text.as_bytes()).unwrap();
        text
    }

    /// A token for `sub` (a workload of the issuer's trust domain).
    fn token(&self, sub: &str, aud: &SpiffeId) -> String {
        Signer::from_pkcs8_pem(id(sub), self.pem.as_bytes())
            .unwrap()
            .mint(aud, Duration::from_secs(300))
            .unwrap()
    }
}

/// Writes `name` in `dir` atomically (temporary file, then rename).
fn put(dir: &Path, name: &str, content: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn billing_with_dir(root: &Root, dir: &Path) -> Identity {
    let svc = root.service_dir("billing");
    Identity::builder()
        .load_sources(
            IdentitySources::new(BundleSource::dir(dir))
                .id_file(svc.join("id"))
                .key_file(svc.join("key.pem")),
        )
        .unwrap()
}

#[test]
fn trust_domains_come_and_go_with_the_files() {
    let mut root = Root::new("example.org");
    root.add("orders");
    root.add("billing");
    let orders = root.identity("orders");
    let bundles = tempfile::tempdir().unwrap();
    put(bundles.path(), "example.org.json", &root.bundle.to_json());
    let spire = Issuer::new("spire.test");
    put(bundles.path(), "spire.test.json", &spire.jwks());
    std::fs::write(bundles.path().join("README"), "not a bundle").unwrap();

    let billing = billing_with_dir(&root, bundles.path());
    let domains: Vec<String> = billing
        .trust_domains()
        .iter()
        .map(|d| format!("{} {}", d.trust_domain, d.kind.as_str()))
        .collect();
    assert_eq!(
        domains,
        ["example.org per_identity", "spire.test per_domain"]
    );

    let spiffile_token = orders.token(billing.id()).unwrap();
    let spire_token = spire.token("spiffe://spire.test/orders", billing.id());
    assert_eq!(billing.verify(&spiffile_token).unwrap().id(), orders.id());
    assert_eq!(
        billing.verify(&spire_token).unwrap().id().as_str(),
        "spiffe://spire.test/orders"
    );

    // Removed: spire.test is no longer trusted.
    std::fs::remove_file(bundles.path().join("spire.test.json")).unwrap();
    wait_for("spire.test removed", || {
        matches!(billing.verify(&spire_token), Err(Error::UnknownIdentity(_)))
    });
    assert!(billing.verify(&spiffile_token).is_ok());

    // Added again, under a new key: old tokens refused, new ones accepted.
    let rotated = Issuer::new("spire.test");
    put(bundles.path(), "spire.test.json", &rotated.jwks());
    let new_token = rotated.token("spiffe://spire.test/orders", billing.id());
    wait_for("spire.test added", || billing.verify(&new_token).is_ok());
    assert!(billing.verify(&spire_token).is_err());

    // Changed: revoking orders in example.org's file.
    root.revoke("orders");
    put(bundles.path(), "example.org.json", &root.bundle.to_json());
    wait_for("orders revoked", || {
        matches!(
            billing.verify(&spiffile_token),
            Err(Error::UnknownIdentity(_))
        )
    });
    assert!(billing.verify(&new_token).is_ok());
    let st = billing.status();
    assert!(st.is_current(), "{st:?}");
    assert_eq!(st.bundle.path, std::path::absolute(bundles.path()).unwrap());
    let names: Vec<_> = st
        .bundle_files
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["example.org.json", "spire.test.json"]);
}

#[test]
fn a_trust_domain_offered_twice_keeps_the_last_good_set() {
    let mut root = Root::new("example.org");
    root.add("orders");
    root.add("billing");
    let bundles = tempfile::tempdir().unwrap();
    put(bundles.path(), "example.org.json", &root.bundle.to_json());
    let spire = Issuer::new("spire.test");
    put(bundles.path(), "spire.test.json", &spire.jwks());
    let billing = billing_with_dir(&root, bundles.path());
    let token = spire.token("spiffe://spire.test/orders", billing.id());
    assert!(billing.verify(&token).is_ok());

    // A second source for spire.test, under another key: spiffe-helper's set.
    let impostor = Issuer::new("spire.test");
    let set = format!(r#"{{"spire.test":"{}"}}"#, base64_std(&impostor.jwks()));
    put(bundles.path(), "jwt_bundle.json", &set);
    wait_for("the conflict reported", || {
        billing.status().bundle.last_error.is_some()
    });
    let problem = billing.status().bundle.last_error.unwrap();
    assert!(
        problem.contains("trust domain `spire.test` is offered by both"),
        "{problem}"
    );
    assert!(
        problem.contains("jwt_bundle.json") && problem.contains("spire.test.json"),
        "{problem}"
    );
    // The last good set keeps serving; the impostor's key is not trusted.
    assert!(billing.verify(&token).is_ok());
    let forged = impostor.token("spiffe://spire.test/orders", billing.id());
    assert!(billing.verify(&forged).is_err());
    assert!(matches!(billing.reload(), Err(Error::TrustSet(_))));

    // At startup the same directory is an error naming both files.
    let svc = root.service_dir("billing");
    let e = Identity::builder()
        .load_sources(
            IdentitySources::new(BundleSource::dir(bundles.path()))
                .id_file(svc.join("id"))
                .key_file(svc.join("key.pem")),
        )
        .unwrap_err();
    assert!(matches!(e, Error::TrustSet(_)), "{e:?}");

    std::fs::remove_file(bundles.path().join("jwt_bundle.json")).unwrap();
    wait_for("the conflict gone", || billing.status().is_current());
    assert!(billing.verify(&token).is_ok());
}

#[test]
fn kubernetes_volume_layout() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        let mut root = Root::new("example.org");
        root.add("orders");
        root.add("billing");
        let orders = root.identity("orders");
        let spire = Issuer::new("spire.test");
        // A ConfigMap mount: visible names are symlinks into ..data, which
        // is a symlink to a timestamped directory swapped atomically.
        let vol = tempfile::tempdir().unwrap();
        let v1 = vol.path().join("..2026_11_24_10_00_00.1");
        std::fs::create_dir(&v1).unwrap();
        std::fs::write(v1.join("example.org.json"), root.bundle.to_json()).unwrap();
        symlink("..2026_11_24_10_00_00.1", vol.path().join("..data")).unwrap();
        symlink(
            "..data/example.org.json",
            vol.path().join("example.org.json"),
        )
        .unwrap();
        let billing = billing_with_dir(&root, vol.path());
        let spire_token = spire.token("spiffe://spire.test/orders", billing.id());
        assert!(billing.verify(&orders.token(billing.id()).unwrap()).is_ok());
        assert!(billing.verify(&spire_token).is_err());

        // The update: a new directory with both files, ..data swapped, the
        // new visible link added, the old directory deleted.
        let v2 = vol.path().join("..2026_11_24_10_05_00.2");
        std::fs::create_dir(&v2).unwrap();
        std::fs::write(v2.join("example.org.json"), root.bundle.to_json()).unwrap();
        std::fs::write(v2.join("spire.test.json"), spire.jwks()).unwrap();
        symlink("..2026_11_24_10_05_00.2", vol.path().join("..data_tmp")).unwrap();
        std::fs::rename(vol.path().join("..data_tmp"), vol.path().join("..data")).unwrap();
        symlink("..data/spire.test.json", vol.path().join("spire.test.json")).unwrap();
        std::fs::remove_dir_all(&v1).unwrap();
        wait_for("spire.test from the new volume", || {
            billing.verify(&spire_token).is_ok()
        });
        assert!(billing.status().is_current());
    }
}

#[test]
fn a_spiffe_bundle_file_takes_its_trust_domain_from_its_name_or_the_configuration() {
    let mut root = Root::new("spire.test");
    root.add("billing");
    let issuer = Issuer::new("spire.test");
    let dir = tempfile::tempdir().unwrap();
    let svc = root.service_dir("billing");
    let load = |bundle: BundleSource| {
        Identity::builder().load_sources(IdentitySources::new(bundle).id_file(svc.join("id")))
    };
    // Named <trust-domain>.json.
    put(dir.path(), "spire.test.json", &issuer.jwks());
    let billing = load(BundleSource::file(dir.path().join("spire.test.json"))).unwrap();
    let token = issuer.token("spiffe://spire.test/orders", billing.id());
    assert!(billing.verify(&token).is_ok());
    // Any other name: the configuration says.
    put(dir.path(), "jwks", &issuer.jwks());
    let e = load(BundleSource::file(dir.path().join("jwks"))).unwrap_err();
    assert!(matches!(e, Error::InvalidBundleFormat { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("does not say which trust domain it is for"),
        "{e}"
    );
    let configured = BundleSource::File {
        path: dir.path().join("jwks"),
        trust_domain: Some("spire.test".parse().unwrap()),
    };
    assert!(load(configured).unwrap().verify(&token).is_ok());
    // A SPIFFE bundle of another trust domain than the identity's own.
    let e = load(BundleSource::File {
        path: dir.path().join("jwks"),
        trust_domain: Some("other.test".parse().unwrap()),
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "identity `spiffe://spire.test/billing` is in trust domain `spire.test`, which none of the bundles provides (they provide: `other.test`)"
    );
    // A verify-only identity (no key) cannot present tokens, and says why.
    let e = billing
        .token(&id("spiffe://spire.test/orders"))
        .unwrap_err();
    assert!(matches!(e, Error::NoSigningKey { .. }), "{e:?}");
    assert!(e.to_string().contains("no private key"), "{e}");
    assert_eq!(billing.kid(), None);
    assert!(billing.status().key.is_none());
}

fn base64_std(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
