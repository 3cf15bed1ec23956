//! File-system primitives: atomic replacement, private files, bounded reads.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Prefix of every file and directory name this crate creates for its own
/// bookkeeping (temporary files, staged keys). Service names may not use it.
pub(crate) const RESERVED_PREFIX: &str = ".spiffile-";
/// Prefix of temporary files written before a rename.
pub(crate) const TEMP_PREFIX: &str = ".spiffile-tmp-";

/// A new temporary file in `dir` that nobody else can have opened
/// (`O_CREAT | O_EXCL`, a random name after [`TEMP_PREFIX`]), with `mode`
/// from its first byte on Unix. It is deleted when dropped unless persisted.
fn create_temp(dir: &Path, mode: u32) -> io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder.tempfile_in(dir)
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
    let existing_mode = if keep_existing_mode {
        existing_permissions(&target)
    } else {
        None
    };
    // `tempfile` creates the file (exclusively, with its mode) and deletes
    // it on every early return; `persist` is the rename. The fsyncs, of the
    // file before the rename and of the directory after it, are ours.
    let mut file = create_temp(dir, mode).map_err(fail(dir, "create a temporary file in"))?;
    let temp = file.path().to_owned();
    file.write_all(contents).map_err(fail(&temp, "write"))?;
    if let Some(perms) = existing_mode {
        file.as_file()
            .set_permissions(perms)
            .map_err(fail(&temp, "set the permissions of"))?;
    }
    file.as_file().sync_all().map_err(fail(&temp, "fsync"))?;
    file.persist(&target)
        .map_err(|e| fail(&target, "rename a new version over")(e.error))?;
    sync_dir(dir).map_err(fail(dir, "fsync directory"))
}

fn existing_permissions(path: &Path) -> Option<fs::Permissions> {
    fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.permissions())
}

/// Replaces the file at `path` with `contents` atomically (temporary file in
/// the same directory, fsync, rename, fsync of the directory), keeping the
/// file's permission bits when it exists (0644 minus the umask otherwise).
///
/// A symbolic link at `path` is refused (an error of kind
/// [`io::ErrorKind::InvalidInput`] naming the link and its target), never
/// followed and never replaced: replacing the link with a file would leave
/// its target stale for everyone reading through it, and following it would
/// write wherever it points. The provisioner treats a root's `bundle.json`
/// the same way ([`crate::Error::Symlink`]).
pub fn replace_file_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Ok(meta) = fs::symlink_metadata(path)
        && meta.file_type().is_symlink()
    {
        let target = fs::read_link(path)
            .map(|t| format!(" (to {})", t.display()))
            .unwrap_or_default();
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}{target} is a symbolic link; it is not followed or replaced: run this on the file it points to",
                path.display()
            ),
        ));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_owned();
    let dir = match path.parent() {
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

/// Creates `base/c1/…/cn` one directory at a time, each with `mode`, and
/// returns the ones it created (outermost first), so a failed operation can
/// remove them again. A directory that already exists is kept as it is (the
/// caller has checked that none is a link).
pub(crate) fn create_dir_chain<'a>(
    base: &Path,
    components: impl IntoIterator<Item = &'a str>,
    mode: u32,
) -> Result<Vec<PathBuf>, IoFailure> {
    let mut created = Vec::new();
    let mut path = base.to_owned();
    for c in components {
        path.push(c);
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        match builder.create(&path) {
            Ok(()) => created.push(path.clone()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(&path, "create directory")(e)),
        }
    }
    Ok(created)
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
        let file = create_temp(dir.path(), 0o600).unwrap();
        let meta = file.as_file().metadata().unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 0);
        let name = file.path().file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(TEMP_PREFIX), "{name}");
        let path = file.path().to_owned();
        drop(file);
        assert!(!path.exists(), "an unpersisted temporary file is deleted");
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
    fn replace_keeps_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        fs::write(&real, b"old").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        replace_file_atomically(&real, b"new").unwrap();
        assert_eq!(fs::read(&real).unwrap(), b"new");
        let mode = fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    /// Issue 15, item 1: the public atomic write used to follow a link and
    /// the provisioner to replace it; both now refuse it, and nothing
    /// changes on either side of the link.
    #[cfg(unix)]
    #[test]
    fn replace_refuses_a_symlink_and_leaves_both_sides_alone() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        fs::write(&real, b"old").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = replace_file_atomically(&link, b"new").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("link.json"), "{e}");
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
