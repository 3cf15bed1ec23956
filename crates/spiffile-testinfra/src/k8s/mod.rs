//! The Kubernetes control plane: its PKI, its start-up and (feature `k8s`)
//! the test handle with a `kube::Client`.

pub mod certs;
pub mod deploy;
#[cfg(feature = "k8s")]
mod handle;
#[cfg(feature = "k8s")]
pub use handle::K8s;
