//! Reading a token's segments: unpadded base64url decoded onto the stack
//! when it fits, and the header and claims objects read member by member.
//!
//! The compact JWS is parsed by hand rather than with `jose-jws`: the hot path
//! must decode each segment once, reject unknown header members and duplicate
//! members (which `serde`'s flattening would hide), and never allocate a
//! general JOSE structure for a token that will be refused.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{TokenError, quote};

/// A JSON member value that is usually a string: borrowed from the decoded
/// segment when it has no escapes, so the common case allocates nothing.
/// Anything else is kept as a [`Value`] for the error message.
pub(crate) enum MaybeStr<'de> {
    Str(std::borrow::Cow<'de, str>),
    Other(Value),
}

impl MaybeStr<'_> {
    pub(crate) fn quoted(&self) -> String {
        match self {
            MaybeStr::Str(s) => short(s),
            MaybeStr::Other(v) => quote(v),
        }
    }
}

impl<'de> de::Deserialize<'de> for MaybeStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr::Str(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr::Str(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(MaybeStr::Str(std::borrow::Cow::Owned(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other(Value::from(v)))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other(Value::Null))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                de::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(MaybeStr::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                de::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(MaybeStr::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The members of a header, as read (each at most once; no other member).
#[derive(Default)]
pub(crate) struct RawHeader<'de> {
    pub(crate) alg: Option<MaybeStr<'de>>,
    pub(crate) kid: Option<MaybeStr<'de>>,
    pub(crate) typ: Option<MaybeStr<'de>>,
}

/// The members of a claims object, as read (each at most once).
#[derive(Default)]
pub(crate) struct RawClaims<'de> {
    pub(crate) sub: Option<MaybeStr<'de>>,
    pub(crate) aud: Option<MaybeStr<'de>>,
    pub(crate) exp: Option<Value>,
    pub(crate) nbf: Option<Value>,
    pub(crate) iat: Option<Value>,
    pub(crate) other: Map<String, Value>,
}

/// Reads a JSON object member by member, keeping the precise reason for a
/// refusal in `problem` (serde's own errors carry only text).
struct ObjectVisitor<'p, T> {
    segment: &'static str,
    problem: &'p mut Option<TokenError>,
    _t: std::marker::PhantomData<T>,
}

pub(crate) fn short(s: &str) -> String {
    quote(&Value::from(s))
}

impl<'de> Visitor<'de> for ObjectVisitor<'_, RawHeader<'de>> {
    type Value = RawHeader<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader<'de>, A::Error> {
        let mut h = RawHeader::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let slot = match &*key {
                "alg" => &mut h.alg,
                "kid" => &mut h.kid,
                "typ" => &mut h.typ,
                other => {
                    *self.problem = Some(TokenError::HeaderMember(short(other)));
                    return Err(de::Error::custom("refused"));
                }
            };
            if slot.replace(map.next_value()?).is_some() {
                *self.problem = Some(TokenError::Duplicate {
                    segment: self.segment,
                    member: short(&key),
                });
                return Err(de::Error::custom("refused"));
            }
        }
        Ok(h)
    }
}

impl<'de> Visitor<'de> for ObjectVisitor<'_, RawClaims<'de>> {
    type Value = RawClaims<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawClaims<'de>, A::Error> {
        let mut c = RawClaims::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let dup = match &*key {
                "sub" => c.sub.replace(map.next_value()?).is_some(),
                "aud" => c.aud.replace(map.next_value()?).is_some(),
                "exp" => c.exp.replace(map.next_value()?).is_some(),
                "nbf" => c.nbf.replace(map.next_value()?).is_some(),
                "iat" => c.iat.replace(map.next_value()?).is_some(),
                _ => {
                    let v = map.next_value()?;
                    c.other.insert(key.clone().into_owned(), v).is_some()
                }
            };
            if dup {
                *self.problem = Some(TokenError::Duplicate {
                    segment: self.segment,
                    member: short(&key),
                });
                return Err(de::Error::custom("refused"));
            }
        }
        Ok(c)
    }
}

impl<'de, T> DeserializeSeed<'de> for ObjectVisitor<'_, T>
where
    Self: Visitor<'de, Value = T>,
{
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_map(self)
    }
}

fn parse_object<'a, T>(segment: &'static str, json: &'a [u8]) -> Result<T, TokenError>
where
    for<'p> ObjectVisitor<'p, T>: Visitor<'a, Value = T>,
{
    let mut problem = None;
    let mut de = serde_json::Deserializer::from_slice(json);
    let seed = ObjectVisitor {
        segment,
        problem: &mut problem,
        _t: std::marker::PhantomData,
    };
    let parsed = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(e) => Err(problem.unwrap_or_else(|| TokenError::Json {
            segment,
            message: json_problem(&e, json),
        })),
    }
}

/// Reads a header object: only `alg`, `kid` and `typ`, none twice.
pub(crate) fn parse_header(json: &[u8]) -> Result<RawHeader<'_>, TokenError> {
    parse_object("header", json)
}

/// Reads a claims object: no member twice.
pub(crate) fn parse_claims(json: &[u8]) -> Result<RawClaims<'_>, TokenError> {
    parse_object("claims", json)
}

/// What serde_json said, without repeating the input: its "invalid type"
/// message quotes a string value in full, and the segment is whatever the
/// sender chose. Syntax messages are fixed texts with a position.
pub(crate) fn json_problem(e: &serde_json::Error, json: &[u8]) -> String {
    if e.classify() == serde_json::error::Category::Data {
        let found = match json.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'"') => "a string",
            Some(b'[') => "an array",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            _ => "a number",
        };
        return format!("found {found}");
    }
    let mut message = e.to_string();
    if message.len() > 120 {
        let mut cut = 117;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("...");
    }
    message
}

/// Decodes a segment into `buf`, or onto the heap when it does not fit.
pub(crate) fn decode_segment_into<'b>(
    segment: &str,
    buf: &'b mut [u8],
    what: &'static str,
) -> Result<std::borrow::Cow<'b, [u8]>, TokenError> {
    match URL_SAFE_NO_PAD.decode_slice(segment.as_bytes(), &mut *buf) {
        Ok(n) => {
            let buf: &'b [u8] = buf;
            Ok(std::borrow::Cow::Borrowed(buf.get(..n).unwrap_or(&[])))
        }
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            decode_segment(segment, what).map(std::borrow::Cow::Owned)
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => Err(TokenError::Malformed(what)),
    }
}

fn decode_segment(segment: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(segment.as_bytes())
        .map_err(|_| TokenError::Malformed(what))
}
