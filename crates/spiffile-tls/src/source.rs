//! Where the current SVID and bundles come from: one atomic load each.

use std::fmt;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use crate::bundle::X509BundleSet;
use crate::svid::X509Svid;

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
    bundles: Slot<X509BundleSet>,
}

enum Slot<T> {
    Memory(ArcSwap<T>),
}

impl<T> Slot<T> {
    #[inline]
    fn load(&self) -> Guard<Arc<T>> {
        match self {
            Slot::Memory(value) => value.load(),
        }
    }
}

impl X509Source {
    /// A source held in memory: serves `svid` and trusts `bundles` until
    /// [`set_svid`](Self::set_svid) / [`set_bundles`](Self::set_bundles)
    /// replace them.
    pub fn new(svid: X509Svid, bundles: X509BundleSet) -> Self {
        X509Source {
            inner: Arc::new(SourceInner {
                svid: Slot::Memory(ArcSwap::from_pointee(svid)),
                bundles: Slot::Memory(ArcSwap::from_pointee(bundles)),
            }),
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
    pub fn set_svid(&self, svid: X509Svid) {
        match &self.inner.svid {
            Slot::Memory(value) => value.store(Arc::new(svid)),
        }
    }

    /// Replaces the bundles (new handshakes are verified against them).
    pub fn set_bundles(&self, bundles: X509BundleSet) {
        match &self.inner.bundles {
            Slot::Memory(value) => value.store(Arc::new(bundles)),
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
