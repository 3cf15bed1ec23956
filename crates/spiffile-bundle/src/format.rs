//! The three bundle formats, told apart by content, and a document in any
//! of them with each trust domain's keys.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use spiffile_id::TrustDomain;

use crate::bundle_set::{BundleSetError, JwtBundleSet};
use crate::document::{Bundle, BundleError, MAX_BUNDLE_BYTES};
use crate::jwks::{JwksError, JwtBundle, json_position};

/// The bundle formats this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BundleFormat {
    /// The spiffile bundle: keys bound per identity ([`Bundle`]).
    Spiffile,
    /// The SPIFFE bundle: one JWK Set for a whole trust domain
    /// ([`JwtBundle`]).
    Spiffe,
    /// spiffe-helper's JWT bundle set: trust domain → base64 JWK Set
    /// ([`JwtBundleSet`]).
    JwtBundleSet,
}

impl BundleFormat {
    /// A short name for messages: `spiffile bundle`, `SPIFFE bundle (JWKS)`,
    /// `JWT bundle set (spiffe-helper)`.
    pub fn name(self) -> &'static str {
        match self {
            BundleFormat::Spiffile => "spiffile bundle",
            BundleFormat::Spiffe => "SPIFFE bundle (JWKS)",
            BundleFormat::JwtBundleSet => "JWT bundle set (spiffe-helper)",
        }
    }

    /// A stable `snake_case` code: `spiffile`, `spiffe`, `jwt_bundle_set`.
    pub fn as_str(self) -> &'static str {
        match self {
            BundleFormat::Spiffile => "spiffile",
            BundleFormat::Spiffe => "spiffe",
            BundleFormat::JwtBundleSet => "jwt_bundle_set",
        }
    }
}

impl fmt::Display for BundleFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const FORMATS: &str = "a spiffile bundle has `spiffile_version` and `identities`, a SPIFFE bundle (JWKS) has a `keys` array, spiffe-helper's JWT bundle set maps trust domain names to base64 strings";

/// Why a document cannot be used as a bundle in any of the formats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The document is larger than [`MAX_BUNDLE_BYTES`].
    #[error("bundle is {len} bytes; the limit is {max} bytes")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The document is not valid JSON (or not UTF-8).
    #[error("bundle is not valid JSON: {message} at line {line}, column {column}")]
    Json {
        /// What the JSON parser said.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The top level is not a JSON object.
    #[error("bundle is not a JSON object")]
    NotAnObject,
    /// A JSON object in none of the formats.
    #[error("bundle is in none of the formats read here ({FORMATS}): {0}")]
    Unrecognized(String),
    /// A SPIFFE bundle, whose trust domain was not given.
    #[error(
        "bundle is a SPIFFE bundle (JWKS), which does not say which trust domain it is for: name the file `<trust-domain>.json` or give the trust domain in the configuration"
    )]
    NoTrustDomain,
    /// A spiffile bundle that cannot be used.
    #[error(transparent)]
    Spiffile(#[from] BundleError),
    /// A SPIFFE bundle that cannot be used.
    #[error(transparent)]
    Spiffe(#[from] JwksError),
    /// A JWT bundle set that cannot be used.
    #[error(transparent)]
    JwtBundleSet(#[from] BundleSetError),
}

/// A member value's JSON type, the value itself skipped.
enum Kind {
    Str,
    Array,
    Other,
}

impl<'de> de::Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Kind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Kind, E> {
                Ok(Kind::Str)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Kind, E> {
                Ok(Kind::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Kind, E> {
                Ok(Kind::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Kind, E> {
                Ok(Kind::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Kind, E> {
                Ok(Kind::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
                Ok(Kind::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Kind::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Kind::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// What the scan of the top-level members found.
#[derive(Default)]
struct Scan {
    decided: Option<BundleFormat>,
    trust_domain_member: bool,
    strings: usize,
    first_other: Option<String>,
}

struct ScanVisitor<'s> {
    scan: &'s mut Scan,
}

impl<'de> Visitor<'de> for ScanVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let scan = self.scan;
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            // Members only one format has decide at once (and the scan
            // stops: the real parse reads the document).
            scan.decided = match &*name {
                "spiffile_version" | "identities" => Some(BundleFormat::Spiffile),
                "spiffe_sequence" | "spiffe_refresh_hint" => Some(BundleFormat::Spiffe),
                _ => None,
            };
            if scan.decided.is_some() {
                return Err(de::Error::custom("decided"));
            }
            let kind: Kind = map.next_value()?;
            match (&*name, kind) {
                // A trust domain could be called `keys`: its value would be
                // a string.
                ("keys", Kind::Array | Kind::Other) => {
                    scan.decided = Some(BundleFormat::Spiffe);
                    return Err(de::Error::custom("decided"));
                }
                ("trust_domain", _) => scan.trust_domain_member = true,
                (_, Kind::Str) => scan.strings += 1,
                (_, _) => {
                    scan.first_other.get_or_insert_with(|| name.into_owned());
                }
            }
        }
        Ok(())
    }
}

fn shorten(name: &str) -> String {
    let quoted = serde_json::Value::from(name).to_string();
    if quoted.chars().count() <= 60 {
        quoted
    } else {
        format!("{}...", quoted.chars().take(57).collect::<String>())
    }
}

/// Tells which format a document is in, from its top-level members, without
/// parsing it in full (a canonical spiffile bundle is recognised by its
/// first members).
///
/// * `spiffile_version`, `identities` or `trust_domain`: a spiffile bundle;
/// * a `keys` array, `spiffe_sequence` or `spiffe_refresh_hint`: a SPIFFE
///   bundle;
/// * otherwise, an object whose members are all strings: a JWT bundle set.
///
/// ```
/// use spiffile_bundle::{BundleFormat, detect_format};
/// assert_eq!(detect_format(br#"{"trust_domain":"example.org","spiffile_version":1,"identities":{}}"#)?, BundleFormat::Spiffile);
/// assert_eq!(detect_format(br#"{"keys":[]}"#)?, BundleFormat::Spiffe);
/// assert_eq!(detect_format(br#"{"spire.test":"eyJrZXlzIjpbXX0="}"#)?, BundleFormat::JwtBundleSet);
/// assert!(detect_format(br#"{"hello":1}"#).is_err());
/// # Ok::<(), spiffile_bundle::FormatError>(())
/// ```
pub fn detect_format(bytes: &[u8]) -> Result<BundleFormat, FormatError> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(FormatError::TooLarge {
            len: bytes.len(),
            max: MAX_BUNDLE_BYTES,
        });
    }
    let mut scan = Scan::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = de
        .deserialize_map(ScanVisitor { scan: &mut scan })
        .and_then(|()| de.end());
    if let Some(format) = scan.decided {
        return Ok(format);
    }
    // A half-written spiffile bundle (`{"trust_domain": "example.org", `):
    // its own parser says what is wrong, where.
    if result.is_err() && scan.trust_domain_member {
        return Ok(BundleFormat::Spiffile);
    }
    if let Err(e) = result {
        return Err(if e.classify() == serde_json::error::Category::Data {
            FormatError::NotAnObject
        } else {
            let (message, line, column) = json_position(&e);
            FormatError::Json {
                message,
                line,
                column,
            }
        });
    }
    if scan.trust_domain_member {
        return Ok(BundleFormat::Spiffile);
    }
    match (scan.strings, scan.first_other) {
        (0, None) => Err(FormatError::Unrecognized("it is an empty object".into())),
        (_, None) => Ok(BundleFormat::JwtBundleSet),
        (_, Some(name)) => Err(FormatError::Unrecognized(format!(
            "its member {} is not a string",
            shorten(&name)
        ))),
    }
}

/// The trust domain a SPIFFE bundle file's name gives: `spire.test.json`
/// → `spire.test` (the operator-style `<trust-domain>.json` naming).
/// `None` when the name is not a valid trust domain followed by `.json`.
///
/// ```
/// use spiffile_bundle::trust_domain_from_file_name;
/// assert_eq!(trust_domain_from_file_name("spire.test.json").unwrap().as_str(), "spire.test");
/// assert!(trust_domain_from_file_name("Spire.json").is_none());
/// assert!(trust_domain_from_file_name("spire.test").is_none());
/// ```
pub fn trust_domain_from_file_name(name: &str) -> Option<TrustDomain> {
    TrustDomain::new(name.strip_suffix(".json")?).ok()
}

/// One trust domain's keys, as a document gives them.
#[derive(Debug, Clone, Copy)]
pub enum DomainKeys<'a> {
    /// Per identity: each key validates tokens of the one SPIFFE ID it is
    /// bound to (a spiffile bundle).
    PerIdentity(&'a Bundle),
    /// Per trust domain: each key validates tokens of any SPIFFE ID of the
    /// trust domain (a SPIFFE bundle: a central issuer such as SPIRE).
    PerDomain(&'a JwtBundle),
}

impl DomainKeys<'_> {
    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        match self {
            DomainKeys::PerIdentity(b) => b.trust_domain(),
            DomainKeys::PerDomain(b) => b.trust_domain(),
        }
    }

    /// The number of keys (for a spiffile bundle, over every identity).
    pub fn key_count(&self) -> usize {
        match self {
            DomainKeys::PerIdentity(b) => b.identities().map(|(_, k)| k.len()).sum(),
            DomainKeys::PerDomain(b) => b.keys().len(),
        }
    }
}

/// A bundle document in any of the three formats.
///
/// ```
/// use spiffile_bundle::{BundleDocument, BundleFormat, DomainKeys};
///
/// let jwks = br#"{"keys":[{"kty":"EC","kid":"k1","crv":"P-256",
///   "x":"PTYXlahmuCwBzgmCLWJYQAWryOo_ufBDDx08bL0Pi-U","y":"pd8h9ji01sqbXO_2vLnDs1sEPOERADYuMbMm8djdxX0"}]}"#;
/// let doc = BundleDocument::from_named_json("spire.test.json", jwks, None)?;
/// assert_eq!(doc.format(), BundleFormat::Spiffe);
/// let domains = doc.domains();
/// assert!(matches!(domains[0], DomainKeys::PerDomain(_)));
/// assert_eq!(domains[0].trust_domain().as_str(), "spire.test");
/// # Ok::<(), spiffile_bundle::FormatError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleDocument {
    /// A spiffile bundle.
    Spiffile(Bundle),
    /// A SPIFFE bundle.
    Spiffe(JwtBundle),
    /// A JWT bundle set.
    JwtBundleSet(JwtBundleSet),
}

impl BundleDocument {
    /// Parses a document in any format. A SPIFFE bundle (JWKS) does not
    /// name its trust domain: `jwks_trust_domain` gives it (without it, a
    /// JWKS is [`FormatError::NoTrustDomain`]).
    ///
    /// Skipped entries are logged with `tracing::warn!`, as by each
    /// format's own parser.
    pub fn from_json(
        bytes: &[u8],
        jwks_trust_domain: Option<&TrustDomain>,
    ) -> Result<Self, FormatError> {
        Self::parse(bytes, jwks_trust_domain, true)
    }

    /// Like [`BundleDocument::from_json`], without logging the warnings.
    pub fn from_json_quiet(
        bytes: &[u8],
        jwks_trust_domain: Option<&TrustDomain>,
    ) -> Result<Self, FormatError> {
        Self::parse(bytes, jwks_trust_domain, false)
    }

    /// Parses the content of a file named `file_name`: a SPIFFE bundle takes
    /// its trust domain from `configured` when given, else from the name
    /// (`<trust-domain>.json`, see [`trust_domain_from_file_name`]).
    pub fn from_named_json(
        file_name: &str,
        bytes: &[u8],
        configured: Option<&TrustDomain>,
    ) -> Result<Self, FormatError> {
        let from_name = trust_domain_from_file_name(file_name);
        Self::from_json(bytes, configured.or(from_name.as_ref()))
    }

    fn parse(bytes: &[u8], td: Option<&TrustDomain>, log: bool) -> Result<Self, FormatError> {
        Ok(match detect_format(bytes)? {
            BundleFormat::Spiffile => BundleDocument::Spiffile(if log {
                Bundle::from_json(bytes)?
            } else {
                Bundle::from_json_quiet(bytes)?
            }),
            BundleFormat::Spiffe => {
                let td = td.ok_or(FormatError::NoTrustDomain)?.clone();
                BundleDocument::Spiffe(if log {
                    JwtBundle::from_jwks(td, bytes)?
                } else {
                    JwtBundle::from_jwks_quiet(td, bytes)?
                })
            }
            BundleFormat::JwtBundleSet => BundleDocument::JwtBundleSet(if log {
                JwtBundleSet::from_json(bytes)?
            } else {
                JwtBundleSet::from_json_quiet(bytes)?
            }),
        })
    }

    /// The format it was read from.
    pub fn format(&self) -> BundleFormat {
        match self {
            BundleDocument::Spiffile(_) => BundleFormat::Spiffile,
            BundleDocument::Spiffe(_) => BundleFormat::Spiffe,
            BundleDocument::JwtBundleSet(_) => BundleFormat::JwtBundleSet,
        }
    }

    /// Each trust domain of the document and its keys (one for a spiffile
    /// or SPIFFE bundle; every usable one of a set, sorted).
    pub fn domains(&self) -> Vec<DomainKeys<'_>> {
        match self {
            BundleDocument::Spiffile(b) => vec![DomainKeys::PerIdentity(b)],
            BundleDocument::Spiffe(b) => vec![DomainKeys::PerDomain(b)],
            BundleDocument::JwtBundleSet(s) => s.bundles().map(DomainKeys::PerDomain).collect(),
        }
    }

    /// Every warning of the document, as text (skipped entries and keys,
    /// advice), with whether it is serious (something was skipped).
    pub fn warnings(&self) -> Vec<(bool, String)> {
        use crate::WarningKind::Advice;
        match self {
            BundleDocument::Spiffile(b) => b
                .warnings()
                .iter()
                .map(|w| (w.kind != Advice, w.to_string()))
                .collect(),
            BundleDocument::Spiffe(b) => b
                .warnings()
                .iter()
                .map(|w| (w.kind != Advice, w.to_string()))
                .collect(),
            BundleDocument::JwtBundleSet(s) => s
                .warnings()
                .iter()
                .map(|w| (w.kind != Advice, w.to_string()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection() {
        let cases: Vec<(&[u8], Result<BundleFormat, FormatError>)> = vec![
            (
                br#"{"trust_domain":"example.org","spiffile_version":1,"identities":{}}"#,
                Ok(BundleFormat::Spiffile),
            ),
            (
                br#"{"identities":{},"trust_domain":"x"}"#,
                Ok(BundleFormat::Spiffile),
            ),
            // Only the spiffile parser can say what is missing.
            (
                br#"{"trust_domain":"example.org"}"#,
                Ok(BundleFormat::Spiffile),
            ),
            (
                br#"{"x":{"y":1},"spiffile_version":2}"#,
                Ok(BundleFormat::Spiffile),
            ),
            (br#"{"keys":[]}"#, Ok(BundleFormat::Spiffe)),
            (br#"{"keys":{}}"#, Ok(BundleFormat::Spiffe)),
            (br#"{"spiffe_sequence":1}"#, Ok(BundleFormat::Spiffe)),
            (br#"{"spire.test":"eyJ9"}"#, Ok(BundleFormat::JwtBundleSet)),
            // A trust domain named `keys`.
            (
                br#"{"keys":"eyJ9","spire.test":"eyJ9"}"#,
                Ok(BundleFormat::JwtBundleSet),
            ),
            (
                b"{}",
                Err(FormatError::Unrecognized("it is an empty object".into())),
            ),
            (
                br#"{"a":"x","b":[1]}"#,
                Err(FormatError::Unrecognized(
                    "its member \"b\" is not a string".into(),
                )),
            ),
            (b"[]", Err(FormatError::NotAnObject)),
            (b"\"x\"", Err(FormatError::NotAnObject)),
        ];
        for (input, want) in cases {
            assert_eq!(
                detect_format(input),
                want,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        assert!(matches!(detect_format(b""), Err(FormatError::Json { .. })));
        assert!(matches!(
            detect_format(b"{\"a\":\"x\""),
            Err(FormatError::Json { .. })
        ));
        assert!(matches!(
            detect_format(b"{} trailing"),
            Err(FormatError::Json { .. })
        ));
        // A half-written spiffile bundle is still a spiffile bundle: the
        // error comes from its parser.
        let half = br#"{"trust_domain":"example.org","spiffile_version":1,"identi"#;
        assert!(matches!(
            BundleDocument::from_json(half, None),
            Err(FormatError::Spiffile(BundleError::Json { .. }))
        ));
    }

    #[test]
    fn jwks_needs_a_trust_domain() {
        let jwks = br#"{"keys":[{"kty":"EC","kid":"k","crv":"P-256","x":"PTYXlahmuCwBzgmCLWJYQAWryOo_ufBDDx08bL0Pi-U","y":"pd8h9ji01sqbXO_2vLnDs1sEPOERADYuMbMm8djdxX0"}]}"#;
        assert_eq!(
            BundleDocument::from_json(jwks, None),
            Err(FormatError::NoTrustDomain)
        );
        assert_eq!(
            BundleDocument::from_named_json("bundle", jwks, None),
            Err(FormatError::NoTrustDomain)
        );
        let named = BundleDocument::from_named_json("spire.test.json", jwks, None).unwrap();
        assert_eq!(named.domains()[0].trust_domain().as_str(), "spire.test");
        let configured: TrustDomain = "other.test".parse().unwrap();
        let doc =
            BundleDocument::from_named_json("spire.test.json", jwks, Some(&configured)).unwrap();
        assert_eq!(doc.domains()[0].trust_domain().as_str(), "other.test");
        assert_eq!(doc.domains()[0].key_count(), 1);
    }
}
