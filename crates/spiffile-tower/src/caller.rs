//! The verified caller, however it proved who it is.

use std::fmt;

use spiffile::SpiffeId;

/// The verified caller of a request: its SPIFFE ID and the credential that
/// proved it, a JWT-SVID ([`AuthenticateLayer`](crate::AuthenticateLayer))
/// or an X.509-SVID of the mTLS connection (feature `tls`,
/// [`serve_mtls`](crate::serve_mtls)).
///
/// Authorization code reads [`id`](Self::id) and does not care which;
/// [`Allow`](crate::Allow) and [`AuthorizeLayer`](crate::AuthorizeLayer)
/// work on it for both. Cheap to clone. With the `axum` feature it is a
/// handler argument (`caller: Caller`).
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    credential: Credential,
}

/// How a [`Caller`] proved its identity.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A JWT-SVID in `Authorization: Bearer`, with its verified claims.
    JwtSvid(spiffile::Caller),
    /// The X.509-SVID of the mTLS connection, verified in the handshake.
    #[cfg(feature = "tls")]
    X509Svid(spiffile_tls::Peer),
}

impl Caller {
    /// The verified SPIFFE ID.
    pub fn id(&self) -> &SpiffeId {
        match &self.credential {
            Credential::JwtSvid(caller) => caller.id(),
            #[cfg(feature = "tls")]
            Credential::X509Svid(peer) => peer.id(),
        }
    }

    /// The credential.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// The JWT-SVID caller (claims and all), when the caller used one.
    pub fn jwt(&self) -> Option<&spiffile::Caller> {
        match &self.credential {
            Credential::JwtSvid(caller) => Some(caller),
            #[cfg(feature = "tls")]
            _ => None,
        }
    }

    /// The mTLS peer (its chain and expiry), when the caller used an
    /// X.509-SVID.
    #[cfg(feature = "tls")]
    pub fn x509(&self) -> Option<&spiffile_tls::Peer> {
        match &self.credential {
            Credential::X509Svid(peer) => Some(peer),
            _ => None,
        }
    }
}

impl From<spiffile::Caller> for Caller {
    fn from(caller: spiffile::Caller) -> Self {
        Caller {
            credential: Credential::JwtSvid(caller),
        }
    }
}

#[cfg(feature = "tls")]
impl From<spiffile_tls::Peer> for Caller {
    fn from(peer: spiffile_tls::Peer) -> Self {
        Caller {
            credential: Credential::X509Svid(peer),
        }
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proof = match &self.credential {
            Credential::JwtSvid(_) => "jwt-svid",
            #[cfg(feature = "tls")]
            Credential::X509Svid(_) => "x509-svid",
        };
        f.debug_struct("Caller")
            .field("id", self.id())
            .field("credential", &proof)
            .finish()
    }
}
