//! Real test infrastructure for spiffile-rs: a Kubernetes control plane
//! and a SPIRE deployment on loopback, built from the Go module proxy by the
//! project itself, one call away for every test.
//!
//! * [`deploy`] builds the binaries into a cache outside the clone
//!   (`${XDG_CACHE_HOME:-~/.cache}/spiffile-rs/<component>/<version>/bin`),
//!   starts a deployment in a run directory (`<workspace>/target/infra/<name>`
//!   unless `SPIFFILE_INFRA_DIR` says otherwise) on dynamic 127.0.0.1 ports
//!   and unix sockets, records what it started, checks readiness and stops
//!   exactly what it recorded. `cargo xtask infra up|down|status|env|build`
//!   is a thin command line over it.
//! * Feature `k8s`: [`k8s()`] gives a [`K8s`] handle (kubeconfig path,
//!   `kube::Client`).
//! * Feature `spire`: [`spire()`] gives a [`Spire`] handle (register
//!   workloads, fetch JWT-SVIDs, bundles and X.509-SVIDs as a workload, write
//!   spiffe-helper's files with spiffe-helper itself, rotate the JWT signing
//!   key).
//!
//! # Getting a deployment in a test: attach, start on demand, skip or fail
//!
//! [`k8s()`] and [`spire()`] return `Option<&'static …>`, one per test
//! process (the first call does the work, later calls share it):
//!
//! 1. **attach** to the deployment in the run directory when its state file
//!    says it is up and it answers its readiness check (`cargo xtask infra
//!    up`, `cargo xtask test`);
//! 2. else, if the binaries are cached, **start one on demand** for this test
//!    process in `<infra dir>/ondemand/<pid>/<name>`, guarded so that it is
//!    stopped when the test process exits, however it exits
//!    ([`deploy::process::Guardian`]);
//! 3. else **skip**: print a loud message naming the command to run and
//!    return `None`, so the test returns early;
//! 4. but when `CI=true`, a deployment that cannot be had is a **failure**:
//!    the call panics with the reason. Set `SPIFFILE_INFRA_REQUIRE=1` to get
//!    the same outside CI.
//!
//! ```no_run
//! # #[cfg(feature = "spire")]
//! #[test]
//! fn orders_gets_a_token_for_billing() -> Result<(), Box<dyn std::error::Error>> {
//!     let Some(spire) = spiffile_testinfra::spire() else { return Ok(()) }; // skipped
//!     let orders = spire.register("orders")?;
//!     let token = orders.fetch_jwt_svid("spiffe://spire.test/billing")?;
//!     assert_eq!(token.split('.').count(), 3);
//!     Ok(())
//! }
//! ```
//!
//! ```no_run
//! # #[cfg(feature = "k8s")]
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::Namespace;
//! let Some(k8s) = spiffile_testinfra::k8s() else { return Ok(()) };
//! let client = k8s.client().await?;
//! let namespaces: kube::Api<Namespace> = kube::Api::all(client);
//! let list = namespaces.list(&Default::default()).await?;
//! assert!(list.items.iter().any(|n| n.metadata.name.as_deref() == Some("default")));
//! # Ok(()) }
//! ```
//!
//! Tests share one deployment: give the objects and workloads you create
//! unique names ([`unique_name`]).

#![forbid(unsafe_code)]

pub mod deploy;
pub mod error;
pub mod k8s;
pub mod spire;

#[cfg(any(feature = "k8s", feature = "spire"))]
mod attach;

pub use error::{Error, Result};

#[cfg(feature = "k8s")]
pub use k8s::K8s;
#[cfg(feature = "spire")]
pub use spire::{
    HelperFiles, HelperProcess, JwtAuthority, Registration, Spire, Workload, X509Files,
};

/// The control plane for this test process: attached, started on demand,
/// or `None` (skipped, with a message on stderr). Panics when `CI=true` (or
/// `SPIFFILE_INFRA_REQUIRE=1`) and there is none. See the crate docs.
#[cfg(feature = "k8s")]
pub fn k8s() -> Option<&'static K8s> {
    attach::k8s()
}

/// The SPIRE deployment for this test process: attached, started on
/// demand, or `None` (skipped, with a message on stderr). Panics when
/// `CI=true` (or `SPIFFILE_INFRA_REQUIRE=1`) and there is none. See the
/// crate docs.
#[cfg(feature = "spire")]
pub fn spire() -> Option<&'static Spire> {
    attach::spire()
}

/// `prefix-<pid>-<counter>-<nanos>`: a name no other test, process or run
/// uses (lowercase, digits and dashes: valid for Kubernetes objects and
/// workload names alike).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{:x}", std::process::id(), nanos & 0xffff)
}
