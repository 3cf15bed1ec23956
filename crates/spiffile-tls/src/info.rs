//! What a certificate says, for tools (`spiffile inspect`).

use std::time::SystemTime;

use spiffile_id::SpiffeId;
use x509_parser::extensions::GeneralName;

use crate::cert;
use crate::error::Refusal;

/// The fields of a certificate a person inspects. Nothing here is
/// verified: see [`check_leaf_rules`] and [`verify_svid`](crate::verify_svid).
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct CertificateInfo {
    /// The subject, RFC 4514 style.
    pub subject: String,
    /// The issuer, RFC 4514 style.
    pub issuer: String,
    /// The serial number, hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// basicConstraints CA.
    pub is_ca: bool,
    /// keyUsage bits set (`digitalSignature`, `keyCertSign`, …); `None`
    /// without the extension.
    pub key_usage: Option<Vec<&'static str>>,
    /// extendedKeyUsage purposes (`serverAuth`, `clientAuth`, other OIDs);
    /// `None` without the extension.
    pub extended_key_usage: Option<Vec<String>>,
    /// URI SANs.
    pub uris: Vec<String>,
    /// DNS SANs.
    pub dns_names: Vec<String>,
}

impl CertificateInfo {
    /// Reads a DER certificate.
    ///
    /// # Errors
    ///
    /// A [`Refusal`] with [`Reason::Malformed`](crate::Reason::Malformed)
    /// for bytes that are not one certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, Refusal> {
        let c = cert::parse(der)?;
        let key_usage = c.key_usage().ok().flatten().map(|ku| {
            let ku = ku.value;
            let bits = [
                (ku.digital_signature(), "digitalSignature"),
                (ku.non_repudiation(), "nonRepudiation"),
                (ku.key_encipherment(), "keyEncipherment"),
                (ku.data_encipherment(), "dataEncipherment"),
                (ku.key_agreement(), "keyAgreement"),
                (ku.key_cert_sign(), "keyCertSign"),
                (ku.crl_sign(), "cRLSign"),
                (ku.encipher_only(), "encipherOnly"),
                (ku.decipher_only(), "decipherOnly"),
            ];
            bits.iter()
                .filter(|(set, _)| *set)
                .map(|(_, n)| *n)
                .collect()
        });
        let extended_key_usage = c.extended_key_usage().ok().flatten().map(|eku| {
            let e = eku.value;
            let mut out = Vec::new();
            for (set, name) in [
                (e.any, "any"),
                (e.server_auth, "serverAuth"),
                (e.client_auth, "clientAuth"),
                (e.code_signing, "codeSigning"),
                (e.email_protection, "emailProtection"),
                (e.time_stamping, "timeStamping"),
                (e.ocsp_signing, "OCSPSigning"),
            ] {
                if set {
                    out.push(name.to_owned());
                }
            }
            out.extend(e.other.iter().map(|oid| oid.to_id_string()));
            out
        });
        let (mut uris, mut dns_names) = (Vec::new(), Vec::new());
        if let Ok(Some(san)) = c.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(u) => uris.push((*u).to_owned()),
                    GeneralName::DNSName(d) => dns_names.push((*d).to_owned()),
                    _ => {}
                }
            }
        }
        Ok(CertificateInfo {
            subject: c.subject().to_string(),
            issuer: c.issuer().to_string(),
            serial: c.raw_serial_as_string(),
            not_before: cert::system_time(c.validity().not_before),
            not_after: cert::system_time(c.validity().not_after),
            is_ca: c.is_ca(),
            key_usage,
            extended_key_usage,
            uris,
            dns_names,
        })
    }
}

/// The X509-SVID leaf rules alone (one URI SAN that is a SPIFFE ID with a
/// path, not a CA, digitalSignature without keyCertSign or cRLSign), without
/// path validation: what can be said of a certificate without its bundle.
///
/// # Errors
///
/// The [`Refusal`] of the first rule broken.
pub fn check_leaf_rules(der: &[u8]) -> Result<SpiffeId, Refusal> {
    cert::check_leaf(der).map(|leaf| leaf.id)
}

/// Every certificate of a PEM document, DER.
///
/// # Errors
///
/// [`Error::Pem`](crate::Error::Pem) for bad PEM.
pub fn certificates_from_pem(
    pem: &[u8],
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, crate::Error> {
    crate::bundle::certificates_from_pem(pem, "PEM document")
}
