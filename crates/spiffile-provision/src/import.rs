//! `import_root`: a root written from material kept elsewhere (the
//! Kubernetes operator's Secrets and bundle), for migration and debugging.

use std::path::Path;

use spiffile_bundle::Bundle;
use spiffile_id::{SpiffeId, TrustDomain};

use crate::fsutil::{create_dirs, write_atomic};
use crate::layout::bundle_path;
use crate::lock;
use crate::nofollow;
use crate::open::Open;
use crate::{BUNDLE_FILE, Error, ID_FILE, KEY_FILE, LOCK_FILE, SERVICES_DIR};

/// One service's material for [`import_root`].
#[derive(Debug, Clone, Copy)]
pub struct ImportedService<'a> {
    /// Its SPIFFE ID (in the bundle's trust domain).
    pub id: &'a SpiffeId,
    /// Its PKCS#8 PEM private key (never echoed in errors).
    pub key_pem: &'a [u8],
}

/// Writes a new root from a bundle and the services' keys: every
/// `services/<path>/key.pem` (0600, in 0700 directories) and `id`, then
/// `bundle.json` last, each atomically, under the root's lock. The result is
/// a root like any other (`list_services`, `rotate_service`, … work on it).
///
/// Refuses, before writing anything, a root that already has a bundle
/// ([`Error::AlreadyInitialized`]), an ID of another trust domain, a key that
/// does not parse ([`Error::Key`]), and a key the bundle does not bind to its
/// identity ([`Error::ImportedKeyNotInBundle`]).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use spiffile_provision::{ImportedService, generate_service_key, import_root};
///
/// let (pem, public) = generate_service_key()?;
/// let id: spiffile_id::SpiffeId = "spiffe://example.org/orders".parse()?;
/// let mut bundle = spiffile_bundle::Bundle::new("example.org".parse()?);
/// bundle.set_keys(&id, vec![public])?;
/// import_root(dir.path(), &bundle, &[ImportedService { id: &id, key_pem: pem.as_bytes() }])?;
/// assert_eq!(spiffile_provision::list_services(dir.path())?.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn import_root(
    root: impl AsRef<Path>,
    bundle: &Bundle,
    services: &[ImportedService<'_>],
) -> Result<TrustDomain, Error> {
    let root = root.as_ref();
    let td = bundle.trust_domain().clone();
    create_dirs(root, 0o755)?;
    let lock = lock::lock_exclusive(&root.join(LOCK_FILE))?;
    // Nothing inside the root is followed through a link (as for every
    // other operation): a planted link is refused, never written through.
    if nofollow::exists(&bundle_path(root))? {
        return Err(Error::AlreadyInitialized {
            root: root.to_owned(),
            trust_domain: "already initialized; refusing to overwrite".to_owned(),
        });
    }
    let open = Open::creating(root, bundle.clone(), lock);
    // Check everything before writing anything.
    let mut planned = Vec::with_capacity(services.len());
    for s in services {
        if s.id.trust_domain() != &td {
            return Err(Error::TrustDomainMismatch {
                id: s.id.clone(),
                trust_domain: td,
            });
        }
        let path = s.id.path().trim_start_matches('/');
        let service = open
            .service_at(path)
            .map_err(|problem| Error::InvalidName {
                name: path.to_owned(),
                problem,
            })?;
        let public = crate::public_key_of_pem(s.key_pem).map_err(|source| Error::Key {
            path: service.key_file(),
            source,
        })?;
        if !open.bundle_kids(s.id).iter().any(|k| k == public.kid()) {
            return Err(Error::ImportedKeyNotInBundle {
                id: s.id.clone(),
                kid: public.kid().to_owned(),
            });
        }
        nofollow::check_dirs(&root.join(SERVICES_DIR), path.split('/'))?;
        if nofollow::exists(&service.key_file())? || nofollow::exists(&service.id_file())? {
            return Err(Error::AlreadyInitialized {
                root: root.to_owned(),
                trust_domain: format!(
                    "{} already holds files; refusing to overwrite",
                    service.dir.display()
                ),
            });
        }
        planned.push((service, s.key_pem));
    }
    create_dirs(&root.join(SERVICES_DIR), 0o755)?;
    for (service, pem) in planned {
        create_dirs(&service.dir, 0o700)?;
        write_atomic(&service.dir, KEY_FILE, pem, 0o600, false)?;
        write_atomic(
            &service.dir,
            ID_FILE,
            format!("{}\n", service.id).as_bytes(),
            0o644,
            false,
        )?;
    }
    write_atomic(root, BUNDLE_FILE, bundle.to_json().as_bytes(), 0o644, false)?;
    Ok(td)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate_service_key;
    use std::os::unix::fs::PermissionsExt;

    fn material(n: usize) -> (Bundle, Vec<(SpiffeId, crate::PrivateKeyPem)>) {
        let mut bundle = Bundle::new("example.org".parse().unwrap());
        let mut keys = Vec::new();
        for i in 0..n {
            let id: SpiffeId = format!("spiffe://example.org/team/svc-{i}")
                .parse()
                .unwrap();
            let (pem, public) = generate_service_key().unwrap();
            bundle.set_keys(&id, vec![public]).unwrap();
            keys.push((id, pem));
        }
        (bundle, keys)
    }

    #[test]
    fn writes_a_root_the_library_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (bundle, keys) = material(2);
        let services: Vec<_> = keys
            .iter()
            .map(|(id, pem)| ImportedService {
                id,
                key_pem: pem.as_bytes(),
            })
            .collect();
        import_root(dir.path(), &bundle, &services).unwrap();
        let key = dir.path().join("services/team/svc-0/key.pem");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("services/team/svc-1/id")).unwrap(),
            "spiffe://example.org/team/svc-1\n"
        );
        let listed = crate::list_services(dir.path()).unwrap();
        assert_eq!(listed.len(), 2);
        assert!(
            listed.iter().all(|s| s.status == crate::ServiceStatus::Ok),
            "{listed:?}"
        );
        // Never twice.
        assert!(matches!(
            import_root(dir.path(), &bundle, &services),
            Err(Error::AlreadyInitialized { .. })
        ));
    }

    #[test]
    fn refuses_before_writing_anything() {
        let dir = tempfile::tempdir().unwrap();
        let (bundle, keys) = material(1);
        let (other, _) = generate_service_key().unwrap();
        let bad = [ImportedService {
            id: &keys[0].0,
            key_pem: other.as_bytes(),
        }];
        let e = import_root(dir.path(), &bundle, &bad).unwrap_err();
        assert!(matches!(e, Error::ImportedKeyNotInBundle { .. }), "{e}");
        assert!(!dir.path().join("bundle.json").exists());
        assert!(!dir.path().join("services").exists());
        let garbage = [ImportedService {
            id: &keys[0].0,
            key_pem: b"not a key",
        }];
        let e = import_root(dir.path(), &bundle, &garbage)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("not a key"), "{e}");
    }

    #[test]
    fn never_writes_through_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let (bundle, keys) = material(1);
        let services = [ImportedService {
            id: &keys[0].0,
            key_pem: keys[0].1.as_bytes(),
        }];
        std::fs::create_dir(dir.path().join("services")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("services/team")).unwrap();
        let e = import_root(dir.path(), &bundle, &services).unwrap_err();
        assert!(matches!(e, Error::Symlink { .. }), "{e}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(!dir.path().join("bundle.json").exists());
    }
}
