//! X.509-SVID validation: the leaf rules, then RFC 5280 path validation by
//! rustls-webpki against the bundle of the leaf's own trust domain, with the
//! signing-certificate rules checked on each candidate path.

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

use crate::bundle::X509BundleSet;
use crate::cert::{self, Leaf};
use crate::error::{Reason, Refusal};
use crate::peer::Peer;

/// Which end of a connection the certificate's owner is; decides the
/// extended key usage required when the leaf has that extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A TLS client (clientAuth).
    Client,
    /// A TLS server (serverAuth).
    Server,
}

/// Validates an X.509-SVID chain (leaf first, then intermediates) as the
/// X509-SVID standard says, at time `now`.
///
/// 1. The leaf: exactly one URI SAN, a SPIFFE ID with a path; not a CA;
///    keyUsage with digitalSignature and without keyCertSign or cRLSign.
/// 2. The bundle of the trust domain **named in the leaf's SPIFFE ID**
///    (another trust domain's CA never vouches for it).
/// 3. RFC 5280 path validation by rustls-webpki to one of those roots
///    (signatures, validity periods, basic constraints, path length, name
///    constraints, the extended key usage of `usage` when present).
/// 4. Every intermediate of the path: a CA with keyCertSign whose SPIFFE
///    URI SAN, if it has one, is the trust domain itself (webpki 0.103
///    does not require keyCertSign; this check runs inside its path
///    building, so another valid path can still be found).
///
/// Authorization (which IDs may connect) is the caller's next step: see
/// [`Allow`](crate::Allow).
///
/// # Errors
///
/// The [`Refusal`] of the first rule that fails.
pub fn verify_svid(
    chain: &[CertificateDer<'_>],
    bundles: &X509BundleSet,
    usage: Usage,
    now: SystemTime,
) -> Result<Peer, Refusal> {
    let Some((end_entity, intermediates)) = chain.split_first() else {
        return Err(Refusal::new(
            Reason::Malformed,
            None,
            "no certificate was presented",
        ));
    };
    let now = UnixTime::since_unix_epoch(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO),
    );
    let leaf = verify_parts(end_entity, intermediates, bundles, usage, now)?;
    Ok(Peer::new(leaf, chain))
}

/// [`verify_svid`] on the pieces rustls hands a verifier.
pub(crate) fn verify_parts(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    bundles: &X509BundleSet,
    usage: Usage,
    now: UnixTime,
) -> Result<Leaf, Refusal> {
    let leaf = cert::check_leaf(end_entity)?;
    let id = &leaf.id;
    let trust_domain = id.trust_domain();
    let Some(bundle) = bundles.get(trust_domain) else {
        return Err(Refusal::new(
            Reason::UnknownTrustDomain,
            Some(id),
            format!("no X.509 bundle for the trust domain {trust_domain}"),
        ));
    };
    let ee = EndEntityCert::try_from(end_entity).map_err(|e| {
        Refusal::new(
            Reason::Malformed,
            Some(id),
            format!("webpki cannot read the leaf: {e}"),
        )
    })?;
    let eku = match usage {
        Usage::Client => KeyUsage::client_auth(),
        Usage::Server => KeyUsage::server_auth(),
    };
    // Why the last candidate path was refused by the signing-certificate
    // rules, if one was.
    let signing_problem: RefCell<Option<String>> = RefCell::new(None);
    let check_path = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
        for intermediate in path.intermediate_certificates() {
            if let Some(problem) = cert::check_signing(&intermediate.der(), trust_domain) {
                *signing_problem.borrow_mut() = Some(problem);
                return Err(webpki::Error::UnknownIssuer);
            }
        }
        Ok(())
    };
    let result = ee.verify_for_usage(
        crate::provider().signature_verification_algorithms.all,
        bundle.anchors(),
        intermediates,
        now,
        eku,
        None,
        Some(&check_path),
    );
    match result {
        Ok(_) => Ok(leaf),
        Err(error) => {
            if let Some(problem) = signing_problem.into_inner() {
                return Err(Refusal::new(Reason::SigningCertificate, Some(id), problem));
            }
            Err(webpki_refusal(&error, &leaf, trust_domain.as_str()))
        }
    }
}

fn webpki_refusal(error: &webpki::Error, leaf: &Leaf, trust_domain: &str) -> Refusal {
    use webpki::Error as E;
    let id = Some(&leaf.id);
    let (reason, detail) = match error {
        E::CertExpired { .. } => (
            Reason::Expired,
            "a certificate of the chain has expired".to_owned(),
        ),
        E::CertNotValidYet { .. } => (
            Reason::NotYetValid,
            "a certificate of the chain is not valid yet".to_owned(),
        ),
        #[allow(deprecated)]
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => (
            Reason::ExtendedKeyUsage,
            "the leaf's extendedKeyUsage does not allow this end of the connection".to_owned(),
        ),
        E::CaUsedAsEndEntity => (Reason::LeafIsCa, "the leaf certificate is a CA".to_owned()),
        E::EndEntityUsedAsCa => (
            Reason::SigningCertificate,
            "an intermediate certificate is not a CA".to_owned(),
        ),
        E::BadDer
        | E::BadDerTime
        | E::TrailingData(_)
        | E::UnsupportedCertVersion
        | E::UnsupportedCriticalExtension
        | E::MalformedExtensions
        | E::ExtensionValueInvalid
        | E::InvalidCertValidity => (
            Reason::Malformed,
            format!("a certificate of the chain is malformed: {error}"),
        ),
        E::UnknownIssuer => (
            Reason::UntrustedChain,
            format!(
                "no path from the leaf to a root of {trust_domain}'s X.509 bundle \
                 (an issuer not in the bundle, or a missing intermediate)"
            ),
        ),
        E::InvalidSignatureForPublicKey => (
            Reason::UntrustedChain,
            format!("a signature of the chain to {trust_domain}'s roots does not verify"),
        ),
        other => (
            Reason::UntrustedChain,
            format!("path validation to {trust_domain}'s roots failed: {other}"),
        ),
    };
    Refusal::new(reason, id, detail)
}
