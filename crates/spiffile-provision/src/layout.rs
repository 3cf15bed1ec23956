//! The layout of a root on disk: where a service's files are, how a name
//! maps to a directory, and the walk that finds the service directories.

use std::fs;
use std::path::{Path, PathBuf};

use spiffile_id::SpiffeId;

use crate::fsutil::{RESERVED_PREFIX, TEMP_PREFIX};
use crate::open::Open;
use crate::{BUNDLE_FILE, Error, ID_FILE, KEY_FILE, SERVICES_DIR, nofollow};

/// A new key (of an `add` or a rotation) staged beside `key.pem` until the
/// bundle holds it.
pub(crate) const NEXT_KEY_FILE: &str = ".spiffile-next-key.pem";
/// The key of a service being removed, set aside until the bundle no longer
/// binds it.
pub(crate) const REMOVED_KEY_FILE: &str = ".spiffile-removed-key.pem";
/// Deepest service directory looked at (a SPIFFE ID is at most 2048 bytes).
pub(crate) const MAX_DEPTH: usize = 1024;

/// A service name resolved against a root.
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) id: SpiffeId,
    pub(crate) dir: PathBuf,
}

impl Service {
    pub(crate) fn key_file(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }
    pub(crate) fn id_file(&self) -> PathBuf {
        self.dir.join(ID_FILE)
    }
    pub(crate) fn staged_key_file(&self) -> PathBuf {
        self.dir.join(NEXT_KEY_FILE)
    }
    pub(crate) fn removed_key_file(&self) -> PathBuf {
        self.dir.join(REMOVED_KEY_FILE)
    }
    /// The segments of its name: one directory each below `services/`.
    pub(crate) fn segments(&self) -> impl Iterator<Item = &str> {
        self.name.split('/')
    }
    /// `services/` and each directory down to the service's own, those that
    /// exist.
    pub(crate) fn existing_dirs(&self, services: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut path = services.to_owned();
        if !path.is_dir() {
            return out;
        }
        out.push(path.clone());
        for s in self.segments() {
            path.push(s);
            if !path.is_dir() {
                break;
            }
            out.push(path.clone());
        }
        out
    }
}

/// The bundle file of `root`.
pub(crate) fn bundle_path(root: &Path) -> PathBuf {
    root.join(BUNDLE_FILE)
}

impl Open {
    pub(crate) fn services_dir(&self) -> PathBuf {
        self.root.join(SERVICES_DIR)
    }

    /// Resolves a service name (or a full SPIFFE ID of the root's trust
    /// domain).
    pub(crate) fn service(&self, name: &str) -> Result<Service, Error> {
        let td = self.bundle.trust_domain();
        let path = match name.strip_prefix(spiffile_id::SCHEME_PREFIX) {
            Some(_) => {
                let id = SpiffeId::new(name).map_err(|e| Error::InvalidName {
                    name: name.to_owned(),
                    problem: format!("it {e}"),
                })?;
                if id.trust_domain() != td {
                    return Err(Error::TrustDomainMismatch {
                        id,
                        trust_domain: td.clone(),
                    });
                }
                id.path().trim_start_matches('/').to_owned()
            }
            None => name.to_owned(),
        };
        self.service_at(&path)
            .map_err(|problem| Error::InvalidName {
                name: name.to_owned(),
                problem,
            })
    }

    /// Resolves a service name like [`Open::service`], then checks the way
    /// to it on disk: no directory from `services/` down to the service's,
    /// and none of its files, is a symbolic link ([`Error::Symlink`]).
    pub(crate) fn checked_service(&self, name: &str) -> Result<Service, Error> {
        let service = self.service(name)?;
        check_service_paths(&self.services_dir(), &service)?;
        Ok(service)
    }

    pub(crate) fn service_at(&self, path: &str) -> Result<Service, String> {
        if path.is_empty() {
            return Err("it is empty (the trust domain itself is not a service)".into());
        }
        let id = self
            .bundle
            .trust_domain()
            .join(path)
            .map_err(|e| format!("it {e}"))?;
        let mut dir = self.services_dir();
        for (i, segment) in path.split('/').enumerate() {
            if segment.starts_with(RESERVED_PREFIX) {
                return Err(format!(
                    "the segment {segment:?} starts with {RESERVED_PREFIX:?}, which spiffile reserves for its own files"
                ));
            }
            if i > 0 && (segment == KEY_FILE || segment == ID_FILE) {
                return Err(format!(
                    "the segment {segment:?} would collide with the {segment} file of the service above it"
                ));
            }
            dir.push(segment);
        }
        Ok(Service {
            name: path.to_owned(),
            id,
            dir,
        })
    }
}

/// Checks that no directory from `services/` down to the service's, and
/// none of the service's own files, is a symbolic link.
pub(crate) fn check_service_paths(services: &Path, service: &Service) -> Result<(), Error> {
    nofollow::check_dirs(services, service.segments())?;
    for file in [
        service.key_file(),
        service.id_file(),
        service.staged_key_file(),
        service.removed_key_file(),
    ] {
        nofollow::entry(&file)?;
    }
    Ok(())
}

/// A directory under `services/` that holds service files.
pub(crate) struct DiskService {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) has_key: bool,
    pub(crate) has_next_key: bool,
    pub(crate) has_removed_key: bool,
}

/// Walks `services/` for directories holding `key.pem`, `id`, a staged key
/// or a temporary file. Symbolic links and spiffile's own files are not followed.
pub(crate) fn service_dirs(services: &Path) -> Vec<DiskService> {
    let mut found = Vec::new();
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(services.to_owned(), String::new(), 0)];
    while let Some((dir, name, depth)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let (mut has_key, mut has_id, mut has_next_key, mut has_removed_key, mut has_temp) =
            (false, false, false, false, false);
        for entry in entries.flatten() {
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if file_type.is_dir() {
                if depth < MAX_DEPTH && !file_name.starts_with(RESERVED_PREFIX) {
                    let child = if name.is_empty() {
                        file_name
                    } else {
                        format!("{name}/{file_name}")
                    };
                    stack.push((entry.path(), child, depth + 1));
                }
                continue;
            }
            match file_name.as_str() {
                KEY_FILE => has_key = true,
                ID_FILE => has_id = true,
                NEXT_KEY_FILE => has_next_key = true,
                REMOVED_KEY_FILE => has_removed_key = true,
                n if n.starts_with(TEMP_PREFIX) => has_temp = true,
                _ => {}
            }
        }
        // A directory holding only a temporary file is an `add` interrupted
        // before its key was in place: listed for the housekeeping.
        if depth > 0 && (has_key || has_id || has_next_key || has_removed_key || has_temp) {
            found.push(DiskService {
                name,
                path: dir,
                has_key,
                has_next_key,
                has_removed_key,
            });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}
