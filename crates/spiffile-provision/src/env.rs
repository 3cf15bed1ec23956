//! `service_env`: the files of a service and the `SPIFFILE_*` variables
//! that name them.

use std::fs;
use std::path::{Path, PathBuf};

use spiffile_id::SpiffeId;

use crate::fsutil;
use crate::layout::bundle_path;
use crate::open::{Open, check_root_dir};
use crate::{ENV_BUNDLE_FILE, ENV_ID_FILE, ENV_KEY_FILE, Error, nofollow};

/// The files of a provisioned service and the `SPIFFILE_*` variables that
/// name them (see [`service_env`]). The `spiffile` facade loads an
/// `Identity` from it (`spiffile::provision::load_identity`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceEnv {
    /// The service's SPIFFE ID.
    pub id: SpiffeId,
    /// Its identity file (absolute path).
    pub id_file: PathBuf,
    /// Its private key file (absolute path).
    pub key_file: PathBuf,
    /// The root's bundle file (absolute path).
    pub bundle_file: PathBuf,
}

impl ServiceEnv {
    /// `SPIFFILE_ID_FILE`, `SPIFFILE_KEY_FILE` and `SPIFFILE_BUNDLE_FILE` with
    /// their values, in that order.
    pub fn vars(&self) -> [(&'static str, &Path); 3] {
        [
            (ENV_ID_FILE, self.id_file.as_path()),
            (ENV_KEY_FILE, self.key_file.as_path()),
            (ENV_BUNDLE_FILE, self.bundle_file.as_path()),
        ]
    }
}

/// The three `SPIFFILE_*` variables (absolute paths) for a service, for its
/// process environment: `SPIFFILE_ID_FILE`, `SPIFFILE_KEY_FILE`,
/// `SPIFFILE_BUNDLE_FILE`.
///
/// Fails with [`Error::UnknownService`] when the service has neither a
/// bundle entry nor files.
pub fn service_env(root: impl AsRef<Path>, name: &str) -> Result<ServiceEnv, Error> {
    let root = root.as_ref();
    check_root_dir(root)?;
    let root = fs::canonicalize(root).map_err(fsutil::fail(root, "resolve"))?;
    let open = Open::read(&root)?;
    let service = open.checked_service(name)?;
    if !open.bundle.contains(&service.id)
        && !nofollow::exists(&service.key_file())?
        && !nofollow::exists(&service.id_file())?
    {
        return Err(Error::UnknownService {
            name: service.name,
            root: open.root.clone(),
        });
    }
    Ok(ServiceEnv {
        id_file: service.id_file(),
        key_file: service.key_file(),
        bundle_file: bundle_path(&root),
        id: service.id,
    })
}
