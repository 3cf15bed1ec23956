//! The X.509-SVID rules that rustls-webpki does not check, read with
//! x509-parser: the one URI SAN, the leaf's basic constraints and key usage,
//! and the signing certificates' keyCertSign and URI SAN.

use std::time::{Duration, SystemTime};

use spiffile_id::{SpiffeId, TrustDomain};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME,
};
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use crate::error::{Reason, Refusal};

/// What the leaf says about itself, once it passed the leaf rules.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub(crate) id: SpiffeId,
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
}

pub(crate) fn parse(der: &[u8]) -> Result<X509Certificate<'_>, Refusal> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(Refusal::new(
            Reason::Malformed,
            None,
            "the certificate has trailing bytes after its DER encoding",
        )),
        Err(e) => Err(Refusal::new(
            Reason::Malformed,
            None,
            format!("not a DER X.509 certificate: {e}"),
        )),
    }
}

/// The extensions this module reads must parse; x509-parser keeps an
/// extension it cannot decode as `ParseError` rather than failing the
/// certificate, and treating that as "absent" would be a bypass.
fn malformed_extension(cert: &X509Certificate<'_>, id: Option<&SpiffeId>) -> Result<(), Refusal> {
    for ext in cert.extensions() {
        let known = ext.oid == OID_X509_EXT_SUBJECT_ALT_NAME
            || ext.oid == OID_X509_EXT_BASIC_CONSTRAINTS
            || ext.oid == OID_X509_EXT_KEY_USAGE;
        if known && matches!(ext.parsed_extension(), ParsedExtension::ParseError { .. }) {
            return Err(Refusal::new(
                Reason::Malformed,
                id,
                format!("the {} extension cannot be decoded", extension_name(ext)),
            ));
        }
    }
    Ok(())
}

fn extension_name(ext: &x509_parser::extensions::X509Extension<'_>) -> &'static str {
    if ext.oid == OID_X509_EXT_SUBJECT_ALT_NAME {
        "subjectAltName"
    } else if ext.oid == OID_X509_EXT_BASIC_CONSTRAINTS {
        "basicConstraints"
    } else {
        "keyUsage"
    }
}

/// The URI SANs of a certificate (duplicated SAN extensions refused).
fn uri_sans<'a>(
    cert: &'a X509Certificate<'a>,
    id: Option<&SpiffeId>,
) -> Result<Vec<&'a str>, Refusal> {
    let san = cert.subject_alternative_name().map_err(|e| {
        Refusal::new(
            Reason::Malformed,
            id,
            format!("bad subjectAltName extension: {e}"),
        )
    })?;
    Ok(san
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some(*uri),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The SPIFFE ID of a certificate: its only URI SAN.
pub(crate) fn spiffe_id(cert: &X509Certificate<'_>) -> Result<SpiffeId, Refusal> {
    let uris = uri_sans(cert, None)?;
    match uris.as_slice() {
        [] => Err(Refusal::new(
            Reason::NoUriSan,
            None,
            "the leaf certificate has no URI SAN; an X.509-SVID carries its SPIFFE ID as its only URI SAN",
        )),
        [uri] => SpiffeId::new(uri).map_err(|e| {
            Refusal::new(
                Reason::NotSpiffeId,
                None,
                format!("the leaf's URI SAN {uri:?} is not a SPIFFE ID: {e}"),
            )
        }),
        many => Err(Refusal::new(
            Reason::TooManyUriSans,
            None,
            format!(
                "the leaf certificate has {} URI SANs; an X.509-SVID has exactly one",
                many.len()
            ),
        )),
    }
}

/// Checks the leaf rules of the X509-SVID standard and returns what the
/// leaf says. Path validation is webpki's job, not this function's.
pub(crate) fn check_leaf(der: &[u8]) -> Result<Leaf, Refusal> {
    let cert = parse(der)?;
    malformed_extension(&cert, None)?;
    let id = spiffe_id(&cert)?;
    if id.path().is_empty() {
        return Err(Refusal::new(
            Reason::NotSpiffeId,
            Some(&id),
            "the leaf's SPIFFE ID has no path: it names the trust domain, not a workload",
        ));
    }
    let bc = cert.basic_constraints().map_err(|e| {
        Refusal::new(
            Reason::Malformed,
            Some(&id),
            format!("bad basicConstraints: {e}"),
        )
    })?;
    if bc.is_some_and(|bc| bc.value.ca) {
        return Err(Refusal::new(
            Reason::LeafIsCa,
            Some(&id),
            "the leaf certificate is a CA (basicConstraints CA true)",
        ));
    }
    let ku = cert
        .key_usage()
        .map_err(|e| Refusal::new(Reason::Malformed, Some(&id), format!("bad keyUsage: {e}")))?;
    let Some(ku) = ku else {
        return Err(Refusal::new(
            Reason::KeyUsage,
            Some(&id),
            "the leaf certificate has no keyUsage extension; digitalSignature is required",
        ));
    };
    if !ku.value.digital_signature() {
        return Err(Refusal::new(
            Reason::KeyUsage,
            Some(&id),
            "the leaf's keyUsage lacks digitalSignature",
        ));
    }
    if ku.value.key_cert_sign() || ku.value.crl_sign() {
        return Err(Refusal::new(
            Reason::KeyUsage,
            Some(&id),
            "the leaf's keyUsage has keyCertSign or cRLSign, which only signing certificates may have",
        ));
    }
    let validity = cert.validity();
    Ok(Leaf {
        not_before: system_time(validity.not_before),
        not_after: system_time(validity.not_after),
        id,
    })
}

/// Checks an intermediate of a validated path: a signing certificate of
/// `trust_domain` (CA, keyCertSign, and a SPIFFE URI SAN only if it is the
/// trust domain itself). Returns what is wrong, if anything.
pub(crate) fn check_signing(der: &[u8], trust_domain: &TrustDomain) -> Option<String> {
    let cert = match parse(der) {
        Ok(cert) => cert,
        Err(refusal) => return Some(refusal.detail().to_owned()),
    };
    if let Err(refusal) = malformed_extension(&cert, None) {
        return Some(refusal.detail().to_owned());
    }
    if !cert.is_ca() {
        return Some("an intermediate certificate is not a CA".to_owned());
    }
    match cert.key_usage() {
        Ok(Some(ku)) if ku.value.key_cert_sign() => {}
        Ok(_) => {
            return Some("an intermediate certificate lacks keyUsage keyCertSign".to_owned());
        }
        Err(e) => return Some(format!("an intermediate has a bad keyUsage: {e}")),
    }
    let uris = match uri_sans(&cert, None) {
        Ok(uris) => uris,
        Err(refusal) => return Some(refusal.detail().to_owned()),
    };
    for uri in uris {
        if uri
            .get(..9)
            .is_some_and(|s| s.eq_ignore_ascii_case("spiffe://"))
            && SpiffeId::new(uri).ok().as_ref() != Some(&trust_domain.id())
        {
            return Some(format!(
                "an intermediate's URI SAN {uri:?} is not the trust domain {}",
                trust_domain.id()
            ));
        }
    }
    None
}

pub(crate) fn system_time(t: ASN1Time) -> SystemTime {
    let secs = t.timestamp();
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}
