//! Which verified SPIFFE IDs may connect.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use spiffile_id::{SpiffeId, TrustDomain};

/// Which verified peers may complete a handshake: a set of SPIFFE IDs, the
/// members of trust domains, a predicate on the ID, or anyone whose
/// X.509-SVID verifies. The vocabulary of `spiffile_tower::Allow`, applied
/// to the SPIFFE ID only (never a CN or DNS name), inside the handshake: a
/// peer that is not allowed gets an `access_denied` alert.
///
/// ```
/// use spiffile_tls::Allow;
/// let orders: spiffile_id::SpiffeId = "spiffe://example.org/orders".parse()?;
/// assert!(Allow::ids([orders.clone()]).allows(&orders));
/// assert!(Allow::trust_domain("example.org".parse()?).allows(&orders));
/// assert!(!Allow::predicate(|id| id.path().starts_with("/internal/")).allows(&orders));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Allow {
    rule: Rule,
}

#[derive(Clone)]
enum Rule {
    Any,
    Ids(Arc<HashSet<SpiffeId>>),
    TrustDomains(Arc<HashSet<TrustDomain>>),
    Predicate(Arc<dyn Fn(&SpiffeId) -> bool + Send + Sync>),
}

impl Allow {
    /// Every peer whose X.509-SVID verifies against the bundles (of any
    /// trust domain the bundle set holds, federated ones included).
    pub fn any() -> Self {
        Allow { rule: Rule::Any }
    }

    /// Exactly these SPIFFE IDs.
    pub fn ids(ids: impl IntoIterator<Item = SpiffeId>) -> Self {
        Allow {
            rule: Rule::Ids(Arc::new(ids.into_iter().collect())),
        }
    }

    /// Every member of `trust_domain`.
    pub fn trust_domain(trust_domain: TrustDomain) -> Self {
        Self::trust_domains([trust_domain])
    }

    /// Every member of these trust domains.
    pub fn trust_domains(trust_domains: impl IntoIterator<Item = TrustDomain>) -> Self {
        Allow {
            rule: Rule::TrustDomains(Arc::new(trust_domains.into_iter().collect())),
        }
    }

    /// The IDs for which `allowed` returns true.
    pub fn predicate(allowed: impl Fn(&SpiffeId) -> bool + Send + Sync + 'static) -> Self {
        Allow {
            rule: Rule::Predicate(Arc::new(allowed)),
        }
    }

    /// Whether `id` may connect.
    pub fn allows(&self, id: &SpiffeId) -> bool {
        match &self.rule {
            Rule::Any => true,
            Rule::Ids(ids) => ids.contains(id),
            Rule::TrustDomains(tds) => tds.contains(id.trust_domain()),
            Rule::Predicate(allowed) => allowed(id),
        }
    }
}

impl fmt::Debug for Allow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Rule::Any => f.write_str("Allow::any()"),
            Rule::Ids(ids) => {
                let mut ids: Vec<&str> = ids.iter().map(SpiffeId::as_str).collect();
                ids.sort_unstable();
                f.debug_tuple("Allow::ids").field(&ids).finish()
            }
            Rule::TrustDomains(tds) => {
                let mut tds: Vec<&str> = tds.iter().map(TrustDomain::as_str).collect();
                tds.sort_unstable();
                f.debug_tuple("Allow::trust_domains").field(&tds).finish()
            }
            Rule::Predicate(_) => f.write_str("Allow::predicate(..)"),
        }
    }
}

impl Default for Allow {
    fn default() -> Self {
        Allow::any()
    }
}
