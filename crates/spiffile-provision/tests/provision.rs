//! Behaviour of the provisioning operations on real directories.

use std::fs;
use std::path::Path;

use spiffile_bundle::Bundle;
/// Loads a provisioned service through the facade (what applications do).
fn load_identity(
    root: &std::path::Path,
    name: &str,
) -> Result<spiffile::Identity, spiffile::Error> {
    let env = spiffile_provision::service_env(root, name).unwrap();
    spiffile::Identity::from_files(env.id_file, env.key_file, env.bundle_file)
}

use spiffile_provision::{
    AddAction, AddOptions, Error, Notice, OldKeys, ServiceStatus, add_service, add_service_with,
    init_root, list_services, remove_service, revoke_old_keys, rotate_service, service_env,
};

fn bundle(root: &Path) -> Bundle {
    Bundle::from_json(&fs::read(root.join("bundle.json")).unwrap()).unwrap()
}

fn kids(root: &Path, id: &str) -> Vec<String> {
    bundle(root)
        .keys(&id.parse().unwrap())
        .map(|ks| ks.iter().map(|k| k.kid().to_owned()).collect())
        .unwrap_or_default()
}

fn status_of(root: &Path, name: &str) -> ServiceStatus {
    list_services(root)
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .map(|s| s.status)
        .unwrap_or_else(|| panic!("{name} not listed"))
}

const ORDERS: &str = "spiffe://example.org/orders";

#[test]
fn layout_matches_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    assert_eq!(
        init_root(&root, "example.org").unwrap().as_str(),
        "example.org"
    );
    assert_eq!(
        fs::read_to_string(root.join("bundle.json")).unwrap(),
        "{\n  \"trust_domain\": \"example.org\",\n  \"spiffile_version\": 1,\n  \"identities\": {}\n}\n"
    );
    assert!(root.join("services").is_dir());
    let added = add_service(&root, "orders").unwrap();
    assert_eq!(added.action, AddAction::Created);
    assert_eq!(added.id, ORDERS);
    let svc = root.join("services/orders");
    assert_eq!(
        fs::read_to_string(svc.join("id")).unwrap(),
        format!("{ORDERS}\n")
    );
    let pem = fs::read_to_string(svc.join("key.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let key = spiffile_svid::public_key_of_pem(pem.as_bytes()).unwrap();
    assert_eq!(kids(&root, ORDERS), vec![key.kid().to_owned()]);
    assert_eq!(added.kid, key.kid());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&svc.join("key.pem")), 0o600);
        assert_eq!(mode(&svc), 0o700);
    }
    // Nothing else is left in the directories (no temporary files).
    let mut names: Vec<_> = fs::read_dir(&svc)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["id", "key.pem"]);
    let mut top: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, [".spiffile.lock", "bundle.json", "services"]);
}

#[test]
fn init_twice_and_bad_trust_domain_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    init_root(dir.path(), "example.org").unwrap();
    let e = init_root(dir.path(), "other.org").unwrap_err();
    assert!(matches!(e, Error::AlreadyInitialized { .. }), "{e}");
    assert!(e.to_string().contains("example.org"), "{e}");
    let e = init_root(dir.path().join("x"), "Example.ORG").unwrap_err();
    assert!(matches!(e, Error::InvalidTrustDomain { .. }), "{e}");
    assert!(
        e.to_string().contains("(trust domains are lowercase)"),
        "{e}"
    );
    assert!(!dir.path().join("x/bundle.json").exists());
    let e = init_root(dir.path().join("x"), "spiffe://example.org").unwrap_err();
    assert!(e.to_string().contains("drop `spiffe://`"), "{e}");
}

#[test]
fn add_is_idempotent_and_names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_root(root, "example.org").unwrap();
    let first = add_service(root, "orders").unwrap();
    let before = fs::read(root.join("bundle.json")).unwrap();
    let again = add_service(root, "orders").unwrap();
    assert_eq!(again.action, AddAction::Unchanged);
    assert_eq!(again.kid, first.kid);
    assert_eq!(fs::read(root.join("bundle.json")).unwrap(), before);
    // A full SPIFFE ID of the trust domain names the same service.
    assert_eq!(
        add_service(root, ORDERS).unwrap().action,
        AddAction::Unchanged
    );

    let nested = add_service(root, "team/orders").unwrap();
    assert_eq!(nested.id, "spiffe://example.org/team/orders");
    assert!(root.join("services/team/orders/key.pem").is_file());

    for bad in [
        "",
        "..",
        "a/../b",
        "/abs",
        "a//b",
        "a/",
        "sp ace",
        "a/key.pem",
        ".spiffile-x",
    ] {
        let e = add_service(root, bad).unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{bad:?}: {e}");
    }
    // Positions point into the name as typed, not into the SPIFFE ID.
    let e = add_service(root, "team/or ders").unwrap_err().to_string();
    assert!(
        e.contains("\"team/or ders\": it has the character ' ' at byte 7 in its path"),
        "{e}"
    );
    let e = add_service(root, "spiffe://other.org/orders").unwrap_err();
    assert!(matches!(e, Error::TrustDomainMismatch { .. }), "{e}");
    // Refused names created nothing.
    let mut top: Vec<_> = fs::read_dir(root.join("services"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["orders", "team"]);
}

#[test]
fn not_a_root_and_unknown_service_say_how_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let e = add_service(dir.path(), "orders").unwrap_err();
    assert!(matches!(e, Error::NotARoot { .. }), "{e}");
    assert!(e.to_string().contains("spiffile init"), "{e}");
    let e = add_service(dir.path().join("missing"), "orders").unwrap_err();
    assert!(matches!(e, Error::NotARoot { .. }), "{e}");
    init_root(dir.path(), "example.org").unwrap();
    for e in [
        rotate_service(dir.path(), "ghost", OldKeys::Keep).unwrap_err(),
        remove_service(dir.path(), "ghost").unwrap_err(),
        service_env(dir.path(), "ghost").unwrap_err(),
    ] {
        assert!(matches!(e, Error::UnknownService { .. }), "{e}");
        assert!(e.to_string().contains("spiffile add"), "{e}");
    }
}

#[test]
fn rotate_keeps_or_drops_old_keys_and_tokens_follow() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_root(root, "example.org").unwrap();
    let k0 = add_service(root, "orders").unwrap().kid;
    add_service(root, "billing").unwrap();
    let orders = load_identity(root, "orders").unwrap();
    let billing = load_identity(root, "billing").unwrap();
    let old_token = orders.token(billing.id()).unwrap();

    let r1 = rotate_service(root, "orders", OldKeys::Keep).unwrap();
    assert_eq!(r1.kids, vec![r1.kid.clone(), k0.clone()]);
    assert!(r1.revoked.is_empty());
    let r2 = rotate_service(root, "orders", OldKeys::Keep).unwrap();
    assert_eq!(r2.kids, vec![r2.kid.clone(), r1.kid.clone(), k0.clone()]);
    assert_eq!(kids(root, ORDERS), r2.kids);

    orders.reload().unwrap();
    billing.reload().unwrap();
    assert_eq!(orders.kid(), Some(r2.kid.clone()));
    let new_token = orders.token(billing.id()).unwrap();
    assert_eq!(billing.verify(&old_token).unwrap().id(), ORDERS);
    assert_eq!(billing.verify(&new_token).unwrap().id(), ORDERS);

    let r3 = rotate_service(root, "orders", OldKeys::Revoke).unwrap();
    assert_eq!(r3.kids, vec![r3.kid.clone()]);
    assert_eq!(r3.revoked, vec![r2.kid, r1.kid, k0]);
    billing.reload().unwrap();
    assert!(billing.verify(&old_token).unwrap_err().is_unauthenticated());
    assert!(billing.verify(&new_token).is_err());
    orders.reload().unwrap();
    assert!(billing.verify(&orders.token(billing.id()).unwrap()).is_ok());
}

#[test]
fn revoke_old_keys_ends_the_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_root(root, "example.org").unwrap();
    let k0 = add_service(root, "orders").unwrap().kid;
    let r = rotate_service(root, "orders", OldKeys::Keep).unwrap();
    let v = revoke_old_keys(root, "orders").unwrap();
    assert_eq!(v.kid, r.kid);
    assert_eq!(v.revoked, vec![k0]);
    assert_eq!(kids(root, ORDERS), vec![r.kid]);
    assert!(revoke_old_keys(root, "orders").unwrap().revoked.is_empty());
}

#[test]
fn remove_revokes_and_deletes_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_root(root, "example.org").unwrap();
    let kid = add_service(root, "team/orders").unwrap().kid;
    add_service(root, "billing").unwrap();
    let removed = remove_service(root, "team/orders").unwrap();
    assert_eq!(removed.revoked, vec![kid]);
    assert!(removed.notices.is_empty(), "{:?}", removed.notices);
    assert!(!root.join("services/team").exists());
    assert!(!bundle(root).contains(&"spiffe://example.org/team/orders".parse().unwrap()));
    assert!(bundle(root).contains(&"spiffe://example.org/billing".parse().unwrap()));
    // A directory with foreign files is left, and said so.
    add_service(root, "orders").unwrap();
    fs::write(root.join("services/orders/notes.txt"), "mine").unwrap();
    let removed = remove_service(root, "orders").unwrap();
    assert!(matches!(removed.notices[..], [Notice::FilesLeft { .. }]));
    assert!(root.join("services/orders/notes.txt").exists());
    assert!(!root.join("services/orders/key.pem").exists());
    // A parent service keeps its nested one.
    add_service(root, "a").unwrap();
    add_service(root, "a/b").unwrap();
    remove_service(root, "a").unwrap();
    assert!(root.join("services/a/b/key.pem").exists());
    assert_eq!(status_of(root, "a/b"), ServiceStatus::Ok);
}

#[test]
fn env_names_absolute_files_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_root(root, "example.org").unwrap();
    add_service(root, "orders").unwrap();
    let env = service_env(root, "orders").unwrap();
    let vars = env.vars();
    assert_eq!(vars[0].0, "SPIFFILE_ID_FILE");
    assert_eq!(vars[1].0, "SPIFFILE_KEY_FILE");
    assert_eq!(vars[2].0, "SPIFFILE_BUNDLE_FILE");
    for (_, p) in vars {
        assert!(p.is_absolute() && p.is_file(), "{}", p.display());
    }
    let id = load_identity(root, "orders").unwrap();
    assert_eq!(id.id(), ORDERS);
}

/// Issue 15, item 2: a key on disk that the bundle does not bind is never
/// bound by a plain `add` (whoever can write the service directory could
/// have put it there); only when adoption is asked for.
#[test]
fn an_unbound_key_is_reported_and_bound_only_when_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_root(root, "example.org").unwrap();
    let kid = add_service(root, "orders").unwrap().kid;
    add_service(root, "billing").unwrap();
    // A key without its entry (made by another tool, or planted).
    let mut b = bundle(root);
    b.remove_identity(&ORDERS.parse().unwrap());
    fs::write(root.join("bundle.json"), b.to_json()).unwrap();

    assert_eq!(status_of(root, "orders"), ServiceStatus::NotInBundle);
    let other = add_service(root, "billing").unwrap();
    assert!(
        other
            .notices
            .iter()
            .any(|n| matches!(n, Notice::NotInBundle { name, .. } if name == "orders")),
        "{:?}",
        other.notices
    );
    let before = fs::read(root.join("bundle.json")).unwrap();
    let e = add_service(root, "orders").unwrap_err();
    assert!(matches!(e, Error::UnboundKey { .. }), "{e}");
    assert!(e.to_string().contains("--adopt-existing-key"), "{e}");
    assert_eq!(fs::read(root.join("bundle.json")).unwrap(), before);
    let adopted =
        add_service_with(root, "orders", &AddOptions::new().adopt_existing_key(true)).unwrap();
    assert_eq!(adopted.action, AddAction::Adopted);
    assert_eq!(adopted.kid, kid);
    assert_eq!(kids(root, ORDERS), vec![kid]);
    assert_eq!(status_of(root, "orders"), ServiceStatus::Ok);
}

/// The key in `key.pem` replaced by someone else's: `add` refuses to bind
/// it; adopting binds it first (the bound key stays).
#[test]
fn a_replaced_key_is_not_bound_by_add() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_root(root, "example.org").unwrap();
    let k0 = add_service(root, "orders").unwrap().kid;
    let pem = spiffile_svid::generate_pkcs8_pem().unwrap();
    fs::write(root.join("services/orders/key.pem"), pem.as_bytes()).unwrap();
    assert_eq!(status_of(root, "orders"), ServiceStatus::KeyNotBound);
    let e = revoke_old_keys(root, "orders").unwrap_err();
    assert!(matches!(e, Error::KeyNotBound { .. }), "{e}");
    assert!(e.to_string().contains("--adopt-existing-key"), "{e}");
    let e = add_service(root, "orders").unwrap_err();
    assert!(matches!(e, Error::UnboundKey { .. }), "{e}");
    assert_eq!(kids(root, ORDERS), vec![k0.clone()]);
    let a = add_service_with(root, "orders", &AddOptions::new().adopt_existing_key(true)).unwrap();
    assert_eq!(a.action, AddAction::Adopted);
    assert_eq!(kids(root, ORDERS), vec![a.kid, k0]);
}

/// A copy of billing's key in orders' directory is never bound to orders,
/// adopted or not: its holder could sign as both.
#[test]
fn a_key_bound_to_another_identity_is_never_bound() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_root(root, "example.org").unwrap();
    add_service(root, "billing").unwrap();
    fs::create_dir_all(root.join("services/orders")).unwrap();
    fs::copy(
        root.join("services/billing/key.pem"),
        root.join("services/orders/key.pem"),
    )
    .unwrap();
    for adopt in [false, true] {
        let e = add_service_with(root, "orders", &AddOptions::new().adopt_existing_key(adopt))
            .unwrap_err();
        assert!(
            matches!(&e, Error::KeyBoundElsewhere { other, .. } if other == "spiffe://example.org/billing"),
            "{e}"
        );
    }
    assert!(!bundle(root).contains(&ORDERS.parse().unwrap()));
}

#[test]
fn missing_key_is_reported_and_add_refuses_to_guess() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_root(root, "example.org").unwrap();
    let k0 = add_service(root, "orders").unwrap().kid;
    add_service(root, "billing").unwrap();
    fs::remove_file(root.join("services/orders/key.pem")).unwrap();

    assert_eq!(status_of(root, "orders"), ServiceStatus::KeyMissing);
    let other = add_service(root, "billing").unwrap();
    let warned: Vec<String> = other.notices.iter().map(|n| n.to_string()).collect();
    assert!(
        warned
            .iter()
            .any(|w| w.starts_with("key missing: `spiffe://example.org/orders`")),
        "{warned:?}"
    );
    let e = add_service(root, "orders").unwrap_err();
    assert!(matches!(e, Error::KeyMissing { .. }), "{e}");
    assert!(e.to_string().contains("--revoke-old"), "{e}");
    // Rotating with --revoke-old issues a fresh key.
    let r = rotate_service(root, "orders", OldKeys::Revoke).unwrap();
    assert_eq!(r.revoked, vec![k0]);
    assert_eq!(status_of(root, "orders"), ServiceStatus::Ok);
}

#[test]
fn interrupted_rotation_is_finished_or_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_root(root, "example.org").unwrap();
    let k0 = add_service(root, "orders").unwrap().kid;
    let svc = root.join("services/orders");

    // Staged key never bound: discarded.
    let pem = spiffile_svid::generate_pkcs8_pem().unwrap();
    fs::write(svc.join(".spiffile-next-key.pem"), pem.as_bytes()).unwrap();
    assert_eq!(status_of(root, "orders"), ServiceStatus::RotationPending);
    let a = add_service(root, "orders").unwrap();
    assert!(
        a.notices
            .iter()
            .any(|n| matches!(n, Notice::RotationDiscarded { .. }))
    );
    assert!(!svc.join(".spiffile-next-key.pem").exists());
    assert_eq!(a.kid, k0);

    // Staged key already bound first: put in place.
    let pem = spiffile_svid::generate_pkcs8_pem().unwrap();
    let key = spiffile_svid::public_key_of_pem(pem.as_bytes()).unwrap();
    fs::write(svc.join(".spiffile-next-key.pem"), pem.as_bytes()).unwrap();
    let mut b = bundle(root);
    b.add_key_first(&ORDERS.parse().unwrap(), key.clone())
        .unwrap();
    fs::write(root.join("bundle.json"), b.to_json()).unwrap();
    let a = add_service(root, "orders").unwrap();
    assert!(
        a.notices
            .iter()
            .any(|n| matches!(n, Notice::RotationCompleted { .. }))
    );
    assert_eq!(a.kid, key.kid());
    assert_eq!(a.action, AddAction::Unchanged);

    // Stale temporary files are deleted.
    fs::write(root.join(".spiffile-tmp-1-2-3"), "x").unwrap();
    fs::write(svc.join(".spiffile-tmp-4-5-6"), "x").unwrap();
    let a = add_service(root, "orders").unwrap();
    let removed = a
        .notices
        .iter()
        .filter(|n| matches!(n, Notice::TempFileRemoved { .. }))
        .count();
    assert_eq!(removed, 2, "{:?}", a.notices);
}

#[test]
fn a_bundle_with_unreadable_entries_is_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_root(root, "example.org").unwrap();
    let text = r#"{"trust_domain":"example.org","spiffile_version":1,"identities":{
        "spiffe://example.org/future": {"keys": [{"kty":"OKP","crv":"Ed25519","x":"AA","kid":"k"}]}}}"#;
    fs::write(root.join("bundle.json"), text).unwrap();
    let e = add_service(root, "orders").unwrap_err();
    assert!(matches!(e, Error::UnreadableEntries { .. }), "{e}");
    assert!(e.to_string().contains("future"), "{e}");
    assert_eq!(fs::read_to_string(root.join("bundle.json")).unwrap(), text);
}

#[test]
fn threads_adding_concurrently_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    init_root(&root, "example.org").unwrap();
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let root = root.clone();
            std::thread::spawn(move || add_service(&root, &format!("svc-{i}")).unwrap())
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let listed = list_services(&root).unwrap();
    assert_eq!(listed.len(), 16);
    assert!(listed.iter().all(|s| s.status == ServiceStatus::Ok));
}

#[cfg(unix)]
#[test]
fn the_bundle_is_replaced_never_rewritten_in_place() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_root(root, "example.org").unwrap();
    let before = fs::metadata(root.join("bundle.json")).unwrap().ino();
    add_service(root, "orders").unwrap();
    let after = fs::metadata(root.join("bundle.json")).unwrap().ino();
    assert_ne!(before, after, "a new file is renamed over the bundle");
}

#[test]
fn readers_never_see_a_partial_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    init_root(&root, "example.org").unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (root, done) = (root.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let bytes = fs::read(root.join("bundle.json")).unwrap();
                Bundle::from_json(&bytes).unwrap();
                reads += 1;
            }
            reads
        })
    };
    for i in 0..30 {
        add_service(&root, &format!("svc-{i}")).unwrap();
    }
    rotate_service(&root, "svc-0", OldKeys::Revoke).unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(bundle(&root).len(), 30);
}
