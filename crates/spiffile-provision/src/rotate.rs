//! `rotate_service` and `revoke_old_keys`: a service's new key, and the end
//! of the overlap with its old ones.

use std::path::Path;

use spiffile_id::SpiffeId;

use crate::fsutil::sync_dir;
use crate::layout::NEXT_KEY_FILE;
use crate::open::{Open, in_bundle_error};
use crate::service_files::{check_id_file, create_service_dir, read_key, write_id_file, write_key};
use crate::undo::Undo;
use crate::{Error, Notice, audit, nofollow};

/// What [`rotate_service`] does with the keys bound to the service before
/// the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OldKeys {
    /// Keep them bound, after the new key, for the overlap while the new key
    /// and bundle reach every holder; end the overlap with
    /// [`revoke_old_keys`]. What a planned rotation does.
    Keep,
    /// Drop them from the bundle at once: tokens signed with them are
    /// refused as soon as peers read the new bundle. What a rotation after a
    /// key leak does.
    Revoke,
}

/// The result of [`rotate_service`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Rotated {
    /// The service's SPIFFE ID.
    pub id: SpiffeId,
    /// The `kid` of the new key (first in the bundle).
    pub kid: String,
    /// The kids bound to the identity after the rotation, in bundle order.
    pub kids: Vec<String>,
    /// The kids dropped from the bundle (when the old keys were not kept).
    pub revoked: Vec<String>,
    /// Inconsistencies found in the root and repairs made on the way.
    pub notices: Vec<Notice>,
}

/// The result of [`revoke_old_keys`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Revoked {
    /// The service's SPIFFE ID.
    pub id: SpiffeId,
    /// The `kid` kept (the key in `key.pem`).
    pub kid: String,
    /// The kids dropped from the bundle.
    pub revoked: Vec<String>,
    /// Inconsistencies found in the root and repairs made on the way.
    pub notices: Vec<Notice>,
}

/// Rotates a service's key: a new key pair is bound first in the identity's
/// list and replaces `key.pem`. The old keys stay bound (for the overlap
/// while the new key and bundle are distributed) with [`OldKeys::Keep`], and
/// are dropped at once with [`OldKeys::Revoke`].
///
/// All or nothing: everything (the name, the way to the directory, the `id`
/// file) is checked before the first write. The new key is staged beside
/// the old one, the bundle is written once (new key first, old keys kept or
/// dropped), then the staged key is renamed over `key.pem`. A failure before
/// that rename is undone ([`Error::RolledBack`]: the root is unchanged); a
/// crash leaves a staged key that the next operation puts in place (when the
/// bundle binds it) or discards.
pub fn rotate_service(
    root: impl AsRef<Path>,
    name: &str,
    old_keys: OldKeys,
) -> Result<Rotated, Error> {
    let mut open = Open::write(root.as_ref())?;
    let service = open.checked_service(name)?;
    let old = open.bundle_kids(&service.id);
    let key_file = service.key_file();
    if old.is_empty() && !nofollow::exists(&key_file)? {
        return Err(Error::UnknownService {
            name: service.name,
            root: open.root.clone(),
        });
    }
    let id_present = check_id_file(&service, open.bundle.trust_domain())?;
    for n in audit::notices(service.existing_dirs(&open.services_dir()).iter().skip(1)) {
        open.note(n);
    }
    let staged = service.staged_key_file();
    let mut undo = Undo::new(format!("rotation of `{}`", service.id));
    let result = (|| {
        undo.created_dirs(create_service_dir(&open, &service)?);
        let key = write_key(&service.dir, NEXT_KEY_FILE)?;
        undo.created(staged.clone());
        if !id_present {
            write_id_file(&service)?;
            undo.created(service.id_file());
        }
        let kid = key.kid().to_owned();
        if old_keys == OldKeys::Keep {
            open.bundle.add_key_first(&service.id, key)
        } else {
            open.bundle.set_keys(&service.id, vec![key])
        }
        .map_err(|e| in_bundle_error(e, &open.root))?;
        undo.commit_staged_key(&open, &staged, &key_file, "rotate:rename")?;
        Ok(kid)
    })();
    let kid = match result {
        Ok(kid) => kid,
        Err(e) => {
            let state = format!(
                "the bundle binds the new key staged in {}; the next provisioning command of this root puts it in place and the rotation is complete",
                staged.display()
            );
            return Err(undo.roll_back(&open, e, &state));
        }
    };
    let _ = sync_dir(&service.dir);
    let revoked = match old_keys {
        OldKeys::Keep => Vec::new(),
        OldKeys::Revoke => old,
    };
    Ok(Rotated {
        kids: open.bundle_kids(&service.id),
        id: service.id,
        kid,
        revoked,
        notices: open.finish(),
    })
}

/// Drops every key bound to a service except the one in its `key.pem`: the
/// end of a rotation overlap, once every holder of the old key has the new
/// one. One atomic bundle write, after every check.
pub fn revoke_old_keys(root: impl AsRef<Path>, name: &str) -> Result<Revoked, Error> {
    let mut open = Open::write(root.as_ref())?;
    let service = open.checked_service(name)?;
    let key_file = service.key_file();
    let bound = open.bundle_kids(&service.id);
    let Some(key) = read_key(&key_file)? else {
        if bound.is_empty() {
            return Err(Error::UnknownService {
                name: service.name,
                root: open.root.clone(),
            });
        }
        return Err(Error::KeyMissing {
            name: service.name,
            id: service.id,
            key_file,
        });
    };
    let kid = key.kid().to_owned();
    if !bound.contains(&kid) {
        return Err(Error::KeyNotBound {
            id: service.id,
            key_file,
            kid,
        });
    }
    let revoked: Vec<String> = bound.into_iter().filter(|k| *k != kid).collect();
    if !revoked.is_empty() {
        open.bundle
            .set_keys(&service.id, vec![key])
            .map_err(|e| in_bundle_error(e, &open.root))?;
        open.write_bundle()?;
    }
    Ok(Revoked {
        id: service.id,
        kid,
        revoked,
        notices: open.finish(),
    })
}
