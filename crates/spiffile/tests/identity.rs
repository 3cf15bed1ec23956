//! The facade API on real files.

use std::time::Duration;

use spiffile::{Error, Identity, Reason};
use spiffile_testkit::{Root, id};

#[test]
fn three_lines_orders_to_billing() {
    let (_root, orders, billing) = Root::orders_and_billing();

    let token = orders.token(billing.id()).unwrap();
    let caller = billing.verify(&token).unwrap();
    assert_eq!(caller.id(), orders.id());
    assert_eq!(caller.claims().aud(), billing.id());
    let c = caller.claims();
    assert_eq!(c.exp() - c.iat().unwrap(), 60);

    // The same token is refused by anyone else.
    let e = orders.verify(&token).unwrap_err();
    assert_eq!(e.reason(), Some(Reason::Audience));
    // ... unless the verifier names the audience explicitly.
    assert!(orders.verify_for(&token, billing.id()).is_ok());
}

#[test]
fn token_with_ttl_and_builder() {
    let mut root = Root::new("example.org");
    let dir = root.add("orders");
    root.add("billing");
    let orders = Identity::builder()
        .token_ttl(Duration::from_secs(10))
        .load_service(&dir, &root.bundle_path());
    let billing = root.identity("billing");
    let t = orders.token(billing.id()).unwrap();
    let c = billing.verify(&t).unwrap();
    assert_eq!(c.claims().exp() - c.claims().iat().unwrap(), 10);
    let t = orders
        .token_with_ttl(billing.id(), Duration::from_secs(120))
        .unwrap();
    let c = billing.verify(&t).unwrap();
    assert_eq!(c.claims().exp() - c.claims().iat().unwrap(), 120);
    assert!(matches!(
        orders.token_with_ttl(billing.id(), Duration::ZERO),
        Err(Error::InvalidTtl { .. })
    ));
    let small = Identity::builder()
        .max_token_bytes(100)
        .load_service(&root.service_dir("billing"), &root.bundle_path());
    assert_eq!(
        small.verify(&t).unwrap_err().reason(),
        Some(Reason::TooLarge)
    );
}

trait FromDirFiles {
    fn load_service(self, dir: &std::path::Path, bundle: &std::path::Path) -> Identity;
}
impl FromDirFiles for spiffile::IdentityBuilder {
    fn load_service(self, dir: &std::path::Path, bundle: &std::path::Path) -> Identity {
        self.from_files(dir.join("id"), dir.join("key.pem"), bundle)
            .unwrap()
    }
}

#[test]
fn unknown_and_revoked_identities() {
    let (mut root, orders, billing) = Root::orders_and_billing();
    let token = orders.token(billing.id()).unwrap();
    root.bundle
        .remove_identity(&"spiffe://example.org/orders".parse().unwrap());
    root.write_bundle();
    billing.reload().unwrap();
    match billing.verify(&token) {
        Err(Error::UnknownIdentity(who)) => assert_eq!(who, id("spiffe://example.org/orders")),
        other => panic!("{other:?}"),
    }
    assert!(billing.verify(&token).unwrap_err().is_unauthenticated());
}

#[test]
fn identity_file_rules() {
    let mut root = Root::new("example.org");
    let dir = root.add("orders");
    // Trailing whitespace is ignored.
    std::fs::write(dir.join("id"), "spiffe://example.org/orders \n\n").unwrap();
    assert_eq!(
        root.identity("orders").id(),
        &id("spiffe://example.org/orders")
    );
    // An invalid ID names the file.
    std::fs::write(dir.join("id"), "spiffe://example.org/Orders/").unwrap();
    let e =
        Identity::from_files(dir.join("id"), dir.join("key.pem"), root.bundle_path()).unwrap_err();
    assert!(matches!(e, Error::InvalidSpiffeId { .. }));
    assert!(e.to_string().contains("identity file"), "{e}");
    assert!(e.to_string().contains("trailing slash"), "{e}");
    // Another trust domain than the bundle's.
    std::fs::write(dir.join("id"), "spiffe://other.org/orders").unwrap();
    let e =
        Identity::from_files(dir.join("id"), dir.join("key.pem"), root.bundle_path()).unwrap_err();
    assert!(matches!(e, Error::TrustDomainMismatch { .. }), "{e}");
}

#[test]
fn file_errors_name_the_file_and_hide_the_key() {
    let mut root = Root::new("example.org");
    let dir = root.add("orders");
    let missing = dir.join("nope.pem");
    let e = Identity::from_files(dir.join("id"), &missing, root.bundle_path()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
    assert!(e.to_string().contains("nope.pem"), "{e}");

    let pem = std::fs::read_to_string(dir.join("key.pem")).unwrap();
    let sec1 = pem.replace("PRIVATE KEY", "EC PRIVATE KEY");
    std::fs::write(dir.join("key.pem"), &sec1).unwrap();
    let e =
        Identity::from_files(dir.join("id"), dir.join("key.pem"), root.bundle_path()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("key.pem"), "{msg}");
    assert!(msg.contains("openssl pkcs8 -topk8"), "{msg}");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!msg.contains(&body[..16]));
    assert!(!format!("{e:?}").contains(&body[..16]));

    std::fs::write(dir.join("key.pem"), &pem).unwrap();
    std::fs::write(root.bundle_path(), "{\"trust_domain\": \"example.org\"}").unwrap();
    let e =
        Identity::from_files(dir.join("id"), dir.join("key.pem"), root.bundle_path()).unwrap_err();
    assert!(matches!(e, Error::InvalidBundle { .. }));
    assert!(e.to_string().contains("bundle.json"), "{e}");
    assert!(e.to_string().contains("spiffile_version"), "{e}");
}

#[test]
fn identity_is_cheap_to_share() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Identity>();
    let mut root = Root::new("example.org");
    root.add("orders");
    let orders = root.identity("orders");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let me = orders.clone();
            std::thread::spawn(move || {
                let t = me.token(me.id()).unwrap();
                me.verify(&t).unwrap().id().clone()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(&t.join().unwrap(), orders.id());
    }
}

/// `Identity::from_env` reads the real process environment; the variables are
/// set for a child copy of this test binary (setting them in-process would
/// race with other tests).
#[test]
fn from_env_reads_the_process_environment() {
    if std::env::var_os("SPIFFILE_TEST_CHILD").is_some() {
        match Identity::from_env() {
            Ok(i) => println!("CHILD-ID {}", i.id()),
            Err(e) => println!("CHILD-ERR {e}"),
        }
        return;
    }
    let mut root = Root::new("example.org");
    root.add("orders");
    std::fs::copy(
        root.bundle_path(),
        root.service_dir("orders").join("bundle.json"),
    )
    .unwrap();
    let run = |vars: &[(&str, &std::path::Path)]| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "from_env_reads_the_process_environment",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SPIFFILE_TEST_CHILD", "1")
        .env_remove("SPIFFILE_DIR")
        .env_remove("SPIFFILE_ID_FILE")
        .env_remove("SPIFFILE_KEY_FILE")
        .env_remove("SPIFFILE_BUNDLE_FILE");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        String::from_utf8(cmd.output().unwrap().stdout).unwrap()
    };
    let dir = root.service_dir("orders");
    let out = run(&[("SPIFFILE_DIR", &dir)]);
    assert!(
        out.contains("CHILD-ID spiffe://example.org/orders"),
        "{out}"
    );
    let out = run(&[
        ("SPIFFILE_ID_FILE", &dir.join("id")),
        ("SPIFFILE_KEY_FILE", &dir.join("key.pem")),
        ("SPIFFILE_BUNDLE_FILE", &root.bundle_path()),
    ]);
    assert!(
        out.contains("CHILD-ID spiffe://example.org/orders"),
        "{out}"
    );
    let out = run(&[]);
    assert!(
        out.contains("CHILD-ERR spiffile is not configured: set SPIFFILE_DIR"),
        "{out}"
    );
}

#[test]
fn the_token_lifetime_is_checked_when_the_identity_is_loaded() {
    let mut root = Root::new("example.org");
    root.add("orders");
    let dir = root.service_dir("orders");
    for bad in [Duration::ZERO, Duration::from_secs(86_401)] {
        let e = Identity::builder()
            .token_ttl(bad)
            .hot_reload(false)
            .from_files(dir.join("id"), dir.join("key.pem"), root.bundle_path())
            .unwrap_err();
        assert!(matches!(e, Error::InvalidTtl { .. }), "{e}");
    }
    let e = Identity::builder()
        .token_ttl(Duration::from_secs(100_000))
        .hot_reload(false)
        .from_dir(&dir)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "token lifetime must be between 1 s and 86400 s, not 100000 s"
    );
    let e = Identity::builder()
        .token_ttl(Duration::from_millis(86_400_500))
        .hot_reload(false)
        .from_dir(&dir)
        .unwrap_err();
    assert!(e.to_string().ends_with("not 86400500 ms"), "{e}");
}

#[test]
fn a_service_directory_of_a_root_is_a_directory_form() {
    let mut root = Root::new("example.org");
    root.add("orders");
    root.add("team/billing");
    let orders = Identity::from_dir(root.service_dir("orders")).unwrap();
    assert_eq!(orders.id(), &id("spiffe://example.org/orders"));
    assert_eq!(orders.sources().bundle.path(), root.bundle_path());
    let billing = Identity::builder()
        .hot_reload(false)
        .from_dir(root.service_dir("team/billing"))
        .unwrap();
    assert_eq!(billing.sources().bundle.path(), root.bundle_path());
    let token = orders.token(billing.id()).unwrap();
    assert_eq!(billing.verify(&token).unwrap().id(), orders.id());

    // The root itself is refused with what to do instead.
    let e = Identity::from_dir(root.dir.path()).unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, Error::ProvisioningRoot { .. }), "{e}");
    assert!(message.contains("/services/NAME"), "{message}");
    assert!(message.contains("--root"), "{message}");

    // A directory with its own bundle.json is the upstream form, whatever
    // is around it.
    let own = root.service_dir("orders").join("copy");
    std::fs::create_dir(&own).unwrap();
    for f in ["id", "key.pem"] {
        std::fs::copy(root.service_dir("orders").join(f), own.join(f)).unwrap();
    }
    std::fs::copy(root.bundle_path(), own.join("bundle.json")).unwrap();
    let copy = Identity::from_dir(&own).unwrap();
    assert_eq!(copy.sources().bundle.path(), own.join("bundle.json"));
    // A directory that is neither: the missing file is named.
    let empty = tempfile::tempdir().unwrap();
    let e = Identity::from_dir(empty.path()).unwrap_err();
    assert!(e.to_string().contains("id"), "{e}");
}
