//! Paths inside a root, used without following symbolic links.
//!
//! A root is trusted only as far as its own directory tree: a link planted
//! in `services/` (or at `bundle.json`, `.spiffile.lock`, a `key.pem`)
//! pointing elsewhere would make an operation delete, overwrite or bind files
//! outside the root. Every directory on the way to a service is checked with
//! `lstat`, and every file is opened with `O_NOFOLLOW`, so a link is refused
//! with [`Error::Symlink`] naming it.
//!
//! What remains is a race: a process that can write `services/` itself could
//! swap a checked directory for a link between the check and the use. Such a
//! writer can replace any key anyway, which is why the directories' modes and
//! owners are audited too (`crate::audit`).

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::fsutil::IoFailure;

/// The error for a link found at `path`.
pub(crate) fn symlink_error(path: &Path) -> Error {
    Error::Symlink {
        link: path.to_owned(),
        target: fs::read_link(path).ok(),
    }
}

fn io_error(path: &Path, action: &'static str, source: io::Error) -> Error {
    Error::from(IoFailure {
        path: path.to_owned(),
        action,
        source,
    })
}

/// `lstat`: the entry itself, never what a link points to. `Ok(None)` when
/// there is nothing at `path`; [`Error::Symlink`] when it is a link.
pub(crate) fn entry(path: &Path) -> Result<Option<Metadata>, Error> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(symlink_error(path)),
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, "inspect", e)),
    }
}

/// Whether a file exists at `path`, refusing a link.
pub(crate) fn exists(path: &Path) -> Result<bool, Error> {
    Ok(entry(path)?.is_some())
}

/// Checks every directory from `base/first` down to `base/first/…/last`:
/// a link is [`Error::Symlink`], anything else that is not a directory an
/// I/O error. Stops at the first one that does not exist (it will be
/// created as a real directory). `base` itself is checked first.
pub(crate) fn check_dirs<'a>(
    base: &Path,
    components: impl IntoIterator<Item = &'a str>,
) -> Result<(), Error> {
    let mut path = base.to_owned();
    if !check_dir(&path)? {
        return Ok(());
    }
    for c in components {
        path.push(c);
        if !check_dir(&path)? {
            return Ok(());
        }
    }
    Ok(())
}

/// One directory: `Ok(true)` when it exists, `Ok(false)` when absent.
pub(crate) fn check_dir(path: &Path) -> Result<bool, Error> {
    match entry(path)? {
        None => Ok(false),
        Some(m) if m.is_dir() => Ok(true),
        Some(_) => Err(io_error(
            path,
            "use as a directory",
            io::Error::new(io::ErrorKind::InvalidInput, "it is not a directory"),
        )),
    }
}

/// Adds `O_NOFOLLOW` (and `O_NONBLOCK`, so that a FIFO never blocks the
/// open) on Unix.
pub(crate) fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        options.custom_flags(flags.bits() as i32);
    }
    options
}

/// Whether an open failed because the last component is a link.
fn is_link_error(path: &Path, e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        return true;
    }
    let _ = e;
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Opens `path` with `options`, never through a link at its last component.
pub(crate) fn open(
    options: &mut OpenOptions,
    path: &Path,
    action: &'static str,
) -> Result<File, Error> {
    #[cfg(not(unix))]
    if entry(path)?.is_some_and(|m| m.file_type().is_symlink()) {
        return Err(symlink_error(path));
    }
    no_follow(options).open(path).map_err(|e| {
        if is_link_error(path, &e) {
            symlink_error(path)
        } else {
            io_error(path, action, e)
        }
    })
}

/// Reads a whole regular file of at most `max` bytes, refusing a link;
/// `Ok(None)` when it does not exist. Type and size are checked on the open
/// file, so nothing swapped in between slips through.
pub(crate) fn read_optional(path: &Path, max: u64) -> Result<Option<Vec<u8>>, Error> {
    let file = match open(OpenOptions::new().read(true), path, "open") {
        Ok(f) => f,
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata().map_err(|e| io_error(path, "read", e))?;
    if !meta.is_file() {
        return Err(io_error(
            path,
            "read",
            io::Error::new(io::ErrorKind::InvalidData, "not a regular file"),
        ));
    }
    if meta.len() > max {
        return Err(too_large(path, max));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize + 1);
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_error(path, "read", e))?;
    if buf.len() as u64 > max {
        return Err(too_large(path, max));
    }
    Ok(Some(buf))
}

fn too_large(path: &Path, max: u64) -> Error {
    io_error(
        path,
        "read",
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ),
    )
}

/// Where a link at `path` points, for messages.
pub(crate) fn describe(target: &Option<PathBuf>) -> String {
    match target {
        Some(t) => format!(" (to {})", t.display()),
        None => String::new(),
    }
}
