//! `add_service`: a new service, or an existing key adopted when asked.

use std::path::Path;

use spiffile_id::SpiffeId;

use crate::fsutil::sync_dir;
use crate::layout::NEXT_KEY_FILE;
use crate::open::{Open, in_bundle_error};
use crate::service_files::{check_id_file, create_service_dir, read_key, write_id_file, write_key};
use crate::undo::Undo;
use crate::{Error, Notice, audit};

/// What [`add_service`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddAction {
    /// A new key was generated and bound to the new identity.
    Created,
    /// The service existed with its key bound: nothing changed.
    Unchanged,
    /// A key that was on disk without being bound to the identity was bound
    /// (first in the identity's list), as asked with
    /// [`AddOptions::adopt_existing_key`].
    Adopted,
}

/// Options of [`add_service_with`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AddOptions {
    /// Bind a key found in the service's `key.pem` that the bundle does not
    /// bind to it (see [`AddOptions::adopt_existing_key`]).
    pub adopt_existing_key: bool,
}

impl AddOptions {
    /// The defaults: never bind a key spiffile did not generate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether to bind a `key.pem` that is on disk but not bound to the
    /// service (a key made by another tool, or restored from a backup).
    ///
    /// Off by default, because whoever can write the service's directory
    /// could have put that key there: binding it would let them sign as the
    /// service. A key already bound to another identity is refused even so
    /// ([`Error::KeyBoundElsewhere`]).
    pub fn adopt_existing_key(mut self, adopt: bool) -> Self {
        self.adopt_existing_key = adopt;
        self
    }
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
/// bundle. [`add_service_with`] with the default [`AddOptions`].
///
/// Idempotent: an existing service keeps its key ([`AddAction::Unchanged`]).
/// A key on disk that the bundle does not bind is refused
/// ([`Error::UnboundKey`]) unless adopted explicitly; a bundle entry whose
/// key file is gone is [`Error::KeyMissing`]: `add` does not guess whether to
/// revoke or re-key.
///
/// `name` is a SPIFFE ID path (`orders`, `team/orders`) or a full SPIFFE ID of
/// the root's trust domain.
pub fn add_service(root: impl AsRef<Path>, name: &str) -> Result<Added, Error> {
    add_service_with(root, name, &AddOptions::default())
}

/// [`add_service`] with options.
///
/// All or nothing: everything is checked before the first write; the new
/// key is staged beside `key.pem` until the bundle binds it, so a failure
/// is undone ([`Error::RolledBack`]) and a crash leaves a staged key the
/// next operation puts in place or discards.
pub fn add_service_with(
    root: impl AsRef<Path>,
    name: &str,
    options: &AddOptions,
) -> Result<Added, Error> {
    let mut open = Open::write(root.as_ref())?;
    let service = open.checked_service(name)?;
    for n in audit::notices(service.existing_dirs(&open.services_dir()).iter().skip(1)) {
        open.note(n);
    }
    let key_file = service.key_file();
    let bound = open.bundle_kids(&service.id);
    let existing = read_key(&key_file)?;
    let id_present = check_id_file(&service, open.bundle.trust_domain())?;
    let operation = format!("add of `{}`", service.id);
    let (kid, action) = match existing {
        None if !bound.is_empty() => {
            return Err(Error::KeyMissing {
                name: service.name,
                id: service.id,
                key_file,
            });
        }
        Some(key) if bound.iter().any(|k| k == key.kid()) => {
            if !id_present {
                write_id_file(&service)?;
            }
            (key.kid().to_owned(), AddAction::Unchanged)
        }
        Some(key) => {
            let kid = key.kid().to_owned();
            if let Some(other) = open.bound_elsewhere(&key, &service.id) {
                return Err(Error::KeyBoundElsewhere {
                    name: service.name,
                    key_file,
                    other,
                });
            }
            if !options.adopt_existing_key {
                return Err(Error::UnboundKey {
                    id: service.id,
                    key_file,
                    kid,
                });
            }
            let mut undo = Undo::new(operation);
            let result = (|| {
                if !id_present {
                    write_id_file(&service)?;
                    undo.created(service.id_file());
                }
                open.bundle
                    .add_key_first(&service.id, key)
                    .map_err(|e| in_bundle_error(e, &open.root))?;
                open.write_bundle()
            })();
            if let Err(e) = result {
                return Err(undo.roll_back(&open, e, "the bundle binds the adopted key"));
            }
            (kid, AddAction::Adopted)
        }
        None => {
            let mut undo = Undo::new(operation);
            let staged = service.staged_key_file();
            let result = (|| {
                undo.created_dirs(create_service_dir(&open, &service)?);
                let key = write_key(&service.dir, NEXT_KEY_FILE)?;
                undo.created(staged.clone());
                if !id_present {
                    write_id_file(&service)?;
                    undo.created(service.id_file());
                }
                let kid = key.kid().to_owned();
                open.bundle
                    .add_key_first(&service.id, key)
                    .map_err(|e| in_bundle_error(e, &open.root))?;
                undo.commit_staged_key(&open, &staged, &key_file, "add:rename")?;
                Ok(kid)
            })();
            let kid = match result {
                Ok(kid) => kid,
                Err(e) => {
                    let state = format!(
                        "the bundle binds the new key staged in {}; the next provisioning command of this root puts it in place",
                        staged.display()
                    );
                    return Err(undo.roll_back(&open, e, &state));
                }
            };
            let _ = sync_dir(&service.dir);
            (kid, AddAction::Created)
        }
    };
    Ok(Added {
        id: service.id,
        kid,
        action,
        notices: open.finish(),
    })
}
