//! `spiffile k8s …`, also `kubectl spiffile …` (the binary installed or
//! linked as `kubectl-spiffile`): the cluster side of spiffile.

use std::path::PathBuf;

use crate::output::{Failure, out, warn};

/// Commands against a Kubernetes cluster running spiffile-operator.
#[derive(Debug, clap::Subcommand)]
pub enum K8sCommand {
    Extract(ExtractArgs),
}

impl K8sCommand {
    /// Runs the command.
    pub fn run(self) -> Result<(), Failure> {
        match self {
            K8sCommand::Extract(args) => args.run(),
        }
    }
}

/// Write a trust domain's operator-backed identities (ServiceIdentity
/// objects) from the cluster into a new root: ROOT/bundle.json and
/// ROOT/services/<path>/{id,key.pem} (0600). Claims are left out: their keys
/// belong to their writer. Refuses to overwrite an existing root.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  spiffile k8s extract example.org ./example.org-root\n  kubectl spiffile extract example.org ./example.org-root --context prod\n\nThe root holds private keys: treat it accordingly, and delete it once the\nmaterial has reached its destination."
)]
pub struct ExtractArgs {
    /// The trust domain, such as example.org.
    trust_domain: String,
    /// The directory of the new root.
    outdir: PathBuf,
    /// The kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: the current one).
    #[arg(long)]
    context: Option<String>,
}

impl ExtractArgs {
    /// Runs `spiffile k8s extract`.
    pub fn run(self) -> Result<(), Failure> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(self.extract())
    }

    async fn client(&self) -> Result<kube::Client, Failure> {
        let options = kube::config::KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let no_config =
            |e: &dyn std::fmt::Display| Failure::usage(format!("no cluster configuration: {e}"));
        let config = match &self.kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| Failure::usage(format!("kubeconfig {}: {e}", path.display())))?;
                kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| no_config(&e))?
            }
            None if self.context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| no_config(&e))?,
            None => kube::Config::infer().await.map_err(|e| no_config(&e))?,
        };
        kube::Client::try_from(config)
            .map_err(|e| Failure::usage(format!("cannot build a client: {e}")))
    }

    async fn extract(self) -> Result<(), Failure> {
        let client = self.client().await?;
        let report = spiffile_operator::extract::extract(&client, &self.trust_domain, &self.outdir)
            .await
            .map_err(Failure::failed)?;
        for s in &report.skipped {
            warn(format!("skipped {s}"));
        }
        for id in &report.written {
            out(id);
        }
        out(&format!(
            "wrote {} identities of {} to {} (bundle from {}/spiffile-bundle); it holds private keys: delete it once they have reached their destination",
            report.written.len(),
            self.trust_domain,
            self.outdir.display(),
            report.bundle_from,
        ));
        Ok(())
    }
}
