//! Where `token` and `verify` find their identity: the `SPIFFILE_*`
//! environment, a directory, or a service of a provisioned root.

use std::path::PathBuf;

use spiffile::provision;
use spiffile::{Identity, SpiffeId};

use crate::output::Failure;

/// Where `token` and `verify` find the identity: the SPIFFILE_* environment
/// by default.
#[derive(Debug, clap::Args)]
pub struct IdentitySource {
    /// A directory holding id, key.pem and bundle.json, instead of the
    /// SPIFFILE_* environment.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["root", "service"])]
    dir: Option<PathBuf>,
    /// A provisioned root (with --service): use that service's identity.
    #[arg(long, value_name = "ROOT", requires = "service")]
    root: Option<PathBuf>,
    /// The service of --root whose identity to use.
    #[arg(long, value_name = "NAME", requires = "root")]
    service: Option<String>,
}

/// Loads the identity for a one-shot command: read once, no file watcher.
pub fn load_identity(source: &IdentitySource) -> Result<Identity, Failure> {
    let builder = Identity::builder().hot_reload(false);
    let loaded = match (&source.dir, &source.root, &source.service) {
        (Some(d), _, _) => builder.from_dir(d),
        (None, Some(root), Some(name)) => provision::load_identity_with(root, name, builder),
        _ => builder.from_env(),
    };
    loaded.map_err(Failure::usage)
}

pub fn parse_id(value: &str, what: &str) -> Result<SpiffeId, Failure> {
    SpiffeId::new(value).map_err(|e| {
        let shown: String = value.chars().take(100).collect();
        Failure::usage(format!("{what} {shown:?} is not a SPIFFE ID: it {e}"))
    })
}
