//! SPIFFE IDs and trust domains, exactly as the SPIFFE-ID standard defines them.
//!
//! A SPIFFE ID is `spiffe://<trust-domain><path>`:
//!
//! * the scheme is exactly `spiffe://` (lowercase);
//! * the trust domain is non-empty, at most 255 bytes, and uses only
//!   `a-z 0-9 . - _` (no uppercase, no percent-encoding, no userinfo, no port);
//! * the path is optional; when present it is `/`-separated segments of
//!   `a-z A-Z 0-9 . - _`, with no empty segment, no trailing slash and no `.`
//!   or `..` segment (`.a`, `..a` and `...` are fine);
//! * no query, no fragment; the whole ID is at most 2048 bytes.
//!
//! Parsing never normalizes: `id.to_string()` gives back exactly the input.
//!
//! ```
//! use spiffile_id::SpiffeId;
//!
//! let id: SpiffeId = "spiffe://example.org/orders".parse()?;
//! assert_eq!(id.trust_domain().as_str(), "example.org");
//! assert_eq!(id.path(), "/orders");
//! assert_eq!(id.to_string(), "spiffe://example.org/orders");
//!
//! assert!("spiffe://Example.org/orders".parse::<SpiffeId>().is_err());
//! # Ok::<(), spiffile_id::IdError>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

/// The scheme prefix every SPIFFE ID starts with.
pub const SCHEME_PREFIX: &str = "spiffe://";
/// The longest trust domain name accepted, in bytes (the URI host limit).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;
/// The longest SPIFFE ID accepted, in bytes.
pub const MAX_ID_LEN: usize = 2048;

/// Why a string is not a valid SPIFFE ID or trust domain.
///
/// Positions are byte offsets into the rejected input. The input itself is not
/// repeated in the message; callers add the context (file, claim) they know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The input is empty.
    #[error("is empty")]
    Empty,
    /// The input does not start with `spiffe://` (the scheme is case-sensitive).
    #[error("does not start with the scheme `spiffe://`")]
    WrongScheme,
    /// The trust domain part is empty.
    #[error("has an empty trust domain")]
    EmptyTrustDomain,
    /// The trust domain holds a character outside `a-z 0-9 . - _`.
    #[error(
        "trust domain has the character {ch:?} at byte {position}; only a-z, 0-9, '.', '-' and '_' are allowed"
    )]
    BadTrustDomainChar {
        /// The offending character.
        ch: char,
        /// Its byte offset in the input.
        position: usize,
    },
    /// The trust domain is longer than [`MAX_TRUST_DOMAIN_LEN`].
    #[error("trust domain is {len} bytes long; at most 255 are allowed")]
    TrustDomainTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The whole ID is longer than [`MAX_ID_LEN`].
    #[error("is {len} bytes long; at most 2048 are allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The path holds a character outside `a-z A-Z 0-9 . - _` (or a query,
    /// fragment or percent-encoding).
    #[error(
        "path has the character {ch:?} at byte {position}; only a-z, A-Z, 0-9, '.', '-' and '_' are allowed in segments"
    )]
    BadPathChar {
        /// The offending character.
        ch: char,
        /// Its byte offset in the input.
        position: usize,
    },
    /// The path has an empty segment (`//`).
    #[error("path has an empty segment at byte {position}")]
    EmptySegment {
        /// Byte offset of the empty segment.
        position: usize,
    },
    /// The path ends with a slash.
    #[error("path ends with a trailing slash")]
    TrailingSlash,
    /// The path has a `.` or `..` segment.
    #[error("path has a '.' or '..' segment at byte {position}")]
    DotSegment {
        /// Byte offset of the segment.
        position: usize,
    },
}

fn is_td_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_')
}

fn is_path_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_')
}

fn bad_char(s: &str, position: usize) -> char {
    s.get(position..)
        .and_then(|rest| rest.chars().next())
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Validates a bare trust domain name (no scheme). `offset` is added to
/// positions in errors.
fn check_trust_domain(name: &str, offset: usize) -> Result<(), IdError> {
    if name.is_empty() {
        return Err(IdError::EmptyTrustDomain);
    }
    if let Some(i) = name.bytes().position(|b| !is_td_char(b)) {
        return Err(IdError::BadTrustDomainChar {
            ch: bad_char(name, i),
            position: offset + i,
        });
    }
    if name.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(IdError::TrustDomainTooLong { len: name.len() });
    }
    Ok(())
}

/// Validates a path (empty, or starting with `/`). `offset` is added to
/// positions in errors.
fn check_path(path: &str, offset: usize) -> Result<(), IdError> {
    if path.is_empty() {
        return Ok(());
    }
    let bytes = path.as_bytes();
    // `path` always starts with '/' here: the caller split at the first '/'.
    let mut seg_start = 1;
    for i in 1..=bytes.len() {
        let at_end = i == bytes.len();
        if at_end || bytes[i] == b'/' {
            let seg = &bytes[seg_start..i];
            if seg.is_empty() {
                return Err(if at_end {
                    IdError::TrailingSlash
                } else {
                    IdError::EmptySegment {
                        position: offset + seg_start,
                    }
                });
            }
            if seg == b"." || seg == b".." {
                return Err(IdError::DotSegment {
                    position: offset + seg_start,
                });
            }
            seg_start = i + 1;
        } else if !is_path_char(bytes[i]) {
            return Err(IdError::BadPathChar {
                ch: bad_char(path, i),
                position: offset + i,
            });
        }
    }
    Ok(())
}

/// Checks `s` against the SPIFFE-ID grammar without allocating.
///
/// Returns the byte offset where the path starts (equal to `s.len()` when
/// there is no path).
///
/// ```
/// assert_eq!(spiffile_id::validate("spiffe://example.org/a"), Ok(20));
/// assert!(spiffile_id::validate("spiffe://example.org/").is_err());
/// ```
pub fn validate(s: &str) -> Result<usize, IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    let rest = s.strip_prefix(SCHEME_PREFIX).ok_or(IdError::WrongScheme)?;
    let td_len = rest.find('/').unwrap_or(rest.len());
    let (td, path) = rest.split_at(td_len);
    check_trust_domain(td, SCHEME_PREFIX.len())?;
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { len: s.len() });
    }
    check_path(path, SCHEME_PREFIX.len() + td_len)?;
    Ok(SCHEME_PREFIX.len() + td_len)
}

/// A trust domain name, such as `example.org`.
///
/// Cheap to clone (reference-counted). Compares and hashes as its name.
///
/// ```
/// use spiffile_id::TrustDomain;
/// let td: TrustDomain = "example.org".parse()?;
/// assert_eq!(td.id().to_string(), "spiffe://example.org");
/// # Ok::<(), spiffile_id::IdError>(())
/// ```
#[derive(Clone)]
pub struct TrustDomain {
    name: Arc<str>,
}

impl TrustDomain {
    /// Parses a bare trust domain name (`example.org`, not `spiffe://example.org`).
    pub fn new(name: &str) -> Result<Self, IdError> {
        check_trust_domain(name, 0)?;
        Ok(TrustDomain { name: name.into() })
    }

    /// The name, e.g. `example.org`.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The SPIFFE ID of the trust domain itself, `spiffe://<name>`.
    pub fn id(&self) -> SpiffeId {
        let s: Arc<str> = format!("{SCHEME_PREFIX}{}", self.name).into();
        SpiffeId {
            path_start: s.len(),
            s,
            td: self.clone(),
        }
    }

    /// Builds the SPIFFE ID `spiffe://<name>/<path>` from a path without its
    /// leading slash (`orders`, `team/orders`), checking the grammar.
    ///
    /// ```
    /// # use spiffile_id::TrustDomain;
    /// let td = TrustDomain::new("example.org")?;
    /// assert_eq!(td.join("team/orders")?.to_string(), "spiffe://example.org/team/orders");
    /// assert!(td.join("../x").is_err());
    /// # Ok::<(), spiffile_id::IdError>(())
    /// ```
    pub fn join(&self, path: &str) -> Result<SpiffeId, IdError> {
        format!("{SCHEME_PREFIX}{}/{path}", self.name).parse()
    }
}

impl FromStr for TrustDomain {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        TrustDomain::new(s)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustDomain({:?})", &*self.name)
    }
}

impl PartialEq for TrustDomain {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for TrustDomain {}
impl Hash for TrustDomain {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}
impl PartialOrd for TrustDomain {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TrustDomain {
    fn cmp(&self, other: &Self) -> Ordering {
        self.name.cmp(&other.name)
    }
}

/// A SPIFFE ID, such as `spiffe://example.org/orders`.
///
/// Cheap to clone (reference-counted). Equality, ordering and hashing are
/// those of the string form, so a `HashMap<SpiffeId, _>` can be queried with
/// a `&str`.
#[derive(Clone)]
pub struct SpiffeId {
    s: Arc<str>,
    path_start: usize,
    td: TrustDomain,
}

impl SpiffeId {
    /// Parses a SPIFFE ID.
    pub fn new(s: &str) -> Result<Self, IdError> {
        let path_start = validate(s)?;
        let td = TrustDomain {
            name: s[SCHEME_PREFIX.len()..path_start].into(),
        };
        Ok(SpiffeId {
            s: s.into(),
            path_start,
            td,
        })
    }

    /// The trust domain this ID belongs to.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.td
    }

    /// The path, with its leading slash (`/orders`), or `""` for the ID of a
    /// trust domain itself.
    pub fn path(&self) -> &str {
        &self.s[self.path_start..]
    }

    /// The whole ID as a string.
    pub fn as_str(&self) -> &str {
        &self.s
    }

    /// Whether this ID belongs to `td`.
    pub fn is_member_of(&self, td: &TrustDomain) -> bool {
        &self.td == td
    }
}

impl FromStr for SpiffeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        SpiffeId::new(s)
    }
}

impl TryFrom<&str> for SpiffeId {
    type Error = IdError;
    fn try_from(s: &str) -> Result<Self, IdError> {
        SpiffeId::new(s)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.s)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({:?})", &*self.s)
    }
}

impl AsRef<str> for SpiffeId {
    fn as_ref(&self) -> &str {
        &self.s
    }
}

impl Borrow<str> for SpiffeId {
    fn borrow(&self) -> &str {
        &self.s
    }
}

impl PartialEq for SpiffeId {
    fn eq(&self, other: &Self) -> bool {
        self.s == other.s
    }
}
impl Eq for SpiffeId {}
impl PartialEq<str> for SpiffeId {
    fn eq(&self, other: &str) -> bool {
        &*self.s == other
    }
}
impl PartialEq<&str> for SpiffeId {
    fn eq(&self, other: &&str) -> bool {
        &*self.s == *other
    }
}
impl Hash for SpiffeId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must agree with `str`'s hash for `Borrow<str>` lookups.
        (*self.s).hash(state)
    }
}
impl PartialOrd for SpiffeId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SpiffeId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.s.cmp(&other.s)
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use super::{SpiffeId, TrustDomain};
    use serde::de::{Error, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::fmt;

    impl Serialize for SpiffeId {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(self.as_str())
        }
    }
    impl Serialize for TrustDomain {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(self.as_str())
        }
    }

    struct IdVisitor;
    impl Visitor<'_> for IdVisitor {
        type Value = SpiffeId;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a SPIFFE ID string")
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<SpiffeId, E> {
            SpiffeId::new(v).map_err(|e| E::custom(format_args!("SPIFFE ID {e}")))
        }
    }
    impl<'de> Deserialize<'de> for SpiffeId {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(IdVisitor)
        }
    }

    struct TdVisitor;
    impl Visitor<'_> for TdVisitor {
        type Value = TrustDomain;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a trust domain name")
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<TrustDomain, E> {
            TrustDomain::new(v).map_err(|e| E::custom(format_args!("trust domain {e}")))
        }
    }
    impl<'de> Deserialize<'de> for TrustDomain {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(TdVisitor)
        }
    }
}

#[cfg(feature = "url")]
mod url_impl {
    use super::{IdError, SpiffeId};

    impl TryFrom<&url::Url> for SpiffeId {
        type Error = IdError;
        /// Converts a parsed URL by checking its serialization against the
        /// exact grammar. The `url` crate has already normalized it (it
        /// resolves `.` and `..` segments), so to reject such input parse the
        /// original string with [`SpiffeId::new`] instead.
        fn try_from(u: &url::Url) -> Result<Self, IdError> {
            SpiffeId::new(u.as_str())
        }
    }

    impl From<&SpiffeId> for url::Url {
        fn from(id: &SpiffeId) -> url::Url {
            // A valid SPIFFE ID is always a valid absolute URL.
            #[allow(clippy::expect_used)]
            url::Url::parse(id.as_str()).expect("a SPIFFE ID is a valid URL")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> SpiffeId {
        match SpiffeId::new(s) {
            Ok(id) => id,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn err(s: &str) -> IdError {
        match SpiffeId::new(s) {
            Ok(_) => panic!("{s:?} should be rejected"),
            Err(e) => e,
        }
    }

    #[test]
    fn valid_ids_round_trip() {
        for s in [
            "spiffe://example.org",
            "spiffe://example.org/orders",
            "spiffe://a/b/c.d_e-f",
            "spiffe://ex-ample_2.org/UPPER.case",
            "spiffe://example.org/.a/..a/...",
            "spiffe://1.2.3.4/x",
        ] {
            assert_eq!(ok(s).to_string(), s);
        }
    }

    #[test]
    fn components() {
        let id = ok("spiffe://example.org/a/b");
        assert_eq!(id.trust_domain().as_str(), "example.org");
        assert_eq!(id.path(), "/a/b");
        let root = ok("spiffe://example.org");
        assert_eq!(root.path(), "");
        assert_eq!(root, root.trust_domain().id());
    }

    #[test]
    fn scheme() {
        assert_eq!(err(""), IdError::Empty);
        assert_eq!(err("SPIFFE://example.org/x"), IdError::WrongScheme);
        assert_eq!(err("Spiffe://example.org/x"), IdError::WrongScheme);
        assert_eq!(err("http://example.org/x"), IdError::WrongScheme);
        assert_eq!(err("spiffe:/example.org/x"), IdError::WrongScheme);
        assert_eq!(err("example.org/x"), IdError::WrongScheme);
    }

    #[test]
    fn trust_domain_rules() {
        assert_eq!(err("spiffe://"), IdError::EmptyTrustDomain);
        assert_eq!(err("spiffe:///x"), IdError::EmptyTrustDomain);
        assert!(matches!(
            err("spiffe://Example.org/x"),
            IdError::BadTrustDomainChar {
                ch: 'E',
                position: 9
            }
        ));
        for s in [
            "spiffe://user@example.org/x",
            "spiffe://example.org:8080/x",
            "spiffe://exa%41mple.org/x",
            "spiffe://example.org?q=1",
            "spiffe://example.org#f",
            "spiffe://exämple.org",
        ] {
            assert!(matches!(err(s), IdError::BadTrustDomainChar { .. }), "{s}");
        }
        let td255 = "a".repeat(255);
        ok(&format!("spiffe://{td255}/x"));
        let td256 = "a".repeat(256);
        assert_eq!(
            err(&format!("spiffe://{td256}/x")),
            IdError::TrustDomainTooLong { len: 256 }
        );
        assert!(TrustDomain::new(&td255).is_ok());
        assert!(TrustDomain::new(&td256).is_err());
    }

    #[test]
    fn path_rules() {
        assert_eq!(err("spiffe://example.org/"), IdError::TrailingSlash);
        assert_eq!(err("spiffe://example.org/a/"), IdError::TrailingSlash);
        assert_eq!(
            err("spiffe://example.org//x"),
            IdError::EmptySegment { position: 21 }
        );
        assert_eq!(
            err("spiffe://example.org/a/../b"),
            IdError::DotSegment { position: 23 }
        );
        assert_eq!(
            err("spiffe://example.org/./b"),
            IdError::DotSegment { position: 21 }
        );
        assert_eq!(
            err("spiffe://example.org/.."),
            IdError::DotSegment { position: 21 }
        );
        for s in [
            "spiffe://example.org/bad~path",
            "spiffe://example.org/a b",
            "spiffe://example.org/a%20b",
            "spiffe://example.org/a?q=1",
            "spiffe://example.org/a#frag",
            "spiffe://example.org/ä",
            "spiffe://example.org/a\nb",
        ] {
            assert!(matches!(err(s), IdError::BadPathChar { .. }), "{s}");
        }
        assert!(matches!(
            err("spiffe://example.org/é"),
            IdError::BadPathChar {
                ch: 'é',
                position: 21
            }
        ));
    }

    #[test]
    fn length_limits() {
        let prefix = "spiffe://example.org/";
        let at_limit = format!("{prefix}{}", "a".repeat(MAX_ID_LEN - prefix.len()));
        assert_eq!(at_limit.len(), 2048);
        assert_eq!(ok(&at_limit).to_string(), at_limit);
        let over = format!("{at_limit}b");
        assert_eq!(err(&over), IdError::TooLong { len: 2049 });
    }

    #[test]
    fn borrow_lookup_and_ordering() {
        use std::collections::HashMap;
        let mut m = HashMap::new();
        m.insert(ok("spiffe://example.org/a"), 1);
        assert_eq!(m.get("spiffe://example.org/a"), Some(&1));
        let mut v = [ok("spiffe://b.org/x"), ok("spiffe://a.org/y")];
        v.sort();
        assert_eq!(v[0].as_str(), "spiffe://a.org/y");
    }

    #[test]
    fn join() {
        let td = TrustDomain::new("example.org").unwrap();
        assert_eq!(td.join("orders").unwrap().path(), "/orders");
        assert!(td.join("").is_err());
        assert!(td.join("a//b").is_err());
        assert!(td.join("..").is_err());
    }

    #[test]
    fn messages_name_the_problem() {
        let e = err("spiffe://example.org/a b");
        assert_eq!(
            e.to_string(),
            "path has the character ' ' at byte 22; only a-z, A-Z, 0-9, '.', '-' and '_' are allowed in segments"
        );
    }

    #[test]
    fn send_sync_clone() {
        fn assert_traits<T: Send + Sync + Clone>() {}
        assert_traits::<SpiffeId>();
        assert_traits::<TrustDomain>();
    }
}

#[cfg(all(test, feature = "serde"))]
mod serde_tests {
    use super::*;

    #[test]
    fn ids_serialize_as_strings_and_validate_on_the_way_in() {
        let id = SpiffeId::new("spiffe://example.org/a").unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"spiffe://example.org/a\""
        );
        let back: SpiffeId = serde_json::from_str("\"spiffe://example.org/a\"").unwrap();
        assert_eq!(back, id);
        let err = serde_json::from_str::<SpiffeId>("\"spiffe://example.org/\"").unwrap_err();
        assert!(err.to_string().contains("trailing slash"), "{err}");
        let td: TrustDomain = serde_json::from_str("\"example.org\"").unwrap();
        assert_eq!(serde_json::to_string(&td).unwrap(), "\"example.org\"");
        assert!(serde_json::from_str::<TrustDomain>("\"Example.org\"").is_err());
    }
}

#[cfg(all(test, feature = "url"))]
mod url_tests {
    use super::*;

    #[test]
    fn url_conversion_keeps_the_exact_grammar() {
        let u = url::Url::parse("spiffe://example.org/a/b").unwrap();
        let id = SpiffeId::try_from(&u).unwrap();
        assert_eq!(url::Url::from(&id), u);
        // `url` accepts these; the grammar does not.
        for s in [
            "spiffe://example.org:80/a",
            "spiffe://u@example.org/a",
            "spiffe://example.org/a?q",
            "spiffe://example.org/a/",
        ] {
            let u = url::Url::parse(s).unwrap();
            assert!(SpiffeId::try_from(&u).is_err(), "{s}");
        }
    }
}
