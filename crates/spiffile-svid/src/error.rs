//! Errors of minting and verifying.

use spiffile_id::{IdError, SpiffeId, TrustDomain};

use crate::numeric_date::UnixTime;

/// The reason a token was rejected, as a small `Copy` value a program can
/// match on or turn into an error code (see [`Reason::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// Larger than the configured maximum; refused before any decoding.
    TooLarge,
    /// Not a compact JWS of three base64url segments, or not JSON objects.
    Malformed,
    /// `alg` is not `ES256`.
    Algorithm,
    /// A header member other than `alg`, `kid`, `typ`, or a bad `typ`.
    Header,
    /// `kid` missing, empty or not a string, or (per-domain trust
    /// domains) naming no key of the trust domain.
    KeyId,
    /// A required claim is missing or a claim has the wrong type or value.
    Claims,
    /// `sub` is not a valid SPIFFE ID.
    Subject,
    /// `aud` is not the expected audience (or not a single string).
    Audience,
    /// `exp` is in the past, beyond the leeway.
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    NotYetValid,
    /// `iat` is in the future, beyond the leeway.
    IssuedInFuture,
    /// No key bound to `sub` validates the signature.
    Signature,
}

impl Reason {
    /// A stable `snake_case` code, for logs, metrics and error responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TooLarge => "too_large",
            Reason::Malformed => "malformed",
            Reason::Algorithm => "algorithm",
            Reason::Header => "header",
            Reason::KeyId => "key_id",
            Reason::Claims => "claims",
            Reason::Subject => "subject",
            Reason::Audience => "audience",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::IssuedInFuture => "issued_in_future",
            Reason::Signature => "signature",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token is invalid. Each variant names the part of the token (segment,
/// header member, claim) that is wrong. Values quoted from the token are
/// shortened; the token itself is never included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is longer than the limit.
    #[error("token is {len} bytes; the limit is {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The framing or encoding is wrong.
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    /// A member appears twice in the header or the claims. Duplicates are
    /// rejected (RFC 7515 §5.2 allows rejecting or taking the last), so the
    /// `sub` that selects the key is always the `sub` returned.
    #[error("token {segment} has the member `{member}` twice")]
    Duplicate {
        /// `header` or `claims`.
        segment: &'static str,
        /// The repeated member (shortened).
        member: String,
    },
    /// A segment is not valid JSON or not an object.
    #[error("token {segment} is not a JSON object: {message}")]
    Json {
        /// `header` or `claims`.
        segment: &'static str,
        /// What the JSON parser said.
        message: String,
    },
    /// `alg` is not exactly `ES256`.
    #[error("header `alg` is {0}; only \"ES256\" is accepted")]
    Algorithm(String),
    /// A header member outside `alg`, `kid`, `typ`.
    #[error("header member `{0}` is not allowed in a JWT-SVID (only alg, kid, typ)")]
    HeaderMember(String),
    /// `typ` is not `JWT` or `JOSE`.
    #[error("header `typ` is {0}; expected \"JWT\" or \"JOSE\"")]
    Type(String),
    /// `kid` is missing, empty or not a string.
    #[error("header `kid` is {0}")]
    KeyId(&'static str),
    /// A required claim is missing.
    #[error("claim `{0}` is missing")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or an out-of-range value.
    #[error("claim `{claim}` {problem}")]
    InvalidClaim {
        /// The claim.
        claim: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// `sub` is not a valid SPIFFE ID.
    #[error("claim `sub` is not a valid SPIFFE ID: it {0}")]
    Subject(IdError),
    /// `aud` is a JSON array; JWT-SVIDs here carry exactly one audience.
    #[error("claim `aud` is an array; a spiffile token has exactly one audience string")]
    AudienceArray,
    /// `aud` is an array of several audiences, from an authority whose
    /// tokens may carry one only unless the verifier opts in.
    #[error(
        "claim `aud` names {0} audiences; a token for several audiences can be replayed by any of them against the others, so it is refused unless the verifier accepts multiple audiences"
    )]
    MultipleAudiences(usize),
    /// `aud` is not the expected audience.
    #[error("claim `aud` is {found}, not the expected audience `{expected}`")]
    Audience {
        /// The audience in the token (shortened).
        found: String,
        /// The expected audience.
        expected: SpiffeId,
    },
    /// The token expired.
    #[error(
        "token expired at {} ({} ago by the verifier's clock, {}; leeway {leeway} s)",
        UnixTime::from_secs(*exp), Span(now.saturating_sub(*exp)), UnixTime::from_secs(*now)
    )]
    Expired {
        /// `exp`, seconds since the epoch.
        exp: i64,
        /// The verifier's clock.
        now: i64,
        /// The leeway in seconds.
        leeway: u64,
    },
    /// The token is not valid yet (`nbf`).
    #[error(
        "token is not valid before {} (in {} by the verifier's clock, {}; leeway {leeway} s)",
        UnixTime::from_secs(*nbf), Span(nbf.saturating_sub(*now)), UnixTime::from_secs(*now)
    )]
    NotYetValid {
        /// `nbf`.
        nbf: i64,
        /// The verifier's clock.
        now: i64,
        /// The leeway in seconds.
        leeway: u64,
    },
    /// The token was issued in the future (`iat`).
    #[error(
        "token is issued at {}, {} in the future by the verifier's clock ({}; leeway {leeway} s)",
        UnixTime::from_secs(*iat), Span(iat.saturating_sub(*now)), UnixTime::from_secs(*now)
    )]
    IssuedInFuture {
        /// `iat`.
        iat: i64,
        /// The verifier's clock.
        now: i64,
        /// The leeway in seconds.
        leeway: u64,
    },
    /// The signature segment does not decode to 64 bytes (`r ‖ s`).
    #[error("signature is {0} bytes; ES256 signatures are 64 bytes (r ‖ s)")]
    SignatureLength(usize),
    /// No key bound to the subject validates the signature.
    #[error("signature does not verify with any key bound to `{0}`")]
    Signature(SpiffeId),
    /// The `kid` names no key of the (per-domain) trust domain of `sub`.
    #[error("header `kid` {kid} names no key of trust domain `{trust_domain}`")]
    UnknownKeyId {
        /// The `kid` (shortened).
        kid: String,
        /// The trust domain of `sub`.
        trust_domain: TrustDomain,
    },
    /// The key of the (per-domain) trust domain of `sub` that the `kid`
    /// names does not validate the signature.
    #[error("signature does not verify with the key {kid} of trust domain `{trust_domain}`")]
    DomainSignature {
        /// The `kid` (shortened).
        kid: String,
        /// The trust domain of `sub`.
        trust_domain: TrustDomain,
    },
    /// No key bound to the subject validates the signature, and the key the
    /// token names is not (or no longer) bound to it: most often a key that
    /// was revoked or rotated out, or a token signed with another
    /// identity's key.
    #[error(
        "signature does not verify with any key bound to `{sub}`; the token names the key {kid}, which is not bound to `{sub}` (revoked or rotated out, or not that identity's key)"
    )]
    UnboundKey {
        /// The claimed subject.
        sub: SpiffeId,
        /// The `kid` of the token's header, JSON-quoted and shortened.
        kid: String,
    },
}

impl TokenError {
    /// The matchable reason.
    pub fn reason(&self) -> Reason {
        match self {
            TokenError::TooLarge { .. } => Reason::TooLarge,
            TokenError::Malformed(_) | TokenError::Json { .. } | TokenError::Duplicate { .. } => {
                Reason::Malformed
            }
            TokenError::Algorithm(_) => Reason::Algorithm,
            TokenError::HeaderMember(_) | TokenError::Type(_) => Reason::Header,
            TokenError::KeyId(_) | TokenError::UnknownKeyId { .. } => Reason::KeyId,
            TokenError::MissingClaim(_) | TokenError::InvalidClaim { .. } => Reason::Claims,
            TokenError::Subject(_) => Reason::Subject,
            TokenError::AudienceArray
            | TokenError::MultipleAudiences(_)
            | TokenError::Audience { .. } => Reason::Audience,
            TokenError::Expired { .. } => Reason::Expired,
            TokenError::NotYetValid { .. } => Reason::NotYetValid,
            TokenError::IssuedInFuture { .. } => Reason::IssuedInFuture,
            TokenError::SignatureLength(_)
            | TokenError::Signature(_)
            | TokenError::DomainSignature { .. }
            | TokenError::UnboundKey { .. } => Reason::Signature,
        }
    }
}

/// An error of this layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is invalid.
    #[error("invalid token: {0}")]
    InvalidToken(#[from] TokenError),
    /// The token's `sub` is a valid SPIFFE ID with no keys in the bundle
    /// (never provisioned, or revoked).
    #[error("unknown identity `{0}`: it has no keys in the trust bundle")]
    UnknownIdentity(SpiffeId),
    /// A token lifetime that cannot be used.
    #[error(
        "token lifetime must be between 1 s and {} s, not {}",
        max.as_secs(),
        DurationShown(*requested)
    )]
    InvalidTtl {
        /// What was asked.
        requested: std::time::Duration,
        /// The longest lifetime accepted.
        max: std::time::Duration,
    },
    /// The system clock is before 1970.
    #[error("the system clock is before the Unix epoch")]
    Clock,
    /// The private key could not sign (`ring` reports no detail; in practice
    /// the system's random number generator failed).
    #[error(
        "signing failed: the private key could not sign the token (the system random number generator may be unavailable)"
    )]
    Signing,
}

impl Error {
    /// The token rejection reason, if this is an invalid-token error.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Error::InvalidToken(t) => Some(t.reason()),
            _ => None,
        }
    }
}

/// A number of seconds as a person reads it: `45 s`, `12 min`, `5 h`,
/// `3 days`.
pub(crate) struct Span(pub(crate) i64);

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            s if s < 120 => write!(f, "{s} s"),
            s if s < 7200 => write!(f, "{} min", s / 60),
            s if s < 172_800 => write!(f, "{} h", s / 3600),
            s => write!(f, "{} days", s / 86_400),
        }
    }
}

/// A duration as a person would write it back: whole seconds in seconds,
/// whole milliseconds in milliseconds, anything finer as `Debug` does.
pub(crate) struct DurationShown(pub(crate) std::time::Duration);

impl std::fmt::Display for DurationShown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{} s", d.as_secs())
        } else if d.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{} ms", d.as_millis())
        } else {
            write!(f, "{d:?}")
        }
    }
}

/// Shortens a value quoted from a token for an error message.
pub(crate) fn quote(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.len() <= 80 {
        s
    } else {
        let mut cut = 77;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &s[..cut])
    }
}
