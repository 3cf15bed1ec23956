//! Why a certificate was refused ([`Refusal`], [`Reason`]) and why material
//! could not be loaded ([`Error`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use spiffile_id::{SpiffeId, TrustDomain};

/// Why an X.509-SVID was refused: a stable, matchable code.
///
/// [`Reason::as_str`] gives the `snake_case` code used in logs and metrics.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No certificate, or bytes that are not one DER X.509 certificate.
    Malformed,
    /// The leaf has no URI SAN (a DNS-only certificate, for one).
    NoUriSan,
    /// The leaf has more than one URI SAN; an X.509-SVID has exactly one.
    TooManyUriSans,
    /// The leaf's URI SAN is not a valid SPIFFE ID.
    NotSpiffeId,
    /// The leaf is a CA certificate (`basicConstraints` CA true).
    LeafIsCa,
    /// The leaf's `keyUsage` lacks digitalSignature or has keyCertSign or
    /// cRLSign (or the extension is missing).
    KeyUsage,
    /// The leaf's extended key usage does not allow this use (a server
    /// certificate without serverAuth, a client certificate without
    /// clientAuth, when the extension is present).
    ExtendedKeyUsage,
    /// No X.509 bundle for the trust domain named in the leaf's SPIFFE ID.
    UnknownTrustDomain,
    /// RFC 5280 path validation to that trust domain's roots failed: an
    /// issuer not in the bundle, a bad signature, a missing intermediate.
    UntrustedChain,
    /// A certificate of the chain has expired.
    Expired,
    /// A certificate of the chain is not valid yet.
    NotYetValid,
    /// An intermediate of the validated path is not a valid SPIFFE signing
    /// certificate (no keyCertSign, or a URI SAN other than the trust
    /// domain).
    SigningCertificate,
    /// The SPIFFE ID is valid but not allowed here (authorization).
    NotAllowed,
}

impl Reason {
    /// The stable `snake_case` code.
    ///
    /// ```
    /// assert_eq!(spiffile_tls::Reason::TooManyUriSans.as_str(), "too_many_uri_sans");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::NoUriSan => "no_uri_san",
            Reason::TooManyUriSans => "too_many_uri_sans",
            Reason::NotSpiffeId => "not_spiffe_id",
            Reason::LeafIsCa => "leaf_is_ca",
            Reason::KeyUsage => "key_usage",
            Reason::ExtendedKeyUsage => "extended_key_usage",
            Reason::UnknownTrustDomain => "unknown_trust_domain",
            Reason::UntrustedChain => "untrusted_chain",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::SigningCertificate => "signing_certificate",
            Reason::NotAllowed => "not_allowed",
        }
    }

    /// The reason behind a handshake error produced by this crate's
    /// verifiers (also when it comes wrapped in an `io::Error` from
    /// tokio-rustls), or `None` for any other error.
    ///
    /// A refused SPIFFE ID is sent to the peer as an `access_denied` alert
    /// (the certificate was valid); every other refusal as
    /// `certificate_unknown`, which tells an attacker nothing about which
    /// rule failed. The full [`Refusal`] is in the error and the log.
    pub fn of(error: &(dyn std::error::Error + 'static)) -> Option<Reason> {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = current {
            if let Some(refusal) = e.downcast_ref::<Refusal>() {
                return Some(refusal.reason());
            }
            if let Some(rustls::Error::InvalidCertificate(cert)) = e.downcast_ref::<rustls::Error>()
            {
                match cert {
                    rustls::CertificateError::Other(other) => {
                        if let Some(refusal) = other.0.downcast_ref::<Refusal>() {
                            return Some(refusal.reason());
                        }
                    }
                    rustls::CertificateError::ApplicationVerificationFailure => {
                        return Some(Reason::NotAllowed);
                    }
                    _ => {}
                }
            }
            current = e.source();
            if current.is_none() {
                // io::Error does not expose its payload as a source.
                if let Some(io) = e.downcast_ref::<std::io::Error>() {
                    current = io.get_ref().map(|inner| inner as _);
                }
            }
        }
        None
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused X.509-SVID: the [`Reason`], the SPIFFE ID when one could be
/// read, and a message naming the certificate and the rule.
///
/// Cheap to clone. Messages never contain key material.
#[derive(Clone)]
pub struct Refusal {
    inner: Arc<RefusalInner>,
}

struct RefusalInner {
    reason: Reason,
    id: Option<SpiffeId>,
    detail: String,
}

impl Refusal {
    pub(crate) fn new(reason: Reason, id: Option<&SpiffeId>, detail: impl Into<String>) -> Self {
        Refusal {
            inner: Arc::new(RefusalInner {
                reason,
                id: id.cloned(),
                detail: detail.into(),
            }),
        }
    }

    /// The matchable reason.
    pub fn reason(&self) -> Reason {
        self.inner.reason
    }

    /// The leaf's SPIFFE ID, when it had a valid one.
    pub fn id(&self) -> Option<&SpiffeId> {
        self.inner.id.as_ref()
    }

    /// What exactly was wrong, in words.
    pub fn detail(&self) -> &str {
        &self.inner.detail
    }

    /// The rustls error a verifier returns for this refusal.
    pub(crate) fn into_rustls(self) -> rustls::Error {
        let error = if self.reason() == Reason::NotAllowed {
            rustls::CertificateError::ApplicationVerificationFailure
        } else {
            rustls::CertificateError::Other(rustls::OtherError(Arc::new(self)))
        };
        rustls::Error::InvalidCertificate(error)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "X.509-SVID refused ({})", self.inner.reason)?;
        if let Some(id) = &self.inner.id {
            write!(f, " for {id}")?;
        }
        write!(f, ": {}", self.inner.detail)
    }
}

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refusal")
            .field("reason", &self.inner.reason)
            .field("id", &self.inner.id)
            .field("detail", &self.inner.detail)
            .finish()
    }
}

impl std::error::Error for Refusal {}

/// Why X.509 material (an SVID, its key, a bundle) could not be loaded.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PEM document could not be read (bad armour, bad base64, no
    /// block of the expected kind).
    #[error("{what}: {message}")]
    Pem {
        /// What was being read: `certificate chain`, `private key`, `bundle`
        /// (with the file when there is one).
        what: String,
        /// What was wrong.
        message: String,
    },
    /// The certificate chain is not a valid X.509-SVID.
    #[error("{what}: {refusal}")]
    Svid {
        /// The chain being read (with the file when there is one).
        what: String,
        /// The rule it breaks.
        #[source]
        refusal: Refusal,
    },
    /// A root of a bundle is not a usable trust anchor.
    #[error("{what}: certificate {index} is not a usable root: {message}")]
    Root {
        /// The bundle (with the file when there is one).
        what: String,
        /// Position of the certificate in the bundle, from 0.
        index: usize,
        /// What was wrong.
        message: String,
    },
    /// A bundle with no certificate at all.
    #[error("{what}: no certificate in the bundle for {trust_domain}")]
    EmptyBundle {
        /// The bundle (with the file when there is one).
        what: String,
        /// Its trust domain.
        trust_domain: TrustDomain,
    },
    /// A federated bundle that cannot be trusted as one: its CAs name
    /// several trust domains, or the workload's own, or another file
    /// already holds its trust domain.
    #[error("{what}: {message}")]
    FederatedBundle {
        /// The bundle file.
        what: String,
        /// What was wrong.
        message: String,
    },
    /// The private key cannot be used by rustls (not PKCS#8/SEC1/PKCS#1,
    /// an unsupported algorithm).
    #[error("{what}: unusable private key: {message}")]
    Key {
        /// The key being read (with the file when there is one).
        what: String,
        /// What was wrong (never the key itself).
        message: String,
    },
    /// The private key is not the key of the leaf certificate: typically a
    /// certificate whose new key has not been written yet.
    #[error(
        "the private key does not match the certificate of {id} (a writer may be between \
         the two files; the previous pair stays in use)"
    )]
    KeyMismatch {
        /// The certificate's SPIFFE ID.
        id: SpiffeId,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file of a watched source could not be read or parsed (the
    /// parser's error inside), or the watcher could not start.
    #[error(transparent)]
    Watch(Box<spiffile_watch::WatchError<Error>>),
    /// rustls refused the configuration.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
}
