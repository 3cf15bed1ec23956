//! The spiffile trust bundle: every identity's public keys, bound to the
//! identity they may sign for.
//!
//! A standard SPIFFE bundle is one flat key set per trust domain, because a
//! central issuer signs every token. In spiffile each workload signs its own
//! tokens, so a flat key set would let any workload mint tokens for any
//! other. This document binds each key to one SPIFFE ID instead:
//!
//! ```json
//! {
//!   "trust_domain": "example.org",
//!   "spiffile_version": 1,
//!   "identities": {
//!     "spiffe://example.org/orders": { "keys": [ { "kty": "EC", "crv": "P-256", "…": "…" } ] }
//!   }
//! }
//! ```
//!
//! This crate parses, validates, edits and writes that document. It holds no
//! signing code, so bundle tooling can use it alone.
//!
//! It also reads the formats SPIRE's world delivers, where one central
//! issuer signs for a whole trust domain:
//!
//! * [`JwtBundle`]: the SPIFFE bundle, one JWK Set per trust domain (with
//!   `spiffe_sequence` and `spiffe_refresh_hint`); its trust domain comes
//!   from the file name (`<trust-domain>.json`) or the configuration;
//! * [`JwtBundleSet`]: spiffe-helper's `{"<trust-domain>": "<base64 JWKS>"}`,
//!   several trust domains in one file;
//! * [`BundleDocument`] and [`detect_format`]: any of the three, told apart
//!   by content, each trust domain with its [`DomainKeys`] (per identity or
//!   per trust domain).
//!
//! * Document-level faults (invalid JSON, a missing member, a version other
//!   than 1, an invalid trust domain) are errors.
//! * An identity entry or a key that is invalid is **skipped with a warning**:
//!   one bad entry must not stop verification for everyone else. Warnings are
//!   logged through `tracing` and kept in [`Bundle::warnings`].
//! * [`Bundle::to_json`] writes a canonical form: identities sorted, 2-space
//!   indentation, a trailing newline; the same bundle always gives the same
//!   bytes.
//!
//! ```
//! use spiffile_bundle::Bundle;
//!
//! let json = br#"{
//!   "trust_domain": "example.org",
//!   "spiffile_version": 1,
//!   "identities": {
//!     "spiffe://example.org/orders": {"keys": [{
//!       "kty": "EC", "crv": "P-256",
//!       "x": "PTYXlahmuCwBzgmCLWJYQAWryOo_ufBDDx08bL0Pi-U",
//!       "y": "pd8h9ji01sqbXO_2vLnDs1sEPOERADYuMbMm8djdxX0",
//!       "kid": "mxUG_qRFVEqi_fztCHOjfEaOE0uWmGYxvFJxNZHjB0Q",
//!       "use": "jwt-svid", "alg": "ES256"}]},
//!     "spiffe://other.org/x": {"keys": []}
//!   }
//! }"#;
//! let bundle = Bundle::from_json(json)?;
//! assert_eq!(bundle.len(), 1);
//! assert_eq!(bundle.warnings().len(), 1); // the identity of another trust domain
//! let orders = "spiffe://example.org/orders".parse()?;
//! let keys = bundle.keys(&orders).unwrap();
//! assert_eq!(keys[0].kid(), "mxUG_qRFVEqi_fztCHOjfEaOE0uWmGYxvFJxNZHjB0Q");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;

mod bundle_set;
mod document;
mod extras;
mod format;
mod jwks;
mod key;
mod parse;

pub use bundle_set::{BundleSetError, JwtBundleSet};
pub use document::{Bundle, BundleError, MAX_BUNDLE_BYTES, SPIFFILE_VERSION, Warning, WarningKind};
pub use format::{
    BundleDocument, BundleFormat, DomainKeys, FormatError, detect_format,
    trust_domain_from_file_name,
};
pub use jwks::{DomainWarning, JwksError, JwtBundle, X509_SVID_USE};
pub use key::{ES256, JWT_SVID_USE, KeyError, PublicKey};
pub use parse::MAX_WARNINGS;
pub use spiffile_id::{IdError, SpiffeId, TrustDomain};
