//! A running Identity follows its files: revocation, restore and key rotation
//! are seen without a restart, for every way producers write files, and a bad
//! file never replaces a good snapshot.

#[path = "../../spiffile-watch/tests/support/writers.rs"]
mod writers;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spiffile::bundle::Bundle;
use spiffile::{Error, Identity};
use spiffile_testkit::Root;
use writers::{Style, setup, update};

const DEADLINE: Duration = Duration::from_secs(5);

fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < DEADLINE,
            "not seen within {DEADLINE:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    start.elapsed()
}

/// The bundle with `orders` revoked, at the same size: the identity is renamed
/// to `ordert` (same length, same sort position), so even the same-size,
/// same-mtime writer can be used.
fn revoked(bundle: &Bundle) -> Vec<u8> {
    let text = bundle.to_json();
    let out = text.replace("spiffe://example.org/orders", "spiffe://example.org/ordert");
    assert_eq!(out.len(), text.len());
    out.into_bytes()
}

struct Scene {
    root: Root,
    bundle_dir: tempfile::TempDir,
    bundle_path: PathBuf,
    good: Vec<u8>,
}

fn scene(style: Style) -> Scene {
    let mut root = Root::new("example.org");
    root.add("orders");
    root.add("billing");
    let good = root.bundle.to_json().into_bytes();
    let bundle_dir = tempfile::tempdir().unwrap();
    let bundle_path = setup(style, bundle_dir.path(), "bundle.json", &good);
    Scene {
        root,
        bundle_dir,
        bundle_path,
        good,
    }
}

fn load(root: &Root, name: &str, bundle: &Path, builder: spiffile::IdentityBuilder) -> Identity {
    let dir = root.service_dir(name);
    builder
        .from_files(dir.join("id"), dir.join("key.pem"), bundle)
        .unwrap()
}

fn revoke_and_restore(style: Style, builder: impl Fn() -> spiffile::IdentityBuilder) {
    let s = scene(style);
    let billing = load(&s.root, "billing", &s.bundle_path, builder());
    let orders = load(&s.root, "orders", &s.bundle_path, builder());
    let token = orders.token(billing.id()).unwrap();
    assert!(billing.verify(&token).is_ok());
    let generation = billing.bundle_generation();

    update(style, &s.bundle_path, &revoked(&s.root.bundle));
    wait_for(&format!("{} revocation", style.name()), || {
        matches!(billing.verify(&token), Err(Error::UnknownIdentity(_)))
    });
    // The generation is bumped just after the new snapshot is published
    // (a generation read before a load is never newer than what it loads).
    wait_for("generation bump", || {
        billing.bundle_generation() > generation
    });

    update(style, &s.bundle_path, &s.good);
    wait_for(&format!("{} restore", style.name()), || {
        billing.verify(&token).is_ok()
    });
    assert!(billing.status().is_current());
    drop(s.bundle_dir);
}

fn with_events() -> spiffile::IdentityBuilder {
    // A long poll interval: passing within the deadline proves events work.
    Identity::builder().poll_interval(Duration::from_secs(2))
}

fn polling_only() -> spiffile::IdentityBuilder {
    Identity::builder()
        .file_events(false)
        .poll_interval(Duration::from_millis(200))
}

#[test]
fn rename_over() {
    revoke_and_restore(Style::RenameOver, with_events);
}

#[test]
fn truncate_and_rewrite_in_place() {
    revoke_and_restore(Style::TruncateRewrite, with_events);
}

#[test]
fn delete_and_recreate() {
    revoke_and_restore(Style::DeleteRecreate, with_events);
}

#[test]
fn kubernetes_data_swap() {
    revoke_and_restore(Style::Kubernetes, with_events);
}

#[test]
fn same_size_same_mtime() {
    revoke_and_restore(Style::SameSizeSameMtime, with_events);
}

#[test]
fn missing_for_a_moment() {
    revoke_and_restore(Style::MissingMoment, with_events);
}

#[test]
fn every_writer_with_polling_only() {
    for style in Style::ALL {
        revoke_and_restore(style, polling_only);
    }
}

#[test]
fn key_rotation_is_used_without_restart() {
    let mut root = Root::new("example.org");
    let dir = root.add("orders");
    root.add("billing");
    let orders = root.identity("orders");
    let billing = root.identity("billing");
    let old_kid = orders.kid().unwrap();
    let old_token = orders.token(billing.id()).unwrap();

    // Rotation: new public key first in the bundle, old kept; then the key file.
    let pem = spiffile::svid::generate_pkcs8_pem().unwrap();
    let new_key = spiffile::svid::public_key_of_pem(pem.as_bytes()).unwrap();
    let orders_id = orders.id().clone();
    root.bundle
        .add_key_first(&orders_id, new_key.clone())
        .unwrap();
    root.write_bundle();
    let tmp = dir.join(".key.pem.tmp");
    std::fs::write(&tmp, pem.as_bytes()).unwrap();
    std::fs::rename(&tmp, dir.join("key.pem")).unwrap();

    wait_for("new key in use", || {
        orders.kid().as_deref() == Some(new_key.kid())
    });
    assert_ne!(orders.kid().unwrap(), old_kid);
    assert!(orders.key_generation() >= 2);
    let new_token = orders.token(billing.id()).unwrap();
    wait_for("rotated bundle", || billing.verify(&new_token).is_ok());
    assert!(
        billing.verify(&old_token).is_ok(),
        "overlap: old key still bound"
    );

    // Dropping the old key revokes tokens signed with it.
    root.bundle.remove_key(&orders_id, &old_kid);
    root.write_bundle();
    wait_for("old key revoked", || billing.verify(&old_token).is_err());
    assert_eq!(
        billing.verify(&old_token).unwrap_err().reason(),
        Some(spiffile::Reason::Signature)
    );
    assert!(billing.verify(&new_token).is_ok());
}

fn failure_keeps_last_good(bad: impl FnOnce(&Path), expect: &str) {
    let mut root = Root::new("example.org");
    root.add("orders");
    root.add("billing");
    let billing = root.identity("billing");
    let orders = root.identity("orders");
    let token = orders.token(billing.id()).unwrap();

    bad(&root.bundle_path());
    wait_for("the error is reported", || {
        billing.status().bundle.last_error.is_some()
    });
    let status = billing.status();
    let err = status.bundle.last_error.clone().unwrap();
    assert!(err.contains(expect), "{err}");
    assert!(!status.is_current());
    assert!(
        billing.verify(&token).is_ok(),
        "the last good bundle keeps serving"
    );
    assert_eq!(status.bundle.generation, 1);

    if root.bundle_path().is_dir() {
        std::fs::remove_dir(root.bundle_path()).unwrap();
    }
    root.write_bundle();
    wait_for("recovery", || billing.status().bundle.last_error.is_none());
    assert!(billing.verify(&token).is_ok());
}

#[test]
fn garbage_bundle_keeps_the_last_good_one() {
    failure_keeps_last_good(
        |p| std::fs::write(p, "{ not json").unwrap(),
        "not valid JSON",
    );
}

#[test]
fn empty_bundle_keeps_the_last_good_one() {
    failure_keeps_last_good(|p| std::fs::write(p, "").unwrap(), "bundle.json");
}

#[test]
fn removed_bundle_keeps_the_last_good_one() {
    failure_keeps_last_good(|p| std::fs::remove_file(p).unwrap(), "bundle.json");
}

#[test]
fn unreadable_bundle_keeps_the_last_good_one() {
    // Tests may run as root, for whom mode 000 still reads: replacing the
    // file with a directory is unreadable for everyone.
    failure_keeps_last_good(
        |p| {
            std::fs::remove_file(p).unwrap();
            std::fs::create_dir(p).unwrap();
        },
        "bundle.json",
    );
}

#[test]
fn bad_key_file_keeps_the_last_good_key() {
    let mut root = Root::new("example.org");
    let dir = root.add("orders");
    root.add("billing");
    let orders = root.identity("orders");
    let billing = root.identity("billing");
    std::fs::write(dir.join("key.pem"), "-----BEGIN PRIVATE KEY-----\ngarbage").unwrap();
    wait_for("key error reported", || {
        orders.status().key.unwrap().last_error.is_some()
    });
    let t = orders.token(billing.id()).unwrap();
    assert!(
        billing.verify(&t).is_ok(),
        "the last good key keeps signing"
    );
    let err = orders.status().key.unwrap().last_error.unwrap();
    assert!(err.contains("key.pem"), "{err}");
    assert!(!err.contains("garbage"), "{err}");
}

#[test]
fn startup_errors_are_errors() {
    let mut root = Root::new("example.org");
    let dir = root.add("orders");
    std::fs::write(root.bundle_path(), "{}").unwrap();
    let e =
        Identity::from_files(dir.join("id"), dir.join("key.pem"), root.bundle_path()).unwrap_err();
    // `{}` is in none of the bundle formats.
    assert!(matches!(e, Error::InvalidBundleFormat { .. }), "{e:?}");
    assert!(e.to_string().contains("it is an empty object"), "{e}");
    root.write_bundle();
    std::fs::remove_file(dir.join("key.pem")).unwrap();
    let e =
        Identity::from_files(dir.join("id"), dir.join("key.pem"), root.bundle_path()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
}

#[test]
fn status_and_manual_mode() {
    let mut root = Root::new("example.org");
    let dir = root.add("orders");
    let fixed = Identity::builder()
        .hot_reload(false)
        .from_files(dir.join("id"), dir.join("key.pem"), root.bundle_path())
        .unwrap();
    let st = fixed.status();
    assert!(!st.bundle.watching);
    assert_eq!(st.bundle.generation, 1);
    assert_eq!(st.bundle.path, root.bundle_path());
    std::fs::write(root.bundle_path(), "nope").unwrap();
    assert!(fixed.reload().is_err());
    assert!(fixed.status().bundle.last_error.is_some());
    // The good bundle back: served again, but it is what was served, so
    // the generation stays (it counts changes of what is served).
    root.write_bundle();
    fixed.reload().unwrap();
    assert_eq!(fixed.status().bundle.generation, 1);
    assert!(fixed.status().is_current());
    root.add("billing");
    fixed.reload().unwrap();
    assert_eq!(fixed.status().bundle.generation, 2);
    assert_eq!(fixed.bundle_generation(), 2);
    assert!(fixed.status().is_current());
    fixed.reload().unwrap();
    assert_eq!(fixed.status().bundle.generation, 2);

    let watched = root.identity("orders");
    let st = watched.status();
    let key = st.key.unwrap();
    assert!(st.bundle.watching && key.watching);
    assert_eq!(key.path.file_name().unwrap(), "key.pem");
}
