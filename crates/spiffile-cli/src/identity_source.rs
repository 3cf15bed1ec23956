//! Where `token`, `verify`, `status` and `exec` find their identity: the
//! `SPIFFILE_*` environment, a directory, or a service of a provisioned root.

use std::path::PathBuf;

use spiffile::provision;
use spiffile::{Identity, SpiffeId};

use crate::exit::identity_failure;
use crate::output::Failure;
use crate::root_arg::env_root;

/// Where `token` and `verify` find the identity: the SPIFFILE_* environment
/// by default.
#[derive(Debug, clap::Args)]
pub struct IdentitySource {
    /// A directory holding id, key.pem and bundle.json, or a service
    /// directory of a root (ROOT/services/NAME), instead of the SPIFFILE_*
    /// environment.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["root", "service"])]
    dir: Option<PathBuf>,
    /// A provisioned root (with --service; default: $SPIFFILE_ROOT): use
    /// that service's identity.
    #[arg(long, value_name = "ROOT", requires = "service")]
    root: Option<PathBuf>,
    /// The service of --root (or of $SPIFFILE_ROOT) whose identity to use.
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
}

impl IdentitySource {
    /// Whether a directory or a service was named (not the environment).
    pub fn is_explicit(&self) -> bool {
        self.dir.is_some() || self.service.is_some()
    }
}

/// Loads the identity for a one-shot command: read once, no file watcher.
pub fn load_identity(source: &IdentitySource) -> Result<Identity, Failure> {
    let builder = Identity::builder().hot_reload(false);
    let loaded = match (&source.dir, &source.root, &source.service) {
        (Some(d), _, _) => builder.from_dir(d),
        (None, Some(root), Some(name)) => provision::load_identity_with(root, name, builder),
        (None, None, Some(name)) => match env_root() {
            Some(root) => provision::load_identity_with(root, name, builder),
            None => {
                return Err(Failure::usage(format!(
                    "--service {name} needs the root it belongs to: add --root ROOT, or set SPIFFILE_ROOT"
                )));
            }
        },
        _ => builder.from_env(),
    };
    loaded.map_err(identity_failure)
}

pub fn parse_id(value: &str, what: &str) -> Result<SpiffeId, Failure> {
    SpiffeId::new(value).map_err(|e| {
        let shown: String = value.chars().take(100).collect();
        let hint = if !value.contains("://") && !value.is_empty() {
            " (a SPIFFE ID looks like spiffe://example.org/billing)"
        } else {
            ""
        };
        Failure::usage(format!("{what} {shown:?} is not a SPIFFE ID: it {e}{hint}"))
    })
}
