//! Values parsed from files and kept up to date while the files change.
//!
//! A [`Watched<T, E>`] reads and parses its files once at startup (failing
//! loudly if it cannot), then follows them: every time their content
//! changes, the caller's parser runs again and the new value replaces the
//! old one atomically. Readers call [`Watched::load`], a single atomic load
//! (no system call, no lock), fine on every request. `E` is the parser's own
//! error type: errors come back unaltered inside [`WatchError::Parse`].
//!
//! Three kinds of source, one machinery:
//!
//! | constructor | reads | parser receives |
//! |---|---|---|
//! | [`Watched::new`] | one file | its bytes |
//! | [`Watched::files`] | several files that change together (a certificate and its key) | every file, in the order given ([`FileRef`]) |
//! | [`Watched::dir`] | every matching file of a directory ([`DirSource`]: `*.json`, every regular file, a Kubernetes volume) | each file on its own, then all parsed files together ([`DirEntry`]) |
//!
//! The crate knows nothing about what the files hold; it is built for files
//! that rotate under a running process (trust bundles, private keys,
//! certificates, tokens) and that real producers replace in every possible
//! way:
//!
//! * write a temporary file and rename it over the old one;
//! * truncate and rewrite in place (a reader can see an empty or half-written
//!   file for a moment; spiffe-helper does this);
//! * delete and recreate (the file can be missing for a moment);
//! * Kubernetes `AtomicWriter` volumes, where `bundle.json` is a symlink to
//!   `..data/bundle.json` and `..data` is a symlink swapped atomically to a
//!   new timestamped directory;
//! * replacements that keep the same size and the same modification time.
//!
//! # How changes are detected
//!
//! * **Events**: the directory of every file, and every directory its
//!   symlinks resolve through (for a directory source: the directory itself
//!   and the targets of its symlinked entries), are watched
//!   (non-recursively) with `notify`. On any event there, the paths are
//!   resolved again (the watches move to new symlink targets when needed),
//!   the files are read and their content compared (SHA-256) with the
//!   content being served. One `notify` watcher (one inotify instance on
//!   Linux) serves every `Watched` in the process, whatever their number.
//! * **Polling safety net**: every [`WatchOptions::poll_interval`] (1 s by
//!   default, at most 2 s) each file's `(device, inode, size, mtime, ctime)`
//!   (and a directory's list of files) is compared with the last one seen;
//!   if it differs, or if the last read was too close to the last change to
//!   trust timestamps, the content is read and compared. With events
//!   disabled ([`WatchOptions::use_notify`]) or unavailable, polling alone
//!   bounds the delay.
//!
//! # Failure policy
//!
//! Files that cannot be read or parsed **never** replace a good value: the
//! last good value keeps being served, [`Status::last_error`] (and the
//! file's [`FileStatus::last_error`]) describes the problem, a `tracing`
//! warning is logged once per distinct failure, and the files are retried on
//! every event and on a short backoff (5 ms, 10 ms, 20 ms… up to the poll
//! interval), so a half-written file heals within milliseconds. File
//! content never appears in errors or logs (key files are secret), and the
//! bytes read are wiped from memory once parsed.
//!
//! # Threads, locks, manual mode
//!
//! One background thread (`spiffile-watch`) follows every source of the
//! process: it starts with the first one and exits when the last clone of
//! the last `Watched` is dropped (the `notify` watcher and its thread are
//! released then too). Checks run on it one after another, so a slow parser
//! delays the other sources' reloads by its own duration, never their
//! readers. Parsing happens outside anything a reader takes: [`load`],
//! [`generation`] and [`status`] never wait for a reload in progress. No
//! async runtime is needed.
//!
//! [`WatchOptions::manual`] turns the following off: nothing runs in the
//! background, the value changes only on [`Watched::reload`], with the same
//! generation, status and failure bookkeeping.
//!
//! [`load`]: Watched::load
//! [`generation`]: Watched::generation
//! [`status`]: Watched::status
//!
//! # One file
//!
//! ```
//! use spiffile_watch::{WatchOptions, Watched};
//!
//! #[derive(Debug, thiserror::Error)]
//! enum GreetingError {
//!     #[error("is not UTF-8")]
//!     NotText,
//!     #[error("is empty")]
//!     Empty,
//! }
//!
//! // Reject what a half-written file can look like: here, an empty one.
//! fn parse(bytes: &[u8]) -> Result<String, GreetingError> {
//!     let text = std::str::from_utf8(bytes).map_err(|_| GreetingError::NotText)?;
//!     if text.is_empty() {
//!         return Err(GreetingError::Empty);
//!     }
//!     Ok(text.to_owned())
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("greeting.txt");
//! std::fs::write(&path, "hello")?;
//!
//! let greeting = Watched::new(&path, parse, WatchOptions::default())?;
//! assert_eq!(greeting.load().as_str(), "hello");
//! assert_eq!(greeting.generation(), 1);
//!
//! // Replace the file atomically; the worker picks it up on its own within
//! // milliseconds, `reload` just makes the example deterministic.
//! let tmp = dir.path().join(".greeting.txt.tmp");
//! std::fs::write(&tmp, "bonjour")?;
//! std::fs::rename(&tmp, &path)?;
//! greeting.reload()?;
//! assert_eq!(greeting.load().as_str(), "bonjour");
//! assert_eq!(greeting.generation(), 2);
//!
//! // A broken file never replaces the good value; the parser's own error
//! // comes back, no downcast needed.
//! std::fs::write(&path, [0xff, 0xfe])?;
//! let err = greeting.reload().unwrap_err();
//! assert!(matches!(err, spiffile_watch::WatchError::Parse { source: GreetingError::NotText, .. }));
//! assert_eq!(greeting.load().as_str(), "bonjour");
//! assert!(greeting.status().last_error.unwrap().ends_with("greeting.txt: is not UTF-8"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Files that must change together
//!
//! A certificate and its key: writers update them one after the other, so
//! for a moment a new certificate sits beside the old key. The parser
//! refuses the mismatch; the good pair keeps being served.
//!
//! ```
//! use spiffile_watch::{FileRef, WatchOptions, Watched};
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("{0}")]
//! struct PairError(String);
//!
//! /// Stands in for real certificate and key parsing: `cert:N` and `key:N`
//! /// match when N is the same.
//! fn parse_pair(files: &[FileRef<'_>]) -> Result<(String, String), PairError> {
//!     let [cert, key] = files else { unreachable!("two paths were given") };
//!     let cert = std::str::from_utf8(cert.bytes()).ok().and_then(|c| c.strip_prefix("cert:"));
//!     let key = std::str::from_utf8(key.bytes()).ok().and_then(|k| k.strip_prefix("key:"));
//!     match (cert, key) {
//!         (Some(c), Some(k)) if c == k => Ok((c.to_owned(), k.to_owned())),
//!         (Some(_), Some(_)) => Err(PairError("the key does not match the certificate".into())),
//!         _ => Err(PairError("not a certificate and a key".into())),
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let (cert, key) = (dir.path().join("svid.pem"), dir.path().join("svid_key.pem"));
//! std::fs::write(&cert, "cert:1")?;
//! std::fs::write(&key, "key:1")?;
//! let svid = Watched::files([&cert, &key], parse_pair, WatchOptions::manual())?;
//!
//! std::fs::write(&cert, "cert:2")?; // the new certificate arrives first
//! assert!(svid.reload().is_err());
//! assert_eq!(svid.load().0, "1"); // still the good pair
//! let status = svid.status();
//! assert!(status.last_error.unwrap().contains("the key does not match"));
//! assert_eq!(status.files.len(), 2);
//!
//! std::fs::write(&key, "key:2")?; // then its key
//! assert!(svid.reload()?);
//! assert_eq!(*svid.load_full(), ("2".to_owned(), "2".to_owned()));
//! assert!(svid.status().is_current());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # A directory
//!
//! Every `*.json` file, each parsed on its own (only when it changed), then
//! combined. A file that does not parse keeps its last good content and
//! reports its error; a combination the parser refuses keeps the last good
//! value.
//!
//! ```
//! use std::collections::BTreeMap;
//! use spiffile_watch::{DirEntry, DirSource, FileRef, WatchOptions, Watched};
//!
//! #[derive(Debug, thiserror::Error)]
//! enum TableError {
//!     #[error("expected a number")]
//!     NotANumber,
//!     #[error("{0} appears in {1} and {2}")]
//!     Duplicate(u32, String, String),
//! }
//!
//! fn parse_file(file: &FileRef<'_>) -> Result<u32, TableError> {
//!     let text = std::str::from_utf8(file.bytes()).map_err(|_| TableError::NotANumber)?;
//!     text.trim().parse().map_err(|_| TableError::NotANumber)
//! }
//!
//! /// Number -> the file it came from; two files with one number conflict.
//! fn combine(files: &[DirEntry<u32>]) -> Result<BTreeMap<u32, String>, TableError> {
//!     let mut table = BTreeMap::new();
//!     for file in files {
//!         if let Some(other) = table.insert(**file.value(), file.name().to_owned()) {
//!             return Err(TableError::Duplicate(**file.value(), other, file.name().to_owned()));
//!         }
//!     }
//!     Ok(table)
//! }
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("a.json"), "1")?;
//! std::fs::write(dir.path().join("notes.txt"), "not a match")?;
//! std::fs::write(dir.path().join(".b.json.tmp"), "hidden: never read")?;
//! let source = DirSource::new(dir.path()).pattern("*.json");
//! let table = Watched::dir(source, parse_file, combine, WatchOptions::manual())?;
//! assert_eq!(table.load().len(), 1);
//!
//! std::fs::write(dir.path().join("b.json"), "2")?; // added
//! assert!(table.reload()?);
//! assert_eq!(table.load().get(&2).map(String::as_str), Some("b.json"));
//!
//! std::fs::write(dir.path().join("b.json"), "")?; // half-written
//! assert!(table.reload().is_err());
//! assert_eq!(table.load().len(), 2); // b.json keeps its last good content
//! let status = table.status();
//! assert!(status.files[1].last_error.as_deref().unwrap().contains("b.json"));
//!
//! std::fs::write(dir.path().join("b.json"), "1")?; // conflicts with a.json
//! assert!(matches!(table.reload(), Err(spiffile_watch::WatchError::Parse { .. })));
//! assert_eq!(table.load().get(&2).map(String::as_str), Some("b.json"));
//!
//! std::fs::remove_file(dir.path().join("b.json"))?; // removed
//! assert!(table.reload()?);
//! assert_eq!(table.load().keys().collect::<Vec<_>>(), [&1]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! (In manual mode a removal applies at once; when following, a file that
//! vanished keeps its place for [`DirSource::removal_grace`], 25 ms by
//! default, so delete-and-recreate writers do not make it flicker.)
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;

mod dir;
mod dirs;
mod engine;
mod error;
mod input;
mod options;
mod read;
mod registry;
mod status;
mod wake;
mod watched;
mod worker;

use std::sync::{Mutex, MutexGuard};

pub use dir::{
    DEFAULT_MAX_FILES, DEFAULT_MAX_TOTAL_SIZE, DEFAULT_REMOVAL_GRACE, DirSource, MAX_REMOVAL_GRACE,
};
pub use error::{Origin, WatchError};
pub use input::{DirEntry, FileRef};
pub use options::{
    DEFAULT_POLL_INTERVAL, DEFAULT_RETRY_DELAY, MAX_POLL_INTERVAL, MIN_POLL_INTERVAL, WatchOptions,
};
pub use read::read_regular_file;
pub use status::{FileStatus, Status};
pub use watched::Watched;

/// Locks a mutex, ignoring poisoning (every critical section leaves the
/// protected data consistent).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
