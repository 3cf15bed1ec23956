//! Provisioning of spiffile roots (the `spiffile-provision` crate), plus
//! loading a provisioned service as an [`Identity`].
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! # let root = dir.path();
//! use spiffile::provision;
//!
//! provision::init_root(root, "example.org")?;
//! provision::add_service(root, "orders")?;
//! provision::add_service(root, "billing")?;
//!
//! let orders = provision::load_identity(root, "orders")?;
//! let billing = provision::load_identity(root, "billing")?;
//! let token = orders.token(billing.id())?;
//! assert_eq!(billing.verify(&token)?.id(), orders.id());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

pub use spiffile_provision::*;

use crate::{Identity, IdentityBuilder, IdentityFiles};

impl From<ServiceEnv> for IdentityFiles {
    fn from(env: ServiceEnv) -> Self {
        IdentityFiles {
            id: env.id_file,
            key: env.key_file,
            bundle: env.bundle_file,
        }
    }
}

/// Loads a provisioned service's identity (its `id`, `key.pem` and the
/// root's `bundle.json`), ready to mint and verify tokens.
pub fn load_identity(root: impl AsRef<Path>, name: &str) -> Result<Identity, crate::Error> {
    load_identity_with(root, name, Identity::builder())
}

/// Like [`load_identity`], with the settings of `builder`.
pub fn load_identity_with(
    root: impl AsRef<Path>,
    name: &str,
    builder: IdentityBuilder,
) -> Result<Identity, crate::Error> {
    let env = service_env(root, name).map_err(crate::Error::Provision)?;
    builder.load(env.into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn environment_variable_names_agree() {
        assert_eq!(super::ENV_ID_FILE, crate::ENV_ID_FILE);
        assert_eq!(super::ENV_KEY_FILE, crate::ENV_KEY_FILE);
        assert_eq!(super::ENV_BUNDLE_FILE, crate::ENV_BUNDLE_FILE);
    }
}
