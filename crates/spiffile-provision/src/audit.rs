//! Who can change a root: directories writable by others, or owned by
//! someone else, are reported ([`Notice::UnsafeDirectory`],
//! [`crate::ServiceStatus::Unsafe`]).
//!
//! Whoever can write a service's directory can replace its `key.pem`, and
//! whoever can write `services/` or the root can replace whole services or
//! the bundle: a group- or world-writable directory, or one owned by another
//! user, hands that service (or the whole root) to them. The rule is the one
//! OpenSSH applies to `~/.ssh`: owned by this user or by root, and not
//! writable by group or others.

use std::path::{Path, PathBuf};

use crate::Notice;

/// What is unsafe about the directory at `path`, if anything (a directory
/// that does not exist, or that cannot be inspected, has nothing to report
/// here; the operation itself reports it).
pub(crate) fn unsafe_dir(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path).ok()?;
        let mode = meta.mode() & 0o7777;
        let writable = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => Some("its group and all users"),
            (true, false) => Some("its group"),
            (false, true) => Some("all users"),
            (false, false) => None,
        };
        if let Some(who) = writable {
            return Some(format!(
                "is writable by {who} (mode {mode:04o}): they can replace keys in it; run `chmod go-w {}`",
                path.display()
            ));
        }
        let me = rustix::process::geteuid().as_raw();
        let owner = meta.uid();
        if owner != me && owner != 0 {
            return Some(format!(
                "is owned by uid {owner}, not by this user (uid {me}) or root: its owner can replace keys in it"
            ));
        }
        None
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The notices for each unsafe directory among `dirs`.
pub(crate) fn notices<'a>(dirs: impl IntoIterator<Item = &'a PathBuf>) -> Vec<Notice> {
    dirs.into_iter()
        .filter_map(|dir| {
            unsafe_dir(dir).map(|problem| Notice::UnsafeDirectory {
                dir: dir.clone(),
                problem,
            })
        })
        .collect()
}
