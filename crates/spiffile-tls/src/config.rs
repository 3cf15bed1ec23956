//! rustls configurations that read an [`X509Source`] on every handshake.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use spiffile_id::SpiffeId;

use crate::allow::Allow;
use crate::error::{Error, Reason, Refusal};
use crate::source::X509Source;
use crate::verify::{Usage, verify_parts};

const TARGET: &str = "spiffile_tls";

/// A rustls [`ServerConfig`](rustls::ServerConfig) for mutual TLS with
/// X.509-SVIDs:
///
/// * presents the source's current SVID (a certificate resolver: one
///   atomic load per handshake);
/// * requires a client certificate and verifies it as an X.509-SVID
///   against the current bundle of the client's trust domain
///   ([`verify_svid`](crate::verify_svid), inside the handshake);
/// * lets only the SPIFFE IDs `allow` admits complete the handshake
///   (`access_denied` alert for the others).
///
/// Rotations (a new SVID, a new bundle) apply to the next handshake;
/// established connections are never touched. TLS 1.3 and 1.2, ring as the
/// crypto provider. Set ALPN (`alpn_protocols`) and the rest on the
/// returned value as usual.
///
/// **Session resumption is off** (no session cache, no TLS 1.3 tickets): a
/// resumed session skips the client verifier, so a client whose
/// certificate has expired since, or whose CA has left the bundle, would be
/// let back in on the strength of an old handshake. Every connection is a
/// full handshake; keep connections alive (HTTP/2, keep-alive) rather than
/// turning resumption back on.
///
/// # Errors
///
/// [`Error::Rustls`] if rustls refuses the protocol versions (it does not
/// with ring).
pub fn server_config(source: &X509Source, allow: Allow) -> Result<rustls::ServerConfig, Error> {
    let verifier = Arc::new(SpiffeClientVerifier {
        source: source.clone(),
        allow,
    });
    let resolver = Arc::new(SvidResolver {
        source: source.clone(),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(crate::provider().clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    // rustls resumes with the client chain stored at the first handshake
    // and never calls the verifier again (TLS 1.2 session IDs and TLS 1.3
    // stateful tickets are on by default; stateless tickets are off).
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// A rustls [`ClientConfig`](rustls::ClientConfig) for mutual TLS with
/// X.509-SVIDs: presents the source's current SVID, verifies the server's
/// certificate as an X.509-SVID against the current bundle of the server's
/// trust domain, and accepts only the server IDs `servers` expects for the
/// host connected to (the `ServerName` given to rustls; the DNS name or IP
/// address is never checked against the certificate, only the SPIFFE ID).
///
/// Session resumption is off, as in [`server_config`]: a resumed session
/// would accept a server on the strength of an earlier handshake, without
/// the current bundle or expiry.
///
/// # Errors
///
/// As [`server_config`].
pub fn client_config(
    source: &X509Source,
    servers: impl Into<ServerIds>,
) -> Result<rustls::ClientConfig, Error> {
    let verifier = Arc::new(SpiffeServerVerifier {
        source: source.clone(),
        servers: servers.into(),
    });
    let resolver = Arc::new(SvidResolver {
        source: source.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(crate::provider().clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(resolver);
    // A resumed session is accepted without calling the verifier.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// Which server SPIFFE IDs a client accepts, per host connected to, like
/// `spiffile_tower::AddTokenLayer`'s targets.
///
/// ```
/// use spiffile_tls::{Allow, ServerIds};
/// let billing: spiffile_id::SpiffeId = "spiffe://example.org/billing".parse()?;
/// let servers = ServerIds::new()
///     .target("billing.internal", billing.clone())           // this host must be billing
///     .host("10.0.0.7", Allow::trust_domain("example.org".parse()?))
///     .default_allow(Allow::ids([billing.clone()]));          // any other host
/// assert!(servers.allows("BILLING.internal", &billing));
/// // One rule for every host:
/// let only_billing = ServerIds::from(billing);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct ServerIds {
    by_host: HashMap<String, Allow>,
    default: Option<Allow>,
}

impl ServerIds {
    /// No server is accepted until a host or a default is configured.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections to `host` (a DNS name or an IP address as given to
    /// rustls; ASCII case ignored) must reach `id`.
    #[must_use]
    pub fn target(self, host: impl Into<String>, id: SpiffeId) -> Self {
        self.host(host, Allow::ids([id]))
    }

    /// Connections to `host` accept the server IDs `allow` admits.
    #[must_use]
    pub fn host(mut self, host: impl Into<String>, allow: Allow) -> Self {
        let mut host = host.into();
        host.make_ascii_lowercase();
        self.by_host.insert(host, allow);
        self
    }

    /// Connections to hosts not configured with [`target`](Self::target) or
    /// [`host`](Self::host) accept the IDs `allow` admits (without a
    /// default they are refused).
    #[must_use]
    pub fn default_allow(mut self, allow: Allow) -> Self {
        self.default = Some(allow);
        self
    }

    /// Whether a server with `id` is accepted on a connection to `host`.
    pub fn allows(&self, host: &str, id: &SpiffeId) -> bool {
        let rule = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_host.get(&host.to_ascii_lowercase())
        } else {
            self.by_host.get(host)
        };
        match rule.or(self.default.as_ref()) {
            Some(allow) => allow.allows(id),
            None => false,
        }
    }
}

impl From<Allow> for ServerIds {
    fn from(allow: Allow) -> Self {
        ServerIds::new().default_allow(allow)
    }
}

impl From<SpiffeId> for ServerIds {
    fn from(id: SpiffeId) -> Self {
        ServerIds::new().default_allow(Allow::ids([id]))
    }
}

impl fmt::Debug for ServerIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerIds")
            .field("by_host", &self.by_host)
            .field("default", &self.default)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Certificate resolver (both ends)

/// Presents the source's current SVID.
struct SvidResolver {
    source: X509Source,
}

impl fmt::Debug for SvidResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SvidResolver")
    }
}

impl ResolvesServerCert for SvidResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(self.source.svid().certified_key()))
    }
}

impl ResolvesClientCert for SvidResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(self.source.svid().certified_key()))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------
// Verifiers

fn refused(refusal: Refusal, end: &'static str) -> rustls::Error {
    match refusal.id() {
        Some(id) => tracing::info!(
            target: TARGET, end, peer = %id, reason = refusal.reason().as_str(),
            "handshake refused: {refusal}"
        ),
        None => tracing::info!(
            target: TARGET, end, reason = refusal.reason().as_str(),
            "handshake refused: {refusal}"
        ),
    }
    refusal.into_rustls()
}

struct SpiffeClientVerifier {
    source: X509Source,
    allow: Allow,
}

impl fmt::Debug for SpiffeClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpiffeClientVerifier")
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: the roots change with the bundles, and a client with one
        // SVID presents it whatever the hints say.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let bundles = self.source.bundles();
        let leaf = verify_parts(end_entity, intermediates, &bundles, Usage::Client, now)
            .map_err(|r| refused(r, "server"))?;
        if !self.allow.allows(&leaf.id) {
            let refusal = Refusal::new(
                Reason::NotAllowed,
                Some(&leaf.id),
                "this server does not allow the client's SPIFFE ID",
            );
            return Err(refused(refusal, "server"));
        }
        tracing::debug!(target: TARGET, peer = %leaf.id, "client certificate accepted");
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &crate::provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &crate::provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crate::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

struct SpiffeServerVerifier {
    source: X509Source,
    servers: ServerIds,
}

impl fmt::Debug for SpiffeServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpiffeServerVerifier")
            .field("servers", &self.servers)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let bundles = self.source.bundles();
        let leaf = verify_parts(end_entity, intermediates, &bundles, Usage::Server, now)
            .map_err(|r| refused(r, "client"))?;
        let allowed = match server_name {
            ServerName::DnsName(name) => self.servers.allows(name.as_ref(), &leaf.id),
            ServerName::IpAddress(ip) => self
                .servers
                .allows(&std::net::IpAddr::from(*ip).to_string(), &leaf.id),
            _ => self.servers.allows("", &leaf.id),
        };
        if !allowed {
            let refusal = Refusal::new(
                Reason::NotAllowed,
                Some(&leaf.id),
                format!(
                    "the server's SPIFFE ID is not the one expected for {}",
                    server_name.to_str()
                ),
            );
            return Err(refused(refusal, "client"));
        }
        tracing::debug!(target: TARGET, peer = %leaf.id, "server certificate accepted");
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &crate::provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &crate::provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crate::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
