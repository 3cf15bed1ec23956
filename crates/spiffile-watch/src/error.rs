//! Errors from reading and parsing watched files.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// What a parser was given when it failed: one file, files parsed together,
/// or a directory's files combined.
///
/// Its `Display` names the paths (`/etc/x/svid.pem + /etc/x/svid_key.pem`,
/// `directory /etc/bundles`).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// One file: a single-file source, or one file of a directory.
    File(PathBuf),
    /// The files of a file set, in the order they were given.
    Files(Vec<PathBuf>),
    /// A directory source's files, combined.
    Dir(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Files(paths) => {
                for (i, path) in paths.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" + ")?;
                    }
                    write!(f, "{}", path.display())?;
                }
                Ok(())
            }
            Origin::Dir(path) => write!(f, "directory {}", path.display()),
        }
    }
}

/// Errors from reading or parsing watched files; `E` is the parser's own
/// error type, returned unaltered (no boxing, nothing to downcast).
///
/// Messages name the file or directory and never quote file content.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum WatchError<E> {
    /// A file could not be opened or read (missing, permission denied, not
    /// a regular file, over a size limit, ...), or a directory could not be
    /// listed or holds more than its limits allow. The [`io::ErrorKind`]
    /// says which: `InvalidInput` for a file that is not a regular file,
    /// `FileTooLarge` for a size or count limit.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The caller's parser rejected the content.
    #[error("cannot parse {origin}: {source}")]
    Parse {
        /// What the parser was given.
        origin: Origin,
        /// The parser's error, unaltered.
        #[source]
        source: E,
    },
    /// The caller's parser panicked (treated like a rejection: the last good
    /// value stays).
    #[error("cannot parse {origin}: the parser panicked")]
    Panicked {
        /// What the parser was given.
        origin: Origin,
    },
    /// The process-wide watcher thread could not be started.
    #[error("cannot start the file watcher thread: {source}")]
    Thread {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl<E> WatchError<E> {
    /// Separates the parser's own error from the watcher's: `Ok` with what
    /// the parser was given and its error for [`WatchError::Parse`], `Err`
    /// with every other variant unchanged (its type no longer mentions `E`).
    ///
    /// This is how a layer above maps errors faithfully: its parser's errors
    /// are already its own, everything else is the watcher's.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use spiffile_watch::{Origin, WatchError};
    ///
    /// let e: WatchError<std::num::ParseIntError> = WatchError::Parse {
    ///     origin: Origin::File("/etc/n".into()),
    ///     source: "x".parse::<u32>().unwrap_err(),
    /// };
    /// let (origin, source) = e.into_parse_error().unwrap();
    /// assert_eq!((origin.to_string(), source.to_string()), ("/etc/n".into(), "invalid digit found in string".into()));
    ///
    /// let e: WatchError<std::num::ParseIntError> = WatchError::Panicked { origin: Origin::File("/etc/n".into()) };
    /// let other: WatchError<Infallible> = e.into_parse_error().unwrap_err();
    /// assert_eq!(other.to_string(), "cannot parse /etc/n: the parser panicked");
    /// ```
    pub fn into_parse_error(self) -> Result<(Origin, E), WatchError<Infallible>> {
        match self {
            WatchError::Parse { origin, source } => Ok((origin, source)),
            WatchError::Io { path, source } => Err(WatchError::Io { path, source }),
            WatchError::Panicked { origin } => Err(WatchError::Panicked { origin }),
            WatchError::Thread { source } => Err(WatchError::Thread { source }),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        WatchError::Io {
            path: path.into(),
            source,
        }
    }
}
