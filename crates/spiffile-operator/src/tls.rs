//! The webhook's TLS certificate, served from `tls.crt` and `tls.key` and
//! followed while they change (a cert-manager Secret mount renews them in
//! place through kubelet's `..data` swap).
//!
//! The two files are one `spiffile-watch` file set: whenever either
//! changes, both are read again and parsed together, and the pair in use is
//! replaced only when the new certificate and key belong together (a
//! renewal seen half-way — the new certificate beside the old key — keeps
//! the previous pair serving until the key arrives).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use spiffile_watch::{FileRef, WatchOptions, Watched};

/// Why the webhook's certificate files cannot be served. The messages never
/// quote a file: `tls.key` holds a private key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// `tls.crt` is not a PEM certificate chain.
    #[error("tls.crt is not a PEM certificate chain: {0}")]
    Chain(String),
    /// `tls.crt` holds no `CERTIFICATE` block.
    #[error("tls.crt has no CERTIFICATE block")]
    NoCertificate,
    /// `tls.key` is not a PEM private key.
    #[error("tls.key is not a PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    Key,
    /// The key is of a type rustls cannot sign with.
    #[error("tls.key is an unsupported key: {0}")]
    UnsupportedKey(String),
    /// The certificate's public key is not the key's.
    #[error("tls.crt and tls.key do not belong together: {0}")]
    Mismatch(String),
}

fn parse_chain(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::Chain(e.to_string()))?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(certs)
}

fn parse_key(bytes: &[u8]) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|_| CertError::Key)
}

/// `[tls.crt, tls.key]` → a certified key whose halves match.
fn parse_pair(files: &[FileRef<'_>]) -> Result<CertifiedKey, CertError> {
    let [chain, key] = files else {
        // Watched::files passes the two paths it was given, in order.
        return Err(CertError::NoCertificate);
    };
    let chain = parse_chain(chain.bytes())?;
    let key = parse_key(key.bytes())?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| CertError::UnsupportedKey(e.to_string()))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match()
        .map_err(|e| CertError::Mismatch(e.to_string()))?;
    Ok(ck)
}

/// Serves the current certificate pair, reloaded when the files change.
pub struct HotCertificate {
    pair: Watched<CertifiedKey, CertError>,
}

impl fmt::Debug for HotCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotCertificate")
            .field("files", &self.pair.origin().to_string())
            .field("generation", &self.pair.generation())
            .finish()
    }
}

impl HotCertificate {
    /// Loads `dir/tls.crt` and `dir/tls.key` and starts following them.
    pub fn load(dir: &Path) -> Result<Self, String> {
        Self::load_with(dir, WatchOptions::default())
    }

    fn load_with(dir: &Path, options: WatchOptions) -> Result<Self, String> {
        let pair = Watched::files(
            [dir.join("tls.crt"), dir.join("tls.key")],
            parse_pair,
            options,
        )
        .map_err(|e| e.to_string())?;
        Ok(Self { pair })
    }

    /// The pair in use: one atomic load.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.pair.load_full()
    }

    /// How many pairs have been served (1 at startup, +1 per renewal).
    pub fn generation(&self) -> u64 {
        self.pair.generation()
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
        let hot = HotCertificate::load_with(dir.path(), WatchOptions::manual()).unwrap();
        let first = hot.current().cert[0].clone();

        // Half a renewal: a new certificate with the old key is refused.
        let (c2, k2) = pair("two.test");
        std::fs::write(dir.path().join("tls.crt"), &c2).unwrap();
        let err = hot.pair.reload().unwrap_err().to_string();
        assert!(err.contains("do not belong together"), "{err}");
        assert_eq!(hot.current().cert[0], first);
        assert_eq!(hot.generation(), 1);

        // The whole renewal is served.
        std::fs::write(dir.path().join("tls.key"), &k2).unwrap();
        assert!(hot.pair.reload().unwrap());
        let second = hot.current().cert[0].clone();
        assert_ne!(second, first);
        assert_eq!(second, parse_chain(c2.as_bytes()).unwrap()[0]);
        assert_eq!(hot.generation(), 2);
    }

    #[test]
    fn follows_a_renewal_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, k1) = pair("one.test");
        std::fs::write(dir.path().join("tls.crt"), &c1).unwrap();
        std::fs::write(dir.path().join("tls.key"), &k1).unwrap();
        let hot = HotCertificate::load(dir.path()).unwrap();
        let (c2, k2) = pair("two.test");
        std::fs::write(dir.path().join("tls.key"), &k2).unwrap();
        std::fs::write(dir.path().join("tls.crt"), &c2).unwrap();
        let want = parse_chain(c2.as_bytes()).unwrap()[0].clone();
        let start = std::time::Instant::now();
        while hot.current().cert[0] != want {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "the renewal was not picked up"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn errors_do_not_quote_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, _) = pair("one.test");
        std::fs::write(dir.path().join("tls.crt"), &c1).unwrap();
        std::fs::write(dir.path().join("tls.key"), "secret material").unwrap();
        let e = HotCertificate::load_with(dir.path(), WatchOptions::manual()).unwrap_err();
        assert!(e.contains("tls.key is not a PEM private key"), "{e}");
        assert!(!e.contains("secret material"), "{e}");
    }
}
