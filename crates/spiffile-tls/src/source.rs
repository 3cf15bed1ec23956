//! Where the current SVID and bundles come from: one atomic load each.

use std::fmt;
use std::sync::Arc;

use std::sync::Mutex;
use std::time::SystemTime;

use arc_swap::{ArcSwap, Guard};
use spiffile_id::SpiffeId;
use spiffile_watch::{FileRef, WatchError, WatchOptions, Watched};

use crate::bundle::X509BundleSet;
use crate::error::Error;
use crate::files::X509Files;
use crate::svid::X509Svid;
use crate::watched_bundles::WatchedBundles;

/// The X.509 material of a workload: its own [`X509Svid`] and the
/// [`X509BundleSet`] it verifies peers against, each an immutable snapshot
/// behind an atomic pointer.
///
/// The rustls configurations of this crate read the source on every
/// handshake (one atomic load for the certificate, one for the bundles),
/// so a rotation applies to the next handshake and never touches an
/// established connection. Cheap to clone; clones share the snapshots.
#[derive(Clone)]
pub struct X509Source {
    inner: Arc<SourceInner>,
}

pub(crate) struct SourceInner {
    svid: Slot<X509Svid>,
    bundles: BundleSlot,
    files: Option<X509Files>,
    /// Why the files on disk are not what is served, per part.
    errors: Mutex<SourceErrors>,
}

#[derive(Default, Clone)]
struct SourceErrors {
    svid: Option<String>,
    bundles: Option<String>,
}

/// What an [`X509Source`] serves and whether its files agree, from
/// [`X509Source::status`].
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct SourceStatus {
    /// The SPIFFE ID of the SVID being served.
    pub id: SpiffeId,
    /// When the served SVID expires.
    pub not_after: SystemTime,
    /// Why the certificate and key on disk are not served (a key that does
    /// not match its certificate yet, a file that does not parse), or
    /// `None` when they are.
    pub svid_error: Option<String>,
    /// Why the bundle files on disk are not served, or `None`.
    pub bundle_error: Option<String>,
}

enum Slot<T> {
    Memory(ArcSwap<T>),
    Watched(Watched<T, Error>),
}

impl<T> Slot<T> {
    #[inline]
    fn load(&self) -> Guard<Arc<T>> {
        match self {
            Slot::Memory(value) => value.load(),
            Slot::Watched(watched) => watched.load(),
        }
    }

    fn watched_error(&self) -> Option<String> {
        match self {
            Slot::Memory(_) => None,
            Slot::Watched(watched) => watched.status().last_error,
        }
    }
}

enum BundleSlot {
    Memory(ArcSwap<X509BundleSet>),
    Watched(WatchedBundles),
}

impl BundleSlot {
    #[inline]
    fn load(&self) -> Guard<Arc<X509BundleSet>> {
        match self {
            BundleSlot::Memory(value) => value.load(),
            BundleSlot::Watched(watched) => watched.load(),
        }
    }

    fn watched_error(&self) -> Option<String> {
        match self {
            BundleSlot::Memory(_) => None,
            BundleSlot::Watched(watched) => watched.error(),
        }
    }
}

fn watch_error(e: WatchError<Error>) -> Error {
    Error::Watch(Box::new(e))
}

impl X509Source {
    /// A source held in memory: serves `svid` and trusts `bundles` until
    /// [`set_svid`](Self::set_svid) / [`set_bundles`](Self::set_bundles)
    /// replace them.
    pub fn new(svid: X509Svid, bundles: X509BundleSet) -> Self {
        X509Source {
            inner: Arc::new(SourceInner {
                svid: Slot::Memory(ArcSwap::from_pointee(svid)),
                bundles: BundleSlot::Memory(ArcSwap::from_pointee(bundles)),
                files: None,
                errors: Mutex::new(SourceErrors::default()),
            }),
        }
    }

    /// Reads `files` (see [`X509Files`] for the layouts): the certificate
    /// and key as one matching pair, the bundles of the SVID's trust domain
    /// and the federated ones. [`reload`](Self::reload) reads them again.
    ///
    /// # Errors
    ///
    /// Any [`Error`] of the files, naming the file.
    pub fn from_files(files: X509Files) -> Result<Self, Error> {
        let svid = files.read_svid()?;
        let bundles = files.read_bundles(svid.id().trust_domain())?;
        let inner = SourceInner {
            svid: Slot::Memory(ArcSwap::from_pointee(svid)),
            bundles: BundleSlot::Memory(ArcSwap::from_pointee(bundles)),
            files: Some(files),
            errors: Mutex::new(SourceErrors::default()),
        };
        Ok(X509Source {
            inner: Arc::new(inner),
        })
    }

    /// Reads `files` and **follows them**: the generalised file watcher of
    /// `spiffile-watch` (one worker thread and one inotify instance for the
    /// whole process, a poll as safety net) re-reads the certificate and key
    /// together whenever either changes, and serves the new pair only when
    /// the key matches the certificate; the bundle file and the federated
    /// files likewise, as one set; each federated directory
    /// ([`X509Files::federated_dir`], SPIRE's `federated_bundle.N.M.pem`)
    /// as a watched directory, so a bundle added later is trusted and one
    /// removed is not (a file that vanishes for a moment, a writer deleting
    /// and recreating it, keeps its place for 25 ms). A part that fails
    /// keeps its last good value; [`status`](Self::status) says why.
    ///
    /// # Errors
    ///
    /// Any [`Error`] of the files at startup, naming the file
    /// ([`Error::Watch`] wrapping it).
    pub fn watch(files: X509Files, options: WatchOptions) -> Result<Self, Error> {
        let cert_what = format!("certificate chain {}", files.cert().display());
        let key_what = format!("private key {}", files.key().display());
        let svid = Watched::files(
            [files.cert().to_owned(), files.key().to_owned()],
            move |f: &[FileRef<'_>]| {
                X509Svid::from_pem_named(f[0].bytes(), f[1].bytes(), &cert_what, &key_what)
            },
            options.clone().max_size(crate::files::MAX_FILE_BYTES),
        )
        .map_err(watch_error)?;
        let own = svid.load().id().trust_domain().clone();
        let bundles = WatchedBundles::watch(&files, own, &options)?;
        Ok(X509Source {
            inner: Arc::new(SourceInner {
                svid: Slot::Watched(svid),
                bundles: BundleSlot::Watched(bundles),
                files: Some(files),
                errors: Mutex::new(SourceErrors::default()),
            }),
        })
    }

    /// Reads the files again and serves what is valid: a certificate and
    /// key that match replace the SVID, bundles that parse replace the
    /// bundles; a part that fails keeps its last good value and its error
    /// shows in [`status`](Self::status). Returns whether the SVID changed
    /// (bundles are replaced on every successful read).
    /// A source made with [`new`](Self::new) has no files: `Ok(false)`.
    ///
    /// # Errors
    ///
    /// The first failure (the other part is still reloaded).
    pub fn reload(&self) -> Result<bool, Error> {
        if let (Slot::Watched(svid), BundleSlot::Watched(bundles)) =
            (&self.inner.svid, &self.inner.bundles)
        {
            let changed = svid.reload().map_err(watch_error);
            let bundles = bundles.reload();
            let changed = changed?;
            bundles?;
            return Ok(changed);
        }
        let Some(files) = &self.inner.files else {
            return Ok(false);
        };
        let mut changed = false;
        let mut first_error = None;
        let mut errors = self
            .inner
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match files.read_svid() {
            Ok(svid) => {
                errors.svid = None;
                if svid.chain() != self.svid().chain() {
                    self.set_svid(svid);
                    changed = true;
                }
            }
            Err(e) => {
                errors.svid = Some(e.to_string());
                first_error = Some(e);
            }
        }
        let own = self.svid().id().trust_domain().clone();
        match files.read_bundles(&own) {
            Ok(bundles) => {
                errors.bundles = None;
                self.set_bundles(bundles);
            }
            Err(e) => {
                errors.bundles = Some(e.to_string());
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(changed),
        }
    }

    /// What is served and whether the files agree.
    pub fn status(&self) -> SourceStatus {
        let errors = self
            .inner
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let svid = self.svid();
        SourceStatus {
            id: svid.id().clone(),
            not_after: svid.not_after(),
            svid_error: errors.svid.or_else(|| self.inner.svid.watched_error()),
            bundle_error: errors
                .bundles
                .or_else(|| self.inner.bundles.watched_error()),
        }
    }

    /// The current SVID: one atomic load.
    #[inline]
    pub fn svid(&self) -> Guard<Arc<X509Svid>> {
        self.inner.svid.load()
    }

    /// The current bundles: one atomic load.
    #[inline]
    pub fn bundles(&self) -> Guard<Arc<X509BundleSet>> {
        self.inner.bundles.load()
    }

    /// Replaces the SVID (new handshakes present it; established
    /// connections are untouched).
    ///
    /// A source that [watches](Self::watch) files ignores this: the files
    /// are the truth.
    pub fn set_svid(&self, svid: X509Svid) {
        match &self.inner.svid {
            Slot::Memory(value) => value.store(Arc::new(svid)),
            Slot::Watched(_) => {}
        }
    }

    /// Replaces the bundles (new handshakes are verified against them).
    ///
    /// Ignored by a watching source, as [`set_svid`](Self::set_svid).
    pub fn set_bundles(&self, bundles: X509BundleSet) {
        match &self.inner.bundles {
            BundleSlot::Memory(value) => value.store(Arc::new(bundles)),
            BundleSlot::Watched(_) => {}
        }
    }
}

impl fmt::Debug for X509Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Source")
            .field("svid", &**self.svid())
            .field("bundles", &**self.bundles())
            .finish()
    }
}
