//! The SPIFFE bundle format: one JWK Set for a whole trust domain, whose JWT
//! authorities may sign for any SPIFFE ID of that trust domain (a central
//! issuer, such as SPIRE's server), and never for another.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use spiffile_id::TrustDomain;

use crate::document::{MAX_BUNDLE_BYTES, WarningKind};
use crate::key::{KeyError, PublicKey, RawJwk};

/// The `use` of the X.509 authorities of a SPIFFE bundle.
pub const X509_SVID_USE: &str = "x509-svid";

/// What SPIRE operators are told when a key is not ES256.
const SPIRE_KEY_TYPE_HINT: &str = "SPIRE's JWT signing key type must be EC P-256 (ES256): set `jwt_key_type = \"ec-p256\"` in the SPIRE server configuration";

/// A fault of a SPIFFE bundle (JWKS) document: it cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The document is larger than [`MAX_BUNDLE_BYTES`].
    #[error("SPIFFE bundle is {len} bytes; the limit is {max} bytes")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The document is not valid JSON (or not UTF-8).
    #[error("SPIFFE bundle is not valid JSON: {message} at line {line}, column {column}")]
    Json {
        /// What the JSON parser said.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The top level is not a JSON object.
    #[error("SPIFFE bundle is not a JSON object")]
    NotAnObject,
    /// There is no `keys` member.
    #[error("SPIFFE bundle has no `keys` member")]
    MissingKeys,
    /// A top-level member appears twice.
    #[error("SPIFFE bundle has the member `{0}` twice")]
    DuplicateMember(String),
    /// A top-level member has the wrong type.
    #[error("SPIFFE bundle member `{member}` is not {expected}")]
    WrongType {
        /// The member.
        member: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// No key of the document can validate JWT-SVIDs.
    #[error("SPIFFE bundle has no usable JWT-SVID key{}", first_problem.as_ref().map(|p| format!(": {p}")).unwrap_or_else(|| " (`keys` is empty)".into()))]
    NoUsableKey {
        /// Why the first key was not used, if there was one.
        first_problem: Option<String>,
    },
}

/// Something in a trust domain's keys that was skipped or deserves
/// attention (the SPIFFE bundle and bundle set counterpart of
/// [`Warning`](crate::Warning)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainWarning {
    /// How serious it is.
    pub kind: WarningKind,
    /// The trust domain concerned (as written in the document).
    pub trust_domain: String,
    /// The 0-based index of the key concerned, if one.
    pub key_index: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DomainWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::document::write_finding(
            f,
            "trust domain",
            &self.trust_domain,
            self.key_index,
            self.kind,
            &self.message,
        )
    }
}

/// The JWT authorities of one trust domain, as a SPIFFE bundle gives them:
/// every key may sign JWT-SVIDs for any SPIFFE ID of [`trust_domain`]
/// (and for no other trust domain).
///
/// Read from the SPIFFE bundle format, a JWK Set with optional
/// `spiffe_sequence` and `spiffe_refresh_hint`:
///
/// ```
/// use spiffile_bundle::JwtBundle;
///
/// // What SPIRE publishes: keys without `use` or `alg`.
/// let jwks = br#"{"keys":[{"kty":"EC","kid":"6l5ZQnX0UG5CqZGfdzx0HHRNnf4d2zt1","crv":"P-256",
///   "x":"PTYXlahmuCwBzgmCLWJYQAWryOo_ufBDDx08bL0Pi-U","y":"pd8h9ji01sqbXO_2vLnDs1sEPOERADYuMbMm8djdxX0"}],
///   "spiffe_sequence":3}"#;
/// let bundle = JwtBundle::from_jwks("spire.test".parse()?, jwks)?;
/// assert_eq!(bundle.trust_domain().as_str(), "spire.test");
/// assert_eq!(bundle.keys().len(), 1);
/// assert_eq!(bundle.sequence(), Some(3));
/// assert!(bundle.key("6l5ZQnX0UG5CqZGfdzx0HHRNnf4d2zt1").is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Keys are held to the profile's rules: EC P-256 only (`kty`, `crv` and,
/// when present, `alg` must fit ES256; a key that does not is skipped with a
/// warning saying that SPIRE's JWT key type must be EC P-256), `use`
/// absent or `jwt-svid` (X.509 authorities, `use: "x509-svid"`, are passed
/// over), no private member, a non-empty `kid` unique in the set. A document
/// left with no usable key is an error.
///
/// [`trust_domain`]: JwtBundle::trust_domain
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtBundle {
    trust_domain: TrustDomain,
    keys: Vec<PublicKey>,
    sequence: Option<u64>,
    refresh_hint: Option<u64>,
    warnings: Vec<DomainWarning>,
}

/// A top-level member that must be a non-negative integer, as read.
enum Uint {
    Value(u64),
    Other,
}

impl<'de> de::Deserialize<'de> for Uint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Uint;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Uint, E> {
                Ok(Uint::Value(v))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Uint, E> {
                Ok(Uint::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Uint, E> {
                Ok(Uint::Other)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Uint, E> {
                Ok(Uint::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Uint, E> {
                Ok(Uint::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Uint, E> {
                Ok(Uint::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Uint, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Uint::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Uint, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Uint::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The document as read, before validation.
#[derive(Default)]
struct RawJwks<'a> {
    keys: Option<Vec<RawJwk<'a>>>,
    sequence: Option<Uint>,
    refresh_hint: Option<Uint>,
}

/// Reads the top level, keeping the precise reason for a refusal in
/// `problem` (serde's own errors carry only text).
struct JwksVisitor<'p> {
    problem: &'p mut Option<JwksError>,
}

impl<'de> Visitor<'de> for JwksVisitor<'_> {
    type Value = RawJwks<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JWK Set")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawJwks<'de>, A::Error> {
        let mut raw = RawJwks::default();
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            let dup = match &*name {
                "keys" => {
                    let keys = map.next_value_seed(KeysSeed {
                        problem: &mut *self.problem,
                    })?;
                    raw.keys.replace(keys).is_some()
                }
                "spiffe_sequence" => raw.sequence.replace(map.next_value()?).is_some(),
                "spiffe_refresh_hint" => raw.refresh_hint.replace(map.next_value()?).is_some(),
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                    false
                }
            };
            if dup {
                *self.problem = Some(JwksError::DuplicateMember(name.into_owned()));
                return Err(de::Error::custom("refused"));
            }
        }
        Ok(raw)
    }
}

/// The `keys` member: an array of JWKs, each read without building a JSON
/// tree.
struct KeysSeed<'p> {
    problem: &'p mut Option<JwksError>,
}

impl<'de> DeserializeSeed<'de> for KeysSeed<'_> {
    type Value = Vec<RawJwk<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl KeysSeed<'_> {
    fn not_array<T, E: de::Error>(self) -> Result<T, E> {
        *self.problem = Some(JwksError::WrongType {
            member: "keys",
            expected: "an array",
        });
        Err(E::custom("refused"))
    }
}

impl<'de> Visitor<'de> for KeysSeed<'_> {
    type Value = Vec<RawJwk<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of JWKs")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut keys = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
        while let Some(k) = seq.next_element()? {
            keys.push(k);
        }
        Ok(keys)
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        self.not_array()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        self.not_array()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        self.not_array()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        self.not_array()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        self.not_array()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        self.not_array()
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.not_array()
    }
}

/// serde_json's message without its " at line L column C" suffix, and the
/// position.
pub(crate) fn json_position(e: &serde_json::Error) -> (String, usize, usize) {
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_owned(),
        None => full,
    };
    (message, e.line(), e.column())
}

impl JwtBundle {
    /// A trust domain with no keys yet (for tools that build a bundle).
    pub fn new(trust_domain: TrustDomain) -> Self {
        JwtBundle {
            trust_domain,
            keys: Vec::new(),
            sequence: None,
            refresh_hint: None,
            warnings: Vec::new(),
        }
    }

    /// Parses a SPIFFE bundle (a JWK Set) as the JWT authorities of
    /// `trust_domain` (the format does not name its trust domain; it comes
    /// from the file name or the configuration).
    ///
    /// Skipped keys are logged with `tracing::warn!` and listed in
    /// [`JwtBundle::warnings`].
    pub fn from_jwks(trust_domain: TrustDomain, bytes: &[u8]) -> Result<Self, JwksError> {
        let bundle = Self::from_jwks_quiet(trust_domain, bytes)?;
        for w in &bundle.warnings {
            if w.kind != WarningKind::Advice {
                tracing::warn!(target: "spiffile::bundle", "SPIFFE bundle: {w}");
            }
        }
        Ok(bundle)
    }

    /// Like [`JwtBundle::from_jwks`], without logging the warnings.
    pub fn from_jwks_quiet(trust_domain: TrustDomain, bytes: &[u8]) -> Result<Self, JwksError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(JwksError::TooLarge {
                len: bytes.len(),
                max: MAX_BUNDLE_BYTES,
            });
        }
        let mut problem = None;
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let parsed = de
            .deserialize_any(ObjectOnly(JwksVisitor {
                problem: &mut problem,
            }))
            .and_then(|raw| de.end().map(|()| raw));
        let raw = match parsed {
            Ok(raw) => raw,
            Err(e) => {
                return Err(problem.unwrap_or_else(|| {
                    if e.classify() == serde_json::error::Category::Data {
                        JwksError::NotAnObject
                    } else {
                        let (message, line, column) = json_position(&e);
                        JwksError::Json {
                            message,
                            line,
                            column,
                        }
                    }
                }));
            }
        };
        Self::from_raw(trust_domain, raw)
    }

    fn from_raw(trust_domain: TrustDomain, raw: RawJwks<'_>) -> Result<Self, JwksError> {
        let uint = |v: Option<Uint>, member: &'static str| match v {
            None => Ok(None),
            Some(Uint::Value(n)) => Ok(Some(n)),
            Some(Uint::Other) => Err(JwksError::WrongType {
                member,
                expected: "a non-negative integer",
            }),
        };
        let sequence = uint(raw.sequence, "spiffe_sequence")?;
        let refresh_hint = uint(raw.refresh_hint, "spiffe_refresh_hint")?;
        let keys = raw.keys.ok_or(JwksError::MissingKeys)?;
        let mut bundle = JwtBundle {
            trust_domain,
            keys: Vec::with_capacity(keys.len()),
            sequence,
            refresh_hint,
            warnings: Vec::new(),
        };
        let mut first_problem = None;
        for (i, jwk) in keys.into_iter().enumerate() {
            if jwk.declared_use() == Some(X509_SVID_USE) {
                bundle.warn(
                    WarningKind::Advice,
                    Some(i),
                    "is an X.509 authority (`use` \"x509-svid\"); JWT-SVIDs are never checked with it".into(),
                );
                continue;
            }
            let message = match PublicKey::from_raw(jwk) {
                Ok(k) if bundle.keys.iter().any(|g| g.kid() == k.kid()) => {
                    format!("repeats the kid `{}` of an earlier key", k.kid())
                }
                Ok(k) => {
                    bundle.keys.push(k);
                    continue;
                }
                Err(e @ (KeyError::KeyType(_) | KeyError::Curve(_) | KeyError::Algorithm(_))) => {
                    format!("key {e}; {SPIRE_KEY_TYPE_HINT}")
                }
                Err(e) => format!("key {e}"),
            };
            first_problem.get_or_insert_with(|| {
                format!(
                    "key #{i} {}",
                    message.strip_prefix("key ").unwrap_or(&message)
                )
            });
            bundle.warn(WarningKind::SkippedKey, Some(i), message);
        }
        if bundle.keys.is_empty() {
            return Err(JwksError::NoUsableKey { first_problem });
        }
        Ok(bundle)
    }

    fn warn(&mut self, kind: WarningKind, key_index: Option<usize>, message: String) {
        self.warnings.push(DomainWarning {
            kind,
            trust_domain: self.trust_domain.to_string(),
            key_index,
            message,
        });
    }

    /// The trust domain these keys may sign for.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The JWT authorities (EC P-256 keys), in document order.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The key with this `kid`.
    pub fn key(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.kid() == kid)
    }

    /// `spiffe_sequence`, if the document had one.
    pub fn sequence(&self) -> Option<u64> {
        self.sequence
    }

    /// `spiffe_refresh_hint` in seconds, if the document had one.
    pub fn refresh_hint(&self) -> Option<u64> {
        self.refresh_hint
    }

    /// What was skipped or deserves attention when the document was parsed.
    pub fn warnings(&self) -> &[DomainWarning] {
        &self.warnings
    }

    /// Sets `spiffe_sequence`.
    pub fn set_sequence(&mut self, sequence: Option<u64>) {
        self.sequence = sequence;
    }

    /// Adds a key; a key whose `kid` is already in the set is refused (and
    /// returned).
    pub fn add_key(&mut self, key: PublicKey) -> Result<(), PublicKey> {
        if self.key(key.kid()).is_some() {
            return Err(key);
        }
        self.keys.push(key);
        Ok(())
    }

    /// Removes the key with this `kid` and returns it.
    pub fn remove_key(&mut self, kid: &str) -> Option<PublicKey> {
        let i = self.keys.iter().position(|k| k.kid() == kid)?;
        Some(self.keys.remove(i))
    }

    /// Writes the SPIFFE bundle: `{"keys":[…]}` with each key's members in
    /// the order `kty, crv, x, y, kid` (then `use`, `alg` and other members
    /// as read), then `spiffe_sequence` and `spiffe_refresh_hint` when set.
    /// Compact, no trailing newline (what SPIRE and go-spiffe write).
    pub fn to_jwks(&self) -> String {
        let mut out = String::from("{\"keys\":[");
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('{');
            // Writing to a String never fails.
            let _ = k.write_members_compact(&mut out);
            out.push('}');
        }
        out.push(']');
        if let Some(n) = self.sequence {
            out.push_str(&format!(",\"spiffe_sequence\":{n}"));
        }
        if let Some(n) = self.refresh_hint {
            out.push_str(&format!(",\"spiffe_refresh_hint\":{n}"));
        }
        out.push('}');
        out
    }
}

/// Refuses anything but an object at the top level, before the visitor
/// sees it (serde_json reports the type as a data error).
struct ObjectOnly<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for ObjectOnly<V> {
    type Value = V::Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::fixture_jwks::{billing, orders};
    use serde_json::{Value, json};

    fn td() -> TrustDomain {
        "spire.test".parse().unwrap()
    }

    /// A key as SPIRE publishes it: no `use`, no `alg`.
    fn spire_key(mut jwk: Value, kid: &str) -> Value {
        let m = jwk.as_object_mut().unwrap();
        m.remove("use");
        m.remove("alg");
        m.insert("kid".into(), json!(kid));
        jwk
    }

    fn parse(doc: Value) -> Result<JwtBundle, JwksError> {
        JwtBundle::from_jwks(td(), &serde_json::to_vec(&doc).unwrap())
    }

    #[test]
    fn spire_keys_without_use_or_alg_are_accepted() {
        let b = parse(
            json!({"keys": [spire_key(orders(), "a"), spire_key(billing(), "b")],
            "spiffe_sequence": 7, "spiffe_refresh_hint": 300}),
        )
        .unwrap();
        assert_eq!(b.keys().len(), 2);
        assert_eq!(b.sequence(), Some(7));
        assert_eq!(b.refresh_hint(), Some(300));
        assert!(b.warnings().is_empty(), "{:?}", b.warnings());
        assert_eq!(b.key("b").unwrap().key_use(), None);
        // Round trip through the writer.
        let again = JwtBundle::from_jwks(td(), b.to_jwks().as_bytes()).unwrap();
        assert_eq!(again, b);
    }

    #[test]
    fn keys_that_do_not_fit_es256_are_skipped_with_the_spire_hint() {
        let mut rsa = spire_key(orders(), "rsa");
        rsa["kty"] = json!("RSA");
        let mut p384 = spire_key(orders(), "p384");
        p384["crv"] = json!("P-384");
        let mut es384 = orders();
        es384["alg"] = json!("ES384");
        es384["kid"] = json!("es384");
        let mut sig = orders();
        sig["use"] = json!("sig");
        sig["kid"] = json!("sig");
        let b =
            parse(json!({"keys": [rsa, p384, es384, sig, spire_key(billing(), "ok")]})).unwrap();
        assert_eq!(b.keys().len(), 1);
        let w = b.warnings();
        assert_eq!(w.len(), 4, "{w:?}");
        for (i, w) in w.iter().take(3).enumerate() {
            assert_eq!(w.kind, WarningKind::SkippedKey);
            assert_eq!(w.key_index, Some(i));
            assert!(
                w.message
                    .contains("SPIRE's JWT signing key type must be EC P-256"),
                "{w}"
            );
        }
        assert!(
            w[0].to_string().starts_with(
                "trust domain \"spire.test\" key #0 skipped: key member `kty` is \"RSA\""
            ),
            "{}",
            w[0]
        );
        assert!(w[3].message.contains("member `use` is \"sig\""), "{}", w[3]);
    }

    #[test]
    fn x509_authorities_are_passed_over() {
        let x509 = json!({"kty": "EC", "crv": "P-256", "use": "x509-svid",
            "x5c": ["MIIB"], "x": orders()["x"], "y": orders()["y"]});
        let b = parse(json!({"keys": [x509, spire_key(billing(), "j")]})).unwrap();
        assert_eq!(b.keys().len(), 1);
        assert_eq!(b.warnings()[0].kind, WarningKind::Advice);
    }

    #[test]
    fn document_faults() {
        let cases: Vec<(&[u8], JwksError)> = vec![
            (b"[]", JwksError::NotAnObject),
            (b"7", JwksError::NotAnObject),
            (b"{}", JwksError::MissingKeys),
            (
                br#"{"keys":{}}"#,
                JwksError::WrongType {
                    member: "keys",
                    expected: "an array",
                },
            ),
            (
                br#"{"keys":"x"}"#,
                JwksError::WrongType {
                    member: "keys",
                    expected: "an array",
                },
            ),
            (
                br#"{"keys":[],"keys":[]}"#,
                JwksError::DuplicateMember("keys".into()),
            ),
            (
                br#"{"keys":[],"spiffe_sequence":-1}"#,
                JwksError::WrongType {
                    member: "spiffe_sequence",
                    expected: "a non-negative integer",
                },
            ),
            (
                br#"{"keys":[],"spiffe_refresh_hint":"5m"}"#,
                JwksError::WrongType {
                    member: "spiffe_refresh_hint",
                    expected: "a non-negative integer",
                },
            ),
            (
                br#"{"keys":[]}"#,
                JwksError::NoUsableKey {
                    first_problem: None,
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                JwtBundle::from_jwks(td(), input),
                Err(want),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        assert!(matches!(
            JwtBundle::from_jwks(td(), b"{\"keys\":["),
            Err(JwksError::Json { .. })
        ));
        let mut rsa = orders();
        rsa["kty"] = json!("RSA");
        let e = parse(json!({"keys": [rsa]})).unwrap_err();
        assert!(
            e.to_string().starts_with("SPIFFE bundle has no usable JWT-SVID key: key #0 member `kty` is \"RSA\"; only \"EC\" keys are supported; SPIRE's JWT signing key type must be EC P-256"),
            "{e}"
        );
    }

    #[test]
    fn private_keys_and_repeated_kids_are_skipped_without_quoting_them() {
        let mut private = spire_key(orders(), "p");
        private["d"] = json!("c2VjcmV0LWxvb2tpbmc");
        let b =
            parse(json!({"keys": [private, spire_key(billing(), "k"), spire_key(orders(), "k")]}))
                .unwrap();
        assert_eq!(b.keys().len(), 1);
        let text: Vec<String> = b.warnings().iter().map(ToString::to_string).collect();
        assert!(text[0].contains("private member `d`"), "{text:?}");
        assert!(!text.concat().contains("c2VjcmV0"));
        assert!(text[1].contains("repeats the kid `k`"), "{text:?}");
    }
}
