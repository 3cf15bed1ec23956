//! SPIFFE workload identities delivered as plain files: no agent, no gRPC.
//!
//! A service reads three files — its SPIFFE ID, its private key, and a trust
//! bundle of everyone's public keys — mints a short-lived, audience-bound
//! JWT-SVID for each outbound call, and verifies inbound tokens offline
//! against the bundle.
//!
//! ```no_run
//! let identity = spiffile::Identity::from_env()?;                   // SPIFFILE_DIR or SPIFFILE_*_FILE
//! let token = identity.token(&"spiffe://example.org/billing".parse()?)?; // outbound: Bearer token
//! let caller = identity.verify(&token)?;                            // inbound: who is calling
//! println!("called by {}", caller.id());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The layers underneath are re-exported as modules, each usable alone:
//! [`id`] (SPIFFE IDs), [`bundle`] (the bundle document), [`svid`] (JWT-SVID
//! mint and verify), [`watch`] (hot reload of values parsed from files, file
//! pairs and directories) and
//! [`provision`] (creating, rotating and revoking identities in a root, plus
//! [`provision::load_identity`]). The `spiffile` command line (crate
//! `spiffile-cli`) wraps them.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;

mod error;
mod files;
mod identity;
mod presented;
pub mod provision;
mod sources;
mod status;
mod trust;

pub use spiffile_bundle as bundle;
pub use spiffile_id as id;
pub use spiffile_svid as svid;
pub use spiffile_watch as watch;

pub use error::{Error, ForeignJwtSvid};
pub use files::{ENV_BUNDLE_FILE, ENV_DIR, ENV_ID_FILE, ENV_KEY_FILE, IdentityFiles};
pub use identity::{Identity, IdentityBuilder};
pub use sources::{
    BundleSource, ENV_BUNDLE_DIR, ENV_BUNDLE_TRUST_DOMAIN, ENV_JWT_SVID_DIR, IdentitySources,
};
pub use spiffile_id::{SpiffeId, TrustDomain};
pub use spiffile_svid::{Caller, Claims, Reason, TokenError};
pub use status::{FileStatus, Status};
