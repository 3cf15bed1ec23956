//! Where an identity's material comes from in every configuration: the
//! three spiffile files, a bundle directory, SPIRE's files through
//! spiffe-helper, or a mix during a migration.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use spiffile_id::TrustDomain;

use crate::Error;
use crate::files::{
    DirLayout, ENV_BUNDLE_FILE, ENV_DIR, ENV_ID_FILE, ENV_KEY_FILE, IdentityFiles, service_names,
};

/// Environment variable naming a directory of bundles: every `*.json` file
/// in it is a bundle (spiffile, SPIFFE or spiffe-helper's set), one or more
/// trust domains each.
pub const ENV_BUNDLE_DIR: &str = "SPIFFILE_BUNDLE_DIR";
/// Environment variable giving the trust domain of a SPIFFE bundle (a JWKS,
/// which does not name its own) given as `SPIFFILE_BUNDLE_FILE`, when the
/// file is not named `<trust-domain>.json`.
pub const ENV_BUNDLE_TRUST_DOMAIN: &str = "SPIFFILE_BUNDLE_TRUST_DOMAIN";
/// Environment variable naming spiffe-helper's output directory: the
/// JWT-SVIDs this workload presents, one file per audience.
pub const ENV_JWT_SVID_DIR: &str = "SPIFFILE_JWT_SVID_DIR";

/// Where the trust bundles come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BundleSource {
    /// One file in any of the formats: a spiffile bundle, a SPIFFE bundle
    /// (JWKS) or spiffe-helper's JWT bundle set.
    File {
        /// The file.
        path: PathBuf,
        /// The trust domain of a SPIFFE bundle (else taken from a
        /// `<trust-domain>.json` file name); ignored for the other formats,
        /// which name their trust domains.
        trust_domain: Option<TrustDomain>,
    },
    /// Every `*.json` file of a directory (hidden files and Kubernetes'
    /// `..data` internals excepted): the operator-style ConfigMap of
    /// `<trust-domain>.json` files, or any mix of formats. A trust domain
    /// two files offer is a configuration error.
    Dir(PathBuf),
}

impl BundleSource {
    /// A bundle file in any format.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        BundleSource::File {
            path: path.into(),
            trust_domain: None,
        }
    }

    /// A bundle directory.
    pub fn dir(path: impl Into<PathBuf>) -> Self {
        BundleSource::Dir(path.into())
    }

    /// The file or directory.
    pub fn path(&self) -> &Path {
        match self {
            BundleSource::File { path, .. } | BundleSource::Dir(path) => path,
        }
    }
}

/// Everything an [`Identity`](crate::Identity) reads, in any configuration:
///
/// | configuration | identity | signs with | trusts |
/// |---|---|---|---|
/// | spiffile (the profile's three files) | `id_file` | `key_file` | `bundle` |
/// | SPIRE through spiffe-helper | `id_file`, or the `sub` of the tokens | `jwt_svid_dir` (presents SPIRE's tokens) | `bundle` (its JWT bundle set) |
/// | verify only | `id_file` | nothing | `bundle` |
///
/// and any `bundle`: a file in any of the three formats, or a directory of
/// them (several trust domains side by side, spiffile and SPIRE).
///
/// ```
/// use spiffile::{BundleSource, IdentitySources};
/// let sources = IdentitySources::from_vars(|name| match name {
///     "SPIFFILE_BUNDLE_FILE" => Some("/run/spire/jwt_bundle.json".into()),
///     "SPIFFILE_JWT_SVID_DIR" => Some("/run/spire".into()),
///     _ => None,
/// })?;
/// assert_eq!(sources.bundle, BundleSource::file("/run/spire/jwt_bundle.json"));
/// assert_eq!(sources.id_file, None); // the tokens' `sub` says who we are
/// assert_eq!(sources.key_file, None);
/// # Ok::<(), spiffile::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdentitySources {
    /// The workload's own SPIFFE ID (one line). Without it, the ID is the
    /// `sub` of the tokens in `jwt_svid_dir`, which must all agree.
    pub id_file: Option<PathBuf>,
    /// Its P-256 private key (PKCS#8 PEM), to mint tokens. Without it (and
    /// without `jwt_svid_dir`) the identity verifies but cannot present
    /// tokens.
    pub key_file: Option<PathBuf>,
    /// The trust bundles.
    pub bundle: BundleSource,
    /// spiffe-helper's output directory: the JWT-SVIDs to present, indexed
    /// by their audience. Exclusive with `key_file`.
    pub jwt_svid_dir: Option<PathBuf>,
}

impl From<IdentityFiles> for IdentitySources {
    fn from(files: IdentityFiles) -> Self {
        IdentitySources {
            id_file: Some(files.id),
            key_file: Some(files.key),
            bundle: BundleSource::file(files.bundle),
            jwt_svid_dir: None,
        }
    }
}

impl IdentitySources {
    /// Only the bundles: a verify-only identity once an ID file is added.
    pub fn new(bundle: BundleSource) -> Self {
        IdentitySources {
            id_file: None,
            key_file: None,
            bundle,
            jwt_svid_dir: None,
        }
    }

    /// Sets the identity file.
    pub fn id_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.id_file = Some(path.into());
        self
    }

    /// Sets the private key file.
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_file = Some(path.into());
        self
    }

    /// Sets spiffe-helper's JWT-SVID directory.
    pub fn jwt_svid_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.jwt_svid_dir = Some(path.into());
        self
    }

    /// Reads the `SPIFFILE_*` variables of the process environment (see
    /// [`IdentitySources::from_vars`]).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// Like [`IdentitySources::from_env`], with the variables looked up by
    /// `var`. An empty variable counts as unset.
    ///
    /// * `SPIFFILE_DIR`: a directory holding `id`, `key.pem`, `bundle.json`;
    ///   each explicit variable below wins over it for its own part.
    /// * `SPIFFILE_ID_FILE`, `SPIFFILE_KEY_FILE`, `SPIFFILE_BUNDLE_FILE`: the
    ///   profile's three files (the bundle in any of the three formats).
    /// * `SPIFFILE_BUNDLE_DIR`: a directory of bundles instead of one file
    ///   (not both); `SPIFFILE_BUNDLE_TRUST_DOMAIN`: the trust domain of a
    ///   SPIFFE bundle given as `SPIFFILE_BUNDLE_FILE`.
    /// * `SPIFFILE_JWT_SVID_DIR`: present SPIRE's tokens from spiffe-helper's
    ///   directory instead of minting (then `SPIFFILE_DIR`'s `key.pem` is not
    ///   read, and an explicit `SPIFFILE_KEY_FILE` is an error).
    ///
    /// A key is optional: without one the identity verifies, and minting
    /// says why it cannot.
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Result<Self, Error> {
        let get = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let dir_path = get(ENV_DIR);
        let mut dir = dir_path.as_deref().map(IdentityFiles::in_dir);
        let svid_dir = get(ENV_JWT_SVID_DIR);
        // `SPIFFILE_DIR` may name a service directory of a provisioning root
        // (its bundle is the root's), and must not name the root itself.
        if let (Some(path), Some(files)) = (&dir_path, &mut dir) {
            match DirLayout::of(path) {
                DirLayout::ServiceOfRoot { bundle } => files.bundle = bundle,
                DirLayout::Root
                    if get(ENV_ID_FILE).is_none()
                        || (get(ENV_KEY_FILE).is_none() && svid_dir.is_none()) =>
                {
                    return Err(Error::ProvisioningRoot {
                        dir: path.clone(),
                        services: service_names(path),
                    });
                }
                _ => {}
            }
        }
        let bundle_file = get(ENV_BUNDLE_FILE);
        let bundle_dir = get(ENV_BUNDLE_DIR);
        let trust_domain = match var(ENV_BUNDLE_TRUST_DOMAIN).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => {
                let text = v.to_string_lossy();
                Some(TrustDomain::new(&text).map_err(|e| {
                    Error::NotConfigured(format!(
                        "{ENV_BUNDLE_TRUST_DOMAIN} {:?} is not a trust domain name: it {e}",
                        text.chars().take(100).collect::<String>()
                    ))
                })?)
            }
        };
        let bundle = match (bundle_file, bundle_dir) {
            (Some(f), Some(d)) => {
                return Err(Error::NotConfigured(format!(
                    "both {ENV_BUNDLE_FILE} ({}) and {ENV_BUNDLE_DIR} ({}) are set: set one (a bundle directory can hold the file too)",
                    f.display(),
                    d.display()
                )));
            }
            (None, Some(d)) => {
                if trust_domain.is_some() {
                    return Err(Error::NotConfigured(format!(
                        "{ENV_BUNDLE_TRUST_DOMAIN} applies to {ENV_BUNDLE_FILE}; in {ENV_BUNDLE_DIR} a SPIFFE bundle takes its trust domain from its file name, <trust-domain>.json"
                    )));
                }
                Some(BundleSource::Dir(d))
            }
            (Some(f), None) => Some(BundleSource::File {
                path: f,
                trust_domain,
            }),
            (None, None) => dir.as_ref().map(|d| BundleSource::File {
                path: d.bundle.clone(),
                trust_domain,
            }),
        };
        let id_file = get(ENV_ID_FILE).or_else(|| dir.as_ref().map(|d| d.id.clone()));
        let explicit_key = get(ENV_KEY_FILE);
        let key_file = match (&svid_dir, explicit_key) {
            (Some(s), Some(k)) => {
                return Err(Error::NotConfigured(format!(
                    "both {ENV_KEY_FILE} ({}) and {ENV_JWT_SVID_DIR} ({}) are set: an identity presents either the tokens it mints with its key or SPIRE's, not both",
                    k.display(),
                    s.display()
                )));
            }
            (Some(_), None) => None,
            (None, Some(k)) => Some(k),
            (None, None) => dir.as_ref().map(|d| d.key.clone()),
        };
        let Some(bundle) = bundle else {
            return Err(Error::NotConfigured(format!(
                "set {ENV_DIR} to a directory holding id, key.pem and bundle.json, or set {ENV_ID_FILE}, {ENV_KEY_FILE} and {ENV_BUNDLE_FILE} (or {ENV_BUNDLE_DIR}); with SPIRE, set {ENV_BUNDLE_FILE} to spiffe-helper's JWT bundle file and {ENV_JWT_SVID_DIR} to its directory (not set: {})",
                missing(&[
                    (id_file.is_none() && svid_dir.is_none(), ENV_ID_FILE),
                    (key_file.is_none() && svid_dir.is_none(), ENV_KEY_FILE),
                    (true, ENV_BUNDLE_FILE),
                ])
            )));
        };
        if id_file.is_none() && svid_dir.is_none() {
            return Err(Error::NotConfigured(format!(
                "nothing says which workload this is: set {ENV_ID_FILE} (or {ENV_DIR}), or {ENV_JWT_SVID_DIR} to take the SPIFFE ID from SPIRE's tokens (not set: {})",
                missing(&[(true, ENV_ID_FILE), (key_file.is_none(), ENV_KEY_FILE),])
            )));
        }
        Ok(IdentitySources {
            id_file,
            key_file,
            bundle,
            jwt_svid_dir: svid_dir,
        })
    }
}

fn missing(vars: &[(bool, &str)]) -> String {
    vars.iter()
        .filter(|(m, _)| *m)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.into())
        }
    }

    fn sources(pairs: &[(&str, &str)]) -> Result<IdentitySources, Error> {
        IdentitySources::from_vars(vars(pairs))
    }

    #[test]
    fn the_profile_configurations_are_unchanged() {
        let s = sources(&[(ENV_DIR, "/d")]).unwrap();
        assert_eq!(s, IdentitySources::from(IdentityFiles::in_dir("/d")));
        let s = sources(&[
            (ENV_ID_FILE, "/a/id"),
            (ENV_KEY_FILE, "/a/k"),
            (ENV_BUNDLE_FILE, "/b/bundle.json"),
        ])
        .unwrap();
        assert_eq!(s.bundle, BundleSource::file("/b/bundle.json"));
        assert_eq!(s.key_file.as_deref(), Some(Path::new("/a/k")));
    }

    #[test]
    fn spire_through_spiffe_helper() {
        let s = sources(&[
            (ENV_BUNDLE_FILE, "/run/spire/jwt_bundle.json"),
            (ENV_JWT_SVID_DIR, "/run/spire"),
        ])
        .unwrap();
        assert_eq!(s.id_file, None);
        assert_eq!(s.key_file, None);
        assert_eq!(s.jwt_svid_dir.as_deref(), Some(Path::new("/run/spire")));
        // SPIFFILE_DIR's key is not read when SPIRE's tokens are presented.
        let s = sources(&[(ENV_DIR, "/d"), (ENV_JWT_SVID_DIR, "/run/spire")]).unwrap();
        assert_eq!(s.key_file, None);
        assert_eq!(s.id_file.as_deref(), Some(Path::new("/d/id")));
        let e = sources(&[
            (ENV_DIR, "/d"),
            (ENV_KEY_FILE, "/k.pem"),
            (ENV_JWT_SVID_DIR, "/run/spire"),
        ])
        .unwrap_err();
        assert!(
            e.to_string().contains(
                "both SPIFFILE_KEY_FILE (/k.pem) and SPIFFILE_JWT_SVID_DIR (/run/spire) are set"
            ),
            "{e}"
        );
    }

    #[test]
    fn bundle_dir_and_trust_domain() {
        let s = sources(&[(ENV_DIR, "/d"), (ENV_BUNDLE_DIR, "/etc/bundles")]).unwrap();
        assert_eq!(s.bundle, BundleSource::dir("/etc/bundles"));
        let e = sources(&[
            (ENV_DIR, "/d"),
            (ENV_BUNDLE_DIR, "/x"),
            (ENV_BUNDLE_FILE, "/y"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("set one"), "{e}");
        let e = sources(&[
            (ENV_DIR, "/d"),
            (ENV_BUNDLE_DIR, "/x"),
            (ENV_BUNDLE_TRUST_DOMAIN, "spire.test"),
        ])
        .unwrap_err();
        assert!(
            e.to_string().contains("applies to SPIFFILE_BUNDLE_FILE"),
            "{e}"
        );
        let s = sources(&[
            (ENV_DIR, "/d"),
            (ENV_BUNDLE_FILE, "/b.json"),
            (ENV_BUNDLE_TRUST_DOMAIN, "spire.test"),
        ])
        .unwrap();
        assert_eq!(
            s.bundle,
            BundleSource::File {
                path: "/b.json".into(),
                trust_domain: Some("spire.test".parse().unwrap())
            }
        );
        let e = sources(&[(ENV_DIR, "/d"), (ENV_BUNDLE_TRUST_DOMAIN, "Spire")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("SPIFFILE_BUNDLE_TRUST_DOMAIN \"Spire\" is not a trust domain name"),
            "{e}"
        );
    }

    #[test]
    fn verify_only_and_what_is_missing() {
        let s = sources(&[(ENV_ID_FILE, "/id"), (ENV_BUNDLE_FILE, "/b.json")]).unwrap();
        assert_eq!(s.key_file, None);
        let e = sources(&[]).unwrap_err();
        assert!(matches!(e, Error::NotConfigured(_)));
        assert!(e.to_string().contains("set SPIFFILE_DIR"), "{e}");
        assert!(
            e.to_string()
                .contains("not set: SPIFFILE_ID_FILE, SPIFFILE_KEY_FILE, SPIFFILE_BUNDLE_FILE"),
            "{e}"
        );
        let e = sources(&[(ENV_BUNDLE_FILE, "/b.json")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("nothing says which workload this is"),
            "{e}"
        );
    }
}
