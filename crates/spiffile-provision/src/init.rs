//! `init_root`: a new, empty root.

use std::path::Path;

use spiffile_bundle::Bundle;
use spiffile_id::TrustDomain;

use crate::fsutil::{create_dir_chain, create_dirs, write_atomic};
use crate::layout::bundle_path;
use crate::lock;
use crate::open::read_bundle;
use crate::{BUNDLE_FILE, Error, LOCK_FILE, SERVICES_DIR, nofollow};

/// Initializes a root for `trust_domain`: creates the directory (if needed),
/// `services/`, and an empty `bundle.json`.
///
/// Fails with [`Error::AlreadyInitialized`] when the root already has a
/// bundle, and with [`Error::Symlink`] when its bundle, lock file or
/// `services/` is a symbolic link. The bundle is written last, so a failed
/// `init` leaves no root (the directories it created are removed again).
pub fn init_root(root: impl AsRef<Path>, trust_domain: &str) -> Result<TrustDomain, Error> {
    let root = root.as_ref();
    let td = TrustDomain::new(trust_domain).map_err(|source| Error::InvalidTrustDomain {
        given: trust_domain.chars().take(300).collect(),
        source,
    })?;
    create_dirs(root, 0o755)?;
    let _lock = lock::lock_exclusive(&root.join(LOCK_FILE))?;
    if nofollow::exists(&bundle_path(root))? {
        let existing = match read_bundle(root) {
            Ok((b, _)) => b.trust_domain().to_string(),
            Err(e @ Error::Symlink { .. }) => return Err(e),
            Err(_) => "unreadable".to_owned(),
        };
        return Err(Error::AlreadyInitialized {
            root: root.to_owned(),
            trust_domain: existing,
        });
    }
    nofollow::check_dir(&root.join(SERVICES_DIR))?;
    let created = create_dir_chain(root, [SERVICES_DIR], 0o755)?;
    let bundle = Bundle::new(td.clone());
    let written = crate::faults::check("bundle")
        .and_then(|()| write_atomic(root, BUNDLE_FILE, bundle.to_json().as_bytes(), 0o644, false));
    if let Err(e) = written {
        for dir in created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
        return Err(e.into());
    }
    Ok(td)
}
