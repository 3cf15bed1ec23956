//! `add_service`: a new service, or the repair of an interrupted `add`.

use std::path::Path;

use spiffile_id::SpiffeId;

use crate::open::{Open, in_bundle_error};
use crate::service_files::{create_service_dir, ensure_id_file, read_key, write_key};
use crate::{Error, KEY_FILE, Notice};

/// What [`add_service`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddAction {
    /// A new key was generated and bound to the new identity.
    Created,
    /// The service existed with its key bound: nothing changed.
    Unchanged,
    /// A key was on disk without being bound to the identity in the bundle
    /// (an interrupted `add`, or a producer that crashed mid-rotation); it
    /// was bound (first in the identity's list).
    Repaired,
}

/// The result of [`add_service`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Added {
    /// The service's SPIFFE ID.
    pub id: SpiffeId,
    /// The `kid` of its current key.
    pub kid: String,
    /// What was done.
    pub action: AddAction,
    /// Inconsistencies found in the root and repairs made on the way.
    pub notices: Vec<Notice>,
}

/// Adds a service: a new key pair (`services/<name>/key.pem`, 0600), its
/// `id` file, and its public key bound to `spiffe://<td>/<name>` in the
/// bundle.
///
/// Idempotent: an existing service keeps its key ([`AddAction::Unchanged`]).
/// A key on disk that the bundle does not bind (an interrupted `add`) is
/// bound ([`AddAction::Repaired`]). A bundle entry whose key file is gone is
/// [`Error::KeyMissing`]: `add` does not guess whether to revoke or re-key.
///
/// `name` is a SPIFFE ID path (`orders`, `team/orders`) or a full SPIFFE ID of
/// the root's trust domain.
pub fn add_service(root: impl AsRef<Path>, name: &str) -> Result<Added, Error> {
    let mut open = Open::write(root.as_ref())?;
    let service = open.service(name)?;
    let key_file = service.key_file();
    let bound = open.bundle_kids(&service.id);
    let existing = read_key(&key_file)?;
    if existing.is_none() && !bound.is_empty() {
        return Err(Error::KeyMissing {
            name: service.name,
            id: service.id,
            key_file,
        });
    }
    create_service_dir(&open, &service)?;
    let (key, generated) = match existing {
        Some(k) => (k, false),
        None => (write_key(&service.dir, KEY_FILE)?, true),
    };
    ensure_id_file(&service, open.bundle.trust_domain())?;
    let kid = key.kid().to_owned();
    let action = if bound.contains(&kid) {
        AddAction::Unchanged
    } else {
        open.bundle
            .add_key_first(&service.id, key)
            .map_err(|e| in_bundle_error(e, &open.root))?;
        open.write_bundle()?;
        if generated {
            AddAction::Created
        } else {
            AddAction::Repaired
        }
    };
    Ok(Added {
        id: service.id,
        kid,
        action,
        notices: open.finish(),
    })
}
