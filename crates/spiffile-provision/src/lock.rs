//! The advisory lock on a root (`flock` on `<root>/.spiffile.lock`):
//! exclusive for operations that change the root, shared for reads.
//!
//! The lock file is opened without following a link (a link planted there
//! would make every provisioner create or lock a file wherever it points).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use crate::Error;
use crate::fsutil::fail;
use crate::nofollow;

/// The advisory lock on a root, released when dropped.
#[derive(Debug)]
pub(crate) struct RootLock {
    _file: File,
}

fn open_lock_file(path: &Path, create: bool) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    options.read(true);
    if create {
        options.write(true).create(true).truncate(false);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o644);
    }
    let file = nofollow::open(&mut options, path, "open the lock file")?;
    let meta = file.metadata().map_err(fail(path, "open the lock file"))?;
    if !meta.is_file() {
        return Err(fail(path, "open the lock file")(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ))
        .into());
    }
    Ok(file)
}

/// Takes the exclusive lock (waits for other provisioners).
pub(crate) fn lock_exclusive(path: &Path) -> Result<RootLock, Error> {
    let file = open_lock_file(path, true)?;
    file.lock().map_err(fail(path, "lock"))?;
    Ok(RootLock { _file: file })
}

/// Takes the shared lock when the lock file can be opened; a read-only root
/// (a mounted volume) is read without one. A link at the lock file is an
/// error all the same.
pub(crate) fn lock_shared(path: &Path) -> Result<Option<RootLock>, Error> {
    let file = match open_lock_file(path, true) {
        Ok(f) => f,
        Err(e @ Error::Symlink { .. }) => return Err(e),
        Err(_) => match open_lock_file(path, false) {
            Ok(f) => f,
            Err(e @ Error::Symlink { .. }) => return Err(e),
            Err(_) => return Ok(None),
        },
    };
    Ok(file.lock_shared().ok().map(|()| RootLock { _file: file }))
}
