//! A root opened for an operation: under its lock, with its bundle read,
//! and the notices the operation collects on the way.

use std::path::{Path, PathBuf};

use spiffile_bundle::{Bundle, MAX_BUNDLE_BYTES, PublicKey};
use spiffile_id::SpiffeId;

use crate::fsutil::write_atomic;
use crate::layout::bundle_path;
use crate::lock::{self, RootLock};
use crate::{BUNDLE_FILE, Error, LOCK_FILE, Notice, SERVICES_DIR, audit, nofollow};

/// A root opened under its lock, with its bundle read.
pub(crate) struct Open {
    pub(crate) root: PathBuf,
    pub(crate) bundle: Bundle,
    /// The bundle's bytes as read, written back when an operation is undone.
    pub(crate) original: Vec<u8>,
    notices: Vec<Notice>,
    _lock: Option<RootLock>,
}

/// Reads and parses a root's bundle (never through a link).
pub(crate) fn read_bundle(root: &Path) -> Result<(Bundle, Vec<u8>), Error> {
    let path = bundle_path(root);
    match nofollow::read_optional(&path, MAX_BUNDLE_BYTES as u64)? {
        None => Err(Error::NotARoot {
            root: root.to_owned(),
        }),
        Some(bytes) => Bundle::from_json_quiet(&bytes)
            .map(|b| (b, bytes))
            .map_err(|source| Error::Bundle { path, source }),
    }
}

pub(crate) fn check_root_dir(root: &Path) -> Result<(), Error> {
    if root.is_dir() {
        Ok(())
    } else {
        Err(Error::NotARoot {
            root: root.to_owned(),
        })
    }
}

/// The checks every operation makes before it locks: the root is a
/// directory, and neither its bundle nor `services/` is a link.
pub(crate) fn check_root(root: &Path) -> Result<(), Error> {
    check_root_dir(root)?;
    if !nofollow::exists(&bundle_path(root))? {
        return Err(Error::NotARoot {
            root: root.to_owned(),
        });
    }
    nofollow::check_dir(&root.join(SERVICES_DIR))?;
    Ok(())
}

impl Open {
    /// Opens for writing: exclusive lock, bundle read, leftovers repaired.
    pub(crate) fn write(root: &Path) -> Result<Open, Error> {
        check_root(root)?;
        let lock = lock::lock_exclusive(&root.join(LOCK_FILE))?;
        let (bundle, original) = read_bundle(root)?;
        let problems: Vec<String> = bundle
            .warnings()
            .iter()
            .filter(|w| w.kind.is_skip())
            .map(|w| w.to_string())
            .collect();
        if !problems.is_empty() {
            return Err(Error::UnreadableEntries {
                path: bundle_path(root),
                problems,
            });
        }
        let mut open = Open {
            root: root.to_owned(),
            bundle,
            original,
            notices: Vec::new(),
            _lock: Some(lock),
        };
        for n in audit::notices(&[root.to_owned(), open.services_dir()]) {
            open.note(n);
        }
        open.housekeeping()?;
        Ok(open)
    }

    /// Opens for reading: shared lock when possible, bundle read.
    pub(crate) fn read(root: &Path) -> Result<Open, Error> {
        check_root(root)?;
        let lock = lock::lock_shared(&root.join(LOCK_FILE))?;
        let (bundle, _) = read_bundle(root)?;
        Ok(Open {
            root: root.to_owned(),
            bundle,
            original: Vec::new(),
            notices: Vec::new(),
            _lock: lock,
        })
    }

    /// A root being created (by `import_root`) under `lock`, before its
    /// bundle is on disk.
    pub(crate) fn creating(root: &Path, bundle: Bundle, lock: RootLock) -> Open {
        Open {
            root: root.to_owned(),
            bundle,
            // Nothing to restore: there was no bundle before.
            original: Vec::new(),
            notices: Vec::new(),
            _lock: Some(lock),
        }
    }

    pub(crate) fn bundle_kids(&self, id: &SpiffeId) -> Vec<String> {
        self.bundle
            .keys(id)
            .map(|keys| keys.iter().map(|k| k.kid().to_owned()).collect())
            .unwrap_or_default()
    }

    /// Another identity than `id` that the bundle binds `key` to (the same
    /// point, whatever the kid).
    pub(crate) fn bound_elsewhere(&self, key: &PublicKey, id: &SpiffeId) -> Option<SpiffeId> {
        self.bundle
            .identities()
            .find(|(other, keys)| *other != id && keys.iter().any(|k| k.same_point(key)))
            .map(|(other, _)| other.clone())
    }

    pub(crate) fn write_bundle(&self) -> Result<(), Error> {
        crate::faults::check("bundle")?;
        let json = self.bundle.to_json();
        if json.len() > MAX_BUNDLE_BYTES {
            return Err(Error::Bundle {
                path: bundle_path(&self.root),
                source: spiffile_bundle::BundleError::TooLarge {
                    len: json.len(),
                    max: MAX_BUNDLE_BYTES,
                },
            });
        }
        write_atomic(&self.root, BUNDLE_FILE, json.as_bytes(), 0o644, true)?;
        Ok(())
    }

    pub(crate) fn note(&mut self, notice: Notice) {
        tracing::warn!(target: "spiffile::provision", "{notice}");
        self.notices.push(notice);
    }

    pub(crate) fn finish(mut self) -> Vec<Notice> {
        self.report_inconsistencies();
        self.notices
    }
}

pub(crate) fn in_bundle_error(e: spiffile_bundle::BundleError, root: &Path) -> Error {
    Error::Bundle {
        path: bundle_path(root),
        source: e,
    }
}
