//! The one error type of this crate.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while building, starting, attaching to,
/// stopping or using the test infrastructure.
///
/// Messages name the step, the file or the command at fault and, where a
/// process wrote a log, end with the last lines of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read, written or created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path at fault.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A build or start-up step failed (a command exited non-zero, a process
    /// died, an output could not be understood).
    #[error("{step} failed: {detail}")]
    Step {
        /// The step, e.g. `build kubernetes v1.37.2: go build`.
        step: String,
        /// What went wrong, with the tail of the step's log where there is one.
        detail: String,
    },
    /// Something did not become ready in time.
    #[error("timed out after {}s waiting for {what}{detail}", after.as_secs())]
    Timeout {
        /// What was awaited, e.g. `kube-apiserver /readyz`.
        what: String,
        /// How long was waited.
        after: Duration,
        /// The last error seen and the tail of the relevant log.
        detail: String,
    },
    /// A component's binaries are not in the cache.
    #[error(
        "{component} {version} is not built ({}); build it with `cargo xtask infra build`",
        missing.display()
    )]
    NotBuilt {
        /// The cache component, e.g. `kubernetes`.
        component: &'static str,
        /// Its version.
        version: String,
        /// The first missing file.
        missing: PathBuf,
    },
    /// No deployment of the component is running where one was looked for.
    #[error("{component} is not running: {detail}")]
    NotRunning {
        /// `k8s` or `spire`.
        component: &'static str,
        /// Why it is considered down.
        detail: String,
    },
    /// Generating a certificate or key failed.
    #[error("certificate generation: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A Kubernetes client could not be built.
    #[cfg(feature = "k8s")]
    #[error("kube client: {0}")]
    Kube(#[from] kube::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

pub(crate) fn step(step: impl Into<String>, detail: impl Into<String>) -> Error {
    Error::Step {
        step: step.into(),
        detail: detail.into(),
    }
}
