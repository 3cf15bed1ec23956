//! One public key of the bundle: an EC P-256 JWK.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::elliptic_curve::sec1::FromEncodedPoint as _;
use p256::{AffinePoint, EncodedPoint};
use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::extras::{Extras, write_indented};
use sha2::{Digest, Sha256};

/// The `use` value a key must carry (when it carries one) to validate JWT-SVIDs.
pub const JWT_SVID_USE: &str = "jwt-svid";
/// The only algorithm of the profile.
pub const ES256: &str = "ES256";

/// Why a JWK is not a usable public key. The message names the member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is not a JSON object.
    #[error("is not a JSON object")]
    NotAnObject,
    /// A required member is absent.
    #[error("has no `{0}` member")]
    Missing(&'static str),
    /// A member has the wrong JSON type.
    #[error("member `{member}` is not a {expected}")]
    WrongType {
        /// The member.
        member: &'static str,
        /// What it should have been.
        expected: &'static str,
    },
    /// `kty` is not `EC`.
    #[error("member `kty` is {0:?}; only \"EC\" keys are supported")]
    KeyType(String),
    /// `crv` is not `P-256`.
    #[error("member `crv` is {0:?}; only \"P-256\" is supported")]
    Curve(String),
    /// The key carries private key material: whoever can read the bundle
    /// can sign as the identity, so the key must be treated as compromised.
    #[error(
        "carries the private member `d`: this private key has been exposed to everyone who can read the bundle; treat it as compromised and rotate it (`spiffile rotate ROOT NAME --revoke-old`), then remove `d` from the bundle (a bundle holds public keys only)"
    )]
    PrivateMember,
    /// A coordinate is not unpadded base64url.
    #[error("member `{0}` is not unpadded base64url")]
    Base64(&'static str),
    /// A coordinate does not decode to 32 bytes.
    #[error("member `{member}` decodes to {len} bytes; P-256 coordinates are 32 bytes")]
    CoordinateLength {
        /// `x` or `y`.
        member: &'static str,
        /// The decoded length.
        len: usize,
    },
    /// The point is not on the P-256 curve.
    #[error("coordinates `x`/`y` are not a point on the P-256 curve")]
    NotOnCurve,
    /// `kid` is empty.
    #[error("member `kid` is empty")]
    EmptyKid,
    /// `use` is present but not `jwt-svid`.
    #[error("member `use` is {0:?}; a key for JWT-SVIDs has \"jwt-svid\"")]
    Use(String),
    /// A member appears twice in the JWK.
    #[error("has the member `{0}` twice")]
    Duplicate(String),
    /// `alg` is present but not `ES256`.
    #[error("member `alg` is {0:?}; only \"ES256\" is supported")]
    Algorithm(String),
}

/// A validated EC P-256 public key bound in a bundle, as a JWK.
///
/// The coordinates are checked to be on the curve when the key is built or
/// parsed. Members the profile does not use are kept (and written back) as they
/// were, except private members, which are never accepted.
///
/// ```
/// use spiffile_bundle::PublicKey;
/// let jwk = serde_json::json!({
///     "kty": "EC", "crv": "P-256",
///     "x": "PTYXlahmuCwBzgmCLWJYQAWryOo_ufBDDx08bL0Pi-U",
///     "y": "pd8h9ji01sqbXO_2vLnDs1sEPOERADYuMbMm8djdxX0",
///     "kid": "mxUG_qRFVEqi_fztCHOjfEaOE0uWmGYxvFJxNZHjB0Q",
///     "use": "jwt-svid", "alg": "ES256"
/// });
/// let key = PublicKey::from_jwk(&jwk)?;
/// assert_eq!(key.kid(), key.thumbprint());
/// # Ok::<(), spiffile_bundle::KeyError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    kid: Box<str>,
    x: [u8; 32],
    y: [u8; 32],
    /// Whether the JWK carried `use` (which can only be `jwt-svid`).
    has_use: bool,
    /// Whether the JWK carried `alg` (which can only be `ES256`).
    has_alg: bool,
    extra: Extras,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Checks that (x, y) is an affine point of P-256: both coordinates reduced
/// modulo p and `y² = x³ − 3x + b`.
///
/// `p256`'s `AffinePoint::from_encoded_point` on the uncompressed encoding
/// checks exactly that with field arithmetic, without decompressing the
/// point (which would take a square root): loading 10 000 keys has to stay
/// in the low milliseconds.
fn on_curve(x: &[u8; 32], y: &[u8; 32]) -> bool {
    let point = EncodedPoint::from_affine_coordinates(&(*x).into(), &(*y).into(), false);
    AffinePoint::from_encoded_point(&point).is_some().into()
}

/// One member of a JWK as read: absent, a string, or something else.
#[derive(Default)]
enum Member<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    NotStr,
}

impl<'a> Member<'a> {
    fn string(&self, member: &'static str) -> Result<Option<&str>, KeyError> {
        match self {
            Member::Absent => Ok(None),
            Member::Str(s) => Ok(Some(s)),
            Member::NotStr => Err(KeyError::WrongType {
                member,
                expected: "string",
            }),
        }
    }

    fn coordinate(&self, member: &'static str) -> Result<[u8; 32], KeyError> {
        let s = self.string(member)?.ok_or(KeyError::Missing(member))?;
        let mut out = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(s.as_bytes(), &mut out) {
            Ok(32) => Ok(out),
            Ok(len) => Err(KeyError::CoordinateLength { member, len }),
            Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
                let len = URL_SAFE_NO_PAD
                    .decode(s.as_bytes())
                    .map_err(|_| KeyError::Base64(member))?
                    .len();
                Err(KeyError::CoordinateLength { member, len })
            }
            Err(base64::DecodeSliceError::DecodeError(_)) => Err(KeyError::Base64(member)),
        }
    }
}

impl<'de> Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Member<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Member<'de>, E> {
                Ok(Member::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Member<'de>, E> {
                Ok(Member::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Member<'de>, E> {
                Ok(Member::Str(Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Member<'de>, E> {
                Ok(Member::NotStr)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Member<'de>, E> {
                Ok(Member::NotStr)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Member<'de>, E> {
                Ok(Member::NotStr)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Member<'de>, E> {
                Ok(Member::NotStr)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Member<'de>, E> {
                Ok(Member::NotStr)
            }
            fn visit_none<E: de::Error>(self) -> Result<Member<'de>, E> {
                Ok(Member::NotStr)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Member<'de>, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Member<'de>, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Member::NotStr)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Member<'de>, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Member::NotStr)
            }
        }
        d.deserialize_any(V)
    }
}

/// A JWK as read, before validation: the members the profile uses, borrowed
/// from the document where possible (loading a large bundle must not build a
/// JSON tree per key), and any other members as JSON.
///
/// Why not `jose-jwk` (the design card's choice), checked against its
/// source (jose-jwk 0.1):
/// * its `use` member is `Class`, an enum of `"enc"` and `"sig"` only, so
///   every SPIFFE JWK, whose `use` is `"jwt-svid"`, fails to deserialize;
/// * `Jwk` is `#[serde(flatten)] key` + `#[serde(flatten)] prm` (and a
///   third flatten for the thumbprints): serde buffers every member of a
///   flattened struct into its private `Content` tree before dispatching,
///   the per-member allocation this reader was written to remove (10 000
///   identities: 435 M → 198 M instructions, 51–70 ms → 20 ms; see
///   docs/performance.md);
/// * `Parameters` has fixed fields, so members the profile does not use
///   would be lost when a bundle is written back, and duplicate members
///   and private members (`d`) are not reported per member as here.
///
/// The checks themselves use the crates the field trusts: `p256` for the
/// point, `sha2` for the thumbprint.
#[derive(Default)]
pub(crate) struct RawJwk<'a> {
    not_an_object: bool,
    private: bool,
    duplicate: Option<String>,
    kty: Member<'a>,
    crv: Member<'a>,
    x: Member<'a>,
    y: Member<'a>,
    kid: Member<'a>,
    use_: Member<'a>,
    alg: Member<'a>,
    extra: Extras,
}

impl<'de> Deserialize<'de> for RawJwk<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawJwk<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JWK")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawJwk<'de>, A::Error> {
                let mut raw = RawJwk::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let slot = match &*key {
                        "kty" => &mut raw.kty,
                        "crv" => &mut raw.crv,
                        "x" => &mut raw.x,
                        "y" => &mut raw.y,
                        "kid" => &mut raw.kid,
                        "use" => &mut raw.use_,
                        "alg" => &mut raw.alg,
                        _ => {
                            if &*key == "d" {
                                raw.private = true;
                                map.next_value::<de::IgnoredAny>()?;
                                continue;
                            }
                            // Kept as text, never as a tree of values (see
                            // `Extras`); a repeated unknown member is kept
                            // as written, it selects nothing.
                            let v: &'de RawValue = map.next_value()?;
                            raw.extra.push(&key, v);
                            continue;
                        }
                    };
                    let member: Member<'de> = map.next_value()?;
                    if !matches!(slot, Member::Absent) {
                        raw.duplicate
                            .get_or_insert_with(|| key.clone().into_owned());
                    }
                    *slot = member;
                }
                Ok(raw)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawJwk<'de>, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(RawJwk::not_an_object())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RawJwk<'de>, E> {
                Ok(RawJwk::not_an_object())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawJwk<'de>, E> {
                Ok(RawJwk::not_an_object())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawJwk<'de>, E> {
                Ok(RawJwk::not_an_object())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawJwk<'de>, E> {
                Ok(RawJwk::not_an_object())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawJwk<'de>, E> {
                Ok(RawJwk::not_an_object())
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawJwk<'de>, E> {
                Ok(RawJwk::not_an_object())
            }
        }
        d.deserialize_any(V)
    }
}

impl RawJwk<'_> {
    fn not_an_object() -> Self {
        RawJwk {
            not_an_object: true,
            ..RawJwk::default()
        }
    }

    /// The `use` member when it is a string (a SPIFFE bundle tells its
    /// X.509 authorities from its JWT authorities by it).
    pub(crate) fn declared_use(&self) -> Option<&str> {
        match &self.use_ {
            Member::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// RFC 7638 thumbprint of a P-256 key: SHA-256 over the required members in
/// lexicographic order, base64url without padding.
fn thumbprint_of(x: &[u8; 32], y: &[u8; 32]) -> String {
    // {"crv":"P-256","kty":"EC","x":"<43>","y":"<43>"}, built in one buffer
    // (this runs for every key of every bundle load).
    let mut canonical = String::with_capacity(128);
    canonical.push_str(r#"{"crv":"P-256","kty":"EC","x":""#);
    URL_SAFE_NO_PAD.encode_string(x, &mut canonical);
    canonical.push_str(r#"","y":""#);
    URL_SAFE_NO_PAD.encode_string(y, &mut canonical);
    canonical.push_str(r#""}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

impl PublicKey {
    /// Builds a key from its affine coordinates, with `kid` set to the RFC 7638
    /// thumbprint, `use` to `jwt-svid` and `alg` to `ES256`.
    pub fn from_coordinates(x: [u8; 32], y: [u8; 32]) -> Result<Self, KeyError> {
        if !on_curve(&x, &y) {
            return Err(KeyError::NotOnCurve);
        }
        Ok(PublicKey {
            kid: thumbprint_of(&x, &y).into(),
            x,
            y,
            has_use: true,
            has_alg: true,
            extra: Extras::default(),
        })
    }

    /// Builds a key from the 65-byte uncompressed SEC1 encoding
    /// (`0x04 ‖ x ‖ y`), as `ring` returns it for a key pair.
    pub fn from_sec1(point: &[u8]) -> Result<Self, KeyError> {
        if point.len() != 65 || point[0] != 0x04 {
            return Err(KeyError::NotOnCurve);
        }
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        x.copy_from_slice(&point[1..33]);
        y.copy_from_slice(&point[33..65]);
        Self::from_coordinates(x, y)
    }

    /// Parses and validates a JWK (a JSON object).
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyError> {
        // Read from text, as in a document: unknown members are kept as
        // text, which needs serde_json's own reader. Every JSON shape maps
        // to a RawJwk, so only a value that is not JSON text fails here.
        let text = jwk.to_string();
        let raw =
            serde_json::from_str::<RawJwk<'_>>(&text).unwrap_or_else(|_| RawJwk::not_an_object());
        Self::from_raw(raw)
    }

    /// Validates a JWK as read from a document.
    pub(crate) fn from_raw(raw: RawJwk<'_>) -> Result<Self, KeyError> {
        if raw.not_an_object {
            return Err(KeyError::NotAnObject);
        }
        if raw.private {
            return Err(KeyError::PrivateMember);
        }
        if let Some(member) = raw.duplicate {
            return Err(KeyError::Duplicate(member));
        }
        match raw.kty.string("kty")? {
            None => return Err(KeyError::Missing("kty")),
            Some("EC") => {}
            Some(other) => return Err(KeyError::KeyType(other.to_owned())),
        }
        match raw.crv.string("crv")? {
            None => return Err(KeyError::Missing("crv")),
            Some("P-256") => {}
            Some(other) => return Err(KeyError::Curve(other.to_owned())),
        }
        let x = raw.x.coordinate("x")?;
        let y = raw.y.coordinate("y")?;
        let kid = raw.kid.string("kid")?.ok_or(KeyError::Missing("kid"))?;
        if kid.is_empty() {
            return Err(KeyError::EmptyKid);
        }
        let use_ = raw.use_.string("use")?;
        if let Some(u) = use_
            && u != JWT_SVID_USE
        {
            return Err(KeyError::Use(u.to_owned()));
        }
        let alg = raw.alg.string("alg")?;
        if let Some(a) = alg
            && a != ES256
        {
            return Err(KeyError::Algorithm(a.to_owned()));
        }
        if !on_curve(&x, &y) {
            return Err(KeyError::NotOnCurve);
        }
        Ok(PublicKey {
            kid: kid.into(),
            x,
            y,
            has_use: use_.is_some(),
            has_alg: alg.is_some(),
            extra: raw.extra.shrunk(),
        })
    }

    /// The key ID (`kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The `use` member, if the JWK had one (it can only be `jwt-svid`).
    pub fn key_use(&self) -> Option<&str> {
        self.has_use.then_some(JWT_SVID_USE)
    }

    /// The x coordinate (big-endian).
    pub fn x(&self) -> &[u8; 32] {
        &self.x
    }

    /// The y coordinate (big-endian).
    pub fn y(&self) -> &[u8; 32] {
        &self.y
    }

    /// The 65-byte uncompressed SEC1 encoding `0x04 ‖ x ‖ y`, the form
    /// signature verifiers take.
    pub fn to_sec1(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[0] = 0x04;
        out[1..33].copy_from_slice(&self.x);
        out[33..].copy_from_slice(&self.y);
        out
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url), the recommended `kid`.
    pub fn thumbprint(&self) -> String {
        thumbprint_of(&self.x, &self.y)
    }

    /// Whether `other` is the same public key (same point), whatever the
    /// `kid` and other members say.
    pub fn same_point(&self, other: &PublicKey) -> bool {
        self.x == other.x && self.y == other.y
    }

    /// The JWK as a JSON object, members in the order the other
    /// implementations write them (`kty, crv, x, y, kid, use, alg`), then any
    /// other members.
    pub fn to_jwk(&self) -> Value {
        Value::Object(self.ordered_members())
    }

    pub(crate) fn ordered_members(&self) -> Map<String, Value> {
        // serde_json's Map is sorted unless `preserve_order` is on; the
        // document writer uses `write_members()` to control the order itself.
        let mut m = Map::new();
        m.insert("kty".into(), Value::from("EC"));
        m.insert("crv".into(), Value::from("P-256"));
        m.insert("x".into(), Value::from(URL_SAFE_NO_PAD.encode(self.x)));
        m.insert("y".into(), Value::from(URL_SAFE_NO_PAD.encode(self.y)));
        m.insert("kid".into(), Value::from(&*self.kid));
        if self.has_use {
            m.insert("use".into(), Value::from(JWT_SVID_USE));
        }
        if self.has_alg {
            m.insert("alg".into(), Value::from(ES256));
        }
        for (k, v) in self.extra.to_map() {
            m.entry(k).or_insert(v);
        }
        m
    }

    /// Writes the members compactly (`"kty":"EC",…`, no braces) in the
    /// canonical order, then the others as read (a JWK Set is written
    /// compact, as SPIRE and go-spiffe write it).
    pub(crate) fn write_members_compact(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        out.write_str("\"kty\":\"EC\",\"crv\":\"P-256\"")?;
        let mut coordinate = String::with_capacity(43);
        for (name, c) in [("x", &self.x), ("y", &self.y)] {
            coordinate.clear();
            URL_SAFE_NO_PAD.encode_string(c, &mut coordinate);
            write!(out, ",\"{name}\":\"{coordinate}\"")?;
        }
        write!(out, ",\"kid\":{}", Value::from(&*self.kid))?;
        if self.has_use {
            write!(out, ",\"use\":\"{JWT_SVID_USE}\"")?;
        }
        if self.has_alg {
            write!(out, ",\"alg\":\"{ES256}\"")?;
        }
        // Extras are kept compact already.
        for (name, value) in self.extra.pairs() {
            write!(out, ",{name}:{value}")?;
        }
        Ok(())
    }

    /// Writes the members in the canonical order (`kty, crv, x, y, kid, use,
    /// alg`, then the others as read), one per line at `pad` spaces.
    pub(crate) fn write_members(&self, out: &mut dyn fmt::Write, pad: usize) -> fmt::Result {
        let line = |out: &mut dyn fmt::Write, first: bool| -> fmt::Result {
            out.write_str(if first { "\n" } else { ",\n" })?;
            for _ in 0..pad {
                out.write_char(' ')?;
            }
            Ok(())
        };
        let mut coordinate = String::with_capacity(43);
        line(out, true)?;
        out.write_str("\"kty\": \"EC\"")?;
        line(out, false)?;
        out.write_str("\"crv\": \"P-256\"")?;
        for (name, c) in [("x", &self.x), ("y", &self.y)] {
            coordinate.clear();
            URL_SAFE_NO_PAD.encode_string(c, &mut coordinate);
            line(out, false)?;
            write!(out, "\"{name}\": \"{coordinate}\"")?;
        }
        line(out, false)?;
        write!(out, "\"kid\": {}", Value::from(&*self.kid))?;
        if self.has_use {
            line(out, false)?;
            write!(out, "\"use\": \"{JWT_SVID_USE}\"")?;
        }
        if self.has_alg {
            line(out, false)?;
            write!(out, "\"alg\": \"{ES256}\"")?;
        }
        for (name, value) in self.extra.pairs() {
            line(out, false)?;
            out.write_str(name)?;
            out.write_str(": ")?;
            write_indented(out, value, pad)?;
        }
        Ok(())
    }
}

/// The public JWKs of the shared conformance fixtures, for unit tests.
#[cfg(test)]
pub(crate) mod fixture_jwks {
    use serde_json::{Value, json};

    pub(crate) fn orders() -> Value {
        json!({
            "kty": "EC", "crv": "P-256",
            "x": "PTYXlahmuCwBzgmCLWJYQAWryOo_ufBDDx08bL0Pi-U",
            "y": "pd8h9ji01sqbXO_2vLnDs1sEPOERADYuMbMm8djdxX0",
            "kid": "mxUG_qRFVEqi_fztCHOjfEaOE0uWmGYxvFJxNZHjB0Q",
            "use": "jwt-svid", "alg": "ES256"
        })
    }

    pub(crate) fn billing() -> Value {
        json!({
            "kty": "EC", "crv": "P-256",
            "x": "M_tywtd1NVV4HhrEuosvK9w_hFuASVKHFQfwOJZI9WI",
            "y": "Ox9ezahgY-gvkdH08J94ak_r5DlKZhF1bKiFVJZaNW8",
            "kid": "ESFORLWzVfEdd6AfIMT8VG05Mruv-RmNb__1nWDxcbw",
            "use": "jwt-svid", "alg": "ES256"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::fixture_jwks::orders;
    use super::*;
    use serde_json::json;

    fn with(member: &str, value: Value) -> Value {
        let mut v = orders();
        v[member] = value;
        v
    }

    fn without(member: &str) -> Value {
        let mut v = orders();
        v.as_object_mut().unwrap().remove(member);
        v
    }

    #[test]
    fn fixture_key_and_thumbprint() {
        let k = PublicKey::from_jwk(&orders()).unwrap();
        assert_eq!(
            k.thumbprint(),
            "mxUG_qRFVEqi_fztCHOjfEaOE0uWmGYxvFJxNZHjB0Q"
        );
        assert_eq!(k.to_jwk(), orders());
        let again = PublicKey::from_coordinates(*k.x(), *k.y()).unwrap();
        assert_eq!(again, k);
    }

    #[test]
    fn rejections_name_the_member() {
        use KeyError::*;
        let cases: Vec<(Value, KeyError)> = vec![
            (json!("nope"), NotAnObject),
            (with("d", json!("AAAA")), PrivateMember),
            (with("kty", json!("RSA")), KeyType("RSA".into())),
            (without("kty"), Missing("kty")),
            (with("crv", json!("P-384")), Curve("P-384".into())),
            (
                with("crv", json!(256)),
                WrongType {
                    member: "crv",
                    expected: "string",
                },
            ),
            (without("x"), Missing("x")),
            (
                with("x", json!("PTYXlahmuCwBzgmCLWJYQAWryOo/ufBDDx08bL0Pi+U")),
                Base64("x"),
            ),
            (
                with("x", json!("PTYXlahmuCwBzgmCLWJYQAWryOo_ufBDDx08bL0Pi-U=")),
                Base64("x"),
            ),
            (
                with("y", json!("pd8h9ji01sqbXO_2vLnDs1sEPOERADYuMbMm8djdxQ")),
                CoordinateLength {
                    member: "y",
                    len: 31,
                },
            ),
            (
                with("y", json!("pd8h9ji01sqbXO_2vLnDs1sEPOERADYuMbMm8djdxX1")),
                Base64("y"),
            ),
            (
                with("y", json!("pd8h9ji01sqbXO_2vLnDs1sEPOERADYuMbMm8djdxX4")),
                NotOnCurve,
            ),
            (without("kid"), Missing("kid")),
            (with("kid", json!("")), EmptyKid),
            (
                with("kid", json!(7)),
                WrongType {
                    member: "kid",
                    expected: "string",
                },
            ),
            (with("use", json!("sig")), Use("sig".into())),
            (with("alg", json!("ES384")), Algorithm("ES384".into())),
        ];
        for (jwk, want) in cases {
            assert_eq!(PublicKey::from_jwk(&jwk), Err(want.clone()), "{jwk}");
            assert!(want.to_string().len() > 10);
        }
    }

    #[test]
    fn optional_members_and_extras() {
        let k = PublicKey::from_jwk(&without("use")).unwrap();
        assert_eq!(k.key_use(), None);
        let k = PublicKey::from_jwk(&with("x5t", json!("abc"))).unwrap();
        assert_eq!(k.to_jwk()["x5t"], "abc");
    }

    #[test]
    fn coordinates_must_be_reduced() {
        // p itself as x is not a field element.
        let p: [u8; 32] = [
            0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(
            PublicKey::from_coordinates(p, [0; 32]),
            Err(KeyError::NotOnCurve)
        );
        assert_eq!(
            PublicKey::from_coordinates([0; 32], [0; 32]),
            Err(KeyError::NotOnCurve)
        );
    }

    #[test]
    fn debug_shows_only_the_kid() {
        let k = PublicKey::from_jwk(&orders()).unwrap();
        let d = format!("{k:?}");
        assert!(d.contains("mxUG_"));
        assert!(!d.contains("PTYXlahm"));
    }
}
