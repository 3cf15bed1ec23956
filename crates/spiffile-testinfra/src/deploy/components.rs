//! The Go components, their pinned versions and where their binaries are
//! cached.

use std::path::PathBuf;

use super::paths::cache_root;
use crate::error::{Error, Result};

/// Kubernetes release built for the control plane.
pub const KUBERNETES_VERSION: &str = "v1.37.2";
/// etcd release: the one `k8s.io/kubernetes` [`KUBERNETES_VERSION`] pins
/// (checked when Kubernetes is built).
pub const ETCD_VERSION: &str = "v3.7.0";
/// SPIRE release (server and agent).
pub const SPIRE_VERSION: &str = "v1.13.3";
/// spiffe-helper release: the real producer of the files SPIRE users read.
pub const SPIFFE_HELPER_VERSION: &str = "v0.11.0";

/// One cached unit: a set of binaries built from one module version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// `kube-apiserver` and `kube-controller-manager`.
    Kubernetes,
    /// `etcd`.
    Etcd,
    /// `spire-server` and `spire-agent`.
    Spire,
    /// `spiffe-helper`.
    SpiffeHelper,
}

impl Component {
    /// Every component, in build order.
    pub const ALL: [Component; 4] = [
        Component::Kubernetes,
        Component::Etcd,
        Component::Spire,
        Component::SpiffeHelper,
    ];

    /// The cache directory name.
    pub fn name(self) -> &'static str {
        match self {
            Component::Kubernetes => "kubernetes",
            Component::Etcd => "etcd",
            Component::Spire => "spire",
            Component::SpiffeHelper => "spiffe-helper",
        }
    }

    /// The pinned version.
    pub fn version(self) -> &'static str {
        match self {
            Component::Kubernetes => KUBERNETES_VERSION,
            Component::Etcd => ETCD_VERSION,
            Component::Spire => SPIRE_VERSION,
            Component::SpiffeHelper => SPIFFE_HELPER_VERSION,
        }
    }

    /// The binaries it provides.
    pub fn binaries(self) -> &'static [&'static str] {
        match self {
            Component::Kubernetes => &["kube-apiserver", "kube-controller-manager"],
            Component::Etcd => &["etcd"],
            Component::Spire => &["spire-server", "spire-agent"],
            Component::SpiffeHelper => &["spiffe-helper"],
        }
    }

    /// `<cache>/<component>/<version>`.
    pub fn dir(self) -> PathBuf {
        cache_root().join(self.name()).join(self.version())
    }

    /// Where its binaries are once built.
    pub fn bin_dir(self) -> PathBuf {
        self.dir().join("bin")
    }

    /// The marker written last by a successful build.
    pub(crate) fn complete_marker(self) -> PathBuf {
        self.bin_dir().join(".complete")
    }

    /// Whether a complete build is in the cache.
    pub fn is_cached(self) -> bool {
        self.first_missing().is_none()
    }

    fn first_missing(self) -> Option<PathBuf> {
        std::iter::once(self.complete_marker())
            .chain(self.binaries().iter().map(|b| self.bin_dir().join(b)))
            .find(|p| !p.is_file())
    }

    /// The path of one of its binaries, or [`Error::NotBuilt`].
    pub fn binary(self, name: &str) -> Result<PathBuf> {
        if let Some(missing) = self.first_missing() {
            return Err(Error::NotBuilt {
                component: self.name(),
                version: self.version().to_owned(),
                missing,
            });
        }
        Ok(self.bin_dir().join(name))
    }

    /// The build record (`.complete`: Go version, seconds taken), if built.
    pub fn build_record(self) -> Option<String> {
        std::fs::read_to_string(self.complete_marker()).ok()
    }
}

/// The components a deployment needs.
pub fn components_of(deployment: super::Deployment) -> &'static [Component] {
    match deployment {
        super::Deployment::K8s => &[Component::Kubernetes, Component::Etcd],
        super::Deployment::Spire => &[Component::Spire, Component::SpiffeHelper],
    }
}
