//! `remove_service`: a service's key, bundle entry and files removed.

use std::fs;
use std::io;
use std::path::Path;

use spiffile_id::SpiffeId;

use crate::fsutil::{self, remove_if_present, sync_dir};
use crate::open::Open;
use crate::undo::Undo;
use crate::{Error, Notice, nofollow};

/// The result of [`remove_service`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Removed {
    /// The service's SPIFFE ID.
    pub id: SpiffeId,
    /// The kids dropped from the bundle.
    pub revoked: Vec<String>,
    /// Inconsistencies found in the root and repairs made on the way.
    pub notices: Vec<Notice>,
}

/// Removes a service: its bundle entry (revocation: peers refuse its tokens
/// once they read the new bundle), its key, its `id` file and its directory
/// (left in place, with a [`Notice::FilesLeft`], if it holds other files or
/// nested services).
///
/// All or nothing: the key is first set aside (renamed beside itself), then
/// the bundle is written without the identity, which commits the removal;
/// only then are the files deleted. A failed bundle write puts the key back
/// ([`Error::RolledBack`]); a crash leaves the set-aside key, which the next
/// operation puts back (the bundle still binds it) or deletes (it does not).
pub fn remove_service(root: impl AsRef<Path>, name: &str) -> Result<Removed, Error> {
    let mut open = Open::write(root.as_ref())?;
    let service = open.checked_service(name)?;
    let key_file = service.key_file();
    let in_bundle = open.bundle.contains(&service.id);
    let has_key = nofollow::exists(&key_file)?;
    let has_files = has_key || nofollow::exists(&service.id_file())?;
    if !in_bundle && !has_files {
        return Err(Error::UnknownService {
            name: service.name,
            root: open.root.clone(),
        });
    }
    let aside = service.removed_key_file();
    let mut undo = Undo::new(format!("remove of `{}`", service.id));
    let mut revoked = Vec::new();
    let result = (|| {
        if has_key {
            fs::rename(&key_file, &aside).map_err(fsutil::fail(&key_file, "set aside"))?;
            undo.renamed(key_file.clone(), aside.clone());
        }
        if in_bundle {
            revoked = open
                .bundle
                .remove_identity(&service.id)
                .map(|keys| keys.iter().map(|k| k.kid().to_owned()).collect())
                .unwrap_or_default();
            open.write_bundle()?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let state = format!(
            "its key is set aside as {}; the next provisioning command of this root puts it back",
            aside.display()
        );
        return Err(undo.roll_back(&open, e, &state));
    }
    // Committed: the identity is revoked. What follows is cleanup; what
    // cannot be deleted is reported, and the set-aside key is deleted by the
    // next operation if not now.
    if has_key && remove_if_present(&aside).is_err() {
        open.note(Notice::FilesLeft {
            dir: service.dir.clone(),
        });
    }
    let _ = sync_dir(&service.dir);
    let _ = remove_if_present(&service.id_file());
    // Remove the directory and then its empty parents, up to `services/`.
    let services = open.services_dir();
    let mut dir = service.dir.clone();
    let mut first = true;
    while dir != services && dir.starts_with(&services) {
        match fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => {
                if first {
                    open.note(Notice::FilesLeft { dir: dir.clone() });
                }
                break;
            }
        }
        first = false;
        if !dir.pop() {
            break;
        }
    }
    let _ = sync_dir(&services);
    Ok(Removed {
        id: service.id,
        revoked,
        notices: open.finish(),
    })
}
