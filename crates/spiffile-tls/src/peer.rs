//! The verified peer of a connection.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use rustls_pki_types::CertificateDer;
use spiffile_id::SpiffeId;

use crate::cert::{self, Leaf};

/// The peer of an mTLS connection whose X.509-SVID this crate verified in
/// the handshake: its SPIFFE ID, the validity of its leaf, its chain.
///
/// Cheap to clone (an `Arc`), so it can go into every request's
/// extensions.
#[derive(Clone)]
pub struct Peer {
    inner: Arc<PeerInner>,
}

struct PeerInner {
    id: SpiffeId,
    not_after: SystemTime,
    chain: Vec<CertificateDer<'static>>,
}

impl Peer {
    pub(crate) fn new(leaf: Leaf, chain: &[CertificateDer<'_>]) -> Self {
        Peer {
            inner: Arc::new(PeerInner {
                id: leaf.id,
                not_after: leaf.not_after,
                chain: chain.iter().map(|c| c.clone().into_owned()).collect(),
            }),
        }
    }

    /// The peer of a finished handshake made with a configuration from
    /// this crate ([`server_config`](crate::server_config),
    /// [`client_config`](crate::client_config)), which verified the chain
    /// before the handshake could finish; this reads the SPIFFE ID from the
    /// leaf again (a few microseconds), it does not verify anything.
    ///
    /// `None` before the handshake finished or without peer certificates.
    /// Do not use it on connections made with another configuration: their
    /// peer's ID would not be verified.
    pub fn from_connection(connection: &rustls::CommonState) -> Option<Peer> {
        let chain = connection.peer_certificates()?;
        let leaf = chain.first()?;
        let cert = cert::parse(leaf).ok()?;
        let id = cert::spiffe_id(&cert).ok()?;
        let not_after = cert::system_time(cert.validity().not_after);
        Some(Peer {
            inner: Arc::new(PeerInner {
                id,
                not_after,
                chain: chain.iter().map(|c| c.clone().into_owned()).collect(),
            }),
        })
    }

    /// The verified SPIFFE ID.
    pub fn id(&self) -> &SpiffeId {
        &self.inner.id
    }

    /// When the peer's leaf certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.inner.not_after
    }

    /// The chain the peer presented, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.inner.chain
    }
}

/// The SPIFFE ID of a DER certificate: its only URI SAN, which must be a
/// SPIFFE ID. This **does not verify** the certificate (use
/// [`verify_svid`](crate::verify_svid)); it is the step that names a peer
/// whose chain a handshake already verified.
///
/// # Errors
///
/// [`Reason::Malformed`](crate::Reason::Malformed),
/// [`NoUriSan`](crate::Reason::NoUriSan),
/// [`TooManyUriSans`](crate::Reason::TooManyUriSans),
/// [`NotSpiffeId`](crate::Reason::NotSpiffeId).
pub fn spiffe_id_of(der: &[u8]) -> Result<SpiffeId, crate::Refusal> {
    cert::spiffe_id(&cert::parse(der)?)
}

impl PartialEq for Peer {
    fn eq(&self, other: &Self) -> bool {
        self.inner.chain == other.inner.chain
    }
}

impl Eq for Peer {}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.inner.id)
            .field("not_after", &self.inner.not_after)
            .finish_non_exhaustive()
    }
}
