//! X.509 bundles: the CA roots of one trust domain, and the set of them a
//! verifier trusts.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::TrustAnchor;
use rustls_pki_types::pem::PemObject;
use spiffile_id::TrustDomain;

use crate::error::Error;

/// The X.509 roots of one trust domain: any of them may sign (directly or
/// through intermediates) X.509-SVIDs of that trust domain, and of no other.
///
/// Cheap to clone. The trust anchors rustls-webpki needs are extracted once,
/// here, not per handshake.
#[derive(Clone)]
pub struct X509Bundle {
    inner: Arc<BundleInner>,
}

struct BundleInner {
    trust_domain: TrustDomain,
    roots: Vec<CertificateDer<'static>>,
    anchors: Vec<TrustAnchor<'static>>,
}

impl X509Bundle {
    /// A bundle from DER certificates.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyBundle`] without certificates, [`Error::Root`] for a
    /// certificate webpki cannot use as a trust anchor.
    pub fn from_der(
        trust_domain: TrustDomain,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, Error> {
        Self::build(trust_domain, roots, "X.509 bundle")
    }

    /// A bundle from a PEM file's content (`svid_bundle.pem`, `bundle.0.pem`,
    /// `ca.crt`): one or more `CERTIFICATE` blocks; other blocks are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::Pem`] for bad PEM, otherwise as [`X509Bundle::from_der`].
    pub fn from_pem(trust_domain: TrustDomain, pem: &[u8]) -> Result<Self, Error> {
        Self::from_pem_named(trust_domain, pem, "X.509 bundle")
    }

    pub(crate) fn from_pem_named(
        trust_domain: TrustDomain,
        pem: &[u8],
        what: &str,
    ) -> Result<Self, Error> {
        let roots = certificates_from_pem(pem, what)?;
        Self::build(trust_domain, roots, what)
    }

    pub(crate) fn from_der_named(
        trust_domain: TrustDomain,
        roots: Vec<CertificateDer<'static>>,
        what: &str,
    ) -> Result<Self, Error> {
        Self::build(trust_domain, roots, what)
    }

    fn build(
        trust_domain: TrustDomain,
        roots: Vec<CertificateDer<'static>>,
        what: &str,
    ) -> Result<Self, Error> {
        if roots.is_empty() {
            return Err(Error::EmptyBundle {
                what: what.to_owned(),
                trust_domain,
            });
        }
        let mut anchors = Vec::with_capacity(roots.len());
        for (index, root) in roots.iter().enumerate() {
            let anchor = webpki::anchor_from_trusted_cert(root).map_err(|e| Error::Root {
                what: what.to_owned(),
                index,
                message: format!("{e:?}"),
            })?;
            anchors.push(anchor.to_owned());
        }
        Ok(X509Bundle {
            inner: Arc::new(BundleInner {
                trust_domain,
                roots,
                anchors,
            }),
        })
    }

    /// The trust domain these roots sign for.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.inner.trust_domain
    }

    /// The roots, DER.
    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.inner.roots
    }

    pub(crate) fn anchors(&self) -> &[TrustAnchor<'static>] {
        &self.inner.anchors
    }
}

impl fmt::Debug for X509Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Bundle")
            .field("trust_domain", &self.inner.trust_domain)
            .field("roots", &self.inner.roots.len())
            .finish()
    }
}

/// The X.509 bundles a verifier trusts, one per trust domain: the local
/// trust domain's and any federated ones.
///
/// A chain is validated against the bundle of the trust domain named in
/// its leaf's SPIFFE ID only, so a CA of one trust domain can never vouch
/// for an identity of another.
///
/// ```
/// use spiffile_tls::X509BundleSet;
/// let set = X509BundleSet::new();
/// assert!(set.get(&"example.org".parse()?).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct X509BundleSet {
    by_domain: HashMap<TrustDomain, X509Bundle>,
}

impl X509BundleSet {
    /// An empty set (trusts nobody).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bundle`, replacing any bundle of the same trust domain.
    pub fn insert(&mut self, bundle: X509Bundle) {
        self.by_domain.insert(bundle.trust_domain().clone(), bundle);
    }

    /// Builder style [`insert`](Self::insert).
    #[must_use]
    pub fn with(mut self, bundle: X509Bundle) -> Self {
        self.insert(bundle);
        self
    }

    /// The bundle of `trust_domain`.
    pub fn get(&self, trust_domain: &TrustDomain) -> Option<&X509Bundle> {
        self.by_domain.get(trust_domain)
    }

    /// Every bundle, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &X509Bundle> {
        self.by_domain.values()
    }

    /// How many trust domains.
    pub fn len(&self) -> usize {
        self.by_domain.len()
    }

    /// Whether the set trusts nobody.
    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }
}

impl fmt::Debug for X509BundleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut domains: Vec<&str> = self.by_domain.keys().map(TrustDomain::as_str).collect();
        domains.sort_unstable();
        f.debug_struct("X509BundleSet")
            .field("trust_domains", &domains)
            .finish()
    }
}

impl FromIterator<X509Bundle> for X509BundleSet {
    fn from_iter<I: IntoIterator<Item = X509Bundle>>(iter: I) -> Self {
        let mut set = X509BundleSet::new();
        for bundle in iter {
            set.insert(bundle);
        }
        set
    }
}

/// Every `CERTIFICATE` block of a PEM document, in order.
pub(crate) fn certificates_from_pem(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem) {
        certs.push(cert.map_err(|e| Error::Pem {
            what: what.to_owned(),
            message: e.to_string(),
        })?);
    }
    Ok(certs)
}
