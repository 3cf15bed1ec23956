//! `remove_service`: a service's key, bundle entry and files removed.

use std::fs;
use std::io;
use std::path::Path;

use spiffile_id::SpiffeId;

use crate::fsutil::{self, remove_if_present, sync_dir};
use crate::open::Open;
use crate::{Error, Notice};

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

/// Removes a service: its key file first, then its bundle entry (revocation:
/// peers refuse its tokens once they read the new bundle), then its `id`
/// file and its directory (left in place, with a [`Notice::FilesLeft`], if
/// it holds other files or nested services).
pub fn remove_service(root: impl AsRef<Path>, name: &str) -> Result<Removed, Error> {
    let mut open = Open::write(root.as_ref())?;
    let service = open.service(name)?;
    let in_bundle = open.bundle.contains(service.id.as_str());
    let has_files = service.key_file().exists() || service.id_file().exists();
    if !in_bundle && !has_files {
        return Err(Error::UnknownService {
            name: service.name,
            root: open.root.clone(),
        });
    }
    if remove_if_present(&service.key_file())? {
        sync_dir(&service.dir).map_err(fsutil::fail(&service.dir, "fsync directory"))?;
    }
    let revoked: Vec<String> = open
        .bundle
        .remove_identity(service.id.as_str())
        .map(|keys| keys.iter().map(|k| k.kid().to_owned()).collect())
        .unwrap_or_default();
    if in_bundle {
        open.write_bundle()?;
    }
    remove_if_present(&service.id_file())?;
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
