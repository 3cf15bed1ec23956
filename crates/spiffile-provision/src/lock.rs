//! The advisory lock on a root (`flock` on `<root>/.spiffile.lock`):
//! exclusive for operations that change the root, shared for reads.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use crate::fsutil::{IoFailure, fail};

/// The advisory lock on a root, released when dropped.
#[derive(Debug)]
pub(crate) struct RootLock {
    _file: File,
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o644);
    }
    options.open(path)
}

/// Takes the exclusive lock (waits for other provisioners).
pub(crate) fn lock_exclusive(path: &Path) -> Result<RootLock, IoFailure> {
    let file = open_lock_file(path).map_err(fail(path, "open the lock file"))?;
    file.lock().map_err(fail(path, "lock"))?;
    Ok(RootLock { _file: file })
}

/// Takes the shared lock when the lock file can be opened; a read-only root
/// (a mounted volume) is read without one.
pub(crate) fn lock_shared(path: &Path) -> Option<RootLock> {
    let file = match open_lock_file(path) {
        Ok(f) => f,
        Err(_) => File::open(path).ok()?,
    };
    file.lock_shared().ok()?;
    Some(RootLock { _file: file })
}
