//! JWT-SVIDs issued to this workload by a central issuer (SPIRE, through
//! spiffe-helper's files) and kept to be presented: read and checked for
//! shape, not verified (the receiver verifies), indexed by audience.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use spiffile_id::SpiffeId;

use crate::decode::decode_segment_into;
use crate::error::TokenError;
use crate::verifier::steps::{
    Audience, check_header, decode_signature, read_claims, split_segments,
};

/// The characters of a compact JWS (base64url and dots).
fn jws_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// A JWT-SVID this workload was given to present, with its claims read (not
/// verified: a receiver verifies it against the issuer's bundle).
///
/// Cheap to clone. `Debug` never shows the token (it is a bearer
/// credential until it expires).
#[derive(Clone)]
pub struct JwtSvid {
    token: Arc<str>,
    sub: SpiffeId,
    audiences: Arc<[Box<str>]>,
    exp: i64,
    iat: Option<i64>,
}

impl fmt::Debug for JwtSvid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSvid")
            .field("sub", &self.sub)
            .field("audiences", &self.audiences)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

impl PartialEq for JwtSvid {
    fn eq(&self, other: &Self) -> bool {
        self.token == other.token
    }
}
impl Eq for JwtSvid {}

impl JwtSvid {
    /// Reads the content of a file that may hold a JWT-SVID, as
    /// spiffe-helper writes it (the bare compact JWT; surrounding ASCII
    /// whitespace is ignored).
    ///
    /// * `Ok(None)`: the file is something else (a PEM file, a JSON bundle:
    ///   spiffe-helper writes them into the same directory);
    /// * `Ok(Some(svid))`: a JWT-SVID of the shape the profile's verifiers
    ///   accept: three segments, a header of `alg: ES256`, `kid` and `typ`
    ///   only, claims with a valid SPIFFE ID `sub`, `aud` (a string or a
    ///   non-empty array of strings) and `exp`, a 64-byte signature;
    /// * `Err`: an empty file, or one that starts like a token but is not a
    ///   whole one (spiffe-helper rewrites files in place: a reader can see
    ///   one half-written), so that a watcher keeps the last good token.
    ///
    /// ```
    /// use spiffile_svid::JwtSvid;
    /// assert_eq!(JwtSvid::parse(b"-----BEGIN CERTIFICATE-----\n"), Ok(None));
    /// assert!(JwtSvid::parse(b"").is_err());
    /// assert!(JwtSvid::parse(b"eyJhbGciOiJFUzI1NiJ9.eyJz").is_err()); // half-written
    /// ```
    pub fn parse(bytes: &[u8]) -> Result<Option<JwtSvid>, TokenError> {
        let text = bytes.trim_ascii();
        if text.is_empty() {
            return Err(TokenError::Malformed("the file is empty (being written?)"));
        }
        let token_like = text.iter().all(|&b| jws_byte(b))
            && (text.starts_with(b"eyJ") || b"eyJ".starts_with(text));
        if !token_like {
            return Ok(None);
        }
        // Only JWS bytes: ASCII, hence UTF-8.
        let token = std::str::from_utf8(text)
            .map_err(|_| TokenError::Malformed("the token is not ASCII"))?;
        Self::parse_token(token).map(Some)
    }

    fn parse_token(token: &str) -> Result<JwtSvid, TokenError> {
        let segments = split_segments(token)?;
        let mut header_buf = [0u8; 256];
        let header_json = decode_segment_into(
            segments.header,
            &mut header_buf,
            "the header segment is not unpadded base64url",
        )?;
        check_header(&header_json)?;
        let mut claims_buf = [0u8; 1024];
        let claims_json = decode_segment_into(
            segments.claims,
            &mut claims_buf,
            "the claims segment is not unpadded base64url",
        )?;
        let claims = read_claims(&claims_json)?;
        decode_signature(segments.signature)?;
        let sub = SpiffeId::new(&claims.sub).map_err(TokenError::Subject)?;
        let audiences: Arc<[Box<str>]> = match claims.aud {
            Audience::One(a) => Arc::from([Box::<str>::from(&*a)]),
            Audience::Array(list) => {
                let strings: Option<Vec<Box<str>>> =
                    list.iter().map(|v| v.as_str().map(Box::from)).collect();
                match strings {
                    Some(s) if !s.is_empty() => s.into(),
                    Some(_) => {
                        return Err(TokenError::InvalidClaim {
                            claim: "aud",
                            problem: "is an empty array",
                        });
                    }
                    None => {
                        return Err(TokenError::InvalidClaim {
                            claim: "aud",
                            problem: "is an array holding something other than strings",
                        });
                    }
                }
            }
        };
        Ok(JwtSvid {
            token: token.into(),
            sub,
            audiences,
            exp: claims.exp,
            iat: claims.iat,
        })
    }

    /// The compact token, to send as `Authorization: Bearer <token>`.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `sub`: the SPIFFE ID the issuer gave this workload.
    pub fn sub(&self) -> &SpiffeId {
        &self.sub
    }

    /// The audiences (`aud`, one or more).
    pub fn audiences(&self) -> impl ExactSizeIterator<Item = &str> {
        self.audiences.iter().map(|a| &**a)
    }

    /// `exp`, seconds since the epoch.
    pub fn exp(&self) -> i64 {
        self.exp
    }

    /// `iat`, seconds since the epoch, if present.
    pub fn iat(&self) -> Option<i64> {
        self.iat
    }
}

/// Why [`JwtSvidSet::freshest`] has no token to give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MissingJwtSvid {
    /// No token of the set names the audience.
    #[error("no JWT-SVID for this audience")]
    NoToken,
    /// Every token for the audience has expired; the freshest is named.
    #[error("the freshest JWT-SVID for this audience ({file}) expired at {exp} (now {now})")]
    Expired {
        /// Where it came from.
        file: String,
        /// Its `exp`.
        exp: i64,
        /// The clock.
        now: i64,
    },
}

/// The JWT-SVIDs of a directory, each with where it came from, indexed by
/// audience.
///
/// ```
/// # use base64::Engine as _;
/// # let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
/// # let token = |aud: &str, exp: i64| format!("{}.{}.{}",
/// #     b64(r#"{"alg":"ES256","kid":"k","typ":"JWT"}"#),
/// #     b64(&format!(r#"{{"sub":"spiffe://spire.test/orders","aud":["{aud}"],"exp":{exp}}}"#)),
/// #     b64(&"s".repeat(64)));
/// use spiffile_svid::{JwtSvid, JwtSvidSet};
/// let billing = "spiffe://spire.test/billing";
/// let old = JwtSvid::parse(token(billing, 1_000).as_bytes())?.unwrap();
/// let new = JwtSvid::parse(token(billing, 2_000).as_bytes())?.unwrap();
/// let set = JwtSvidSet::new([("a.token", old), ("b.token", new.clone())]);
/// assert_eq!(set.freshest(billing, 1_500)?, &new);
/// assert!(set.freshest(billing, 2_000).is_err()); // both expired
/// assert!(set.freshest("spiffe://spire.test/other", 0).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct JwtSvidSet {
    tokens: Vec<(Arc<str>, JwtSvid)>,
    by_audience: HashMap<Box<str>, Vec<usize>>,
}

impl JwtSvidSet {
    /// A set of tokens, each with its source (a file name).
    pub fn new<S: AsRef<str>>(tokens: impl IntoIterator<Item = (S, JwtSvid)>) -> Self {
        let mut set = JwtSvidSet::default();
        for (source, svid) in tokens {
            let i = set.tokens.len();
            for aud in svid.audiences() {
                let slot = set.by_audience.entry(aud.into()).or_default();
                if !slot.contains(&i) {
                    slot.push(i);
                }
            }
            set.tokens.push((source.as_ref().into(), svid));
        }
        set
    }

    /// The unexpired token for `audience` with the latest `exp` (then the
    /// latest `iat`) at time `now`.
    pub fn freshest(&self, audience: &str, now: i64) -> Result<&JwtSvid, MissingJwtSvid> {
        let Some(indices) = self.by_audience.get(audience) else {
            return Err(MissingJwtSvid::NoToken);
        };
        let best = indices
            .iter()
            .map(|&i| &self.tokens[i])
            .max_by_key(|(_, t)| (t.exp, t.iat))
            .ok_or(MissingJwtSvid::NoToken)?;
        if best.1.exp <= now {
            return Err(MissingJwtSvid::Expired {
                file: best.0.to_string(),
                exp: best.1.exp,
                now,
            });
        }
        Ok(&best.1)
    }

    /// Every token with its source, in the order given.
    pub fn tokens(&self) -> impl ExactSizeIterator<Item = (&str, &JwtSvid)> {
        self.tokens.iter().map(|(s, t)| (&**s, t))
    }

    /// Every audience some token names, sorted.
    pub fn audiences(&self) -> Vec<&str> {
        let mut a: Vec<&str> = self.by_audience.keys().map(|k| &**k).collect();
        a.sort_unstable();
        a
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the set holds no token.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    fn token(claims: &str) -> String {
        format!(
            "{}.{}.{}",
            B64.encode(r#"{"alg":"ES256","kid":"k","typ":"JWT"}"#),
            B64.encode(claims),
            B64.encode([7u8; 64])
        )
    }

    const CLAIMS: &str = r#"{"aud":["spiffe://spire.test/billing"],"exp":2000,"iat":1700,"sub":"spiffe://spire.test/orders"}"#;

    #[test]
    fn a_whole_token_and_every_prefix_of_it() {
        let t = token(CLAIMS);
        let svid = JwtSvid::parse(t.as_bytes()).unwrap().unwrap();
        assert_eq!(svid.sub().as_str(), "spiffe://spire.test/orders");
        assert_eq!(
            svid.audiences().collect::<Vec<_>>(),
            ["spiffe://spire.test/billing"]
        );
        assert_eq!((svid.exp(), svid.iat()), (2000, Some(1700)));
        assert_eq!(svid.token(), t);
        // With a trailing newline, as a hand-written file has.
        assert!(
            JwtSvid::parse(format!("{t}\n").as_bytes())
                .unwrap()
                .is_some()
        );
        // A reader of an in-place rewrite sees a prefix: never a token.
        for n in 0..t.len() {
            assert!(
                JwtSvid::parse(&t.as_bytes()[..n]).is_err(),
                "prefix of {n} bytes accepted"
            );
        }
        assert!(!format!("{svid:?}").contains(&t[..20]));
    }

    #[test]
    fn other_files_are_not_tokens() {
        for other in [
            &b"-----BEGIN PRIVATE KEY-----\nMIGH"[..],
            br#"{"spire.test":"eyJrZXlzIjpbXX0="}"#,
            b"hello world",
            b"\xff\xfe",
        ] {
            assert_eq!(JwtSvid::parse(other), Ok(None));
        }
    }

    #[test]
    fn tokens_of_the_wrong_shape_are_errors() {
        let hs = format!(
            "{}.{}.{}",
            B64.encode(r#"{"alg":"RS256","kid":"k","typ":"JWT"}"#),
            B64.encode(CLAIMS),
            B64.encode([7u8; 256])
        );
        assert!(matches!(
            JwtSvid::parse(hs.as_bytes()),
            Err(TokenError::Algorithm(_))
        ));
        for claims in [
            r#"{"aud":[],"exp":2000,"sub":"spiffe://spire.test/orders"}"#,
            r#"{"aud":[1],"exp":2000,"sub":"spiffe://spire.test/orders"}"#,
            r#"{"aud":"x","sub":"spiffe://spire.test/orders"}"#,
            r#"{"aud":"x","exp":1,"sub":"orders"}"#,
        ] {
            assert!(
                JwtSvid::parse(token(claims).as_bytes()).is_err(),
                "{claims}"
            );
        }
    }

    #[test]
    fn freshest_per_audience() {
        let parse = |claims: &str| JwtSvid::parse(token(claims).as_bytes()).unwrap().unwrap();
        let a = parse(r#"{"aud":["x","y"],"exp":100,"sub":"spiffe://t/a"}"#);
        let b = parse(r#"{"aud":"x","exp":200,"sub":"spiffe://t/a"}"#);
        let set = JwtSvidSet::new([("a", a.clone()), ("b", b.clone())]);
        assert_eq!(set.freshest("x", 50), Ok(&b));
        assert_eq!(set.freshest("y", 50), Ok(&a));
        assert_eq!(
            set.freshest("y", 100),
            Err(MissingJwtSvid::Expired {
                file: "a".into(),
                exp: 100,
                now: 100
            })
        );
        assert_eq!(set.freshest("z", 0), Err(MissingJwtSvid::NoToken));
        assert_eq!(set.audiences(), ["x", "y"]);
    }
}
