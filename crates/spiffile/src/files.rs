//! Where a workload's three files are, and reading them safely.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::Error;
use spiffile_svid::Zeroizing;

/// Environment variable naming the identity file.
pub const ENV_ID_FILE: &str = "SPIFFILE_ID_FILE";
/// Environment variable naming the private key file.
pub const ENV_KEY_FILE: &str = "SPIFFILE_KEY_FILE";
/// Environment variable naming the bundle file.
pub const ENV_BUNDLE_FILE: &str = "SPIFFILE_BUNDLE_FILE";
/// Environment variable naming a directory holding `id`, `key.pem` and
/// `bundle.json`.
pub const ENV_DIR: &str = "SPIFFILE_DIR";

/// The three files of a workload identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    /// The workload's own SPIFFE ID, one line.
    pub id: PathBuf,
    /// Its PKCS#8 PEM P-256 private key.
    pub key: PathBuf,
    /// The trust bundle.
    pub bundle: PathBuf,
}

impl IdentityFiles {
    /// The three files of the directory layout (`id`, `key.pem`,
    /// `bundle.json`).
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        IdentityFiles {
            id: dir.join("id"),
            key: dir.join("key.pem"),
            bundle: dir.join("bundle.json"),
        }
    }

    /// The three files of a directory as found on disk: the directory form
    /// (`id`, `key.pem`, `bundle.json`), or a service directory of a
    /// provisioning root (`ROOT/services/NAME`, holding `id` and `key.pem`),
    /// whose bundle is the root's `bundle.json`. A provisioning root itself
    /// is refused with [`Error::ProvisioningRoot`], which names its services.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let root = dir.path();
    /// spiffile::provision::init_root(root, "example.org")?;
    /// spiffile::provision::add_service(root, "orders")?;
    /// let files = spiffile::IdentityFiles::from_dir(root.join("services/orders"))?;
    /// assert_eq!(files.bundle, root.join("bundle.json"));
    /// assert!(matches!(
    ///     spiffile::IdentityFiles::from_dir(root),
    ///     Err(spiffile::Error::ProvisioningRoot { .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let files = IdentityFiles::in_dir(dir);
        match DirLayout::of(dir) {
            DirLayout::Identity => Ok(files),
            DirLayout::ServiceOfRoot { bundle } => Ok(IdentityFiles { bundle, ..files }),
            DirLayout::Root => Err(Error::ProvisioningRoot {
                dir: dir.to_owned(),
                services: service_names(dir),
            }),
        }
    }

    /// Reads `SPIFFILE_ID_FILE`, `SPIFFILE_KEY_FILE`, `SPIFFILE_BUNDLE_FILE`
    /// and `SPIFFILE_DIR` from the process environment.
    ///
    /// Each explicit file variable wins over the directory for its own file;
    /// an empty variable counts as unset. `SPIFFILE_DIR` may also name a
    /// service directory of a provisioning root (see
    /// [`IdentityFiles::from_dir`]).
    pub fn from_env() -> Result<Self, Error> {
        let var = |name: &str| std::env::var_os(name);
        let files = Self::from_vars(var)?;
        let Some(dir) = var(ENV_DIR).filter(|v| !v.is_empty()).map(PathBuf::from) else {
            return Ok(files);
        };
        let explicit = |name: &str| var(name).is_some_and(|v| !v.is_empty());
        match DirLayout::of(&dir) {
            DirLayout::ServiceOfRoot { bundle } if !explicit(ENV_BUNDLE_FILE) => {
                Ok(IdentityFiles { bundle, ..files })
            }
            DirLayout::Root if !explicit(ENV_ID_FILE) || !explicit(ENV_KEY_FILE) => {
                Err(Error::ProvisioningRoot {
                    services: service_names(&dir),
                    dir,
                })
            }
            _ => Ok(files),
        }
    }

    /// Like [`IdentityFiles::from_env`], with the variables looked up by
    /// `var` (for tests, or configuration that is not the process
    /// environment).
    ///
    /// ```
    /// use spiffile::IdentityFiles;
    /// let files = IdentityFiles::from_vars(|name| match name {
    ///     "SPIFFILE_DIR" => Some("/identity".into()),
    ///     "SPIFFILE_KEY_FILE" => Some("/secrets/key.pem".into()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(files.id, std::path::Path::new("/identity/id"));
    /// assert_eq!(files.key, std::path::Path::new("/secrets/key.pem"));
    /// # Ok::<(), spiffile::Error>(())
    /// ```
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Result<Self, Error> {
        let get = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let dir = get(ENV_DIR).map(IdentityFiles::in_dir);
        let pick = |name: &str, from_dir: Option<&PathBuf>| get(name).or_else(|| from_dir.cloned());
        let id = pick(ENV_ID_FILE, dir.as_ref().map(|d| &d.id));
        let key = pick(ENV_KEY_FILE, dir.as_ref().map(|d| &d.key));
        let bundle = pick(ENV_BUNDLE_FILE, dir.as_ref().map(|d| &d.bundle));
        match (id, key, bundle) {
            (Some(id), Some(key), Some(bundle)) => Ok(IdentityFiles { id, key, bundle }),
            (id, key, bundle) => {
                let missing: Vec<&str> = [
                    (id.is_none(), ENV_ID_FILE),
                    (key.is_none(), ENV_KEY_FILE),
                    (bundle.is_none(), ENV_BUNDLE_FILE),
                ]
                .iter()
                .filter(|(m, _)| *m)
                .map(|(_, n)| *n)
                .collect();
                Err(Error::NotConfigured(format!(
                    "set {ENV_DIR} to a directory holding id, key.pem and bundle.json, \
                     or set {ENV_ID_FILE}, {ENV_KEY_FILE} and {ENV_BUNDLE_FILE} (not set: {})",
                    missing.join(", ")
                )))
            }
        }
    }
}

/// What a directory named as an identity's directory is.
pub(crate) enum DirLayout {
    /// The directory form, or something that is not a root (loading reports
    /// what is missing).
    Identity,
    /// `ROOT/services/NAME` of a provisioning root: `id` and `key.pem` here,
    /// the bundle at the root.
    ServiceOfRoot { bundle: PathBuf },
    /// A provisioning root: `bundle.json` and `services/`, no `id`.
    Root,
}

impl DirLayout {
    pub(crate) fn of(dir: &Path) -> DirLayout {
        let here = IdentityFiles::in_dir(dir);
        if here.bundle.exists() {
            if !here.id.exists() && dir.join(spiffile_provision::SERVICES_DIR).is_dir() {
                return DirLayout::Root;
            }
            return DirLayout::Identity;
        }
        if !here.id.is_file() {
            return DirLayout::Identity;
        }
        // The nearest ancestor named `services` whose parent holds the
        // bundle: the root this directory is a service of. Nothing outside
        // that root is looked at.
        let mut up = dir.parent();
        while let Some(services) = up {
            if services.file_name() == Some(std::ffi::OsStr::new(spiffile_provision::SERVICES_DIR))
                && let Some(root) = services.parent()
            {
                let bundle = root.join(spiffile_provision::BUNDLE_FILE);
                if bundle.is_file() {
                    return DirLayout::ServiceOfRoot { bundle };
                }
            }
            up = services.parent();
        }
        DirLayout::Identity
    }
}

/// The service names of a root, for a message (empty when they cannot be
/// listed).
pub(crate) fn service_names(root: &Path) -> Vec<String> {
    spiffile_provision::list_services(root)
        .map(|services| services.into_iter().map(|s| s.name).collect())
        .unwrap_or_default()
}

/// Largest identity file read (an ID is at most 2048 bytes).
pub(crate) const MAX_ID_FILE_BYTES: u64 = 4096;
/// Largest key file read.
pub(crate) const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Reads a whole regular file of at most `max` bytes, with the reader the
/// watcher uses ([`spiffile_watch::read_regular_file`]): a FIFO never blocks,
/// a directory or an oversized file gets a clear message before a byte is
/// read, and the buffer is zeroed when dropped (key files go through here).
pub(crate) fn read_limited(path: &Path, max: u64) -> Result<Zeroizing<Vec<u8>>, Error> {
    spiffile_watch::read_regular_file(path, max).map_err(|e| Error::from_read(path, e))
}

/// Warns (once per load) when a private key file is readable by group or
/// others. Not an error: Kubernetes Secret volumes default to mode 0644.
#[cfg(unix)]
pub(crate) fn warn_if_exposed(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            target: "spiffile",
            "private key file {} has mode {:04o}: readable by group or others; 0600 is recommended",
            path.display(),
            mode
        );
        return Some(mode);
    }
    None
}

#[cfg(not(unix))]
pub(crate) fn warn_if_exposed(_path: &Path) -> Option<u32> {
    None
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

    #[test]
    fn explicit_files() {
        let f = IdentityFiles::from_vars(vars(&[
            (ENV_ID_FILE, "/a/id"),
            (ENV_KEY_FILE, "/a/k"),
            (ENV_BUNDLE_FILE, "/b/bundle.json"),
        ]))
        .unwrap();
        assert_eq!(f.id, Path::new("/a/id"));
        assert_eq!(f.bundle, Path::new("/b/bundle.json"));
    }

    #[test]
    fn dir_and_override() {
        let f = IdentityFiles::from_vars(vars(&[
            (ENV_DIR, "/d"),
            (ENV_BUNDLE_FILE, "/shared/b.json"),
        ]))
        .unwrap();
        assert_eq!(f.id, Path::new("/d/id"));
        assert_eq!(f.key, Path::new("/d/key.pem"));
        assert_eq!(f.bundle, Path::new("/shared/b.json"));
    }

    #[test]
    fn empty_counts_as_unset() {
        let f = IdentityFiles::from_vars(vars(&[(ENV_DIR, "/d"), (ENV_ID_FILE, "")])).unwrap();
        assert_eq!(f.id, Path::new("/d/id"));
        let e = IdentityFiles::from_vars(vars(&[(ENV_DIR, ""), (ENV_ID_FILE, "/x")])).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("SPIFFILE_DIR"), "{msg}");
        assert!(
            msg.contains("not set: SPIFFILE_KEY_FILE, SPIFFILE_BUNDLE_FILE"),
            "{msg}"
        );
    }

    #[test]
    fn nothing_configured_says_what_to_set() {
        let e = IdentityFiles::from_vars(|_| None).unwrap_err();
        assert!(matches!(e, Error::NotConfigured(_)));
        assert!(e.to_string().contains("set SPIFFILE_DIR"));
    }

    #[test]
    fn read_limited_refuses_directories_fifos_and_big_files() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_limited(dir.path(), 10).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let big = dir.path().join("big");
        fs::write(&big, vec![b'x'; 11]).unwrap();
        assert!(
            read_limited(&big, 10)
                .unwrap_err()
                .to_string()
                .contains("is 11 bytes, larger than the limit of 10 bytes")
        );
        assert_eq!(read_limited(&big, 11).unwrap().len(), 11);
        let missing = dir.path().join("missing");
        let e = read_limited(&missing, 10).unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
        assert!(e.to_string().contains("missing"));
        #[cfg(unix)]
        {
            let fifo = dir.path().join("fifo");
            let status = std::process::Command::new("mkfifo").arg(&fifo).status();
            if status.map(|s| s.success()).unwrap_or(false) {
                let e = read_limited(&fifo, 10).unwrap_err();
                assert!(e.to_string().contains("FIFO"), "{e}");
            }
        }
    }
}
