//! The webhook's TLS certificate, served from `tls.crt` and `tls.key` and
//! followed while they change (a cert-manager Secret mount renews them in
//! place through kubelet's `..data` swap).
//!
//! Both files are watched with `spiffile-watch`; the pair in use is rebuilt
//! when either changes, and only when the new certificate and key belong
//! together (a renewal seen half-way keeps the previous pair serving).

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use spiffile_watch::{WatchOptions, Watched};

/// A certificate chain parsed from PEM.
pub struct Chain(Vec<CertificateDer<'static>>);

/// A private key parsed from PEM (never printed).
pub struct Key(PrivateKeyDer<'static>);

fn parse_chain(bytes: &[u8]) -> Result<Chain, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate chain: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok(Chain(certs))
}

fn parse_key(bytes: &[u8]) -> Result<Key, String> {
    // The error never quotes the file: it holds a private key.
    PrivateKeyDer::from_pem_slice(bytes)
        .map(Key)
        .map_err(|_| "not a PEM private key (PKCS#8, PKCS#1 or SEC1)".to_owned())
}

fn certified(chain: &Chain, key: &Key) -> Result<Arc<CertifiedKey>, String> {
    let signer = rustls::crypto::ring::sign::any_supported_type(&key.0)
        .map_err(|e| format!("unsupported key: {e}"))?;
    let ck = CertifiedKey::new(chain.0.clone(), signer);
    ck.keys_match()
        .map_err(|e| format!("tls.crt and tls.key do not belong together: {e}"))?;
    Ok(Arc::new(ck))
}

/// Serves the current certificate pair, reloaded when the files change.
pub struct HotCertificate {
    chain: Watched<Chain, String>,
    key: Watched<Key, String>,
    current: Mutex<(u64, u64, Arc<CertifiedKey>)>,
}

impl fmt::Debug for HotCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotCertificate")
            .field("chain", self.chain.origin())
            .field("key", self.key.origin())
            .finish()
    }
}

impl HotCertificate {
    /// Loads `dir/tls.crt` and `dir/tls.key` and starts following them.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let chain = Watched::new(dir.join("tls.crt"), parse_chain, WatchOptions::default())
            .map_err(|e| e.to_string())?;
        let key = Watched::new(dir.join("tls.key"), parse_key, WatchOptions::default())
            .map_err(|e| e.to_string())?;
        let ck = certified(&chain.load(), &key.load())?;
        let current = Mutex::new((chain.generation(), key.generation(), ck));
        Ok(Self {
            chain,
            key,
            current,
        })
    }

    /// The pair in use, rebuilt first if a file changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let (gc, gk) = (self.chain.generation(), self.key.generation());
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if cur.0 != gc || cur.1 != gk {
            match certified(&self.chain.load(), &self.key.load()) {
                Ok(ck) => {
                    tracing::info!("webhook certificate reloaded");
                    *cur = (gc, gk, ck);
                }
                Err(e) => {
                    // Keep serving the last good pair; look again next time.
                    tracing::warn!("webhook certificate not reloaded yet: {e}");
                }
            }
        }
        cur.2.clone()
    }

    /// A rustls server configuration serving this certificate.
    pub fn server_config(self: Arc<Self>) -> Result<rustls::ServerConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(self);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for HotCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (ck.cert.pem(), ck.signing_key.serialize_pem())
    }

    #[test]
    fn follows_renewals_and_keeps_a_good_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, k1) = pair("one.test");
        std::fs::write(dir.path().join("tls.crt"), &c1).unwrap();
        std::fs::write(dir.path().join("tls.key"), &k1).unwrap();
        let hot = HotCertificate::load(dir.path()).unwrap();
        let first = hot.current().cert[0].clone();

        // Half a renewal: a new certificate with the old key is refused.
        let (c2, k2) = pair("two.test");
        std::fs::write(dir.path().join("tls.crt"), &c2).unwrap();
        hot.chain.reload().unwrap();
        assert_eq!(hot.current().cert[0], first);

        // The whole renewal is served.
        std::fs::write(dir.path().join("tls.key"), &k2).unwrap();
        hot.key.reload().unwrap();
        let second = hot.current().cert[0].clone();
        assert_ne!(second, first);
        assert_eq!(second, parse_chain(c2.as_bytes()).unwrap().0[0]);
    }

    #[test]
    fn key_errors_do_not_quote_the_file() {
        let e = parse_key(b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n");
        assert!(e.is_ok() || !e.err().unwrap().contains("c2VjcmV0"));
        let e = parse_key(b"secret material").err().unwrap();
        assert!(!e.contains("secret material"));
    }
}
