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
use spiffile_id::{SpiffeId, TrustDomain};

use super::trust_set::{Authority, BoundKey, Domain};
use crate::decode::{MaybeStr, parse_claims, parse_header, short};
use crate::error::{Error, TokenError, quote};
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
pub(crate) fn check_header(json: &[u8]) -> Result<Cow<'_, str>, TokenError> {
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

/// `aud` as read: one string, or an array (whether an array is acceptable
/// depends on the authority, known once `sub` is looked up).
pub(crate) enum Audience<'a> {
    One(Cow<'a, str>),
    Array(Vec<Value>),
}

/// The claims of a token, read and range-checked, not yet verified.
pub(crate) struct UnverifiedClaims<'a> {
    pub(crate) sub: Cow<'a, str>,
    pub(crate) aud: Audience<'a>,
    pub(crate) exp: i64,
    pub(crate) nbf: Option<i64>,
    pub(crate) iat: Option<i64>,
    pub(crate) other: Map<String, Value>,
}

/// The claims: `sub` a string, `aud` a string or an array, `exp` required,
/// `exp`/`nbf`/`iat` NumericDates in range.
pub(crate) fn read_claims(json: &[u8]) -> Result<UnverifiedClaims<'_>, TokenError> {
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
        Some(MaybeStr::Str(a)) => Audience::One(a),
        Some(MaybeStr::Other(Value::Array(list))) => Audience::Array(list),
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

/// Who the token claims to be, once its trust domain and authority are
/// found: the SPIFFE ID, and the only keys that may validate the token.
pub(super) struct Subject<'k> {
    pub(super) id: SpiffeId,
    pub(super) keys: &'k [BoundKey],
    /// `Some` for a per-domain authority: the trust domain its keys speak for.
    pub(super) domain: Option<&'k TrustDomain>,
}

/// The trust domain part of a claimed `sub`, if it has the SPIFFE scheme
/// (the lookup needs no full parse: a hit is checked below).
fn trust_domain_of(sub: &str) -> Option<&str> {
    let rest = sub.strip_prefix("spiffe://")?;
    Some(rest.find('/').map_or(rest, |i| &rest[..i]))
}

/// A `sub` no authority of the set can speak for: an unknown identity when
/// it is a valid SPIFFE ID, an invalid token otherwise.
fn unknown(sub: &str) -> Error {
    match SpiffeId::new(sub) {
        Ok(id) => Error::UnknownIdentity(id),
        Err(e) => TokenError::Subject(e).into(),
    }
}

/// The claimed `sub` selects the trust domain, the trust domain its one
/// authority, the authority the keys: per identity, those bound to that
/// exact SPIFFE ID (one hash, no allocation on a hit); per domain, the
/// domain's keys, for a valid workload ID of that trust domain. A `sub` of
/// a trust domain the set does not hold, or an identity a per-identity
/// authority does not bind, is [`Error::UnknownIdentity`].
pub(super) fn look_up_subject<'k>(
    domains: &'k HashMap<Box<str>, Domain>,
    sub: &str,
) -> Result<Subject<'k>, Error> {
    let Some(domain) = trust_domain_of(sub).and_then(|td| domains.get(td)) else {
        return Err(unknown(sub));
    };
    match &domain.authority {
        Authority::PerIdentity(identities) => match identities.get_key_value(sub) {
            Some((id, keys)) => Ok(Subject {
                id: id.clone(),
                keys,
                domain: None,
            }),
            None => Err(unknown(sub)),
        },
        Authority::PerDomain { keys, .. } => {
            let id = SpiffeId::new(sub).map_err(TokenError::Subject)?;
            // Holds by construction (the trust domain was read from `sub`);
            // checked again because it is the whole scoping rule.
            if *id.trust_domain() != domain.trust_domain {
                return Err(Error::UnknownIdentity(id));
            }
            if id.path().is_empty() {
                return Err(TokenError::InvalidClaim {
                    claim: "sub",
                    problem: "names a trust domain, not a workload",
                }
                .into());
            }
            Ok(Subject {
                id,
                keys,
                domain: Some(&domain.trust_domain),
            })
        }
    }
}

/// `aud` is the expected audience. Per identity (spiffile), it must be one
/// string. Per domain (SPIRE writes an array, also for one audience), a
/// one-element array counts as that audience; several elements are refused
/// unless `multiple` allows them (then the expected audience must be one).
pub(super) fn check_audience(
    aud: &Audience<'_>,
    audience: &SpiffeId,
    subject: &Subject<'_>,
    multiple: bool,
) -> Result<(), TokenError> {
    let found = match (aud, subject.domain) {
        (Audience::One(a), _) if a == audience.as_str() => return Ok(()),
        (Audience::One(a), _) => short(a),
        (Audience::Array(_), None) => return Err(TokenError::AudienceArray),
        (Audience::Array(list), Some(_)) => {
            if list.is_empty() {
                return Err(TokenError::InvalidClaim {
                    claim: "aud",
                    problem: "is an empty array",
                });
            }
            if !list.iter().all(Value::is_string) {
                return Err(TokenError::InvalidClaim {
                    claim: "aud",
                    problem: "is an array holding something other than strings",
                });
            }
            if list.len() > 1 && !multiple {
                return Err(TokenError::MultipleAudiences(list.len()));
            }
            if list.iter().any(|a| a.as_str() == Some(audience.as_str())) {
                return Ok(());
            }
            quote(&Value::Array(list.clone()))
        }
    };
    Err(TokenError::Audience {
        found,
        expected: audience.clone(),
    })
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

/// The signature, checked with the subject's keys only. Per identity: the
/// key bound to `sub` whose `kid` matches first, then the others bound to
/// `sub`. Per domain: the domain's key the `kid` names, and no other (a
/// central issuer always names its key; trying every key of a domain would
/// multiply the cost of a forged token by their number).
pub(super) fn check_signature(
    subject: &Subject<'_>,
    kid: &str,
    signing_input: &str,
    signature: &str,
) -> Result<(), TokenError> {
    let sig = decode_signature(signature)?;
    let msg = signing_input.as_bytes();
    let keys = subject.keys;
    if let Some(trust_domain) = subject.domain {
        let Some(key) = keys.iter().find(|k| &*k.kid == kid) else {
            return Err(TokenError::UnknownKeyId {
                kid: short(kid),
                trust_domain: trust_domain.clone(),
            });
        };
        return key
            .key
            .verify(msg, &sig)
            .map_err(|_| TokenError::DomainSignature {
                kid: short(kid),
                trust_domain: trust_domain.clone(),
            });
    }
    let matching = keys.iter().filter(|k| &*k.kid == kid);
    let others = keys.iter().filter(|k| &*k.kid != kid);
    if !matching
        .chain(others)
        .any(|k| k.key.verify(msg, &sig).is_ok())
    {
        // Only on refusal: say whether the key the token names is bound at
        // all, which tells a revoked or rotated-out key from a bad signature.
        if keys.iter().any(|k| &*k.kid == kid) {
            return Err(TokenError::Signature(subject.id.clone()));
        }
        return Err(TokenError::UnboundKey {
            sub: subject.id.clone(),
            kid: short(kid),
        });
    }
    Ok(())
}

/// The signature segment: unpadded base64url of exactly 64 bytes (the
/// fixed-size `r || s` form ES256 uses).
pub(crate) fn decode_signature(segment: &str) -> Result<[u8; 64], TokenError> {
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
