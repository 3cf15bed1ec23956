//! A token decoded without verifying it, for inspection and error reports.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::decode::{decode_segment_into, short};
use crate::error::TokenError;
use crate::numeric_date::{UnixTime, numeric_date};
use crate::verifier::split_segments;

/// A JWT decoded **without verifying anything**: not the signature, not the
/// issuer, not the times. Anyone can write these values.
///
/// For showing a token to a person (`spiffile inspect`), for explaining why
/// verification refused it, or for routing before verification; never for
/// deciding who the caller is — that is [`Verifier::verify`](crate::Verifier::verify).
/// Like go-spiffe's `ParseInsecure`, with the name on the type.
///
/// Decoding requires what every JWT has: three dot-separated segments, the
/// first two unpadded base64url of JSON objects with no member twice. The
/// members are kept as they are, whatever their types.
///
/// ```
/// use spiffile_svid::UnverifiedToken;
/// // {"alg":"ES256","kid":"k"} . {"sub":"spiffe://example.org/orders","exp":2051222400} . (no signature)
/// let t = UnverifiedToken::decode(
///     "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsifQ.eyJzdWIiOiJzcGlmZmU6Ly9leGFtcGxlLm9yZy9vcmRlcnMiLCJleHAiOjIwNTEyMjI0MDB9.",
/// )?;
/// assert_eq!(t.key_id(), Some("k"));
/// assert_eq!(t.subject(), Some("spiffe://example.org/orders"));
/// assert_eq!(t.expires_at().map(|e| e.as_secs()), Some(2_051_222_400));
/// assert_eq!(t.signature(), Some(&[][..]));
/// # Ok::<(), spiffile_svid::TokenError>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct UnverifiedToken {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signature: Option<Vec<u8>>,
}

impl fmt::Debug for UnverifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedToken")
            .field("header", &self.header)
            .field("claims", &self.claims)
            .field("signature_len", &self.signature.as_ref().map(Vec::len))
            .finish()
    }
}

impl UnverifiedToken {
    /// Decodes `token` without verifying it. The whole input is read, so
    /// bound its size first when it comes from outside.
    pub fn decode(token: &str) -> Result<Self, TokenError> {
        let segments = split_segments(token)?;
        let mut buf = [0u8; 0];
        let header = decode_segment_into(
            segments.header,
            &mut buf,
            "the header segment is not unpadded base64url",
        )?;
        let header = read_object("header", &header)?;
        let claims = decode_segment_into(
            segments.claims,
            &mut buf,
            "the claims segment is not unpadded base64url",
        )?;
        let claims = read_object("claims", &claims)?;
        let signature = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(segments.signature)
                .ok()
        };
        Ok(UnverifiedToken {
            header,
            claims,
            signature,
        })
    }

    /// The header members, as written.
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    /// The claims, as written.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The signature bytes, or `None` when the segment is not unpadded
    /// base64url.
    pub fn signature(&self) -> Option<&[u8]> {
        self.signature.as_deref()
    }

    /// The header's `kid`, when it is a string.
    pub fn key_id(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// The header's `alg`, when it is a string.
    pub fn algorithm(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    /// The `sub` claim, when it is a string (not checked to be a SPIFFE ID).
    pub fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }

    /// The `aud` claim, when it is one string.
    pub fn audience(&self) -> Option<&str> {
        self.claims.get("aud").and_then(Value::as_str)
    }

    /// `exp`, when it is a NumericDate in range (fractions rounded down).
    pub fn expires_at(&self) -> Option<UnixTime> {
        self.date("exp", false)
    }

    /// `iat`, when it is a NumericDate in range (fractions rounded up).
    pub fn issued_at(&self) -> Option<UnixTime> {
        self.date("iat", true)
    }

    /// `nbf`, when it is a NumericDate in range (fractions rounded up).
    pub fn not_before(&self) -> Option<UnixTime> {
        self.date("nbf", true)
    }

    fn date(&self, claim: &'static str, round_up: bool) -> Option<UnixTime> {
        let v = self.claims.get(claim)?;
        numeric_date(v, claim, round_up)
            .ok()
            .map(UnixTime::from_secs)
    }
}

/// Reads a JSON object, refusing a member that appears twice (so the value
/// shown is the only one there is).
fn read_object(segment: &'static str, json: &[u8]) -> Result<Map<String, Value>, TokenError> {
    struct Object<'p> {
        segment: &'static str,
        duplicate: &'p mut Option<String>,
    }
    impl<'de> Visitor<'de> for Object<'_> {
        type Value = Map<String, Value>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a JSON object ({})", self.segment)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let value: Value = map.next_value()?;
                if out.contains_key(&key) {
                    *self.duplicate = Some(short(&key));
                    return Err(de::Error::custom("duplicate member"));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    impl<'de> DeserializeSeed<'de> for Object<'_> {
        type Value = Map<String, Value>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    let mut duplicate = None;
    let mut de = serde_json::Deserializer::from_slice(json);
    let parsed = Object {
        segment,
        duplicate: &mut duplicate,
    }
    .deserialize(&mut de)
    .and_then(|m| de.end().map(|()| m));
    parsed.map_err(|e| match duplicate {
        Some(member) => TokenError::Duplicate { segment, member },
        None => TokenError::Json {
            segment,
            message: crate::decode::json_problem(&e, json),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_does_not_decode() {
        for t in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            "e30.W10.",
            "bm90IGpzb24.e30.AA",
            "e30=.e30.",
        ] {
            assert!(UnverifiedToken::decode(t).is_err(), "{t}");
        }
        let t = UnverifiedToken::decode("e30.e30.").unwrap();
        assert!(t.header().is_empty() && t.claims().is_empty());
        assert_eq!(t.signature(), Some(&[][..]));
        assert_eq!(
            UnverifiedToken::decode("e30.e30.!").unwrap().signature(),
            None
        );
    }

    #[test]
    fn duplicates_are_refused() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let t = format!("{}.{}.", b64("{}"), b64(r#"{"sub":"a","sub":"b"}"#));
        assert_eq!(
            UnverifiedToken::decode(&t),
            Err(TokenError::Duplicate {
                segment: "claims",
                member: "\"sub\"".into()
            })
        );
    }

    #[test]
    fn typed_reads_are_lenient() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let t = format!(
            "{}.{}.",
            b64(r#"{"alg":1}"#),
            b64(r#"{"sub":7,"aud":["a"],"exp":"soon","iat":1.5}"#)
        );
        let t = UnverifiedToken::decode(&t).unwrap();
        assert_eq!(t.algorithm(), None);
        assert_eq!(t.subject(), None);
        assert_eq!(t.audience(), None);
        assert_eq!(t.expires_at(), None);
        assert_eq!(t.issued_at(), Some(UnixTime::from_secs(2)));
    }
}
