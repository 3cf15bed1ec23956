//! [`Watched`]: the value, its readers, and the bookkeeping around a check.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use arc_swap::{ArcSwap, Guard};

use crate::dir::DirSource;
use crate::dirs::WatchSpec;
use crate::engine::{Checked, DirEngine, Engine, FilesEngine};
use crate::error::{Origin, WatchError};
use crate::input::{DirEntry, FileRef};
use crate::lock;
use crate::options::WatchOptions;
use crate::status::Status;
use crate::wake::Wake;
use crate::worker::{self, Driven, Mode, Outcome};

/// A value parsed from files, reloaded whenever their content changes.
///
/// Three kinds of source (see the [crate documentation](crate)):
/// [`Watched::new`] (one file), [`Watched::files`] (files parsed together,
/// such as a certificate and its key) and [`Watched::dir`] (every matching
/// file of a directory). `E` is the parsers' error type, returned unaltered
/// inside [`WatchError::Parse`].
///
/// Cloning is cheap (an `Arc`); clones share the value. The process-wide
/// worker forgets the source when the last clone is dropped.
pub struct Watched<T, E> {
    shared: Arc<Shared<T, E>>,
}

impl<T, E> Clone for Watched<T, E> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T, E> fmt::Debug for Watched<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched")
            .field("origin", &self.shared.origin)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

/// State shared by the clones of a [`Watched`] and (weakly) the worker.
pub(crate) struct Shared<T, E> {
    value: ArcSwap<T>,
    generation: AtomicU64,
    /// Published after every check that looked at the files.
    status: ArcSwap<Status>,
    notify_active: AtomicBool,
    /// One check at a time; never taken by readers or `status()`.
    checker: Mutex<Checker<T, E>>,
    origin: Origin,
    spec: WatchSpec,
    following: bool,
    wake: Arc<Wake>,
    /// How many checks read the files (lets tests spot a busy loop).
    #[cfg(test)]
    pub(crate) reads: AtomicU64,
}

/// What one check did.
struct Done<E> {
    changed: bool,
    error: Option<WatchError<E>>,
    wake_at: Option<std::time::Instant>,
}

struct Checker<T, E> {
    engine: Box<dyn Engine<T, E>>,
    loaded_at: SystemTime,
    /// Every distinct error message currently reported (to warn once each).
    reported: Vec<String>,
}

impl<T, E> Drop for Shared<T, E> {
    fn drop(&mut self) {
        if self.following {
            // Let the worker forget this source (and its directory watches).
            worker::ring();
        }
    }
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

impl<T, E> Watched<T, E>
where
    T: Send + Sync + 'static,
    E: fmt::Display + 'static,
{
    /// Reads and parses one file now, then follows it.
    ///
    /// A relative path is resolved against the current directory once,
    /// here. `parse` receives the whole content; it runs again on every
    /// content change, on the worker thread (or in [`reload`](Self::reload)).
    /// Its errors should not quote the content if the file is secret.
    ///
    /// # Errors
    ///
    /// [`WatchError::Io`] if the file cannot be read, [`WatchError::Parse`]
    /// if `parse` rejects it ([`WatchError::Panicked`] if it panics),
    /// [`WatchError::Thread`] if the worker thread cannot be started.
    pub fn new<F>(
        path: impl Into<PathBuf>,
        parse: F,
        options: WatchOptions,
    ) -> Result<Self, WatchError<E>>
    where
        F: Fn(&[u8]) -> Result<T, E> + Send + Sync + 'static,
    {
        let path = absolute(path.into());
        let engine = FilesEngine::new(
            vec![path.clone()],
            Box::new(move |files: &[FileRef<'_>]| parse(files[0].bytes())),
            options.current_max_size(),
        );
        Self::start(
            Box::new(engine),
            Origin::File(path.clone()),
            WatchSpec::Files(vec![path]),
            None,
            options,
        )
    }

    /// Reads the files now and parses them together into one value, then
    /// follows them: whenever any of them changes, all are read again and
    /// `parse` sees them all, in the order given.
    ///
    /// The value changes only when every file reads and `parse` accepts the
    /// combination. That is how a pair that must match is served as a pair:
    /// writers update a certificate and its key one after the other, so for
    /// a moment the new certificate sits beside the old key; `parse` refuses
    /// the mismatch, the good pair keeps being served, the mismatch shows in
    /// [`Status::last_error`], and the files are read again on the next
    /// change (the key arriving) or the retry backoff.
    ///
    /// # Errors
    ///
    /// As for [`Watched::new`]; an empty list of paths is a
    /// [`WatchError::Io`] with [`std::io::ErrorKind::InvalidInput`].
    pub fn files<I, P, F>(paths: I, parse: F, options: WatchOptions) -> Result<Self, WatchError<E>>
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
        F: Fn(&[FileRef<'_>]) -> Result<T, E> + Send + Sync + 'static,
    {
        let paths: Vec<PathBuf> = paths.into_iter().map(|p| absolute(p.into())).collect();
        if paths.is_empty() {
            return Err(WatchError::io(
                PathBuf::new(),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "no files to watch"),
            ));
        }
        let origin = Origin::Files(paths.clone());
        let engine = FilesEngine::new(paths.clone(), Box::new(parse), options.current_max_size());
        Self::start(
            Box::new(engine),
            origin,
            WatchSpec::Files(paths),
            None,
            options,
        )
    }

    /// Reads every matching file of a directory now, parses each with
    /// `parse_file`, builds the value with `combine`, then follows the
    /// directory: files added, changed or removed rebuild the value.
    ///
    /// * `parse_file` runs only for a file whose content changed. If it
    ///   refuses a file (half-written, invalid), that file keeps its last
    ///   good content in the value and reports the error in its
    ///   [`FileStatus`](crate::FileStatus); the other files' changes are
    ///   still applied. A new file that never parsed is left out.
    /// * `combine` receives every file's parsed content ([`DirEntry`]),
    ///   sorted by name, whenever that set changed. If it refuses (two files
    ///   claim the same thing, a pair does not match), the last good value
    ///   stays and the error is in [`Status::last_error`].
    /// * A file that vanishes keeps its place for
    ///   [`DirSource::removal_grace`] (delete-and-recreate writers), then is
    ///   dropped from the value.
    ///
    /// At startup everything must read and parse: any error is returned.
    ///
    /// # Errors
    ///
    /// [`WatchError::Io`] if the directory cannot be listed, is over its
    /// limits, or a file cannot be read; [`WatchError::Parse`] (or
    /// `Panicked`) naming the file or the directory if a parser refuses;
    /// [`WatchError::Thread`] if the worker thread cannot be started.
    pub fn dir<U, F, C>(
        source: DirSource,
        parse_file: F,
        combine: C,
        options: WatchOptions,
    ) -> Result<Self, WatchError<E>>
    where
        U: Send + Sync + 'static,
        F: Fn(&FileRef<'_>) -> Result<U, E> + Send + Sync + 'static,
        C: Fn(&[DirEntry<U>]) -> Result<T, E> + Send + Sync + 'static,
    {
        let dir = absolute(source.dir().to_path_buf());
        let mut source = source.with_dir(dir.clone());
        if !options.is_following() {
            // Nothing looks again later in manual mode: a removal applies
            // at the reload that sees it.
            source = source.removal_grace(std::time::Duration::ZERO);
        }
        let engine = DirEngine::new(
            source.clone(),
            options.current_max_size(),
            Box::new(parse_file),
            Box::new(combine),
        );
        Self::start(
            Box::new(engine),
            Origin::Dir(dir.clone()),
            WatchSpec::Dir(source),
            Some(dir),
            options,
        )
    }

    fn start(
        mut engine: Box<dyn Engine<T, E>>,
        origin: Origin,
        spec: WatchSpec,
        dir: Option<PathBuf>,
        options: WatchOptions,
    ) -> Result<Self, WatchError<E>> {
        let Checked { value, error, .. } = engine.check(Mode::Read);
        if let Some(error) = error {
            return Err(error);
        }
        let Some(value) = value else {
            // A first check that succeeds always builds a value.
            return Err(WatchError::io(
                dir.unwrap_or_default(),
                std::io::Error::other("no value was built"),
            ));
        };
        let loaded_at = SystemTime::now();
        let following = options.is_following();
        let status = Status {
            generation: 1,
            loaded_at,
            last_error: None,
            following,
            notify_active: false,
            dir,
            files: engine.files(),
        };
        let shared = Arc::new(Shared {
            value: ArcSwap::from_pointee(value),
            generation: AtomicU64::new(1),
            status: ArcSwap::from_pointee(status),
            notify_active: AtomicBool::new(false),
            checker: Mutex::new(Checker {
                engine,
                loaded_at,
                reported: Vec::new(),
            }),
            origin,
            spec,
            following,
            wake: Arc::new(Wake::default()),
            #[cfg(test)]
            reads: AtomicU64::new(0),
        });
        if following {
            let weak: Weak<Shared<T, E>> = Arc::downgrade(&shared);
            let weak: Weak<dyn Driven> = weak;
            worker::register(weak, Arc::clone(&shared.wake), options)
                .map_err(|source| WatchError::Thread { source })?;
        }
        Ok(Self { shared })
    }

    /// Reads the files now instead of waiting for an event or the next poll
    /// (in manual mode, the only way the value changes). Waits for a check
    /// the worker may have in progress on the same source; readers and
    /// [`status`](Self::status) never wait for this one.
    ///
    /// Returns `Ok(true)` if this call replaced the value, `Ok(false)` if the
    /// content was unchanged (or already picked up in the background).
    ///
    /// # Errors
    ///
    /// [`WatchError::Io`], [`WatchError::Parse`] or [`WatchError::Panicked`]
    /// if the files on disk cannot be used; the last good value keeps being
    /// served and the error is recorded in [`Status::last_error`]. For a
    /// directory source, the other files' changes may have been applied
    /// (the result is `Err` all the same).
    pub fn reload(&self) -> Result<bool, WatchError<E>> {
        let Done { changed, error, .. } = self.shared.check(Mode::Read);
        match error {
            Some(error) => {
                if self.shared.following {
                    // Let the worker start its retry backoff.
                    self.shared.wake.signal();
                }
                Err(error)
            }
            None => Ok(changed),
        }
    }
}

impl<T, E> Watched<T, E> {
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

    /// What the value was read from (its `Display` names the paths).
    pub fn origin(&self) -> &Origin {
        &self.shared.origin
    }

    /// Bookkeeping: generation, load time, current errors, per-file status,
    /// event status. One atomic load and a copy; it never waits for a
    /// reload in progress.
    pub fn status(&self) -> Status {
        let mut status = Status::clone(&self.shared.status.load());
        status.notify_active = self.shared.notify_active.load(Ordering::Relaxed);
        status
    }

    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Arc<Shared<T, E>> {
        &self.shared
    }
}

impl<T, E: fmt::Display> Shared<T, E> {
    /// One check: swaps in a new value when the files changed and parsed,
    /// publishes the status, logs what changed. Returns whether the value
    /// changed, and the error if the files cannot all be used.
    fn check(&self, mode: Mode) -> Done<E> {
        let mut checker = lock(&self.checker);
        let checked = checker.engine.check(mode);
        if !checked.looked {
            return Done {
                changed: false,
                error: None,
                wake_at: checked.wake_at,
            };
        }
        #[cfg(test)]
        self.reads.fetch_add(1, Ordering::Relaxed);
        let changed = checked.value.is_some();
        if let Some(value) = checked.value {
            self.value.store(Arc::new(value));
            let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
            checker.loaded_at = SystemTime::now();
            tracing::info!(source = %self.origin, generation, "reloaded");
        }
        let last_error = checked.error.as_ref().map(ToString::to_string);
        let files = checker.engine.files();
        self.report(&mut checker, last_error.as_deref(), &files);
        self.status.store(Arc::new(Status {
            generation: self.generation.load(Ordering::Acquire),
            loaded_at: checker.loaded_at,
            last_error,
            following: self.following,
            notify_active: false,
            dir: match &self.origin {
                Origin::Dir(dir) => Some(dir.clone()),
                _ => None,
            },
            files,
        }));
        Done {
            changed,
            error: checked.error,
            wake_at: checked.wake_at,
        }
    }

    /// Warns once per distinct failure; says when everything is valid again.
    fn report(
        &self,
        checker: &mut Checker<T, E>,
        last_error: Option<&str>,
        files: &[crate::status::FileStatus],
    ) {
        let mut now: Vec<String> = Vec::new();
        for message in last_error
            .into_iter()
            .chain(files.iter().filter_map(|f| f.last_error.as_deref()))
        {
            if !now.iter().any(|m| m == message) {
                now.push(message.to_owned());
            }
        }
        for message in &now {
            if !checker.reported.contains(message) {
                tracing::warn!(
                    source = %self.origin,
                    error = %message,
                    "cannot reload; keeping the last good value"
                );
            }
        }
        if now.is_empty() && !checker.reported.is_empty() {
            tracing::info!(source = %self.origin, "files are valid again");
        }
        checker.reported = now;
    }
}

impl<T, E> Driven for Shared<T, E>
where
    T: Send + Sync,
    E: fmt::Display,
{
    fn check_from_worker(&self, mode: Mode) -> Outcome {
        let done = self.check(mode);
        Outcome {
            failed: done.error.is_some(),
            wake_at: done.wake_at,
        }
    }

    fn spec(&self) -> &WatchSpec {
        &self.spec
    }

    fn set_notify_active(&self, active: bool) {
        self.notify_active.store(active, Ordering::Relaxed);
    }
}
