//! The Kubernetes test handle.

use std::path::{Path, PathBuf};

use crate::deploy::state::State;
use crate::deploy::{self, Deployment};
use crate::error::{Error, Result, io};

/// A running control plane (etcd, kube-apiserver, kube-controller-manager)
/// on 127.0.0.1.
///
/// Obtain it with [`crate::k8s()`] in tests, or [`K8s::attach`] for a given
/// run directory. The admin identity is in `system:masters`. No scheduler
/// and no kubelet: pods are stored (and pass admission, webhooks included)
/// but stay Pending. Admission webhooks can point at
/// `https://127.0.0.1:PORT/…` with a `caBundle` of your own CA.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use k8s_openapi::api::core::v1::ConfigMap;
/// let Some(k8s) = spiffile_testinfra::k8s() else { return Ok(()) };
/// println!("export KUBECONFIG={}", k8s.kubeconfig_path().display());
/// let cms: kube::Api<ConfigMap> = kube::Api::namespaced(k8s.client().await?, "default");
/// # let _ = cms; Ok(()) }
/// ```
#[derive(Debug)]
pub struct K8s {
    run_dir: PathBuf,
    state: State,
    kubeconfig: PathBuf,
    server_url: String,
    ca: PathBuf,
}

impl K8s {
    /// Attaches to the control plane in `run_dir` (e.g.
    /// `Deployment::K8s.default_run_dir()`), checking `/readyz` first.
    pub fn attach(run_dir: impl Into<PathBuf>) -> Result<Self> {
        let run_dir = run_dir.into();
        let state = State::read(&run_dir)?.ok_or_else(|| Error::NotRunning {
            component: "k8s",
            detail: format!("no state in {}", run_dir.display()),
        })?;
        deploy::check(Deployment::K8s, &state).map_err(|detail| Error::NotRunning {
            component: "k8s",
            detail,
        })?;
        Self::from_state(run_dir, state)
    }

    pub(crate) fn from_state(run_dir: PathBuf, state: State) -> Result<Self> {
        Ok(Self {
            kubeconfig: state.path("kubeconfig")?.to_path_buf(),
            ca: state.path("ca")?.to_path_buf(),
            server_url: state.value("server-url")?.to_owned(),
            run_dir,
            state,
        })
    }

    /// The admin kubeconfig (certificates embedded; `KUBECONFIG=` this).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The cluster CA certificate (PEM file) the apiserver's serving
    /// certificate chains to.
    pub fn ca_path(&self) -> &Path {
        &self.ca
    }

    /// The cluster CA certificate as PEM text.
    pub fn ca_pem(&self) -> Result<String> {
        std::fs::read_to_string(&self.ca).map_err(io(&self.ca))
    }

    /// The run directory (logs in `logs/`).
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The recorded state (PIDs, ports, paths).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// A `kube::Config` from the admin kubeconfig.
    pub async fn kube_config(&self) -> Result<kube::Config> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|e| Error::Kube(kube::Error::InferKubeconfig(e)))?;
        kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| Error::Kube(kube::Error::InferKubeconfig(e)))
    }

    /// A new `kube::Client` for the admin identity.
    pub async fn client(&self) -> Result<kube::Client> {
        Ok(kube::Client::try_from(self.kube_config().await?)?)
    }
}
