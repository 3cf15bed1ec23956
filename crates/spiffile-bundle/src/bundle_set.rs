//! spiffe-helper's JWT bundle set: `{"<trust domain>": "<base64 JWKS>"}`,
//! every trust domain the SPIRE agent knows (federated ones included) in
//! one file.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use spiffile_id::TrustDomain;

use crate::document::{MAX_BUNDLE_BYTES, WarningKind};
use crate::jwks::{DomainWarning, JwtBundle, json_position};

/// A fault of a JWT bundle set document: it cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleSetError {
    /// The document is larger than [`MAX_BUNDLE_BYTES`].
    #[error("JWT bundle set is {len} bytes; the limit is {max} bytes")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The document is not valid JSON (or not UTF-8).
    #[error("JWT bundle set is not valid JSON: {message} at line {line}, column {column}")]
    Json {
        /// What the JSON parser said.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The top level is not a JSON object.
    #[error("JWT bundle set is not a JSON object")]
    NotAnObject,
    /// A trust domain appears twice.
    #[error("JWT bundle set has the trust domain `{0}` twice")]
    DuplicateTrustDomain(String),
    /// The set names no trust domain.
    #[error("JWT bundle set is empty: it names no trust domain")]
    Empty,
    /// Every trust domain of the set was skipped.
    #[error("JWT bundle set has no usable trust domain: {first_problem}")]
    NoUsableTrustDomain {
        /// Why the first one was skipped.
        first_problem: String,
    },
}

/// The JWT authorities of several trust domains, as spiffe-helper writes
/// them (its `jwt_bundle_file_name`): a JSON object mapping each trust
/// domain name to the standard base64 (padded) of that domain's SPIFFE
/// bundle, a JWK Set.
///
/// ```
/// use base64::Engine as _;
/// use spiffile_bundle::JwtBundleSet;
///
/// let jwks = r#"{"keys":[{"kty":"EC","kid":"k1","crv":"P-256",
///   "x":"PTYXlahmuCwBzgmCLWJYQAWryOo_ufBDDx08bL0Pi-U","y":"pd8h9ji01sqbXO_2vLnDs1sEPOERADYuMbMm8djdxX0"}]}"#;
/// let b64 = base64::engine::general_purpose::STANDARD.encode(jwks);
/// let set = JwtBundleSet::from_json(format!(r#"{{"spire.test":"{b64}"}}"#).as_bytes())?;
/// let spire = set.get("spire.test").unwrap();
/// assert_eq!(spire.keys()[0].kid(), "k1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A trust domain whose entry cannot be used (not a trust domain name, not
/// a base64 string, a JWKS with no usable key) is skipped with a warning,
/// like a bad identity entry of a spiffile bundle: the other trust domains
/// keep working. A set with no usable trust domain at all is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtBundleSet {
    bundles: BTreeMap<TrustDomain, JwtBundle>,
    warnings: Vec<DomainWarning>,
}

/// One member value as read: a string, or something else.
enum Entry<'a> {
    Str(Cow<'a, str>),
    NotStr,
}

impl<'de> de::Deserialize<'de> for Entry<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entry<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Entry<'de>, E> {
                Ok(Entry::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Entry<'de>, E> {
                Ok(Entry::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Entry<'de>, E> {
                Ok(Entry::NotStr)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Entry<'de>, E> {
                Ok(Entry::NotStr)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Entry<'de>, E> {
                Ok(Entry::NotStr)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Entry<'de>, E> {
                Ok(Entry::NotStr)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Entry<'de>, E> {
                Ok(Entry::NotStr)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry<'de>, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Entry::NotStr)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry<'de>, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Entry::NotStr)
            }
        }
        d.deserialize_any(V)
    }
}

struct SetVisitor<'p> {
    problem: &'p mut Option<BundleSetError>,
}

impl<'de> Visitor<'de> for SetVisitor<'_> {
    type Value = Vec<(Cow<'de, str>, Entry<'de>)>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object mapping trust domains to base64 JWK Sets")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out: Vec<(Cow<'de, str>, Entry<'de>)> = Vec::new();
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            let entry = map.next_value()?;
            if out.iter().any(|(n, _)| *n == name) {
                *self.problem = Some(BundleSetError::DuplicateTrustDomain(name.into_owned()));
                return Err(de::Error::custom("refused"));
            }
            out.push((name, entry));
        }
        Ok(out)
    }
}

impl JwtBundleSet {
    /// An empty set (for tools that build one).
    pub fn new() -> Self {
        JwtBundleSet {
            bundles: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Parses spiffe-helper's JWT bundle set.
    ///
    /// Skipped trust domains and keys are logged with `tracing::warn!` and
    /// listed in [`JwtBundleSet::warnings`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleSetError> {
        let set = Self::from_json_quiet(bytes)?;
        for w in &set.warnings {
            if w.kind != WarningKind::Advice {
                tracing::warn!(target: "spiffile::bundle", "JWT bundle set: {w}");
            }
        }
        Ok(set)
    }

    /// Like [`JwtBundleSet::from_json`], without logging the warnings.
    pub fn from_json_quiet(bytes: &[u8]) -> Result<Self, BundleSetError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(BundleSetError::TooLarge {
                len: bytes.len(),
                max: MAX_BUNDLE_BYTES,
            });
        }
        let mut problem = None;
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let parsed = de
            .deserialize_map(SetVisitor {
                problem: &mut problem,
            })
            .and_then(|raw| de.end().map(|()| raw));
        let entries = match parsed {
            Ok(entries) => entries,
            Err(e) => {
                return Err(problem.unwrap_or_else(|| {
                    if e.classify() == serde_json::error::Category::Data {
                        BundleSetError::NotAnObject
                    } else {
                        let (message, line, column) = json_position(&e);
                        BundleSetError::Json {
                            message,
                            line,
                            column,
                        }
                    }
                }));
            }
        };
        if entries.is_empty() {
            return Err(BundleSetError::Empty);
        }
        let mut set = JwtBundleSet::new();
        for (name, entry) in entries {
            if let Err(message) = set.load_entry(&name, entry) {
                set.warnings.push(DomainWarning {
                    kind: WarningKind::SkippedTrustDomain,
                    trust_domain: name.into_owned(),
                    key_index: None,
                    message,
                });
            }
        }
        if set.bundles.is_empty() {
            let first_problem = set
                .warnings
                .iter()
                .find(|w| w.kind == WarningKind::SkippedTrustDomain)
                .map(ToString::to_string)
                .unwrap_or_default();
            return Err(BundleSetError::NoUsableTrustDomain { first_problem });
        }
        Ok(set)
    }

    fn load_entry(&mut self, name: &str, entry: Entry<'_>) -> Result<(), String> {
        let td = TrustDomain::new(name).map_err(|e| format!("not a trust domain name: it {e}"))?;
        let Entry::Str(b64) = entry else {
            return Err("is not a string (the base64 of a JWK Set)".into());
        };
        let jwks = STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| "is not standard base64 (padded)".to_owned())?;
        let bundle =
            JwtBundle::from_jwks_quiet(td.clone(), &jwks).map_err(|e| format!("its {e}"))?;
        self.warnings.extend(bundle.warnings().iter().cloned());
        self.bundles.insert(td, bundle);
        Ok(())
    }

    /// The bundle of one trust domain.
    pub fn get(&self, trust_domain: &str) -> Option<&JwtBundle> {
        self.bundles
            .iter()
            .find(|(td, _)| td.as_str() == trust_domain)
            .map(|(_, b)| b)
    }

    /// Every trust domain's bundle, sorted by trust domain.
    pub fn bundles(&self) -> impl ExactSizeIterator<Item = &JwtBundle> {
        self.bundles.values()
    }

    /// The number of (usable) trust domains.
    pub fn len(&self) -> usize {
        self.bundles.len()
    }

    /// Whether the set holds no trust domain.
    pub fn is_empty(&self) -> bool {
        self.bundles.is_empty()
    }

    /// What was skipped or deserves attention when the document was parsed
    /// (its trust domains' warnings included).
    pub fn warnings(&self) -> &[DomainWarning] {
        &self.warnings
    }

    /// Adds (or replaces) a trust domain's bundle; returns the one replaced.
    pub fn insert(&mut self, bundle: JwtBundle) -> Option<JwtBundle> {
        self.bundles.insert(bundle.trust_domain().clone(), bundle)
    }

    /// Writes the set as spiffe-helper does: one compact JSON object, trust
    /// domains sorted, each value the padded standard base64 of the
    /// domain's [`JwtBundle::to_jwks`].
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        for (i, (td, b)) in self.bundles.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::Value::from(td.as_str()).to_string());
            out.push_str(":\"");
            STANDARD.encode_string(b.to_jwks(), &mut out);
            out.push('"');
        }
        out.push('}');
        out
    }
}

impl Default for JwtBundleSet {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::fixture_jwks::{billing, orders};
    use serde_json::{Value, json};

    fn jwks(keys: Vec<Value>) -> String {
        let keys: Vec<Value> = keys
            .into_iter()
            .map(|mut k| {
                let m = k.as_object_mut().unwrap();
                m.remove("use");
                m.remove("alg");
                k
            })
            .collect();
        STANDARD.encode(json!({ "keys": keys }).to_string())
    }

    #[test]
    fn several_trust_domains_and_a_round_trip() {
        let doc = json!({"spire.test": jwks(vec![orders()]), "other.test": jwks(vec![billing()])});
        let set = JwtBundleSet::from_json(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.warnings().is_empty());
        let names: Vec<_> = set.bundles().map(|b| b.trust_domain().as_str()).collect();
        assert_eq!(names, ["other.test", "spire.test"]);
        let again = JwtBundleSet::from_json(set.to_json().as_bytes()).unwrap();
        assert_eq!(again, set);
    }

    #[test]
    fn a_bad_entry_is_skipped_and_the_rest_works() {
        let doc = json!({
            "spire.test": jwks(vec![orders()]),
            "Bad.Name": jwks(vec![orders()]),
            "number.test": 7,
            "garbage.test": "!!!",
            "nokeys.test": STANDARD.encode(r#"{"keys":[]}"#),
        });
        let set = JwtBundleSet::from_json(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        let w: Vec<String> = set.warnings().iter().map(ToString::to_string).collect();
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(w.iter().all(|w| w.contains(" skipped: ")), "{w:?}");
        assert!(
            w.iter().any(
                |w| w.starts_with("trust domain \"Bad.Name\" skipped: not a trust domain name")
            ),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|w| w.contains("\"number.test\" skipped: is not a string")),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|w| w.contains("\"garbage.test\" skipped: is not standard base64")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|w| w
                .contains("\"nokeys.test\" skipped: its SPIFFE bundle has no usable JWT-SVID key")),
            "{w:?}"
        );
    }

    #[test]
    fn document_faults() {
        assert_eq!(JwtBundleSet::from_json(b"{}"), Err(BundleSetError::Empty));
        assert_eq!(
            JwtBundleSet::from_json(b"[]"),
            Err(BundleSetError::NotAnObject)
        );
        assert!(matches!(
            JwtBundleSet::from_json(b"{\"a\":"),
            Err(BundleSetError::Json { .. })
        ));
        let k = jwks(vec![orders()]);
        let dup = format!(r#"{{"spire.test":"{k}","spire.test":"{k}"}}"#);
        assert_eq!(
            JwtBundleSet::from_json(dup.as_bytes()),
            Err(BundleSetError::DuplicateTrustDomain("spire.test".into()))
        );
        let e = JwtBundleSet::from_json(br#"{"spire.test":"!"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "JWT bundle set has no usable trust domain: trust domain \"spire.test\" skipped: is not standard base64 (padded)"
        );
    }
}
