//! JWT-SVIDs for spiffile: each workload mints short-lived, audience-bound
//! tokens with its own P-256 key, and verifies inbound tokens offline against
//! a bundle that binds keys per identity.
//!
//! * [`Signer`] — a workload's private key and SPIFFE ID; [`Signer::mint`].
//! * [`Verifier`] — a trust set prepared for verification; [`Verifier::verify`]
//!   returns the verified [`Caller`]. [`Verifier::new`] takes one spiffile
//!   bundle; [`Verifier::builder`] takes several trust domains, each with one
//!   authority: **per identity** (a spiffile bundle: a key signs only for the
//!   SPIFFE ID it is bound to) or **per domain** (a SPIFFE bundle such as
//!   SPIRE's: any of its keys signs for any SPIFFE ID of that trust domain,
//!   never another). The token's `sub` selects the trust domain, then the
//!   authority, then the keys.
//! * [`JwtSvid`], [`JwtSvidSet`] — tokens a central issuer (SPIRE, through
//!   spiffe-helper's files) gave this workload to present: read for shape,
//!   never half-written, the freshest unexpired one per audience.
//!
//! Verification follows the spiffile profile and the JWT-SVID standard:
//! compact JWS of exactly three base64url segments, at most 8 KiB by default;
//! a header of only `alg` (exactly `ES256`), `kid` (a non-empty string) and
//! `typ` (`JWT` or `JOSE`); required `sub`, `aud` (one string, equal to the
//! expected audience; from a per-domain authority also a one-element array,
//! and several elements only when [`VerifyOptions::multiple_audiences`] says
//! so) and `exp`; `exp`/`nbf`/`iat` checked with a leeway; duplicate members
//! rejected; and the signature checked only with keys bound to the claimed
//! `sub` (per domain: the key of `sub`'s trust domain that `kid` names). An unknown `sub` is [`Error::UnknownIdentity`];
//! everything else is [`Error::InvalidToken`] with a [`TokenError`] whose
//! [`Reason`] a program can match on.
//!
//! Two things are deliberately kept apart: [`UnverifiedToken`] decodes a
//! token *without* verifying it (for inspection and error reports, never for
//! authentication), and [`danger`] mints and verifies at a time of the
//! caller's choosing, bypassing the clock and the lifetime limit (for tests
//! and tools).
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;

mod cache;
mod claims;
pub mod danger;
mod decode;
mod encode;
mod error;
mod jwt_svid;
mod key;
mod numeric_date;
mod signer;
mod unverified;
mod verifier;

pub use claims::{Caller, Claims};
pub use error::{Error, Reason, TokenError};
pub use jwt_svid::{JwtSvid, JwtSvidSet, MissingJwtSvid};
pub use key::{KeyError, PrivateKeyPem, generate_pkcs8_pem, public_key_of_pem};
pub use numeric_date::UnixTime;
pub use signer::{
    DEFAULT_TOKEN_REUSE_FRACTION, DEFAULT_TTL, MAX_TTL, MINTED_TOKEN_CACHE_CAPACITY,
    RECOMMENDED_MAX_TTL, Signer, check_ttl,
};
pub use unverified::UnverifiedToken;
pub use verifier::{
    AuthorityKind, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, DEFAULT_VERIFY_CACHE_CAPACITY,
    TrustDomainInfo, TrustSetBuilder, TrustSetError, Verifier, VerifyOptions,
};
pub use zeroize::Zeroizing;
