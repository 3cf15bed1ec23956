//! SPIFFE IDs and trust domains, exactly as the SPIFFE-ID standard defines them.
//!
//! A SPIFFE ID is `spiffe://<trust-domain><path>`:
//!
//! * the scheme is exactly `spiffe://` (lowercase);
//! * the trust domain is non-empty, at most 255 bytes, and uses only
//!   `a-z 0-9 . - _` (no uppercase, no percent-encoding, no userinfo, no port);
//! * the path is optional; when present it is `/`-separated segments of
//!   `a-z A-Z 0-9 . - _`, with no empty segment, no trailing slash and no `.`
//!   or `..` segment (`.a`, `..a` and `...` are fine);
//! * no query, no fragment; the whole ID is at most 2048 bytes.
//!
//! Parsing never normalizes: `id.to_string()` gives back exactly the input.
//!
//! ```
//! use spiffile_id::SpiffeId;
//!
//! let id: SpiffeId = "spiffe://example.org/orders".parse()?;
//! assert_eq!(id.trust_domain().as_str(), "example.org");
//! assert_eq!(id.path(), "/orders");
//! assert_eq!(id.to_string(), "spiffe://example.org/orders");
//!
//! assert!("spiffe://Example.org/orders".parse::<SpiffeId>().is_err());
//! # Ok::<(), spiffile_id::IdError>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;

mod error;
mod grammar;
#[cfg(feature = "serde")]
mod serde_impl;
mod spiffe_id;
mod trust_domain;
#[cfg(feature = "url")]
mod url_impl;

pub use error::IdError;
pub use grammar::{MAX_ID_LEN, MAX_TRUST_DOMAIN_LEN, SCHEME_PREFIX, validate};
pub use spiffe_id::SpiffeId;
pub use trust_domain::TrustDomain;
