//! What parsers receive: a file's bytes with its name and path, and the
//! parsed files of a directory.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// One file as a parser sees it: its name, its path and its whole content.
///
/// File sets hand their parser a slice of these in the order the paths were
/// given; directory sources hand each file to their per-file parser.
///
/// ```
/// use std::path::Path;
/// use spiffile_watch::FileRef;
///
/// let file = FileRef::new("svid.pem", Path::new("/run/svid/svid.pem"), b"-----BEGIN");
/// assert_eq!(file.name(), "svid.pem");
/// assert_eq!(file.bytes().len(), 10);
/// ```
#[derive(Clone, Copy)]
pub struct FileRef<'a> {
    name: &'a str,
    path: &'a Path,
    bytes: &'a [u8],
}

impl<'a> FileRef<'a> {
    /// A file as parsers see it (for testing a parser without files).
    pub fn new(name: &'a str, path: &'a Path, bytes: &'a [u8]) -> Self {
        FileRef { name, path, bytes }
    }

    /// The file name: for a directory source, the name of the entry in the
    /// directory (`bundle.json`, also when it is a Kubernetes symlink into
    /// `..data/`); for a file set, the last component of the configured path.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The path the file was read through (absolute; symlinks not resolved).
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// The whole content, as read in one go. It is wiped from memory after
    /// the parser returns; keep what you need, not the bytes, if the file is
    /// secret.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl fmt::Debug for FileRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the content: key files are secret.
        f.debug_struct("FileRef")
            .field("path", &self.path)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// One file of a directory source, as its per-file parser made it: what the
/// combining parser receives, sorted by name.
///
/// Cheap to clone (reference counts): a combined value can keep the parsed
/// files it is made of without copying them.
///
/// ```
/// use std::path::Path;
/// use spiffile_watch::DirEntry;
///
/// let entry = DirEntry::new("a.json", Path::new("/etc/bundles/a.json"), 42_u32);
/// assert_eq!((entry.name(), **entry.value()), ("a.json", 42));
/// ```
pub struct DirEntry<U> {
    name: Arc<str>,
    path: Arc<Path>,
    value: Arc<U>,
}

impl<U> DirEntry<U> {
    /// An entry (for testing a combining parser without files).
    pub fn new(name: &str, path: &Path, value: U) -> Self {
        DirEntry {
            name: name.into(),
            path: path.into(),
            value: Arc::new(value),
        }
    }

    pub(crate) fn from_parts(name: Arc<str>, path: Arc<Path>, value: Arc<U>) -> Self {
        DirEntry { name, path, value }
    }

    /// The entry's name in the directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path it was read through.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the per-file parser made of it.
    pub fn value(&self) -> &Arc<U> {
        &self.value
    }
}

impl<U> Clone for DirEntry<U> {
    fn clone(&self) -> Self {
        DirEntry {
            name: Arc::clone(&self.name),
            path: Arc::clone(&self.path),
            value: Arc::clone(&self.value),
        }
    }
}

impl<U> fmt::Debug for DirEntry<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirEntry")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
