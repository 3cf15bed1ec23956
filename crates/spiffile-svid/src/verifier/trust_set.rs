//! The trust set a [`Verifier`] holds: for each trust domain, exactly one
//! authority, and where it came from.
//!
//! [`Verifier`]: super::Verifier

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use spiffile_bundle::{Bundle, BundleDocument, DomainKeys, JwtBundle, PublicKey};
use spiffile_id::{SpiffeId, TrustDomain};

use super::Verifier;

/// A public key in the form `ring` verifies with.
pub(super) struct BoundKey {
    pub(super) kid: Box<str>,
    pub(super) key: UnparsedPublicKey<[u8; 65]>,
}

impl BoundKey {
    fn new(k: &PublicKey) -> Self {
        BoundKey {
            kid: k.kid().into(),
            key: UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, k.to_sec1()),
        }
    }
}

/// How a trust domain's keys may sign.
pub(super) enum Authority {
    /// Each key validates tokens for the one SPIFFE ID it is bound to.
    PerIdentity(HashMap<SpiffeId, Box<[BoundKey]>>),
    /// Any key validates tokens for any SPIFFE ID of the trust domain (a
    /// central issuer); the token's `kid` must name it.
    PerDomain {
        keys: Box<[BoundKey]>,
        sequence: Option<u64>,
    },
}

/// One trust domain of the set.
pub(super) struct Domain {
    pub(super) trust_domain: TrustDomain,
    pub(super) source: Arc<str>,
    pub(super) authority: Authority,
}

/// Which kind of authority a trust domain has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthorityKind {
    /// A spiffile bundle: each key signs for the one identity it is bound to.
    PerIdentity,
    /// A SPIFFE bundle (SPIRE): any key signs for any identity of the trust
    /// domain, never for another trust domain.
    PerDomain,
}

impl AuthorityKind {
    /// A stable `snake_case` code: `per_identity`, `per_domain`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorityKind::PerIdentity => "per_identity",
            AuthorityKind::PerDomain => "per_domain",
        }
    }
}

impl fmt::Display for AuthorityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthorityKind::PerIdentity => "per identity (spiffile bundle)",
            AuthorityKind::PerDomain => "per trust domain (SPIFFE bundle)",
        })
    }
}

/// What a verifier trusts for one trust domain, from
/// [`Verifier::trust_domains`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustDomainInfo {
    /// The trust domain.
    pub trust_domain: TrustDomain,
    /// Its kind of authority.
    pub kind: AuthorityKind,
    /// Where it came from (a file name, as given to the builder; empty for
    /// [`Verifier::new`]).
    pub source: String,
    /// The number of keys.
    pub keys: usize,
    /// For a per-identity authority, the number of identities with keys.
    pub identities: Option<usize>,
    /// For a per-domain authority, `spiffe_sequence` if the bundle had one.
    pub sequence: Option<u64>,
}

/// A trust set that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustSetError {
    /// Two sources offer the same trust domain. Each trust domain has
    /// exactly one authority: which one to believe is the operator's call.
    #[error(
        "trust domain `{trust_domain}` is offered by both {first} and {second}: a trust domain must come from exactly one bundle"
    )]
    DuplicateTrustDomain {
        /// The trust domain.
        trust_domain: TrustDomain,
        /// The source that offered it first.
        first: String,
        /// The source that offered it again.
        second: String,
    },
}

/// Builds a [`Verifier`] over several trust domains, each from one source
/// (see [`Verifier::builder`]).
#[derive(Default)]
pub struct TrustSetBuilder {
    domains: Vec<Domain>,
}

impl fmt::Debug for TrustSetBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.domains.iter().map(|d| d.trust_domain.as_str()))
            .finish()
    }
}

impl TrustSetBuilder {
    fn push(&mut self, domain: Domain) -> Result<&mut Self, TrustSetError> {
        if let Some(first) = self
            .domains
            .iter()
            .find(|d| d.trust_domain == domain.trust_domain)
        {
            return Err(TrustSetError::DuplicateTrustDomain {
                trust_domain: domain.trust_domain,
                first: first.source.to_string(),
                second: domain.source.to_string(),
            });
        }
        self.domains.push(domain);
        Ok(self)
    }

    /// Adds the trust domain of a spiffile bundle: each of its keys
    /// validates tokens for the identity it is bound to only.
    pub fn bundle(&mut self, source: &str, bundle: &Bundle) -> Result<&mut Self, TrustSetError> {
        self.push(per_identity(source.into(), bundle))
    }

    /// Like [`TrustSetBuilder::bundle`], consuming the bundle: each
    /// identity's keys are freed as they are converted, so a large bundle
    /// and its verifier never both exist whole.
    pub fn bundle_owned(
        &mut self,
        source: &str,
        bundle: Bundle,
    ) -> Result<&mut Self, TrustSetError> {
        self.push(per_identity_owned(source.into(), bundle))
    }

    /// Adds the trust domain of a SPIFFE bundle: any of its keys validates
    /// tokens for any SPIFFE ID of that trust domain, and of no other.
    pub fn jwt_bundle(
        &mut self,
        source: &str,
        bundle: &JwtBundle,
    ) -> Result<&mut Self, TrustSetError> {
        self.push(Domain {
            trust_domain: bundle.trust_domain().clone(),
            source: source.into(),
            authority: Authority::PerDomain {
                keys: bundle.keys().iter().map(BoundKey::new).collect(),
                sequence: bundle.sequence(),
            },
        })
    }

    /// Adds every trust domain of a document, in any format.
    pub fn document(
        &mut self,
        source: &str,
        document: &BundleDocument,
    ) -> Result<&mut Self, TrustSetError> {
        for keys in document.domains() {
            match keys {
                DomainKeys::PerIdentity(b) => self.bundle(source, b)?,
                DomainKeys::PerDomain(b) => self.jwt_bundle(source, b)?,
            };
        }
        Ok(self)
    }

    /// The trust domains added so far.
    pub fn trust_domains(&self) -> impl Iterator<Item = &TrustDomain> {
        self.domains.iter().map(|d| &d.trust_domain)
    }

    /// The verifier (without a cache; see [`Verifier::with_cache_capacity`]).
    pub fn build(&mut self) -> Verifier {
        let domains = std::mem::take(&mut self.domains)
            .into_iter()
            .map(|d| (Box::<str>::from(d.trust_domain.as_str()), d))
            .collect();
        Verifier {
            domains,
            cache: None,
            seen: super::SeenOnce::new(0),
        }
    }
}

pub(super) fn per_identity(source: Arc<str>, bundle: &Bundle) -> Domain {
    let keys = bundle
        .identities()
        .map(|(id, keys)| {
            let bound: Box<[BoundKey]> = keys.iter().map(BoundKey::new).collect();
            (id.clone(), bound)
        })
        .collect();
    Domain {
        trust_domain: bundle.trust_domain().clone(),
        source,
        authority: Authority::PerIdentity(keys),
    }
}

/// [`per_identity`], consuming the bundle: each identity's keys are freed
/// as they are converted.
pub(super) fn per_identity_owned(source: Arc<str>, bundle: Bundle) -> Domain {
    let trust_domain = bundle.trust_domain().clone();
    let keys = bundle
        .into_identities()
        .map(|(id, keys)| {
            let bound: Box<[BoundKey]> = keys.iter().map(BoundKey::new).collect();
            (id, bound)
        })
        .collect();
    Domain {
        trust_domain,
        source,
        authority: Authority::PerIdentity(keys),
    }
}

impl Domain {
    pub(super) fn info(&self) -> TrustDomainInfo {
        let (kind, keys, identities, sequence) = match &self.authority {
            Authority::PerIdentity(map) => (
                AuthorityKind::PerIdentity,
                map.values().map(|k| k.len()).sum(),
                Some(map.len()),
                None,
            ),
            Authority::PerDomain { keys, sequence } => {
                (AuthorityKind::PerDomain, keys.len(), None, *sequence)
            }
        };
        TrustDomainInfo {
            trust_domain: self.trust_domain.clone(),
            kind,
            source: self.source.to_string(),
            keys,
            identities,
            sequence,
        }
    }
}
