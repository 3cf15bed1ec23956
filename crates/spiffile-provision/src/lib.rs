//! Provisioning of spiffile roots: the keys, identity files and trust bundle
//! that the `spiffile` library reads, made so that a root is never corrupted.
//!
//! A root has the layout every spiffile implementation uses, so a root made
//! by the Python reference works here and the other way round:
//!
//! ```text
//! <root>/bundle.json              the bundle, for everyone
//! <root>/services/<name>/id       the service's SPIFFE ID (spiffe://<td>/<name>)
//! <root>/services/<name>/key.pem  its private key (PKCS#8 P-256), mode 0600
//! ```
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! # let root = dir.path();
//! use spiffile_provision as provision;
//!
//! provision::init_root(root, "example.org")?;
//! provision::add_service(root, "orders")?;
//! provision::add_service(root, "billing")?;
//!
//! let env = provision::service_env(root, "orders")?;
//! assert_eq!(env.id.as_str(), "spiffe://example.org/orders");
//! assert!(env.key_file.ends_with("services/orders/key.pem"));
//!
//! provision::rotate_service(root, "orders", provision::OldKeys::Keep)?; // new key first, old key kept
//! // Services load these files with `spiffile::Identity::from_env()`, or with
//! // `spiffile::provision::load_identity(root, "orders")` (the facade).
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Safety of the root
//!
//! * Every write of `bundle.json` (and of `id` and `key.pem`) is atomic: a
//!   temporary file in the same directory, fsync, rename over the target,
//!   fsync of the directory. Readers see the old or the new file, never a
//!   part of one.
//! * A key file is created with mode 0600 from its first byte; service
//!   directories are created 0700.
//! * Operations that change a root hold an exclusive advisory lock on
//!   `<root>/.spiffile.lock` (`flock`), so concurrent provisioners, in one
//!   process or many, never lose each other's updates. Read-only operations
//!   take the shared lock.
//! * Every operation is all or nothing, and ordered so that a crash at any
//!   moment (`kill -9`) leaves a bundle that parses and a state the next
//!   operation recognizes:
//!   - `add` writes the key and the `id` file, then the bundle entry; a
//!     failure removes what it wrote ([`Error::RolledBack`]). A `key.pem`
//!     already on disk without its bundle entry is refused (whoever can write
//!     the directory could have planted it) unless adopted with
//!     [`AddOptions::adopt_existing_key`] ([`AddAction::Adopted`]); every
//!     other operation reports it ([`Notice::NotInBundle`]).
//!   - `rotate` stages the new key beside the old one, writes the bundle once
//!     (new key first, old keys kept or dropped as [`OldKeys`] says), then
//!     renames the staged key over `key.pem`. A staged key left by a crash is
//!     put in place when the bundle already binds it, and discarded otherwise
//!     ([`Notice`]).
//!   - `remove` sets the key aside, writes the bundle without the identity
//!     (the revocation), then deletes the files. A bundle entry whose key is
//!     gone is reported ([`Notice::KeyMissing`], [`ServiceStatus::KeyMissing`]);
//!     `add` refuses to guess ([`Error::KeyMissing`] says how to revoke or
//!     re-key it).
//!   - Temporary files (`.spiffile-tmp-*`) left by a crash are deleted by the
//!     next operation that holds the lock.
//! * A bundle with entries this library cannot read is never rewritten (that
//!   would drop them): [`Error::UnreadableEntries`].
//!
//! # Layering
//!
//! This crate sits above `spiffile-id`, `spiffile-bundle` and `spiffile-svid`
//! and below the `spiffile` facade, which re-exports it as
//! `spiffile::provision` and adds `load_identity` (loading a provisioned
//! service as a `spiffile::Identity`).
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;

mod add;
mod audit;
mod env;
mod error;
mod faults;
mod fsutil;
mod import;
mod init;
mod layout;
mod list;
mod lock;
mod nofollow;
mod notice;
mod open;
mod remove;
mod repair;
mod rotate;
mod service_files;
mod undo;
pub mod x509;

pub use add::{AddAction, AddOptions, Added, add_service, add_service_with};
pub use env::{ServiceEnv, service_env};
pub use error::Error;
pub use fsutil::replace_file_atomically;
pub use import::{ImportedService, import_root};
pub use init::init_root;
pub use list::{ServiceInfo, ServiceStatus, list_services};
pub use notice::Notice;
pub use remove::{Removed, remove_service};
pub use rotate::{OldKeys, Revoked, Rotated, revoke_old_keys, rotate_service};
pub use spiffile_svid::{KeyError, PrivateKeyPem, public_key_of_pem};

/// The bundle file of a root.
pub const BUNDLE_FILE: &str = "bundle.json";
/// The directory of a root holding one directory per service.
pub const SERVICES_DIR: &str = "services";
/// A service's identity file.
pub const ID_FILE: &str = "id";
/// A service's private key file.
pub const KEY_FILE: &str = "key.pem";
/// The environment variable naming a service's identity file (the same
/// name the `spiffile` facade reads).
pub const ENV_ID_FILE: &str = "SPIFFILE_ID_FILE";
/// The environment variable naming a service's private key file.
pub const ENV_KEY_FILE: &str = "SPIFFILE_KEY_FILE";
/// The environment variable naming the bundle file.
pub const ENV_BUNDLE_FILE: &str = "SPIFFILE_BUNDLE_FILE";
/// The lock file of a root.
pub const LOCK_FILE: &str = ".spiffile.lock";

/// Generates a service key the way provisioning generates every key: P-256,
/// PKCS#8 PEM in a buffer zeroed on drop, and its public key for the bundle
/// (`kid` = RFC 7638 thumbprint). For producers that store keys elsewhere
/// than a root (the Kubernetes operator keeps them in Secrets).
///
/// ```
/// let (pem, public) = spiffile_provision::generate_service_key()?;
/// assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
/// assert_eq!(spiffile_provision::public_key_of_pem(pem.as_bytes())?.kid(), public.kid());
/// # Ok::<(), spiffile_provision::KeyError>(())
/// ```
pub fn generate_service_key() -> Result<(PrivateKeyPem, spiffile_bundle::PublicKey), KeyError> {
    let pem = spiffile_svid::generate_pkcs8_pem()?;
    let public = public_key_of_pem(pem.as_bytes())?;
    Ok((pem, public))
}
