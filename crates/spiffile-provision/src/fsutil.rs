//! File-system primitives: atomic replacement, private files, bounded reads.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Prefix of every file and directory name this crate creates for its own
/// bookkeeping (temporary files, staged keys). Service names may not use it.
pub(crate) const RESERVED_PREFIX: &str = ".spiffile-";
/// Prefix of temporary files written before a rename.
pub(crate) const TEMP_PREFIX: &str = ".spiffile-tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary name unique to this process and call.
fn temp_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{TEMP_PREFIX}{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a new file that nobody else can have opened: `create_new` with
/// `mode` from the first byte (on Unix).
fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)
}

/// Flushes a directory's entries (a rename or unlink inside it) to disk.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// An I/O failure with the path and the step that failed.
#[derive(Debug)]
pub(crate) struct IoFailure {
    pub(crate) path: PathBuf,
    pub(crate) action: &'static str,
    pub(crate) source: io::Error,
}

pub(crate) fn fail(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> IoFailure {
    let path = path.to_owned();
    move |source| IoFailure {
        path,
        action,
        source,
    }
}

/// Writes `contents` to `dir/name` atomically: a temporary file in the same
/// directory (created with `mode`), written and fsynced, renamed over the
/// target, then the directory fsynced. Readers see the old or the new file,
/// never a part; a crash leaves at most a stale temporary file.
///
/// When `keep_existing_mode` is set and the target exists, its permission
/// bits are carried over to the new file.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    contents: &[u8],
    mode: u32,
    keep_existing_mode: bool,
) -> Result<(), IoFailure> {
    let target = dir.join(name);
    let temp = dir.join(temp_name());
    let existing_mode = if keep_existing_mode {
        existing_permissions(&target)
    } else {
        None
    };
    let result = (|| {
        let mut file = create_new(&temp, mode).map_err(fail(&temp, "create"))?;
        file.write_all(contents).map_err(fail(&temp, "write"))?;
        if let Some(perms) = existing_mode {
            file.set_permissions(perms)
                .map_err(fail(&temp, "set the permissions of"))?;
        }
        file.sync_all().map_err(fail(&temp, "fsync"))?;
        drop(file);
        fs::rename(&temp, &target).map_err(fail(&target, "rename a new version over"))?;
        sync_dir(dir).map_err(fail(dir, "fsync directory"))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn existing_permissions(path: &Path) -> Option<fs::Permissions> {
    fs::metadata(path).ok().map(|m| m.permissions())
}

/// Replaces the file at `path` with `contents` atomically (temporary file in
/// the same directory, fsync, rename, fsync of the directory), keeping the
/// file's permission bits when it exists (0644 minus the umask otherwise).
///
/// A symbolic link at `path` is resolved first, so the file it points to is
/// replaced and the link is kept.
pub fn replace_file_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let resolved = match fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_owned(),
        Err(e) => return Err(e),
    };
    let name = resolved
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_owned();
    let dir = match resolved.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    write_atomic(&dir, &name, contents, 0o644, true).map_err(|f| {
        io::Error::new(
            f.source.kind(),
            format!("cannot {} {}: {}", f.action, f.path.display(), f.source),
        )
    })
}

/// Creates `path` and its missing parents, each with `mode` (on Unix).
pub(crate) fn create_dirs(path: &Path, mode: u32) -> Result<(), IoFailure> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder.create(path).map_err(fail(path, "create directory"))
}

/// Reads a whole regular file of at most `max` bytes; `Ok(None)` when it does
/// not exist.
pub(crate) fn read_optional(path: &Path, max: u64) -> Result<Option<Vec<u8>>, IoFailure> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(path, "read")(e)),
    };
    if !meta.is_file() {
        return Err(IoFailure {
            path: path.to_owned(),
            action: "read",
            source: io::Error::new(io::ErrorKind::InvalidData, "not a regular file"),
        });
    }
    let file = File::open(path).map_err(fail(path, "open"))?;
    let mut buf = Vec::with_capacity(meta.len().min(max) as usize + 1);
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(fail(path, "read"))?;
    if buf.len() as u64 > max {
        return Err(IoFailure {
            path: path.to_owned(),
            action: "read",
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than {max} bytes"),
            ),
        });
    }
    Ok(Some(buf))
}

/// Removes a file; a missing file is not an error. Returns whether it existed.
pub(crate) fn remove_if_present(path: &Path) -> Result<bool, IoFailure> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(fail(path, "remove")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn private_files_have_their_mode_before_any_byte_is_written() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let file = create_new(&path, 0o600).unwrap();
        let mode = file.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(file.metadata().unwrap().len(), 0);
        // create_new never reuses a file someone else prepared.
        assert!(create_new(&path, 0o600).is_err());
    }

    #[test]
    fn atomic_write_replaces_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "f", b"one", 0o644, true).unwrap();
        write_atomic(dir.path(), "f", b"two", 0o644, true).unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // A failed write (the target is a directory) removes its temp file.
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/x"), b"").unwrap();
        assert!(write_atomic(dir.path(), "d", b"x", 0o644, false).is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn replace_keeps_the_mode_and_follows_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        fs::write(&real, b"old").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        replace_file_atomically(&link, b"new").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), b"new");
        let mode = fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }
}
