//! The bundle document: parse, validate, edit, write.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};
use spiffile_id::{IdError, SpiffeId, TrustDomain};

use crate::extras::{Extras, write_indented};
use crate::key::PublicKey;
use crate::parse;

/// The only `spiffile_version` this crate reads and writes.
pub const SPIFFILE_VERSION: u64 = 1;

/// The largest bundle document accepted, in bytes (48 MiB).
///
/// A bundle of 100 000 identities with one key each is about 38 MiB in the
/// canonical form; anything far beyond that is a mistake or an attack, and is
/// refused before parsing.
pub const MAX_BUNDLE_BYTES: usize = 48 * 1024 * 1024;

/// A document-level fault: the bundle cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
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
    /// A required top-level member is absent.
    #[error("bundle has no `{0}` member")]
    MissingMember(&'static str),
    /// A top-level member appears twice.
    #[error("bundle has the member `{0}` twice")]
    DuplicateMember(String),
    /// A top-level member has the wrong type.
    #[error("bundle member `{member}` is not {expected}")]
    WrongType {
        /// The member.
        member: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// `spiffile_version` is not 1.
    #[error("bundle has `spiffile_version` {0}; this library reads version 1 only")]
    UnsupportedVersion(String),
    /// `trust_domain` is not a valid trust domain name.
    #[error("bundle member `trust_domain` is invalid: it {0}")]
    InvalidTrustDomain(IdError),
    /// An edit named an identity outside the bundle's trust domain.
    #[error("identity `{id}` is not in the bundle's trust domain `{trust_domain}`")]
    OutsideTrustDomain {
        /// The identity.
        id: SpiffeId,
        /// The bundle's trust domain.
        trust_domain: TrustDomain,
    },
    /// An edit would bind two keys with the same `kid` to one identity.
    #[error("identity `{id}` already has a key with kid `{kid}`")]
    DuplicateKid {
        /// The identity.
        id: SpiffeId,
        /// The repeated kid.
        kid: String,
    },
}

/// How serious a [`Warning`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarningKind {
    /// A whole identity entry was skipped: tokens for it will be refused.
    SkippedIdentity,
    /// One key of an identity was skipped; the others are in use.
    SkippedKey,
    /// Nothing was skipped, but one public key is bound to several
    /// identities: whoever holds its private key can sign as each of them.
    /// Verifiers accept it (it is how a central issuer is expressed);
    /// bundle tooling reports it as a problem, because for workloads that
    /// sign for themselves it is a provisioning mistake.
    SharedKey,
    /// A whole trust domain of a JWT bundle set was skipped: tokens of that
    /// trust domain will be refused.
    SkippedTrustDomain,
    /// Nothing was skipped, but something deserves attention (a key without
    /// `use`; [`Bundle::lint`] adds a `kid` that is not the thumbprint).
    Advice,
}

impl WarningKind {
    /// Whether something was skipped: an identity or a key of the document
    /// that is not in the [`Bundle`] (and would be lost by rewriting it), or
    /// a whole trust domain of a JWT bundle set.
    pub fn is_skip(self) -> bool {
        matches!(
            self,
            WarningKind::SkippedIdentity
                | WarningKind::SkippedKey
                | WarningKind::SkippedTrustDomain
        )
    }
}

/// Something in the bundle that was skipped or deserves attention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// How serious it is.
    pub kind: WarningKind,
    /// The identity entry concerned (as written in the document).
    pub identity: String,
    /// The 0-based index of the key concerned, if one.
    pub key_index: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_finding(
            f,
            "identity",
            &self.identity,
            self.key_index,
            self.kind,
            &self.message,
        )
    }
}

/// The words of every bundle finding: `<what> "<name>"[ key #i][ skipped]:
/// <message>` (an identity's in a spiffile bundle, a trust domain's in a
/// SPIFFE bundle).
pub(crate) fn write_finding(
    f: &mut fmt::Formatter<'_>,
    what: &str,
    name: &str,
    key_index: Option<usize>,
    kind: WarningKind,
    message: &str,
) -> fmt::Result {
    write!(f, "{what} {name:?}")?;
    if let Some(i) = key_index {
        write!(f, " key #{i}")?;
    }
    let verdict = if kind.is_skip() { " skipped: " } else { ": " };
    write!(f, "{verdict}{message}")
}

/// A parsed, validated spiffile bundle.
///
/// Holds only valid identities and keys; what was skipped is in
/// [`Bundle::warnings`]. Edits keep the document valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    trust_domain: TrustDomain,
    identities: BTreeMap<SpiffeId, Vec<PublicKey>>,
    extra: Extras,
    warnings: Vec<Warning>,
}

impl Bundle {
    /// An empty bundle for a trust domain.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Bundle {
            trust_domain,
            identities: BTreeMap::new(),
            extra: Extras::default(),
            warnings: Vec::new(),
        }
    }

    /// Parses and validates a bundle document.
    ///
    /// Skipped entries are logged with `tracing::warn!` and listed in
    /// [`Bundle::warnings`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleError> {
        let bundle = Self::from_json_quiet(bytes)?;
        for w in &bundle.warnings {
            if w.kind != WarningKind::Advice {
                tracing::warn!(target: "spiffile::bundle", "bundle: {w}");
            }
        }
        Ok(bundle)
    }

    /// Like [`Bundle::from_json`], without logging the warnings (for tools
    /// that print them themselves).
    pub fn from_json_quiet(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                len: bytes.len(),
                max: MAX_BUNDLE_BYTES,
            });
        }
        let parsed = parse::parse(bytes)?;
        Ok(Bundle {
            trust_domain: parsed.trust_domain,
            identities: parsed.identities,
            extra: parsed.extra,
            warnings: parsed.warnings,
        })
    }

    /// Advice beyond [`Bundle::warnings`], for bundle tooling: checks too
    /// costly to run on every load (today: a `kid` that is not the key's
    /// RFC 7638 thumbprint, which is allowed but not recommended; computing
    /// a thumbprint takes a SHA-256 per key).
    pub fn lint(&self) -> Vec<Warning> {
        let mut out = Vec::new();
        let mut more = 0usize;
        for (id, keys) in &self.identities {
            for (i, k) in keys.iter().enumerate() {
                let thumbprint = k.thumbprint();
                if k.kid() != thumbprint && out.len() >= crate::MAX_WARNINGS {
                    more += 1;
                } else if k.kid() != thumbprint {
                    out.push(Warning {
                        kind: WarningKind::Advice,
                        identity: id.to_string(),
                        key_index: Some(i),
                        message: format!(
                            "kid `{}` is not the RFC 7638 thumbprint `{thumbprint}` (allowed, not recommended)",
                            k.kid()
                        ),
                    });
                }
            }
        }
        if more > 0 {
            out.push(Warning {
                kind: WarningKind::Advice,
                identity: "…".into(),
                key_index: None,
                message: format!(
                    "{more} more kids are not the thumbprint, not listed (only the first {} are)",
                    crate::MAX_WARNINGS
                ),
            });
        }
        out
    }

    /// The trust domain every identity belongs to.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// What was skipped or deserves attention when the document was parsed.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The number of (valid) identities.
    pub fn len(&self) -> usize {
        self.identities.len()
    }

    /// Whether the bundle holds no identity.
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// The keys bound to an identity, newest first by convention.
    pub fn keys(&self, id: &SpiffeId) -> Option<&[PublicKey]> {
        self.identities.get(id).map(Vec::as_slice)
    }

    /// Whether an identity is in the bundle.
    pub fn contains(&self, id: &SpiffeId) -> bool {
        self.identities.contains_key(id)
    }

    /// Takes the identities and their keys out, sorted by SPIFFE ID; each is
    /// freed as the iteration moves on (what a verifier built from a large
    /// bundle wants: the two never both exist whole).
    pub fn into_identities(self) -> impl ExactSizeIterator<Item = (SpiffeId, Vec<PublicKey>)> {
        self.identities.into_iter()
    }

    /// Identities and their keys, sorted by SPIFFE ID.
    pub fn identities(&self) -> impl ExactSizeIterator<Item = (&SpiffeId, &[PublicKey])> {
        self.identities.iter().map(|(id, k)| (id, k.as_slice()))
    }

    /// Top-level members this profile does not define (such as
    /// `spiffe_sequence`), kept (as text, not as values) and written back as
    /// they were. Built on each call; a member repeated in the document
    /// keeps its last value here.
    pub fn extra_members(&self) -> Map<String, Value> {
        self.extra.to_map()
    }

    fn check_member(&self, id: &SpiffeId) -> Result<(), BundleError> {
        if id.is_member_of(&self.trust_domain) {
            Ok(())
        } else {
            Err(BundleError::OutsideTrustDomain {
                id: id.clone(),
                trust_domain: self.trust_domain.clone(),
            })
        }
    }

    /// Binds `key` to `id`, first in its list (the position of the current
    /// key after a rotation). Creates the identity if needed.
    pub fn add_key_first(&mut self, id: &SpiffeId, key: PublicKey) -> Result<(), BundleError> {
        self.insert_key(id, key, true)
    }

    /// Binds `key` to `id`, last in its list. Creates the identity if needed.
    pub fn add_key(&mut self, id: &SpiffeId, key: PublicKey) -> Result<(), BundleError> {
        self.insert_key(id, key, false)
    }

    fn insert_key(
        &mut self,
        id: &SpiffeId,
        key: PublicKey,
        first: bool,
    ) -> Result<(), BundleError> {
        self.check_member(id)?;
        let keys = self.identities.entry(id.clone()).or_default();
        if keys.iter().any(|k| k.kid() == key.kid()) {
            let kid = key.kid().to_owned();
            if keys.is_empty() {
                self.identities.remove(id);
            }
            return Err(BundleError::DuplicateKid {
                id: id.clone(),
                kid,
            });
        }
        if first {
            keys.insert(0, key);
        } else {
            keys.push(key);
        }
        Ok(())
    }

    /// Replaces all keys of `id` (removing the identity when `keys` is empty).
    pub fn set_keys(&mut self, id: &SpiffeId, keys: Vec<PublicKey>) -> Result<(), BundleError> {
        self.check_member(id)?;
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|o| o.kid() == k.kid()) {
                return Err(BundleError::DuplicateKid {
                    id: id.clone(),
                    kid: k.kid().to_owned(),
                });
            }
        }
        if keys.is_empty() {
            self.identities.remove(id);
        } else {
            self.identities.insert(id.clone(), keys);
        }
        Ok(())
    }

    /// Removes one key of `id`; removes the identity when it was its last key.
    /// Returns the removed key.
    pub fn remove_key(&mut self, id: &SpiffeId, kid: &str) -> Option<PublicKey> {
        let keys = self.identities.get_mut(id)?;
        let i = keys.iter().position(|k| k.kid() == kid)?;
        let removed = keys.remove(i);
        if keys.is_empty() {
            self.identities.remove(id);
        }
        Some(removed)
    }

    /// Removes an identity and returns its keys (revocation).
    pub fn remove_identity(&mut self, id: &SpiffeId) -> Option<Vec<PublicKey>> {
        self.identities.remove(id)
    }

    /// Writes the canonical form: members `trust_domain`, `spiffile_version`,
    /// `identities` (sorted by ID; keys in their order, JWK members in the
    /// order `kty, crv, x, y, kid, use, alg`, then any others as read), then
    /// any other top-level members; 2-space indentation and a trailing
    /// newline. Unknown members are re-indented from their text: their
    /// strings and numbers are written as they were read.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(64 + self.identities.len() * 400);
        // Writing to a String cannot fail.
        let _ = self.write_json(&mut out);
        out
    }

    /// [`Bundle::to_json`] into any writer, without building the whole
    /// text first.
    pub fn write_json(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        write!(
            out,
            "{{\n  \"trust_domain\": {},\n  \"spiffile_version\": {SPIFFILE_VERSION},\n  \"identities\": {{",
            Value::from(self.trust_domain.as_str())
        )?;
        for (n, (id, keys)) in self.identities.iter().enumerate() {
            out.write_str(if n == 0 { "\n" } else { ",\n" })?;
            write!(
                out,
                "    {}: {{\n      \"keys\": [",
                Value::from(id.as_str())
            )?;
            for (i, k) in keys.iter().enumerate() {
                out.write_str(if i == 0 {
                    "\n        {"
                } else {
                    ",\n        {"
                })?;
                k.write_members(out, 10)?;
                out.write_str("\n        }")?;
            }
            out.write_str(if keys.is_empty() {
                "]\n    }"
            } else {
                "\n      ]\n    }"
            })?;
        }
        out.write_str(if self.identities.is_empty() {
            "}"
        } else {
            "\n  }"
        })?;
        for (name, value) in self.extra.pairs() {
            out.write_str(",\n  ")?;
            out.write_str(name)?;
            out.write_str(": ")?;
            write_indented(out, value, 2)?;
        }
        out.write_str("\n}\n")
    }

    /// Whether `bytes` are exactly this bundle's canonical form, compared as
    /// it is written (no copy of the text is made, and the comparison stops
    /// at the first difference).
    pub fn is_canonical(&self, bytes: &[u8]) -> bool {
        struct Compare<'a> {
            rest: &'a [u8],
        }
        impl fmt::Write for Compare<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                match self.rest.strip_prefix(s.as_bytes()) {
                    Some(rest) => {
                        self.rest = rest;
                        Ok(())
                    }
                    None => Err(fmt::Error),
                }
            }
        }
        let mut c = Compare { rest: bytes };
        self.write_json(&mut c).is_ok() && c.rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::fixture_jwks::{billing as billing_jwk, orders as orders_jwk};
    use serde_json::json;

    const ORDERS: &str = "spiffe://example.org/orders";

    fn oid() -> SpiffeId {
        SpiffeId::new(ORDERS).unwrap()
    }

    fn doc(identities: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "trust_domain": "example.org",
            "spiffile_version": 1,
            "identities": identities,
        }))
        .unwrap()
    }

    fn parse(identities: Value) -> Bundle {
        Bundle::from_json(&doc(identities)).unwrap()
    }

    #[test]
    fn document_faults_are_errors() {
        let cases: Vec<(&[u8], BundleError)> = vec![
            (b"", BundleError::Json { message: "EOF while parsing a value".into(), line: 1, column: 0 }),
            (b"[]", BundleError::NotAnObject),
            (b"\"x\"", BundleError::NotAnObject),
            (br#"{"spiffile_version":1,"identities":{}}"#, BundleError::MissingMember("trust_domain")),
            (br#"{"trust_domain":"example.org","identities":{}}"#, BundleError::MissingMember("spiffile_version")),
            (br#"{"trust_domain":"example.org","spiffile_version":1}"#, BundleError::MissingMember("identities")),
            (br#"{"trust_domain":"example.org","spiffile_version":2,"identities":{}}"#, BundleError::UnsupportedVersion("2".into())),
            (br#"{"trust_domain":"example.org","spiffile_version":"1","identities":{}}"#, BundleError::UnsupportedVersion("\"1\"".into())),
            (br#"{"trust_domain":"example.org","spiffile_version":1.0,"identities":{}}"#, BundleError::UnsupportedVersion("1.0".into())),
            (br#"{"trust_domain":"Example.org","spiffile_version":1,"identities":{}}"#, BundleError::InvalidTrustDomain(IdError::BadTrustDomainChar { ch: 'E', position: 0 })),
            (br#"{"trust_domain":7,"spiffile_version":1,"identities":{}}"#, BundleError::WrongType { member: "trust_domain", expected: "a string" }),
            (br#"{"trust_domain":"example.org","trust_domain":"example.org","spiffile_version":1,"identities":{}}"#, BundleError::DuplicateMember("trust_domain".into())),
        ];
        for (input, want) in cases {
            assert_eq!(
                Bundle::from_json(input),
                Err(want),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            Bundle::from_json(
                br#"{"trust_domain":"example.org","spiffile_version":1,"identities":[]}"#
            ),
            Err(BundleError::WrongType {
                member: "identities",
                expected: "an object"
            })
        );
        assert!(matches!(
            Bundle::from_json(b"{} x"),
            Err(BundleError::Json { .. })
        ));
        assert!(matches!(
            Bundle::from_json(b"\xff\xfe"),
            Err(BundleError::Json { .. })
        ));
    }

    #[test]
    fn too_large_is_refused_before_parsing() {
        let big = vec![b' '; MAX_BUNDLE_BYTES + 1];
        assert_eq!(
            Bundle::from_json(&big),
            Err(BundleError::TooLarge {
                len: MAX_BUNDLE_BYTES + 1,
                max: MAX_BUNDLE_BYTES
            })
        );
    }

    #[test]
    fn bad_entries_are_skipped_and_the_rest_works() {
        let mut with_d = orders_jwk();
        with_d["d"] = json!("secret-looking");
        let b = parse(json!({
            ORDERS: {"keys": [orders_jwk()]},
            "spiffe://example.org/billing": {"keys": [billing_jwk()]},
            "spiffe://other.org/x": {"keys": [orders_jwk()]},
            "spiffe://example.org/bad path": {"keys": [orders_jwk()]},
            "spiffe://example.org/nokeys": {"keys": []},
            "spiffe://example.org/notarray": {"keys": {}},
            "spiffe://example.org/nomember": {},
            "spiffe://example.org/notobject": 3,
            "spiffe://example.org/private": {"keys": [with_d]},
        }));
        assert_eq!(b.len(), 2);
        assert!(b.contains(&oid()));
        assert!(b.contains(&SpiffeId::new("spiffe://example.org/billing").unwrap()));
        let skipped: Vec<_> = b
            .warnings()
            .iter()
            .filter(|w| w.kind == WarningKind::SkippedIdentity)
            .map(|w| w.identity.as_str())
            .collect();
        assert_eq!(skipped.len(), 7, "{:?}", b.warnings());
        let private = b
            .warnings()
            .iter()
            .find(|w| w.identity.ends_with("/private") && w.kind == WarningKind::SkippedKey)
            .unwrap();
        assert!(private.to_string().contains("private member `d`"));
        assert!(!private.to_string().contains("secret-looking"));
    }

    #[test]
    fn one_bad_key_leaves_the_good_one() {
        let mut bad = billing_jwk();
        bad["crv"] = json!("P-384");
        let b = parse(json!({ ORDERS: {"keys": [bad, orders_jwk()]} }));
        assert_eq!(b.keys(&oid()).unwrap().len(), 1);
        let w = &b.warnings()[0];
        assert_eq!(w.kind, WarningKind::SkippedKey);
        assert_eq!(w.key_index, Some(0));
        assert_eq!(
            w.to_string(),
            "identity \"spiffe://example.org/orders\" key #0 skipped: key member `crv` is \"P-384\"; only \"P-256\" is supported"
        );
    }

    #[test]
    fn a_repeated_kid_skips_the_second_key() {
        let b = parse(json!({ ORDERS: {"keys": [orders_jwk(), orders_jwk()]} }));
        let keys = b.keys(&oid()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid(), "mxUG_qRFVEqi_fztCHOjfEaOE0uWmGYxvFJxNZHjB0Q");
        assert_eq!(b.warnings().len(), 1);
        assert_eq!(b.warnings()[0].kind, WarningKind::SkippedKey);
        assert_eq!(b.warnings()[0].key_index, Some(1));
    }

    /// Issue 15, item 4: the first entry won here and the last in the Python
    /// reference, so one document bound different keys in the two. Now an
    /// identity that appears twice is not trusted at all, whatever its
    /// entries hold (even when one of them is unusable, so the other would
    /// be the only candidate), with exactly one warning naming it.
    #[test]
    fn an_identity_that_appears_twice_is_not_trusted_at_all() {
        let billing = "spiffe://example.org/billing";
        for (first, second) in [
            (
                format!("{{\"keys\": [{}]}}", orders_jwk()),
                format!("{{\"keys\": [{}]}}", billing_jwk()),
            ),
            (
                "{\"keys\": []}".to_owned(),
                format!("{{\"keys\": [{}]}}", billing_jwk()),
            ),
            (format!("{{\"keys\": [{}]}}", orders_jwk()), "7".to_owned()),
        ] {
            // The second spelling decodes to the same SPIFFE ID.
            let text = format!(
                r#"{{"trust_domain":"example.org","spiffile_version":1,"identities":{{
                  "{ORDERS}": {first},
                  "{billing}": {{"keys": [{b}]}},
                  "spiffe://example.org/\u006frders": {second} }}}}"#,
                b = billing_jwk()
            );
            let b = Bundle::from_json(text.as_bytes()).unwrap();
            assert!(!b.contains(&oid()), "{first} / {second}");
            assert!(b.contains(&SpiffeId::new(billing).unwrap()));
            assert_eq!(b.warnings().len(), 1, "{:?}", b.warnings());
            let w = &b.warnings()[0];
            assert_eq!(w.kind, WarningKind::SkippedIdentity);
            assert_eq!(w.identity, ORDERS);
            assert_eq!(
                w.to_string(),
                "identity \"spiffe://example.org/orders\" skipped: appears 2 times in `identities`; none of its entries is used, so its tokens are refused (keep exactly one)"
            );
        }
    }

    #[test]
    fn lint_points_out_a_kid_that_is_not_the_thumbprint() {
        let mut odd = orders_jwk();
        odd["kid"] = json!("orders-2026");
        let b = parse(
            json!({ ORDERS: {"keys": [odd]}, "spiffe://example.org/billing": {"keys": [billing_jwk()]} }),
        );
        assert!(
            b.warnings().is_empty(),
            "not checked on load: {:?}",
            b.warnings()
        );
        let lint = b.lint();
        assert_eq!(lint.len(), 1, "{lint:?}");
        assert_eq!(lint[0].kind, WarningKind::Advice);
        assert!(
            lint[0]
                .message
                .contains("kid `orders-2026` is not the RFC 7638 thumbprint")
        );
    }

    /// A hostile document can hold millions of bad entries: at most
    /// MAX_WARNINGS of each kind are kept, the rest counted in one warning
    /// of the same kind, so a flood of advice never hides a problem.
    #[test]
    fn warnings_are_capped_per_kind_and_never_hide_a_problem() {
        let mut no_use = orders_jwk();
        no_use.as_object_mut().unwrap().remove("use");
        let mut ids = serde_json::Map::new();
        for i in 0..1200 {
            ids.insert(
                format!("spiffe://example.org/s{i}"),
                json!({"keys": [no_use]}),
            );
            ids.insert(format!("bad name {i}"), json!(0));
        }
        let b = parse(Value::Object(ids));
        assert_eq!(b.len(), 1200);
        let count = |k: WarningKind| b.warnings().iter().filter(|w| w.kind == k).count();
        assert_eq!(count(WarningKind::Advice), crate::MAX_WARNINGS + 1);
        assert_eq!(count(WarningKind::SharedKey), crate::MAX_WARNINGS + 1);
        assert_eq!(count(WarningKind::SkippedIdentity), crate::MAX_WARNINGS + 1);
        let last_shared = b
            .warnings()
            .iter()
            .rfind(|w| w.kind == WarningKind::SharedKey)
            .unwrap();
        assert!(
            last_shared
                .message
                .starts_with("199 more keys are bound to more than one identity"),
            "{last_shared}"
        );
    }

    #[test]
    fn identities_before_the_trust_domain_read_the_same() {
        let first = format!(
            r#"{{"identities":{{"{ORDERS}":{{"keys":[{o}]}},"spiffe://other.org/x":{{"keys":[{o}]}}}},"trust_domain":"example.org","x":[1, 2],"spiffile_version":1}}"#,
            o = orders_jwk()
        );
        let b = Bundle::from_json(first.as_bytes()).unwrap();
        assert_eq!(b.len(), 1);
        assert!(b.contains(&oid()));
        assert_eq!(b.warnings().len(), 1, "{:?}", b.warnings());
        let again = Bundle::from_json(b.to_json().as_bytes()).unwrap();
        assert!(again.identities().eq(b.identities()));
        assert_eq!(again.extra_members(), b.extra_members());
        assert!(again.is_canonical(b.to_json().as_bytes()));
        assert!(!b.is_canonical(first.as_bytes()));
    }

    #[test]
    fn shared_key_is_reported() {
        let b = parse(json!({
            ORDERS: {"keys": [orders_jwk()]},
            "spiffe://example.org/twin": {"keys": [orders_jwk()]},
        }));
        assert_eq!(
            b.len(),
            2,
            "both stay trusted: the bundle is the trust root"
        );
        assert_eq!(b.warnings().len(), 1, "{:?}", b.warnings());
        let w = &b.warnings()[0];
        assert_eq!(w.kind, WarningKind::SharedKey);
        assert!(!w.kind.is_skip());
        assert!(
            w.message
                .contains("also bound to `spiffe://example.org/orders`"),
            "{w}"
        );
    }

    #[test]
    fn canonical_output_is_stable_and_round_trips() {
        let b = parse(json!({
            "spiffe://example.org/orders": {"keys": [orders_jwk()]},
            "spiffe://example.org/billing": {"keys": [billing_jwk()]},
        }));
        let text = b.to_json();
        assert!(text.ends_with("}\n"));
        assert!(
            text.starts_with(
                "{\n  \"trust_domain\": \"example.org\",\n  \"spiffile_version\": 1,\n"
            )
        );
        let again = Bundle::from_json(text.as_bytes()).unwrap();
        assert_eq!(again, b);
        assert_eq!(again.to_json(), text);
        // The canonical form is what serde_json's pretty printer gives for the
        // same members in the same order: check a fragment.
        assert!(text.contains(
            "    \"spiffe://example.org/billing\": {\n      \"keys\": [\n        {\n          \"kty\": \"EC\",\n"
        ));
        let billing_at = text.find("billing").unwrap();
        let orders_at = text.find("orders").unwrap();
        assert!(billing_at < orders_at, "identities are sorted");
    }

    #[test]
    fn fixture_bundle_serializes_like_the_python_reference() {
        // The fixture's bundle is what the Python reference writes for two
        // identities (json.dumps, indent 2); ours differs only in identity
        // order, which we sort.
        let f: Value =
            serde_json::from_str(include_str!("../../../conformance/fixtures.json")).unwrap();
        let b = Bundle::from_json(&serde_json::to_vec(&f["bundle"]).unwrap()).unwrap();
        let ours: Value = serde_json::from_str(&b.to_json()).unwrap();
        assert_eq!(ours, f["bundle"]);
        assert!(b.warnings().is_empty(), "{:?}", b.warnings());
    }

    #[test]
    fn extra_members_survive() {
        let text = br#"{"trust_domain":"example.org","spiffile_version":1,"identities":{},"spiffe_sequence":7,"x":{"a":[1,2]}}"#;
        let b = Bundle::from_json(text).unwrap();
        let out = b.to_json();
        assert_eq!(Bundle::from_json(out.as_bytes()).unwrap(), b);
        assert!(out.contains("\"spiffe_sequence\": 7"));
    }

    /// Fuzzing regression (bundle_parse): a long number in an unknown member
    /// must read back as the same number from the canonical form. serde_json
    /// needs `float_roundtrip` for correctly rounded parsing.
    #[test]
    fn long_numbers_in_extra_members_round_trip() {
        let input = r#"{"trust_domain":"example.org","sp":"eerrg","spiffile_version":1,"identities":{},"spiffe_e":199999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999}"#;
        let b = Bundle::from_json(input.as_bytes()).unwrap();
        let text = b.to_json();
        let again = Bundle::from_json(text.as_bytes()).unwrap();
        assert_eq!(again.extra_members(), b.extra_members());
        assert_eq!(again.to_json(), text);
    }

    #[test]
    fn edits() {
        let td = TrustDomain::new("example.org").unwrap();
        let mut b = Bundle::new(td);
        let orders: SpiffeId = ORDERS.parse().unwrap();
        let k1 = PublicKey::from_jwk(&orders_jwk()).unwrap();
        let k2 = PublicKey::from_jwk(&billing_jwk()).unwrap();
        b.add_key(&orders, k1.clone()).unwrap();
        assert_eq!(
            b.add_key(&orders, k1.clone()),
            Err(BundleError::DuplicateKid {
                id: orders.clone(),
                kid: k1.kid().into()
            })
        );
        b.add_key_first(&orders, k2.clone()).unwrap();
        assert_eq!(b.keys(&oid()).unwrap()[0].kid(), k2.kid());
        assert_eq!(b.remove_key(&oid(), k2.kid()), Some(k2.clone()));
        assert_eq!(b.keys(&oid()).unwrap().len(), 1);
        let other: SpiffeId = "spiffe://other.org/x".parse().unwrap();
        assert!(matches!(
            b.add_key(&other, k2.clone()),
            Err(BundleError::OutsideTrustDomain { .. })
        ));
        assert!(b.remove_key(&oid(), k1.kid()).is_some());
        assert!(b.is_empty());
        b.set_keys(&orders, vec![k1.clone(), k2.clone()]).unwrap();
        assert_eq!(b.remove_identity(&oid()).map(|k| k.len()), Some(2));
        assert!(b.to_json().contains("\"identities\": {}"));
        assert!(
            Bundle::from_json(b.to_json().as_bytes())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn bundle_is_send_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Bundle>();
    }
}
