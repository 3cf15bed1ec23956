//! A root opened for an operation: under its lock, with its bundle read,
//! and the notices the operation collects on the way.

use std::path::{Path, PathBuf};

use spiffile_bundle::{Bundle, MAX_BUNDLE_BYTES};
use spiffile_id::SpiffeId;

use crate::fsutil::{read_optional, write_atomic};
use crate::layout::bundle_path;
use crate::lock::{self, RootLock};
use crate::{BUNDLE_FILE, Error, LOCK_FILE, Notice};

/// A root opened under its lock, with its bundle read.
pub(crate) struct Open {
    pub(crate) root: PathBuf,
    pub(crate) bundle: Bundle,
    notices: Vec<Notice>,
    _lock: Option<RootLock>,
}

pub(crate) fn read_bundle(root: &Path) -> Result<Bundle, Error> {
    let path = bundle_path(root);
    match read_optional(&path, MAX_BUNDLE_BYTES as u64)? {
        None => Err(Error::NotARoot {
            root: root.to_owned(),
        }),
        Some(bytes) => {
            Bundle::from_json_quiet(&bytes).map_err(|source| Error::Bundle { path, source })
        }
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

impl Open {
    /// Opens for writing: exclusive lock, bundle read, leftovers repaired.
    pub(crate) fn write(root: &Path) -> Result<Open, Error> {
        check_root_dir(root)?;
        if !bundle_path(root).exists() {
            return Err(Error::NotARoot {
                root: root.to_owned(),
            });
        }
        let lock = lock::lock_exclusive(&root.join(LOCK_FILE))?;
        let bundle = read_bundle(root)?;
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
            notices: Vec::new(),
            _lock: Some(lock),
        };
        open.housekeeping()?;
        Ok(open)
    }

    /// Opens for reading: shared lock when possible, bundle read.
    pub(crate) fn read(root: &Path) -> Result<Open, Error> {
        check_root_dir(root)?;
        let lock = lock::lock_shared(&root.join(LOCK_FILE));
        let bundle = read_bundle(root)?;
        Ok(Open {
            root: root.to_owned(),
            bundle,
            notices: Vec::new(),
            _lock: lock,
        })
    }

    pub(crate) fn bundle_kids(&self, id: &SpiffeId) -> Vec<String> {
        self.bundle
            .keys(id.as_str())
            .map(|keys| keys.iter().map(|k| k.kid().to_owned()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn write_bundle(&self) -> Result<(), Error> {
        let json = self.bundle.to_json();
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
