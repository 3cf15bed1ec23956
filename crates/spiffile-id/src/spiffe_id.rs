//! A SPIFFE ID.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use crate::grammar::{SCHEME_PREFIX, validate};
use crate::{IdError, TrustDomain};

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
        let td = TrustDomain::from_checked(&s[SCHEME_PREFIX.len()..path_start]);
        Ok(SpiffeId {
            s: s.into(),
            path_start,
            td,
        })
    }

    /// An ID from parts the caller has already checked: `s` a valid SPIFFE
    /// ID whose path starts at `path_start`, `td` its trust domain.
    pub(crate) fn from_checked_parts(s: Arc<str>, path_start: usize, td: TrustDomain) -> Self {
        SpiffeId { s, path_start, td }
    }

    /// This ID, holding `td` itself when it is its trust domain (so that
    /// the many IDs of a bundle share one allocation for it).
    pub fn with_shared_trust_domain(mut self, td: &TrustDomain) -> Self {
        if self.td == *td {
            self.td = td.clone();
        }
        self
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

#[cfg(test)]
mod tests {
    use crate::SpiffeId;
    use crate::TrustDomain;
    use crate::grammar::tests::ok;

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
    fn send_sync_clone() {
        fn assert_traits<T: Send + Sync + Clone>() {}
        assert_traits::<SpiffeId>();
        assert_traits::<TrustDomain>();
    }
}
