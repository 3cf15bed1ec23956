//! A trust domain name.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use crate::grammar::{SCHEME_PREFIX, check_trust_domain};
use crate::{IdError, SpiffeId};

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
    ///
    /// ```
    /// use spiffile_id::{IdError, TrustDomain};
    /// assert_eq!(TrustDomain::new("spiffe://example.org"), Err(IdError::SchemeInTrustDomain));
    /// let e = TrustDomain::new("Example.org").unwrap_err();
    /// assert!(e.to_string().ends_with("(trust domains are lowercase)"), "{e}");
    /// ```
    pub fn new(name: &str) -> Result<Self, IdError> {
        if name.starts_with(SCHEME_PREFIX) {
            return Err(IdError::SchemeInTrustDomain);
        }
        check_trust_domain(name, 0)?;
        Ok(TrustDomain { name: name.into() })
    }

    /// A trust domain whose name the caller has already checked (the trust
    /// domain part of a valid SPIFFE ID).
    pub(crate) fn from_checked(name: &str) -> Self {
        TrustDomain { name: name.into() }
    }

    /// The name, e.g. `example.org`.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The SPIFFE ID of the trust domain itself, `spiffe://<name>`.
    pub fn id(&self) -> SpiffeId {
        let s: Arc<str> = format!("{SCHEME_PREFIX}{}", self.name).into();
        let path_start = s.len();
        SpiffeId::from_checked_parts(s, path_start, self.clone())
    }

    /// Builds the SPIFFE ID `spiffe://<name>/<path>` from a path without its
    /// leading slash (`orders`, `team/orders`), checking the grammar.
    ///
    /// Positions in errors are byte offsets into `path`, the part the caller
    /// was given, not into the ID built from it.
    ///
    /// ```
    /// # use spiffile_id::{IdError, TrustDomain};
    /// let td = TrustDomain::new("example.org")?;
    /// assert_eq!(td.join("team/orders")?.to_string(), "spiffe://example.org/team/orders");
    /// assert!(td.join("../x").is_err());
    /// assert_eq!(td.join("or ders").unwrap_err(), IdError::BadPathChar { ch: ' ', position: 2 });
    /// # Ok::<(), spiffile_id::IdError>(())
    /// ```
    pub fn join(&self, path: &str) -> Result<SpiffeId, IdError> {
        let id = format!("{SCHEME_PREFIX}{}/{path}", self.name);
        let path_offset = id.len() - path.len();
        id.parse().map_err(|e: IdError| e.shifted_left(path_offset))
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

#[cfg(test)]
mod tests {
    use crate::TrustDomain;

    #[test]
    fn join() {
        let td = TrustDomain::new("example.org").unwrap();
        assert_eq!(td.join("orders").unwrap().path(), "/orders");
        assert!(td.join("").is_err());
        assert!(td.join("a//b").is_err());
        assert!(td.join("..").is_err());
    }
}
