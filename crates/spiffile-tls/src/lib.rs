//! X.509-SVIDs from files for rustls: mutual TLS between SPIFFE workloads,
//! validated as the SPIFFE X509-SVID standard says, inside the handshake,
//! with rotations that never drop a connection.
//!
//! * [`X509Svid`]: our certificate chain and private key, a matching pair.
//! * [`X509Bundle`] / [`X509BundleSet`]: the CA roots of each trust domain.
//! * [`X509Source`]: the current SVID and bundles, one atomic load each;
//!   [`X509Source::watch`] follows [`X509Files`] (spiffe-helper,
//!   spire-agent, csi-driver-spiffe, a spiffile root) with `spiffile-watch`,
//!   the certificate and key as one pair.
//! * [`server_config`] / [`client_config`]: rustls configurations whose
//!   certificate resolver and verifier read the source on every handshake.
//! * [`verify_svid`]: the validation on its own; [`Refusal`] / [`Reason`]:
//!   why a certificate was refused, matchable.
//! * [`Allow`] / [`ServerIds`]: which SPIFFE IDs may connect.
//!
//! # What is checked
//!
//! Of the leaf (with x509-parser, which reads the extensions webpki does
//! not expose): exactly one URI SAN, a valid SPIFFE ID with a path; not a
//! CA; keyUsage with digitalSignature and without keyCertSign or cRLSign.
//! Then RFC 5280 path validation by rustls-webpki against the bundle of the
//! trust domain **named in the leaf's SPIFFE ID** (validity periods,
//! signatures, basic constraints, extended key usage when present), and of
//! every intermediate of the path: keyCertSign set, and a SPIFFE URI SAN
//! only if it is the trust domain itself. Last, authorization on the SPIFFE
//! ID, never on a CN or DNS name.
//!
//! Stock verifiers (OpenSSL's, rustls' `WebPkiClientVerifier`) accept a leaf
//! with two URI SANs, a leaf with keyCertSign, and a leaf naming another
//! trust domain than the CA that signed it; these configurations do not.
//!
//! # Example
//!
//! ```no_run
//! use spiffile_tls::{Allow, X509BundleSet, X509Bundle, X509Source, X509Svid};
//! let svid = X509Svid::from_pem(&std::fs::read("svid.pem")?, &std::fs::read("svid_key.pem")?)?;
//! let td: spiffile_id::TrustDomain = "example.org".parse()?;
//! let bundle = X509Bundle::from_pem(td, &std::fs::read("svid_bundle.pem")?)?;
//! let source = X509Source::new(svid, X509BundleSet::new().with(bundle));
//!
//! // billing's server accepts orders only; orders' client expects billing.
//! let orders: spiffile_id::SpiffeId = "spiffe://example.org/orders".parse()?;
//! let billing: spiffile_id::SpiffeId = "spiffe://example.org/billing".parse()?;
//! let server = spiffile_tls::server_config(&source, Allow::ids([orders]))?;
//! let client = spiffile_tls::client_config(&source, billing)?;
//! # let _ = (server, client);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod allow;
mod bundle;
mod cert;
mod config;
mod error;
mod files;
mod info;
mod peer;
mod source;
mod svid;
mod verify;
mod watched_bundles;

use std::sync::{Arc, LazyLock};

pub use allow::Allow;
pub use bundle::{X509Bundle, X509BundleSet};
pub use config::{ServerIds, client_config, server_config};
pub use error::{Error, Reason, Refusal};
pub use files::X509Files;
pub use info::{CertificateInfo, certificates_from_pem, check_leaf_rules};
pub use peer::{Peer, spiffe_id_of};
pub use source::{SourceStatus, X509Source};
pub use svid::X509Svid;
pub use verify::{Usage, verify_svid};

/// Re-exported so applications need no direct dependency to name the types
/// of the configurations.
pub use rustls;

/// The crypto provider of every configuration: rustls' ring provider.
static PROVIDER: LazyLock<Arc<rustls::crypto::CryptoProvider>> =
    LazyLock::new(|| Arc::new(rustls::crypto::ring::default_provider()));

/// rustls' ring crypto provider, shared by every configuration of this
/// crate (use it to build a stock configuration that matches).
pub fn provider() -> &'static Arc<rustls::crypto::CryptoProvider> {
    &PROVIDER
}
