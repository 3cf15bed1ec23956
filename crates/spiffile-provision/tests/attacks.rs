//! A root under attack (issue 15): symbolic links planted inside it,
//! directories others can write, and operations that must be all or
//! nothing. Each test fails if the class of problem comes back.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use spiffile_bundle::Bundle;
use spiffile_provision::{
    Error, Notice, OldKeys, ServiceStatus, add_service, init_root, list_services, remove_service,
    revoke_old_keys, rotate_service, service_env,
};

const ORDERS: &str = "spiffe://example.org/orders";

fn bundle_bytes(root: &Path) -> Vec<u8> {
    fs::read(root.join("bundle.json")).unwrap()
}

fn kids(root: &Path, id: &str) -> Vec<String> {
    Bundle::from_json(&bundle_bytes(root))
        .unwrap()
        .keys(&id.parse().unwrap())
        .map(|ks| ks.iter().map(|k| k.kid().to_owned()).collect())
        .unwrap_or_default()
}

/// Every file under `dir`, with its bytes (the state an attack must not
/// change).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push((e.path(), fs::read(e.path()).unwrap()));
            } else {
                out.push((
                    e.path(),
                    fs::read_link(e.path())
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn assert_symlink_error(e: &Error, link: &Path) {
    match e {
        Error::Symlink { link: found, .. } => assert_eq!(found, link, "{e}"),
        other => panic!(
            "expected Error::Symlink for {}, got {other}",
            link.display()
        ),
    }
    assert!(e.to_string().contains("is a symbolic link"), "{e}");
}

/// A victim directory outside the root that looks like a service.
fn victim(dir: &Path) -> PathBuf {
    let outside = dir.join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(
        outside.join("key.pem"),
        spiffile_svid::generate_pkcs8_pem().unwrap().as_bytes(),
    )
    .unwrap();
    fs::write(outside.join("id"), format!("{ORDERS}\n")).unwrap();
    outside
}

#[test]
fn a_service_directory_that_is_a_symlink_is_refused_by_every_operation() {
    for nested in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        init_root(&root, "example.org").unwrap();
        let outside = victim(dir.path());
        let (name, link) = if nested {
            // services/team -> outside/.., so services/team/outside is the victim.
            let link = root.join("services/team");
            symlink(dir.path(), &link).unwrap();
            ("team/outside", link)
        } else {
            let link = root.join("services/orders");
            symlink(&outside, &link).unwrap();
            ("orders", link)
        };
        let id = format!("spiffe://example.org/{name}");
        // The bundle binds the victim's key, as after an earlier rotate
        // through the link would.
        let before_outside = snapshot(&outside);
        let before_bundle = bundle_bytes(&root);
        assert_symlink_error(&add_service(&root, name).unwrap_err(), &link);
        assert_symlink_error(
            &rotate_service(&root, name, OldKeys::Keep).unwrap_err(),
            &link,
        );
        assert_symlink_error(
            &rotate_service(&root, name, OldKeys::Revoke).unwrap_err(),
            &link,
        );
        assert_symlink_error(&revoke_old_keys(&root, name).unwrap_err(), &link);
        assert_symlink_error(&remove_service(&root, name).unwrap_err(), &link);
        assert_symlink_error(&service_env(&root, name).unwrap_err(), &link);
        assert_eq!(
            snapshot(&outside),
            before_outside,
            "nothing outside the root changed"
        );
        assert_eq!(bundle_bytes(&root), before_bundle);
        assert!(kids(&root, &id).is_empty());
        // Other services work; the walk does not follow the link.
        add_service(&root, "billing").unwrap();
        let listed = list_services(&root).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
    }
}

#[test]
fn a_service_directory_turned_into_a_symlink_after_add_is_reported_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    init_root(&root, "example.org").unwrap();
    add_service(&root, "orders").unwrap();
    let outside = victim(dir.path());
    let real = root.join("services/orders");
    fs::rename(&real, dir.path().join("moved")).unwrap();
    symlink(&outside, &real).unwrap();
    let before = snapshot(&outside);
    assert_symlink_error(&remove_service(&root, "orders").unwrap_err(), &real);
    assert_symlink_error(
        &rotate_service(&root, "orders", OldKeys::Revoke).unwrap_err(),
        &real,
    );
    assert_eq!(snapshot(&outside), before);
    let listed = list_services(&root).unwrap();
    let status = &listed.iter().find(|s| s.name == "orders").unwrap().status;
    assert!(
        matches!(status, ServiceStatus::Unsafe(why) if why.contains("is a symbolic link")),
        "{status:?}"
    );
}

#[test]
fn service_files_that_are_symlinks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    init_root(&root, "example.org").unwrap();
    add_service(&root, "billing").unwrap();
    add_service(&root, "orders").unwrap();
    // orders' key.pem -> billing's key: never bound to orders, never deleted.
    let key = root.join("services/orders/key.pem");
    fs::remove_file(&key).unwrap();
    symlink(root.join("services/billing/key.pem"), &key).unwrap();
    let billing_key = fs::read(root.join("services/billing/key.pem")).unwrap();
    let before = bundle_bytes(&root);
    for e in [
        add_service(&root, "orders").unwrap_err(),
        rotate_service(&root, "orders", OldKeys::Revoke).unwrap_err(),
        revoke_old_keys(&root, "orders").unwrap_err(),
        remove_service(&root, "orders").unwrap_err(),
    ] {
        assert_symlink_error(&e, &key);
    }
    assert_eq!(bundle_bytes(&root), before);
    assert_eq!(
        fs::read(root.join("services/billing/key.pem")).unwrap(),
        billing_key
    );
    // The id file as a link.
    let id = root.join("services/billing/id");
    fs::remove_file(&id).unwrap();
    symlink(dir.path().join("elsewhere"), &id).unwrap();
    assert_symlink_error(&add_service(&root, "billing").unwrap_err(), &id);
    assert!(!dir.path().join("elsewhere").exists());
}

#[test]
fn a_symlinked_lock_file_creates_nothing_at_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    init_root(&root, "example.org").unwrap();
    let lock = root.join(".spiffile.lock");
    fs::remove_file(&lock).unwrap();
    let target = dir.path().join("created-by-the-lock");
    symlink(&target, &lock).unwrap();
    assert_symlink_error(&add_service(&root, "orders").unwrap_err(), &lock);
    assert_symlink_error(&list_services(&root).unwrap_err(), &lock);
    assert!(!target.exists(), "the lock created a file at its target");
    let fresh = dir.path().join("fresh");
    fs::create_dir(&fresh).unwrap();
    symlink(&target, fresh.join(".spiffile.lock")).unwrap();
    assert_symlink_error(
        &init_root(&fresh, "example.org").unwrap_err(),
        &fresh.join(".spiffile.lock"),
    );
    assert!(!target.exists());
}

/// Decision (docs/security.md): a symlinked bundle.json is refused, never
/// replaced by a regular file (which left its target stale) and never
/// followed (which would write outside the root, under another lock).
#[test]
fn a_symlinked_bundle_is_refused_and_both_sides_stay_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    init_root(&root, "example.org").unwrap();
    add_service(&root, "orders").unwrap();
    let shared = dir.path().join("shared-bundle.json");
    let link = root.join("bundle.json");
    fs::rename(&link, &shared).unwrap();
    symlink(&shared, &link).unwrap();
    let before = fs::read(&shared).unwrap();
    for e in [
        add_service(&root, "billing").unwrap_err(),
        rotate_service(&root, "orders", OldKeys::Keep).unwrap_err(),
        remove_service(&root, "orders").unwrap_err(),
        list_services(&root).unwrap_err(),
        init_root(&root, "example.org").unwrap_err(),
    ] {
        assert_symlink_error(&e, &link);
        assert!(
            e.to_string()
                .contains("point a link there at the root's bundle.json"),
            "{e}"
        );
    }
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(&shared).unwrap(), before);
    // The public atomic write behaves the same.
    let e = spiffile_provision::replace_file_atomically(&link, b"{}").unwrap_err();
    assert!(e.to_string().contains("is a symbolic link"), "{e}");
    assert_eq!(fs::read(&shared).unwrap(), before);
}

#[test]
fn a_symlinked_services_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    init_root(&root, "example.org").unwrap();
    let services = root.join("services");
    fs::remove_dir(&services).unwrap();
    let outside = dir.path().join("outside-services");
    fs::create_dir(&outside).unwrap();
    symlink(&outside, &services).unwrap();
    assert_symlink_error(&add_service(&root, "orders").unwrap_err(), &services);
    assert_symlink_error(&list_services(&root).unwrap_err(), &services);
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

fn unsafe_notices(notices: &[Notice]) -> Vec<String> {
    notices
        .iter()
        .filter(|n| matches!(n, Notice::UnsafeDirectory { .. }))
        .map(|n| n.to_string())
        .collect()
}

#[test]
fn directories_others_can_write_are_warned_about_and_listed_as_unsafe() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    init_root(&root, "example.org").unwrap();
    add_service(&root, "orders").unwrap();
    add_service(&root, "billing").unwrap();
    assert!(unsafe_notices(&add_service(&root, "orders").unwrap().notices).is_empty());
    assert!(
        list_services(&root)
            .unwrap()
            .iter()
            .all(|s| s.status == ServiceStatus::Ok)
    );

    let svc = root.join("services/orders");
    for (mode, who) in [
        (0o777, "its group and all users"),
        (0o720, "its group"),
        (0o702, "all users"),
    ] {
        fs::set_permissions(&svc, fs::Permissions::from_mode(mode)).unwrap();
        let warned = unsafe_notices(&add_service(&root, "orders").unwrap().notices);
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(
            warned[0].contains(&format!("{} is writable by {who}", svc.display())),
            "{warned:?}"
        );
        let warned = unsafe_notices(
            &rotate_service(&root, "orders", OldKeys::Keep)
                .unwrap()
                .notices,
        );
        assert_eq!(warned.len(), 1, "{warned:?}");
        let listed = list_services(&root).unwrap();
        let orders = listed.iter().find(|s| s.name == "orders").unwrap();
        assert!(
            matches!(&orders.status, ServiceStatus::Unsafe(why) if why.contains("is writable by")),
            "{:?}",
            orders.status
        );
        let billing = listed.iter().find(|s| s.name == "billing").unwrap();
        assert_eq!(billing.status, ServiceStatus::Ok);
    }
    fs::set_permissions(&svc, fs::Permissions::from_mode(0o700)).unwrap();

    // services/ or the root writable by others: every service is unsafe.
    fs::set_permissions(root.join("services"), fs::Permissions::from_mode(0o777)).unwrap();
    let warned = unsafe_notices(&add_service(&root, "billing").unwrap().notices);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        list_services(&root)
            .unwrap()
            .iter()
            .all(|s| matches!(s.status, ServiceStatus::Unsafe(_)))
    );
    fs::set_permissions(root.join("services"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o775)).unwrap();
    let warned = unsafe_notices(
        &rotate_service(&root, "billing", OldKeys::Keep)
            .unwrap()
            .notices,
    );
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        list_services(&root)
            .unwrap()
            .iter()
            .all(|s| matches!(s.status, ServiceStatus::Unsafe(_)))
    );
}

#[test]
fn a_directory_owned_by_another_user_is_warned_about() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    init_root(&root, "example.org").unwrap();
    add_service(&root, "orders").unwrap();
    let svc = root.join("services/orders");
    // Only root can give a directory away; elsewhere this part is skipped.
    if std::os::unix::fs::chown(&svc, Some(4242), None).is_err() {
        eprintln!("SKIPPED: cannot chown here (not root)");
        return;
    }
    assert_eq!(fs::metadata(&svc).unwrap().uid(), 4242);
    let warned = unsafe_notices(&add_service(&root, "orders").unwrap().notices);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("is owned by uid 4242"), "{warned:?}");
    let listed = list_services(&root).unwrap();
    assert!(matches!(&listed[0].status, ServiceStatus::Unsafe(why) if why.contains("uid 4242")));
}

/// Issue 15, item 3: `rotate --revoke-old` with an `id` file naming another
/// identity used to bind the new key and replace key.pem, then fail, leaving
/// the old (possibly stolen) key bound. Now it fails before writing anything.
#[test]
fn a_rotation_that_cannot_finish_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    init_root(&root, "example.org").unwrap();
    let k0 = add_service(&root, "orders").unwrap().kid;
    let id_file = root.join("services/orders/id");
    fs::write(&id_file, "spiffe://example.org/billing\n").unwrap();
    let before = snapshot(&root);
    for keep_old in [OldKeys::Revoke, OldKeys::Keep] {
        let e = rotate_service(&root, "orders", keep_old).unwrap_err();
        assert!(matches!(e, Error::IdFileMismatch { .. }), "{e}");
        assert_eq!(snapshot(&root), before, "{keep_old:?}");
    }
    assert_eq!(kids(&root, ORDERS), vec![k0]);
    // Another trust domain in the id file: the same.
    fs::write(&id_file, "spiffe://other.org/orders\n").unwrap();
    let before = snapshot(&root);
    let e = rotate_service(&root, "orders", OldKeys::Revoke).unwrap_err();
    assert!(matches!(e, Error::TrustDomainMismatch { .. }), "{e}");
    assert_eq!(snapshot(&root), before);
}

/// The same class in `add`: a service directory with a wrong `id` file
/// used to get a key written before the `id` check failed.
#[test]
fn an_add_that_cannot_finish_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    init_root(&root, "example.org").unwrap();
    fs::create_dir_all(root.join("services/orders")).unwrap();
    fs::write(
        root.join("services/orders/id"),
        "spiffe://example.org/billing\n",
    )
    .unwrap();
    let before = snapshot(&root);
    let e = add_service(&root, "orders").unwrap_err();
    assert!(matches!(e, Error::IdFileMismatch { .. }), "{e}");
    assert_eq!(snapshot(&root), before);
}
