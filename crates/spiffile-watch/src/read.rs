//! Reading a watched file safely, and the metadata that reveals a change.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A timestamp younger than this (relative to when the file was read) is not
/// trusted to reveal a later change: the next poll reads the content.
pub(crate) const RACY_WINDOW: Duration = Duration::from_secs(2);

/// SHA-256 of a file's content: what "the content changed" means.
pub(crate) type Hash = [u8; 32];

pub(crate) fn digest(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// The metadata that reveals a replaced or rewritten file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mtime_ns: i128,
    pub(crate) ctime_ns: i128,
}

impl Stamp {
    /// The latest of mtime and ctime.
    fn changed_at(&self) -> Option<SystemTime> {
        let ns = self.mtime_ns.max(self.ctime_ns);
        let ns = u64::try_from(ns).ok()?;
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(ns))
    }
}

/// What a check saw of one file the last time it read it successfully.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    pub(crate) stamp: Stamp,
    /// When `stamp` was taken.
    pub(crate) read_at: SystemTime,
}

impl Seen {
    /// True when the file's current metadata proves it has not changed since
    /// it was seen: same stamp, and timestamps old enough to be trusted
    /// (they have a granularity: a change made right after the read may not
    /// have moved them).
    pub(crate) fn still_matches(&self, path: &Path) -> bool {
        let Ok(meta) = std::fs::metadata(path) else {
            return false;
        };
        if stamp_of(&meta) != self.stamp {
            return false;
        }
        match (
            self.stamp.changed_at(),
            self.read_at.checked_sub(RACY_WINDOW),
        ) {
            (Some(changed), Some(trusted_before)) => changed < trusted_before,
            _ => false,
        }
    }
}

#[cfg(unix)]
pub(crate) fn stamp_of(meta: &Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
    }
}

#[cfg(not(unix))]
pub(crate) fn stamp_of(meta: &Metadata) -> Stamp {
    let ns = |t: io::Result<SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128)
    };
    Stamp {
        dev: 0,
        ino: 0,
        size: meta.len(),
        mtime_ns: ns(meta.modified()),
        ctime_ns: ns(meta.created()),
    }
}

/// Reads a whole regular file of at most `max_size` bytes; the content is
/// wiped from memory when dropped.
///
/// The file is opened without blocking (a FIFO nobody writes to cannot hang
/// the reader) and its type and size are checked on the open file, so a file
/// swapped after a check cannot slip through. The buffer is allocated once,
/// for the size the file has; a file that grows while it is read is an error
/// (retry), so no reallocated copy of a secret is ever left behind.
///
/// Errors: [`io::ErrorKind::InvalidInput`] for a directory or another
/// non-regular file, [`io::ErrorKind::FileTooLarge`] above `max_size`,
/// [`io::ErrorKind::Interrupted`] when the file changed size while being
/// read; otherwise the system's error. Messages say what the file is, never
/// what it holds.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("id");
/// std::fs::write(&path, "spiffe://example.org/orders\n")?;
/// assert_eq!(spiffile_watch::read_regular_file(&path, 4096)?.len(), 28);
/// let e = spiffile_watch::read_regular_file(dir.path(), 4096).unwrap_err();
/// assert_eq!(e.to_string(), "is a directory; expected a regular file");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_regular_file(path: &Path, max_size: u64) -> io::Result<Zeroizing<Vec<u8>>> {
    read_file(path, max_size).map(|(bytes, _)| bytes)
}

/// [`read_regular_file`], also returning the stamp of the open file (taken
/// before reading).
pub(crate) fn read_file(path: &Path, max_size: u64) -> io::Result<(Zeroizing<Vec<u8>>, Stamp)> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file: File = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "is a directory; expected a regular file"
        } else {
            "is not a regular file (a FIFO, socket or device); expected a regular file"
        };
        return Err(io::Error::new(io::ErrorKind::InvalidInput, what));
    }
    if meta.len() > max_size {
        return Err(too_large(meta.len(), max_size));
    }
    // One byte more than the size seen, to notice a file that grew.
    let capacity = usize::try_from(meta.len())
        .map_err(|_| io::Error::new(io::ErrorKind::FileTooLarge, "is too large for memory"))?
        .saturating_add(1);
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(capacity as u64).read_to_end(&mut bytes)?;
    if bytes.len() == capacity {
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "changed size while being read",
        ));
    }
    Ok((bytes, stamp_of(&meta)))
}

pub(crate) fn too_large(len: u64, max_size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("is {len} bytes, larger than the limit of {max_size} bytes"),
    )
}
