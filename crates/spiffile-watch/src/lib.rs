//! A value parsed from a file and kept up to date while the file changes.
//!
//! [`Watched<T>`] reads and parses a file once at startup (failing loudly if
//! it cannot), then follows it: every time the file's content changes, the
//! caller's parser runs again and the new value replaces the old one
//! atomically. Readers call [`Watched::load`], which is a single atomic load
//! (no system call, no lock), so it is fine on every request.
//!
//! The crate knows nothing about what the file holds; it is built for files
//! that rotate under a running process (trust bundles, private keys) and that
//! real producers replace in every possible way:
//!
//! * write a temporary file and rename it over the old one;
//! * truncate and rewrite in place (a reader can see an empty or half-written
//!   file for a moment);
//! * delete and recreate (the file can be missing for a moment);
//! * Kubernetes `AtomicWriter` volumes, where `bundle.json` is a symlink to
//!   `..data/bundle.json` and `..data` is a symlink swapped atomically to a
//!   new timestamped directory;
//! * replacements that keep the same size and the same modification time.
//!
//! # How changes are detected
//!
//! * **Events**: the parent directory of the path, and every directory its
//!   symlinks resolve through, are watched (non-recursively) with `notify`.
//!   On any event there, the path is resolved again (the watch moves to a new
//!   symlink target directory when needed), the file is read and its content
//!   compared (SHA-256) with the current good content. One `notify` watcher
//!   (one inotify instance on Linux) is shared by every `Watched` in the
//!   process, whatever their number.
//! * **Polling safety net**: every [`WatchOptions::poll_interval`] (1 s by
//!   default, at most 2 s) the file's `(device, inode, size, mtime, ctime)` is
//!   compared with the last one seen; if it differs, or if the last read was
//!   too close to the last change to trust timestamps, the content is read and
//!   compared. With events disabled ([`WatchOptions::use_notify`]) or
//!   unavailable, polling alone bounds the delay.
//!
//! # Failure policy
//!
//! A file that cannot be read or parsed **never** replaces a good value: the
//! last good value keeps being served, [`Status::last_error`] describes the
//! problem, a `tracing` warning is logged once per distinct failure, and the
//! file is retried on every event and on a short backoff (5 ms, 10 ms, 20 ms…
//! up to the poll interval), so a half-written file heals within
//! milliseconds. File content never appears in errors or logs (key files are
//! secret); parse errors are the caller's parser's own errors, unaltered.
//!
//! Each `Watched` runs one small background thread, which exits when the
//! last clone is dropped (its directory watches are released then). The
//! process-wide `notify` watcher is created on first use and lives until the
//! process exits. No async runtime is needed.
//!
//! # Example
//!
//! ```
//! use spiffile_watch::{WatchOptions, Watched};
//!
//! // Reject what a half-written file can look like: here, an empty one.
//! fn parse(bytes: &[u8]) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
//!     let text = std::str::from_utf8(bytes)?;
//!     if text.is_empty() {
//!         return Err("empty file".into());
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
//! // Replace the file atomically; the watcher thread picks it up on its own
//! // within milliseconds, `reload_now` just makes the example deterministic.
//! let tmp = dir.path().join(".greeting.txt.tmp");
//! std::fs::write(&tmp, "bonjour")?;
//! std::fs::rename(&tmp, &path)?;
//! greeting.reload_now()?;
//! assert_eq!(greeting.load().as_str(), "bonjour");
//! assert_eq!(greeting.generation(), 2);
//!
//! // A broken file never replaces the good value (here, not UTF-8).
//! std::fs::write(&path, [0xff, 0xfe])?;
//! assert!(greeting.reload_now().is_err());
//! assert_eq!(greeting.load().as_str(), "bonjour");
//! assert!(greeting.status().last_error.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod registry;
mod wake;
mod worker;

use std::error::Error as StdError;
use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, Guard};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::wake::Wake;

/// Default [`WatchOptions::poll_interval`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Largest accepted [`WatchOptions::poll_interval`]; longer values are clamped.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Smallest accepted [`WatchOptions::poll_interval`]; shorter values are clamped.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Default [`WatchOptions::retry_delay`].
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_millis(5);

/// A timestamp younger than this (relative to when the file was read) is not
/// trusted to reveal a later change: the next poll reads the content.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Errors from reading or parsing the watched file.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The file could not be opened or read (missing, permission denied, not
    /// a regular file, ...).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The configured path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The caller's parser rejected the file content.
    #[error("cannot parse {}: {source}", path.display())]
    Parse {
        /// The configured path.
        path: PathBuf,
        /// The parser's error, unaltered.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The background watcher thread could not be started.
    #[error("cannot start the file watcher thread: {source}")]
    Thread {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// How a [`Watched`] follows its file. Builder style:
///
/// ```
/// use std::time::Duration;
/// use spiffile_watch::WatchOptions;
///
/// let options = WatchOptions::new()
///     .poll_interval(Duration::from_millis(500))
///     .use_notify(true);
/// assert_eq!(options.current_poll_interval(), Duration::from_millis(500));
/// ```
#[derive(Debug, Clone)]
pub struct WatchOptions {
    poll_interval: Duration,
    use_notify: bool,
    retry_delay: Duration,
    max_size: u64,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            poll_interval: DEFAULT_POLL_INTERVAL,
            use_notify: true,
            retry_delay: DEFAULT_RETRY_DELAY,
            max_size: u64::MAX,
        }
    }
}

impl WatchOptions {
    /// The defaults: poll every second, use file-system events, retry a bad
    /// file after 5 ms (doubling up to the poll interval).
    pub fn new() -> Self {
        Self::default()
    }

    /// How often the file's metadata is checked even without any event.
    ///
    /// This bounds the delay to notice a change when events are disabled,
    /// unavailable or missed. Default 1 s; clamped to
    /// [`MIN_POLL_INTERVAL`]..=[`MAX_POLL_INTERVAL`] (10 ms ..= 2 s).
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.clamp(MIN_POLL_INTERVAL, MAX_POLL_INTERVAL);
        self
    }

    /// Whether to use file-system events (`notify`: inotify, FSEvents, ...).
    ///
    /// Default `true`. With `false`, polling alone detects changes. If the
    /// process-wide watcher cannot be created, a warning is logged and the
    /// value falls back to polling.
    #[must_use]
    pub fn use_notify(mut self, enabled: bool) -> Self {
        self.use_notify = enabled;
        self
    }

    /// First retry delay after a failed read or parse (default 5 ms); each
    /// further failure doubles it, up to the poll interval. Clamped to
    /// 1 ms ..= the poll interval.
    #[must_use]
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// The largest file accepted, in bytes (default: no limit). A larger
    /// file is refused from its size alone, before any byte is read, and
    /// treated like any other unreadable file.
    #[must_use]
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// The largest file accepted.
    pub fn current_max_size(&self) -> u64 {
        self.max_size
    }

    /// The configured poll interval.
    pub fn current_poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// Whether file-system events are requested.
    pub fn notify_enabled(&self) -> bool {
        self.use_notify
    }

    /// The effective first retry delay.
    pub fn current_retry_delay(&self) -> Duration {
        self.retry_delay
            .clamp(Duration::from_millis(1), self.poll_interval)
    }
}

/// A snapshot of a [`Watched`] value's bookkeeping, from [`Watched::status`].
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Status {
    /// The watched path, as configured (made absolute).
    pub path: PathBuf,
    /// 1 for the value read at startup, +1 for every successful reload that
    /// changed the value.
    pub generation: u64,
    /// When the current value was loaded.
    pub loaded_at: SystemTime,
    /// Why the file currently on disk is not being served (it cannot be read
    /// or parsed), or `None` when the served value matches the file.
    pub last_error: Option<String>,
    /// Whether file-system events are currently being received for this
    /// file (`false`: polling only).
    pub notify_active: bool,
}

/// A value parsed from a file, reloaded whenever the file's content changes.
///
/// Cloning is cheap (an `Arc`); clones share the value and the background
/// thread, which stops when the last clone is dropped. See the [crate
/// documentation](crate) for how changes are detected and failures handled.
pub struct Watched<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Watched<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched")
            .field("path", &self.shared.path)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

type ParseFn<T> = Box<dyn Fn(&[u8]) -> Result<T, Box<dyn StdError + Send + Sync>> + Send + Sync>;

impl<T: Send + Sync + 'static> Watched<T> {
    /// Reads and parses `path` now, then follows it in a background thread.
    ///
    /// A relative path is resolved against the current directory once, here.
    /// `parse` receives the whole file content; it runs again on every
    /// content change, on the background thread (or in
    /// [`reload_now`](Self::reload_now)). Its errors should not quote the
    /// content if the file is secret.
    ///
    /// # Errors
    ///
    /// [`WatchError::Io`] if the file cannot be read, [`WatchError::Parse`]
    /// if `parse` rejects it (or panics), [`WatchError::Thread`] if the
    /// background thread cannot be spawned.
    pub fn new<F, E>(
        path: impl Into<PathBuf>,
        parse: F,
        options: WatchOptions,
    ) -> Result<Self, WatchError>
    where
        F: Fn(&[u8]) -> Result<T, E> + Send + Sync + 'static,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let path = path.into();
        let path = std::path::absolute(&path).unwrap_or(path);
        let parse: ParseFn<T> = Box::new(move |bytes| parse(bytes).map_err(Into::into));

        let read_at = SystemTime::now();
        let max_size = options.current_max_size();
        let (bytes, stamp) = read_file(&path, max_size).map_err(|source| WatchError::Io {
            path: path.clone(),
            source,
        })?;
        let value = run_parser(&parse, &bytes).map_err(|source| WatchError::Parse {
            path: path.clone(),
            source,
        })?;
        let wake = Arc::new(Wake::default());
        let shared = Arc::new(Shared {
            value: ArcSwap::from_pointee(value),
            generation: AtomicU64::new(1),
            notify_active: AtomicBool::new(false),
            state: Mutex::new(State {
                hash: digest(&bytes),
                seen: stamp,
                read_at,
                loaded_at: SystemTime::now(),
                last_error: None,
            }),
            parse,
            path,
            max_size,
            wake: Arc::clone(&wake),
            #[cfg(test)]
            reads: AtomicU64::new(0),
        });
        worker::spawn(Arc::downgrade(&shared), wake, options)
            .map_err(|source| WatchError::Thread { source })?;
        Ok(Self { shared })
    }

    /// The current value: one atomic load, no system call, no lock.
    ///
    /// The guard is meant to be short-lived (the duration of a request); use
    /// [`load_full`](Self::load_full) to keep the value longer.
    #[inline]
    pub fn load(&self) -> Guard<Arc<T>> {
        self.shared.value.load()
    }

    /// The current value as an owned `Arc` (one atomic load plus a reference
    /// count increment).
    #[inline]
    pub fn load_full(&self) -> Arc<T> {
        self.shared.value.load_full()
    }

    /// Checks the file now (re-reading it) instead of waiting for an event or
    /// the next poll.
    ///
    /// Returns `Ok(true)` if this call replaced the value, `Ok(false)` if the
    /// content was unchanged (or was already picked up by the background
    /// thread).
    ///
    /// # Errors
    ///
    /// [`WatchError::Io`] or [`WatchError::Parse`] if the file currently on
    /// disk is bad; the last good value keeps being served and the error is
    /// recorded in [`Status::last_error`].
    pub fn reload_now(&self) -> Result<bool, WatchError> {
        let result = self.shared.check(Mode::Read);
        if result.is_err() {
            // Let the background thread start its retry backoff.
            self.shared.wake.signal();
        }
        result
    }
}

impl<T> Watched<T> {
    /// The generation of the current value: 1 at startup, +1 for every
    /// reload that changed the value. One atomic load, no lock: poll it to
    /// invalidate caches derived from the value.
    ///
    /// A generation read before [`load`](Self::load) never belongs to a
    /// newer value than the one `load` returns.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// The configured path (made absolute).
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Bookkeeping: generation, load time, current error, event status.
    pub fn status(&self) -> Status {
        let state = lock(&self.shared.state);
        Status {
            path: self.shared.path.clone(),
            generation: self.generation(),
            loaded_at: state.loaded_at,
            last_error: state.last_error.clone(),
            notify_active: self.shared.notify_active.load(Ordering::Relaxed),
        }
    }
}

/// State shared by the clones of a [`Watched`] and (weakly) its thread.
pub(crate) struct Shared<T> {
    value: ArcSwap<T>,
    generation: AtomicU64,
    notify_active: AtomicBool,
    /// Serializes checks; holds what the last check saw.
    state: Mutex<State>,
    parse: ParseFn<T>,
    path: PathBuf,
    /// The largest file accepted.
    max_size: u64,
    wake: Arc<Wake>,
    /// How many times the file was read (lets tests spot a busy loop).
    #[cfg(test)]
    reads: AtomicU64,
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        self.wake.close();
    }
}

struct State {
    /// SHA-256 of the content behind the current value.
    hash: [u8; 32],
    /// Metadata of the file when it was last read successfully.
    seen: Option<Stamp>,
    /// When `seen` was taken.
    read_at: SystemTime,
    loaded_at: SystemTime,
    last_error: Option<String>,
}

/// What a check may skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Compare metadata first; read only if it changed or cannot be trusted.
    Poll,
    /// Always read and compare the content.
    Read,
}

impl<T> Shared<T> {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn set_notify_active(&self, active: bool) {
        self.notify_active.store(active, Ordering::Relaxed);
    }

    /// Looks at the file; swaps in a new value if its content changed and
    /// parses. Returns whether the value changed.
    pub(crate) fn check(&self, mode: Mode) -> Result<bool, WatchError> {
        let mut state = lock(&self.state);
        if mode == Mode::Poll && state.last_error.is_none() && state.unchanged(&self.path) {
            return Ok(false);
        }
        let read_at = SystemTime::now();
        #[cfg(test)]
        self.reads.fetch_add(1, Ordering::Relaxed);
        let (bytes, stamp) = match read_file(&self.path, self.max_size) {
            Ok(read) => read,
            Err(source) => {
                let err = WatchError::Io {
                    path: self.path.clone(),
                    source,
                };
                return Err(self.failed(&mut state, err));
            }
        };
        let hash = digest(&bytes);
        if hash == state.hash {
            state.seen = stamp;
            state.read_at = read_at;
            if state.last_error.take().is_some() {
                tracing::info!(path = %self.path.display(), "file is valid again (content unchanged)");
            }
            return Ok(false);
        }
        let value = match run_parser(&self.parse, &bytes) {
            Ok(value) => value,
            Err(source) => {
                let err = WatchError::Parse {
                    path: self.path.clone(),
                    source,
                };
                return Err(self.failed(&mut state, err));
            }
        };
        drop(bytes);
        self.value.store(Arc::new(value));
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        state.hash = hash;
        state.seen = stamp;
        state.read_at = read_at;
        state.loaded_at = SystemTime::now();
        state.last_error = None;
        tracing::info!(path = %self.path.display(), generation, "reloaded file");
        Ok(true)
    }

    /// Records a failure; warns only when it differs from the current one.
    fn failed(&self, state: &mut State, err: WatchError) -> WatchError {
        let message = err.to_string();
        if state.last_error.as_deref() != Some(message.as_str()) {
            tracing::warn!(
                path = %self.path.display(),
                error = %message,
                "cannot reload file; keeping the last good value"
            );
            state.last_error = Some(message);
        }
        err
    }
}

impl State {
    /// True when the file's metadata proves it has not changed since the
    /// last successful read.
    fn unchanged(&self, path: &Path) -> bool {
        let Some(seen) = self.seen else {
            return false;
        };
        let Ok(meta) = std::fs::metadata(path) else {
            return false;
        };
        let now = stamp_of(&meta);
        if now != seen {
            return false;
        }
        // Timestamps have a granularity: a change made right after our read
        // may not have moved them. Trust them only once they are old enough.
        match (seen.changed_at(), self.read_at.checked_sub(RACY_WINDOW)) {
            (Some(changed), Some(trusted_before)) => changed < trusted_before,
            _ => false,
        }
    }
}

/// The metadata that reveals a replaced or rewritten file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    /// The latest of mtime and ctime.
    fn changed_at(&self) -> Option<SystemTime> {
        let ns = self.mtime_ns.max(self.ctime_ns);
        let ns = u64::try_from(ns).ok()?;
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(ns))
    }
}

#[cfg(unix)]
fn stamp_of(meta: &Metadata) -> Stamp {
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
fn stamp_of(meta: &Metadata) -> Stamp {
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
fn read_file(path: &Path, max_size: u64) -> io::Result<(Zeroizing<Vec<u8>>, Option<Stamp>)> {
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
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!(
                "is {} bytes, larger than the limit of {max_size} bytes",
                meta.len()
            ),
        ));
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
    Ok((bytes, Some(stamp_of(&meta))))
}

fn run_parser<T>(parse: &ParseFn<T>, bytes: &[u8]) -> Result<T, Box<dyn StdError + Send + Sync>> {
    match catch_unwind(AssertUnwindSafe(|| parse(bytes))) {
        Ok(result) => result,
        Err(_) => Err("the parser panicked".into()),
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Locks a mutex, ignoring poisoning (every critical section leaves the
/// protected data consistent).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
