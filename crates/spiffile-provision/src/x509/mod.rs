//! X.509-SVIDs without SPIRE: a root's own CA, issuing and renewing
//! services' X.509-SVIDs, rotating the CA with a bundle overlap.
//!
//! Beside the JWT files of a root:
//!
//! ```text
//! <root>/bundle.pem                   the X.509 bundle: the CA certificates (0644)
//! <root>/x509/ca.pem                  the CA certificate and its private key (0600, in a 0700 directory)
//! <root>/services/<name>/svid.pem     the service's X.509-SVID (leaf), spiffe-helper's name
//! <root>/services/<name>/svid_key.pem its private key (PKCS#8 P-256, 0600 from the first byte)
//! ```
//!
//! The same guarantees as the JWT provisioning: every file is written
//! atomically (temporary file, fsync, rename, fsync of the directory), keys
//! are 0600 from their first byte, every change holds the root's exclusive
//! lock, and a crash at any point leaves a state the next operation
//! repairs:
//!
//! * the CA certificate and key live in **one** file, so they change
//!   together;
//! * [`rotate_ca`] stages the new CA (`x509/.spiffile-next-ca.pem`), adds its
//!   certificate to `bundle.pem`, then renames it over `ca.pem`; a staged CA
//!   the bundle already holds is put in place by the next operation, one it
//!   does not hold is discarded;
//! * [`issue_svid`] writes the key, then the certificate: a reader between
//!   the two sees a pair that does not match, which `spiffile-tls` never
//!   serves (it keeps the previous pair); a crash between them leaves a
//!   mismatched pair that [`renew_svids`] renews.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! # let root = dir.path();
//! use std::time::Duration;
//! use spiffile_provision::{self as provision, x509};
//!
//! provision::init_root(root, "example.org")?;
//! x509::init_ca(root, x509::CaOptions::default())?;
//! let issued = x509::issue_svid(root, "orders", Duration::from_secs(3600))?;
//! assert_eq!(issued.id.as_str(), "spiffe://example.org/orders");
//! assert!(issued.svid_file.ends_with("services/orders/svid.pem"));
//!
//! // Later: a new CA beside the old one, SVIDs renewed under it, the old CA retired.
//! x509::rotate_ca(root, x509::CaOptions::default())?;
//! x509::renew_svids(root, 0.5, Duration::from_secs(3600))?; // also renews SVIDs of the old CA
//! x509::retire_old_cas(root)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ca;
mod files;
mod issue;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use spiffile_id::SpiffeId;

pub use ca::{CaInfo, CaOptions, Retired, init_ca, read_ca_info, retire_old_cas, rotate_ca};
pub use issue::{IssueOptions, Renewed, issue_svid, issue_svid_with, renew_svids};

/// The X.509 bundle of a root (the CA certificates), beside `bundle.json`.
pub const X509_BUNDLE_FILE: &str = "bundle.pem";
/// The directory of a root holding its CA.
pub const X509_DIR: &str = "x509";
/// The CA's certificate and private key, in [`X509_DIR`].
pub const CA_FILE: &str = "ca.pem";
/// A service's X.509-SVID (leaf certificate), spiffe-helper's file name.
pub const SVID_FILE: &str = "svid.pem";
/// A service's X.509-SVID private key, spiffe-helper's file name.
pub const SVID_KEY_FILE: &str = "svid_key.pem";
/// Default lifetime of an issued X.509-SVID.
pub const DEFAULT_SVID_TTL: Duration = Duration::from_secs(3600);
/// Default lifetime of a CA.
pub const DEFAULT_CA_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Default of [`renew_svids`]'s fraction: renew past half the lifetime.
pub const DEFAULT_RENEW_FRACTION: f64 = 0.5;

/// One X.509-SVID written by [`issue_svid`] or [`renew_svids`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Issued {
    /// The service name (its SPIFFE ID path).
    pub name: String,
    /// Its SPIFFE ID.
    pub id: SpiffeId,
    /// `services/<name>/svid.pem`.
    pub svid_file: PathBuf,
    /// `services/<name>/svid_key.pem`.
    pub key_file: PathBuf,
    /// `<root>/bundle.pem`.
    pub bundle_file: PathBuf,
    /// Start of validity (backdated a minute for clock skew).
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
}
