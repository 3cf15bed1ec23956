//! `rotate_service` and `revoke_old_keys`: a service's new key, and the end
//! of the overlap with its old ones.

use std::fs;
use std::path::Path;

use spiffile_id::SpiffeId;

use crate::fsutil::{self, sync_dir};
use crate::layout::NEXT_KEY_FILE;
use crate::open::{Open, in_bundle_error};
use crate::service_files::{create_service_dir, ensure_id_file, read_key, write_key};
use crate::{Error, Notice};

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
/// while the new key and bundle are distributed) unless `keep_old` is false.
///
/// The order is safe at every instant: the new key is staged beside the old
/// one, added to the bundle, then renamed over `key.pem`; the old keys are
/// dropped last.
pub fn rotate_service(
    root: impl AsRef<Path>,
    name: &str,
    keep_old: bool,
) -> Result<Rotated, Error> {
    let mut open = Open::write(root.as_ref())?;
    let service = open.service(name)?;
    let old = open.bundle_kids(&service.id);
    if old.is_empty() && !service.key_file().exists() {
        return Err(Error::UnknownService {
            name: service.name,
            root: open.root.clone(),
        });
    }
    create_service_dir(&open, &service)?;
    let key = write_key(&service.dir, NEXT_KEY_FILE)?;
    let kid = key.kid().to_owned();
    open.bundle
        .add_key_first(&service.id, key.clone())
        .map_err(|e| in_bundle_error(e, &open.root))?;
    open.write_bundle()?;
    let key_file = service.key_file();
    fs::rename(service.dir.join(NEXT_KEY_FILE), &key_file)
        .map_err(fsutil::fail(&key_file, "rename the new key over"))?;
    sync_dir(&service.dir).map_err(fsutil::fail(&service.dir, "fsync directory"))?;
    ensure_id_file(&service, open.bundle.trust_domain())?;
    let mut revoked = Vec::new();
    if !keep_old {
        revoked = old;
        open.bundle
            .set_keys(&service.id, vec![key])
            .map_err(|e| in_bundle_error(e, &open.root))?;
        open.write_bundle()?;
    }
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
/// one.
pub fn revoke_old_keys(root: impl AsRef<Path>, name: &str) -> Result<Revoked, Error> {
    let mut open = Open::write(root.as_ref())?;
    let service = open.service(name)?;
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
            name: service.name,
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
