//! Where `token`, `verify`, `inspect`, `status` and `exec` find their
//! identity and trust: the `SPIFFILE_*` environment, flags beside it (each
//! flag wins over its variable), a directory, or a service of a provisioned
//! root.

use std::ffi::OsString;
use std::path::PathBuf;

use spiffile::{
    ENV_BUNDLE_DIR, ENV_BUNDLE_FILE, ENV_BUNDLE_TRUST_DOMAIN, ENV_DIR, ENV_ID_FILE,
    ENV_JWT_SVID_DIR, ENV_KEY_FILE, IdentitySources,
};
use spiffile::{Identity, IdentityBuilder, SpiffeId, provision};

use crate::exit::identity_failure;
use crate::output::Failure;
use crate::root_arg::env_root;

/// Where the identity and its trust come from: the SPIFFILE_* environment
/// by default, each flag replacing its variable.
#[derive(Debug, Default, clap::Args)]
pub struct IdentitySource {
    /// A directory holding id, key.pem and bundle.json, or a service
    /// directory of a root (ROOT/services/NAME), instead of the SPIFFILE_*
    /// environment (the other flags still apply).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["root", "service"])]
    dir: Option<PathBuf>,
    /// A provisioned root (with --service; default: $SPIFFILE_ROOT): use
    /// that service's identity.
    #[arg(long, value_name = "ROOT", requires = "service")]
    root: Option<PathBuf>,
    /// The service of --root (or of $SPIFFILE_ROOT) whose identity to use.
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
    /// The identity file (SPIFFILE_ID_FILE).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["root", "service"])]
    id_file: Option<PathBuf>,
    /// The private key file (SPIFFILE_KEY_FILE).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["root", "service", "jwt_svid_dir"])]
    key_file: Option<PathBuf>,
    /// The bundle file, in any format: spiffile bundle, SPIFFE bundle (JWKS)
    /// or spiffe-helper's JWT bundle set (SPIFFILE_BUNDLE_FILE).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["root", "service", "bundle_dir"])]
    bundle_file: Option<PathBuf>,
    /// A directory whose every *.json is a bundle, e.g. <trust-domain>.json
    /// files (SPIFFILE_BUNDLE_DIR).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["root", "service"])]
    bundle_dir: Option<PathBuf>,
    /// The trust domain of a SPIFFE bundle (JWKS) file not named
    /// <trust-domain>.json (SPIFFILE_BUNDLE_TRUST_DOMAIN).
    #[arg(long, value_name = "TRUST_DOMAIN", conflicts_with_all = ["root", "service", "bundle_dir"])]
    bundle_trust_domain: Option<String>,
    /// spiffe-helper's output directory: present SPIRE's JWT-SVIDs from it
    /// instead of minting (SPIFFILE_JWT_SVID_DIR).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["root", "service"])]
    jwt_svid_dir: Option<PathBuf>,
}

impl IdentitySource {
    /// The value of one `SPIFFILE_*` variable as these flags make it: the
    /// flag when given; with `--dir`, nothing from the environment; else the
    /// environment, less what a flag replaces (`--bundle-dir` replaces
    /// SPIFFILE_BUNDLE_FILE too, `--jwt-svid-dir` SPIFFILE_KEY_FILE).
    fn var(&self, name: &str, env: &dyn Fn(&str) -> Option<OsString>) -> Option<OsString> {
        let flag = |p: &Option<PathBuf>| p.as_ref().map(|p| p.clone().into_os_string());
        let given = match name {
            ENV_DIR => flag(&self.dir),
            ENV_ID_FILE => flag(&self.id_file),
            ENV_KEY_FILE => flag(&self.key_file),
            ENV_BUNDLE_FILE => flag(&self.bundle_file),
            ENV_BUNDLE_DIR => flag(&self.bundle_dir),
            ENV_BUNDLE_TRUST_DOMAIN => self.bundle_trust_domain.clone().map(OsString::from),
            ENV_JWT_SVID_DIR => flag(&self.jwt_svid_dir),
            _ => None,
        };
        if given.is_some() {
            return given;
        }
        if self.dir.is_some() {
            return None;
        }
        let replaced = match name {
            ENV_BUNDLE_FILE => self.bundle_dir.is_some(),
            ENV_BUNDLE_DIR => self.bundle_file.is_some(),
            ENV_KEY_FILE => self.jwt_svid_dir.is_some(),
            _ => false,
        };
        if replaced { None } else { env(name) }
    }

    /// The sources these flags and `env` describe (not for `--root`).
    pub fn sources_with(
        &self,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<IdentitySources, Failure> {
        IdentitySources::from_vars(|name| self.var(name, env)).map_err(identity_failure)
    }

    /// The sources these flags and the process environment describe.
    pub fn sources(&self) -> Result<IdentitySources, Failure> {
        self.sources_with(&|name| std::env::var_os(name))
    }
}

impl IdentitySource {
    /// Whether a directory or a service was named (not the environment).
    pub fn is_explicit(&self) -> bool {
        self.dir.is_some() || self.service.is_some()
    }
}

/// Loads the identity for a one-shot command: read once, no file watcher.
pub fn load_identity(source: &IdentitySource) -> Result<Identity, Failure> {
    load_identity_with(source, Identity::builder())
}

/// [`load_identity`] with settings.
pub fn load_identity_with(
    source: &IdentitySource,
    builder: IdentityBuilder,
) -> Result<Identity, Failure> {
    let builder = builder.hot_reload(false);
    let loaded = match (&source.root, &source.service) {
        (Some(root), Some(name)) => provision::load_identity_with(root, name, builder),
        (None, Some(name)) => match env_root() {
            Some(root) => provision::load_identity_with(root, name, builder),
            None => {
                return Err(Failure::usage(format!(
                    "--service {name} needs the root it belongs to: add --root ROOT, or set SPIFFILE_ROOT"
                )));
            }
        },
        _ => builder.load_sources(source.sources()?),
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

#[cfg(test)]
mod tests {
    use super::*;
    use spiffile::BundleSource;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.into())
        }
    }

    #[test]
    fn flags_win_over_their_variables() {
        let e = env(&[
            (ENV_ID_FILE, "/env/id"),
            (ENV_KEY_FILE, "/env/key.pem"),
            (ENV_BUNDLE_FILE, "/env/bundle.json"),
        ]);
        let flags = IdentitySource {
            bundle_dir: Some("/etc/bundles".into()),
            ..IdentitySource::default()
        };
        let s = flags.sources_with(&e).unwrap();
        assert_eq!(s.bundle, BundleSource::dir("/etc/bundles"));
        assert_eq!(s.id_file.as_deref(), Some(std::path::Path::new("/env/id")));
        let flags = IdentitySource {
            jwt_svid_dir: Some("/run/spire".into()),
            bundle_file: Some("/run/spire/jwt_bundle.json".into()),
            ..IdentitySource::default()
        };
        let s = flags.sources_with(&e).unwrap();
        assert_eq!(s.key_file, None, "--jwt-svid-dir replaces the key");
        assert_eq!(s.bundle, BundleSource::file("/run/spire/jwt_bundle.json"));
        // --dir: nothing from the environment.
        let flags = IdentitySource {
            dir: Some("/d".into()),
            ..IdentitySource::default()
        };
        let s = flags.sources_with(&e).unwrap();
        assert_eq!(s.bundle, BundleSource::file("/d/bundle.json"));
        assert_eq!(
            s.key_file.as_deref(),
            Some(std::path::Path::new("/d/key.pem"))
        );
    }
}
