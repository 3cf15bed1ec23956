//! Minting and verifying at a time of the caller's choosing.
//!
//! These functions bypass what keeps tokens short-lived and current:
//! [`mint_at`] signs any `iat`/`exp` (no lifetime limit, no clock), and
//! [`verify_at`] / [`mint_or_reuse_at`] take `now` from the caller. They are
//! for tests (fixed times, expiry on demand), replaying recorded traffic, and
//! tools; a service has no use for them. Like `rustls`' `danger` modules,
//! the name is there so that every call site says what it is doing.
//!
//! ```
//! use spiffile_bundle::Bundle;
//! use spiffile_svid::{Reason, Signer, UnixTime, Verifier, VerifyOptions, danger, generate_pkcs8_pem};
//!
//! let signer = Signer::from_pkcs8_pem("spiffe://example.org/orders".parse()?, generate_pkcs8_pem()?.as_bytes())?;
//! let mut bundle = Bundle::new("example.org".parse()?);
//! bundle.add_key(signer.id(), signer.public_key().clone())?;
//! let verifier = Verifier::new(&bundle);
//! let billing = "spiffe://example.org/billing".parse()?;
//!
//! let t = UnixTime::from_secs(1_750_000_000);
//! let token = danger::mint_at(&signer, &billing, t, UnixTime::from_secs(1_750_000_060))?;
//! let options = VerifyOptions::default();
//! assert!(danger::verify_at(&verifier, &token, &billing, &options, t).is_ok());
//! let later = UnixTime::from_secs(1_750_000_100);
//! let e = danger::verify_at(&verifier, &token, &billing, &options, later).unwrap_err();
//! assert_eq!(e.reason(), Some(Reason::Expired));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use spiffile_id::SpiffeId;

use crate::{Caller, Error, Signer, UnixTime, Verifier, VerifyOptions};

/// Mints a token with explicit `iat` and `exp`. No lifetime limit is applied
/// and the clock is not read.
pub fn mint_at(
    signer: &Signer,
    audience: &SpiffeId,
    iat: UnixTime,
    exp: UnixTime,
) -> Result<String, Error> {
    signer.sign_claims(audience, iat.as_secs(), exp.as_secs())
}

/// [`Signer::mint_or_reuse`] as if the time were `now`: a kept token is
/// reused while young enough at `now`, otherwise one is minted with
/// `iat = now`.
pub fn mint_or_reuse_at(
    signer: &Signer,
    audience: &SpiffeId,
    ttl: Duration,
    now: UnixTime,
) -> Result<String, Error> {
    signer.mint_or_reuse_with_now(audience, ttl, now.as_secs())
}

/// [`Verifier::verify`] as if the time were `now`.
pub fn verify_at(
    verifier: &Verifier,
    token: &str,
    audience: &SpiffeId,
    options: &VerifyOptions,
    now: UnixTime,
) -> Result<Caller, Error> {
    verifier.verify_with_now(token, audience, options, now.as_secs())
}
