//! The steps of verification, in the order [`Verifier::verify`] runs them,
//! each named for what it checks. None allocates on the path of a token
//! that passes, except for claims other than the registered ones.
//!
//! [`Verifier::verify`]: super::Verifier::verify

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use spiffile_id::SpiffeId;

use super::BoundKey;
use crate::decode::{MaybeStr, parse_claims, parse_header, short};
use crate::error::{Error, TokenError};
use crate::numeric_date::numeric_date;

/// The size cap, checked before any decoding (and before the cache).
pub(super) fn check_size(token: &str, max_token_bytes: usize) -> Result<(), TokenError> {
    if token.len() > max_token_bytes {
        return Err(TokenError::TooLarge {
            len: token.len(),
            max: max_token_bytes,
        });
    }
    Ok(())
}

/// The three segments of a compact JWS, still base64url.
pub(crate) struct Segments<'t> {
    pub(crate) header: &'t str,
    pub(crate) claims: &'t str,
    pub(crate) signature: &'t str,
    /// `header.claims`, the bytes the signature covers.
    pub(crate) signing_input: &'t str,
}

/// Exactly three dot-separated segments.
pub(crate) fn split_segments(token: &str) -> Result<Segments<'_>, TokenError> {
    let mut parts = token.splitn(4, '.');
    let (Some(h64), Some(c64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "a JWT-SVID has exactly three dot-separated segments",
        ));
    };
    Ok(Segments {
        header: h64,
        claims: c64,
        signature: s64,
        signing_input: &token[..h64.len() + 1 + c64.len()],
    })
}

/// The header: `alg` exactly `ES256`, a non-empty string `kid`, `typ`
/// absent or `JWT`/`JOSE`, nothing else. Returns the `kid`.
pub(super) fn check_header(json: &[u8]) -> Result<Cow<'_, str>, TokenError> {
    let header = parse_header(json)?;
    match &header.alg {
        Some(MaybeStr::Str(a)) if a == "ES256" => {}
        Some(other) => return Err(TokenError::Algorithm(other.quoted())),
        None => return Err(TokenError::Algorithm("missing".into())),
    }
    let kid = match header.kid {
        Some(MaybeStr::Str(k)) if !k.is_empty() => k,
        Some(MaybeStr::Str(_)) => return Err(TokenError::KeyId("empty")),
        Some(_) => return Err(TokenError::KeyId("not a string")),
        None => return Err(TokenError::KeyId("missing")),
    };
    match &header.typ {
        None => {}
        Some(MaybeStr::Str(t)) if t == "JWT" || t == "JOSE" => {}
        Some(other) => return Err(TokenError::Type(other.quoted())),
    }
    Ok(kid)
}

/// The claims of a token, read and range-checked, not yet verified.
pub(super) struct UnverifiedClaims<'a> {
    pub(super) sub: Cow<'a, str>,
    pub(super) aud: Cow<'a, str>,
    pub(super) exp: i64,
    pub(super) nbf: Option<i64>,
    pub(super) iat: Option<i64>,
    pub(super) other: Map<String, Value>,
}

/// The claims: `sub` and `aud` strings (one audience, not an array), `exp`
/// required, `exp`/`nbf`/`iat` NumericDates in range.
pub(super) fn read_claims(json: &[u8]) -> Result<UnverifiedClaims<'_>, TokenError> {
    let raw = parse_claims(json)?;
    let sub = match raw.sub {
        Some(MaybeStr::Str(s)) => s,
        Some(_) => {
            return Err(TokenError::InvalidClaim {
                claim: "sub",
                problem: "is not a string",
            });
        }
        None => return Err(TokenError::MissingClaim("sub")),
    };
    let aud = match raw.aud {
        Some(MaybeStr::Str(a)) => a,
        Some(MaybeStr::Other(Value::Array(_))) => return Err(TokenError::AudienceArray),
        Some(_) => {
            return Err(TokenError::InvalidClaim {
                claim: "aud",
                problem: "is not a string",
            });
        }
        None => return Err(TokenError::MissingClaim("aud")),
    };
    let exp = match &raw.exp {
        Some(v) => numeric_date(v, "exp", false)?,
        None => return Err(TokenError::MissingClaim("exp")),
    };
    let nbf = raw
        .nbf
        .as_ref()
        .map(|v| numeric_date(v, "nbf", true))
        .transpose()?;
    let iat = raw
        .iat
        .as_ref()
        .map(|v| numeric_date(v, "iat", true))
        .transpose()?;
    Ok(UnverifiedClaims {
        sub,
        aud,
        exp,
        nbf,
        iat,
        other: raw.other,
    })
}

/// The claimed identity, looked up in the bundle (no allocation on a hit):
/// its SPIFFE ID and the keys bound to it. An identity the bundle does not
/// hold is [`Error::UnknownIdentity`].
pub(super) fn look_up_subject<'k>(
    keys: &'k HashMap<SpiffeId, Box<[BoundKey]>>,
    sub: &str,
) -> Result<(&'k SpiffeId, &'k [BoundKey]), Error> {
    match keys.get_key_value(sub) {
        Some((id, bound)) => Ok((id, bound)),
        None => Err(match SpiffeId::new(sub) {
            Ok(id) => Error::UnknownIdentity(id),
            Err(e) => TokenError::Subject(e).into(),
        }),
    }
}

/// `aud` is the expected audience.
pub(super) fn check_audience(aud: &str, audience: &SpiffeId) -> Result<(), TokenError> {
    if aud != audience.as_str() {
        return Err(TokenError::Audience {
            found: short(aud),
            expected: audience.clone(),
        });
    }
    Ok(())
}

/// The `exp`, `nbf` and `iat` checks of verification, with `leeway`.
pub(super) fn check_times(
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    now: i64,
    leeway: Duration,
) -> Result<(), TokenError> {
    let leeway_secs = leeway.as_secs();
    let leeway = i64::try_from(leeway_secs).unwrap_or(i64::MAX);
    if exp.saturating_add(leeway) <= now {
        return Err(TokenError::Expired {
            exp,
            now,
            leeway: leeway_secs,
        });
    }
    if let Some(nbf) = nbf
        && nbf > now.saturating_add(leeway)
    {
        return Err(TokenError::NotYetValid {
            nbf,
            now,
            leeway: leeway_secs,
        });
    }
    if let Some(iat) = iat
        && iat > now.saturating_add(leeway)
    {
        return Err(TokenError::IssuedInFuture {
            iat,
            now,
            leeway: leeway_secs,
        });
    }
    Ok(())
}

/// The signature, checked with keys bound to `sub` only: the one whose
/// `kid` matches first, then the others.
pub(super) fn check_signature(
    keys: &[BoundKey],
    kid: &str,
    signing_input: &str,
    signature: &str,
    sub: &SpiffeId,
) -> Result<(), TokenError> {
    let sig = decode_signature(signature)?;
    let msg = signing_input.as_bytes();
    let matching = keys.iter().filter(|k| &*k.kid == kid);
    let others = keys.iter().filter(|k| &*k.kid != kid);
    if !matching
        .chain(others)
        .any(|k| k.key.verify(msg, &sig).is_ok())
    {
        // Only on refusal: say whether the key the token names is bound at
        // all, which tells a revoked or rotated-out key from a bad signature.
        if keys.iter().any(|k| &*k.kid == kid) {
            return Err(TokenError::Signature(sub.clone()));
        }
        return Err(TokenError::UnboundKey {
            sub: sub.clone(),
            kid: short(kid),
        });
    }
    Ok(())
}

/// The signature segment: unpadded base64url of exactly 64 bytes (the
/// fixed-size `r || s` form ES256 uses).
fn decode_signature(segment: &str) -> Result<[u8; 64], TokenError> {
    let mut sig = [0u8; 64];
    match URL_SAFE_NO_PAD.decode_slice(segment.as_bytes(), &mut sig) {
        Ok(64) => Ok(sig),
        Ok(n) => Err(TokenError::SignatureLength(n)),
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            let n = URL_SAFE_NO_PAD
                .decode(segment.as_bytes())
                .map(|v| v.len())
                .map_err(|_| {
                    TokenError::Malformed("the signature segment is not unpadded base64url")
                })?;
            Err(TokenError::SignatureLength(n))
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => Err(TokenError::Malformed(
            "the signature segment is not unpadded base64url",
        )),
    }
}
