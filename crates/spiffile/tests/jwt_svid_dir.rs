//! Presenting tokens from spiffe-helper's directory
//! (`SPIFFILE_JWT_SVID_DIR`): the identity's ID from the tokens' `sub`,
//! the freshest unexpired token per audience, in-place rewrites never
//! serving a half-written token, a token for another workload refused, and
//! errors naming the audience and the directory.
//!
//! Files are written the way spiffe-helper writes them (truncate and write
//! in place, no newline, mode 0600), with tokens from a key this test holds;
//! the same flows with a real SPIRE server and the real spiffe-helper are
//! in `spiffile-testinfra`'s users.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use spiffile::svid::{Signer, generate_pkcs8_pem, public_key_of_pem};
use spiffile::{BundleSource, Error, Identity, IdentitySources};
use spiffile_testkit::id;

const DEADLINE: Duration = Duration::from_secs(10);
const ORDERS: &str = "spiffe://spire.test/orders";
const BILLING: &str = "spiffe://spire.test/billing";

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

/// spiffe-helper's way: `os.WriteFile`, truncate then write, in place.
fn helper_write(path: &Path, content: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.write_all(content).unwrap();
}

struct Spire {
    pem: String,
    dir: tempfile::TempDir,
}

impl Spire {
    /// The issuer's key, and a directory laid out as spiffe-helper leaves it:
    /// the JWT bundle set, X.509 files, and (later) token files.
    fn new() -> Spire {
        let pem = generate_pkcs8_pem().unwrap().to_string();
        let dir = tempfile::tempdir().unwrap();
        let mut jwk = public_key_of_pem(pem.as_bytes()).unwrap().to_jwk();
        let m = jwk.as_object_mut().unwrap();
        m.remove("use");
        m.remove("alg");
        let jwks = format!(r#"{{"keys":[{jwk}]}}"#);
        let b64 = base64::engine::general_purpose::STANDARD.encode(jwks);
        helper_write(
            &dir.path().join("jwt_bundle.json"),
            format!(r#"{{"spire.test":"{b64}"}}"#).as_bytes(),
        );
        helper_write(
            &dir.path().join("svid.pem"),
            b"-----BEGIN CERTIFICATE-----\nMIIB\n",
        );
        helper_write(
            &dir.path().join("svid_key.pem"),
            b"-----BEGIN PRIVATE KEY-----\nMIGH\n",
        );
        Spire { pem, dir }
    }

    fn token(&self, sub: &str, aud: &str, ttl: u64) -> String {
        Signer::from_pkcs8_pem(id(sub), self.pem.as_bytes())
            .unwrap()
            .mint(&id(aud), Duration::from_secs(ttl))
            .unwrap()
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// The workload that presents the directory's tokens.
    fn presenter(&self) -> Result<Identity, Error> {
        Identity::builder().load_sources(
            IdentitySources::new(BundleSource::file(self.path("jwt_bundle.json")))
                .jwt_svid_dir(self.dir.path()),
        )
    }
}

#[test]
fn the_identity_presents_the_freshest_token_for_each_audience() {
    let spire = Spire::new();
    let to_billing = spire.token(ORDERS, BILLING, 300);
    helper_write(&spire.path("billing.token"), to_billing.as_bytes());
    let orders = spire.presenter().unwrap();
    assert_eq!(orders.id().as_str(), ORDERS, "the ID comes from the tokens");
    assert_eq!(orders.kid(), None);
    assert_eq!(orders.token(&id(BILLING)).unwrap(), to_billing);
    // The lifetime is SPIRE's: token_with_ttl hands out the same token.
    assert_eq!(
        orders
            .token_with_ttl(&id(BILLING), Duration::from_secs(5))
            .unwrap(),
        to_billing
    );
    // The receiving side verifies it against the same bundle file.
    let billing_id = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(billing_id.path(), format!("{BILLING}\n")).unwrap();
    let billing = Identity::builder()
        .load_sources(
            IdentitySources::new(BundleSource::file(spire.path("jwt_bundle.json")))
                .id_file(billing_id.path()),
        )
        .unwrap();
    assert_eq!(billing.verify(&to_billing).unwrap().id().as_str(), ORDERS);

    // An audience no file holds: the error names it and the directory.
    let e = orders.token(&id("spiffe://spire.test/audit")).unwrap_err();
    assert!(matches!(e, Error::NoJwtSvid { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("spiffe://spire.test/audit"), "{msg}");
    assert!(
        msg.contains(&spire.dir.path().display().to_string()),
        "{msg}"
    );

    // A second, fresher token for billing in another file wins.
    let fresher = spire.token(ORDERS, BILLING, 600);
    helper_write(&spire.path("billing-2.token"), fresher.as_bytes());
    wait_for("the fresher token", || {
        orders.token(&id(BILLING)).unwrap() == fresher
    });
    let st = orders.status();
    assert!(st.is_current(), "{st:?}");
    assert!(st.key.is_none());
    assert!(st.jwt_svids.is_some());
    assert!(
        st.jwt_svid_files
            .iter()
            .any(|f| f.path.ends_with("billing-2.token"))
    );
}

#[test]
fn a_half_written_token_is_never_served() {
    let spire = Spire::new();
    let first = spire.token(ORDERS, BILLING, 300);
    let path = spire.path("billing.token");
    helper_write(&path, first.as_bytes());
    let orders = spire.presenter().unwrap();
    // spiffe-helper truncates, then writes: a reader sees a prefix.
    let second = spire.token(ORDERS, BILLING, 301);
    helper_write(&path, &second.as_bytes()[..second.len() / 2]);
    wait_for("the half-written file reported", || {
        orders.status().jwt_svids.unwrap().last_error.is_some()
            || orders
                .status()
                .jwt_svid_files
                .iter()
                .any(|f| f.last_error.is_some())
    });
    for _ in 0..50 {
        assert_eq!(
            orders.token(&id(BILLING)).unwrap(),
            first,
            "the last good token"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    helper_write(&path, b"");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(orders.token(&id(BILLING)).unwrap(), first);
    helper_write(&path, second.as_bytes());
    wait_for("the whole new token", || {
        orders.token(&id(BILLING)).unwrap() == second
    });
    assert!(orders.status().is_current());
}

#[test]
fn every_token_must_be_for_this_workload() {
    let spire = Spire::new();
    helper_write(
        &spire.path("a.token"),
        spire.token(ORDERS, BILLING, 300).as_bytes(),
    );
    helper_write(
        &spire.path("b.token"),
        spire
            .token(
                "spiffe://spire.test/mallory",
                "spiffe://spire.test/audit",
                300,
            )
            .as_bytes(),
    );
    let e = spire.presenter().unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::JwtSvidForAnotherWorkload(_)), "{e:?}");
    assert!(msg.contains("b.token") && msg.contains("a.token"), "{msg}");
    assert!(msg.contains("spiffe://spire.test/mallory"), "{msg}");

    // With an identity file, the tokens must be for the ID it names.
    std::fs::remove_file(spire.path("b.token")).unwrap();
    let idf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(idf.path(), "spiffe://spire.test/inventory\n").unwrap();
    let e = Identity::builder()
        .load_sources(
            IdentitySources::new(BundleSource::file(spire.path("jwt_bundle.json")))
                .jwt_svid_dir(spire.dir.path())
                .id_file(idf.path()),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("but this workload is `spiffe://spire.test/inventory`"),
        "{e}"
    );

    // Live: a foreign token appearing is refused, the good set stays.
    let orders = spire.presenter().unwrap();
    let good = orders.token(&id(BILLING)).unwrap();
    helper_write(
        &spire.path("c.token"),
        spire
            .token("spiffe://spire.test/mallory", BILLING, 900)
            .as_bytes(),
    );
    wait_for("the foreign token refused", || {
        orders.status().jwt_svids.unwrap().last_error.is_some()
    });
    assert_eq!(orders.token(&id(BILLING)).unwrap(), good);
}

#[test]
fn expired_tokens_are_not_presented_and_an_empty_directory_has_no_identity() {
    let spire = Spire::new();
    let e = spire.presenter().unwrap_err();
    assert!(e.to_string().contains("no JWT-SVID in"), "{e}");
    // A token already expired (its exp is in the past): not presented.
    let short_lived = spire.token(ORDERS, BILLING, 1);
    helper_write(&spire.path("billing.token"), short_lived.as_bytes());
    let orders = spire.presenter().unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let e = orders.token(&id(BILLING)).unwrap_err();
    assert!(e.to_string().contains("expired at"), "{e}");
    assert!(e.to_string().contains("billing.token"), "{e}");
}
