//! Our own X.509-SVID: the certificate chain and its private key, checked to
//! be a matching pair.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use spiffile_id::SpiffeId;

use crate::bundle::certificates_from_pem;
use crate::cert;
use crate::error::Error;

/// An X.509-SVID with its private key: what this workload presents in a
/// handshake.
///
/// Built only from a leaf that passes the X509-SVID leaf rules and a key
/// that is the leaf's key, so a certificate whose key has not been written
/// yet can never be served. Cheap to clone; `Debug` never shows the key.
#[derive(Clone)]
pub struct X509Svid {
    inner: Arc<SvidInner>,
}

struct SvidInner {
    id: SpiffeId,
    not_before: SystemTime,
    not_after: SystemTime,
    certified: Arc<CertifiedKey>,
}

impl X509Svid {
    /// From a PEM certificate chain (leaf first, then intermediates:
    /// `svid.pem`, `svid.0.pem`, `tls.crt`) and a PEM private key (PKCS#8,
    /// SEC1 or PKCS#1: `svid_key.pem`, `svid.0.key`, `tls.key`).
    ///
    /// # Errors
    ///
    /// [`Error::Pem`], [`Error::Svid`] (the leaf breaks an X509-SVID rule),
    /// [`Error::Key`], [`Error::KeyMismatch`].
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, Error> {
        Self::from_pem_named(chain_pem, key_pem, "certificate chain", "private key")
    }

    pub(crate) fn from_pem_named(
        chain_pem: &[u8],
        key_pem: &[u8],
        chain_what: &str,
        key_what: &str,
    ) -> Result<Self, Error> {
        let chain = certificates_from_pem(chain_pem, chain_what)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| Error::Pem {
            what: key_what.to_owned(),
            message: match e {
                rustls_pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY block".to_owned(),
                e => e.to_string(),
            },
        })?;
        Self::build(chain, key, chain_what, key_what)
    }

    /// From DER: the chain (leaf first) and the private key.
    ///
    /// # Errors
    ///
    /// As [`X509Svid::from_pem`].
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, Error> {
        Self::build(chain, key, "certificate chain", "private key")
    }

    fn build(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        chain_what: &str,
        key_what: &str,
    ) -> Result<Self, Error> {
        let Some(leaf) = chain.first() else {
            return Err(Error::Pem {
                what: chain_what.to_owned(),
                message: "no CERTIFICATE block".to_owned(),
            });
        };
        let leaf = cert::check_leaf(leaf).map_err(|refusal| Error::Svid {
            what: chain_what.to_owned(),
            refusal,
        })?;
        let provider = crate::provider();
        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| Error::Key {
                what: key_what.to_owned(),
                message: e.to_string(),
            })?;
        let certified = CertifiedKey::new(chain, signing_key);
        // Compare SubjectPublicKeyInfo bytes; ring's keys always report
        // theirs, so "unknown" is a mismatch too.
        if certified.keys_match().is_err() {
            return Err(Error::KeyMismatch { id: leaf.id });
        }
        Ok(X509Svid {
            inner: Arc::new(SvidInner {
                id: leaf.id,
                not_before: leaf.not_before,
                not_after: leaf.not_after,
                certified: Arc::new(certified),
            }),
        })
    }

    /// The SPIFFE ID (the leaf's URI SAN).
    pub fn id(&self) -> &SpiffeId {
        &self.inner.id
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.inner.certified.cert
    }

    /// When the leaf became valid.
    pub fn not_before(&self) -> SystemTime {
        self.inner.not_before
    }

    /// When the leaf expires.
    pub fn not_after(&self) -> SystemTime {
        self.inner.not_after
    }

    /// The chain and key in the form rustls serves.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.inner.certified
    }
}

impl fmt::Debug for X509Svid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Svid")
            .field("id", &self.inner.id)
            .field("chain", &self.inner.certified.cert.len())
            .field("not_after", &self.inner.not_after)
            .finish_non_exhaustive()
    }
}
