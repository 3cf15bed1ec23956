//! Issuing and renewing services' X.509-SVIDs with the root's CA.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose, SanType,
};
use spiffile_id::SpiffeId;

use super::ca::{Ca, load_ca, new_key, serial};
use super::files::{X509Root, certificates, parse, private_key, read_required, system_time};
use super::{Issued, SVID_FILE, SVID_KEY_FILE};
use crate::error::Error;
use crate::fsutil::{create_dirs, write_atomic};

/// Backdating of `notBefore`, for peers whose clock is a little behind.
const BACKDATE: Duration = Duration::from_secs(60);

/// What [`renew_svids`] did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Renewed {
    /// The SVIDs written anew.
    pub renewed: Vec<Issued>,
    /// The services whose SVID was young enough, with its expiry.
    pub kept: Vec<(String, SystemTime)>,
}

/// Issues `name`'s X.509-SVID with the root's CA: a new P-256 key
/// (`services/<name>/svid_key.pem`, 0600 from its first byte) and a leaf
/// (`services/<name>/svid.pem`) for `spiffe://<td>/<name>` valid for `ttl`,
/// in spiffe-helper's file names. The CA certificates are in
/// `<root>/bundle.pem`.
///
/// The leaf has exactly one URI SAN (the SPIFFE ID), basicConstraints CA
/// false, keyUsage digitalSignature (and keyAgreement), extendedKeyUsage
/// serverAuth and clientAuth, an authority key identifier, a random serial.
/// An existing SVID of the service is replaced (a new key every time).
///
/// # Errors
///
/// [`Error::NoCa`], [`Error::InvalidName`], I/O errors.
pub fn issue_svid(root: impl AsRef<Path>, name: &str, ttl: Duration) -> Result<Issued, Error> {
    issue_svid_with(root, name, &IssueOptions::ttl(ttl))
}

/// How [`issue_svid_with`] makes an SVID.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IssueOptions {
    /// Lifetime (default [`DEFAULT_SVID_TTL`](super::DEFAULT_SVID_TTL)).
    pub ttl: Duration,
    /// DNS names added as DNS SANs beside the SPIFFE ID, for peers that
    /// check a host name (curl, browsers). SPIFFE peers ignore them: the
    /// URI SAN is the identity. Kept by renewals.
    pub dns_names: Vec<String>,
}

impl Default for IssueOptions {
    fn default() -> Self {
        IssueOptions {
            ttl: super::DEFAULT_SVID_TTL,
            dns_names: Vec::new(),
        }
    }
}

impl IssueOptions {
    /// An SVID living `ttl`, without DNS names.
    pub fn ttl(ttl: Duration) -> Self {
        IssueOptions {
            ttl,
            ..IssueOptions::default()
        }
    }

    /// Adds a DNS SAN.
    #[must_use]
    pub fn dns_name(mut self, name: impl Into<String>) -> Self {
        self.dns_names.push(name.into());
        self
    }
}

/// [`issue_svid`] with [`IssueOptions`] (DNS SANs).
///
/// # Errors
///
/// As [`issue_svid`]; [`Error::CertificateGeneration`] for a DNS name that
/// is not IA5 text.
pub fn issue_svid_with(
    root: impl AsRef<Path>,
    name: &str,
    options: &IssueOptions,
) -> Result<Issued, Error> {
    let open = X509Root::write(root.as_ref())?;
    let ca = load_ca(&open)?;
    let (name, id, dir) = open.service(name)?;
    issue_one(&open, &ca, name, id, &dir, options.ttl, &options.dns_names)
}

fn issue_one(
    open: &X509Root,
    ca: &Ca,
    name: String,
    id: SpiffeId,
    dir: &Path,
    ttl: Duration,
    dns_names: &[String],
) -> Result<Issued, Error> {
    let services = dir.parent().unwrap_or(dir);
    if !services.is_dir() {
        create_dirs(services, 0o755)?;
    }
    create_dirs(dir, 0o700)?;
    let what = format!("X.509-SVID of {id}");
    let (key, key_pem) = new_key(&what)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "spiffile");
    params.distinguished_name = dn;
    let uri = id
        .as_str()
        .to_owned()
        .try_into()
        .map_err(|e: rcgen::Error| Error::CertificateGeneration {
            what: what.clone(),
            message: e.to_string(),
        })?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    for dns in dns_names {
        let dns =
            dns.clone()
                .try_into()
                .map_err(|e: rcgen::Error| Error::CertificateGeneration {
                    what: format!("DNS name {dns:?} of the {what}"),
                    message: e.to_string(),
                })?;
        params.subject_alt_names.push(SanType::DnsName(dns));
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyAgreement,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial()?);
    let now = SystemTime::now();
    let not_before = now - BACKDATE;
    let not_after = now + ttl;
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(|e| Error::CertificateGeneration {
            what: what.clone(),
            message: e.to_string(),
        })?;
    // The key, then the certificate: a reader between the two sees a
    // mismatched pair and keeps its previous one.
    write_atomic(dir, SVID_KEY_FILE, key_pem.as_bytes(), 0o600, false)?;
    write_atomic(dir, SVID_FILE, cert.pem().as_bytes(), 0o644, false)?;
    tracing::info!(target: "spiffile::provision", %id, "issued an X.509-SVID");
    Ok(Issued {
        name,
        id,
        svid_file: dir.join(SVID_FILE),
        key_file: dir.join(SVID_KEY_FILE),
        bundle_file: open.bundle_file(),
        not_before: system_time(params.not_before.into()),
        not_after: system_time(params.not_after.into()),
    })
}

/// The DNS SANs of the SVID on disk (kept by a renewal).
fn dns_names_of(dir: &Path) -> Vec<String> {
    let path = dir.join(SVID_FILE);
    let Ok(pem) = read_required(&path) else {
        return Vec::new();
    };
    let Some(leaf) = certificates(&pem, &path)
        .ok()
        .and_then(|c| c.into_iter().next())
    else {
        return Vec::new();
    };
    let Ok(cert) = parse(&leaf, &path) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
            _ => None,
        })
        .collect()
}

/// Why an SVID on disk needs renewing, or `None` when it is fine; its
/// expiry when readable.
fn needs_renewal(
    dir: &Path,
    ca_subject: &[u8],
    fraction: f64,
    now: SystemTime,
) -> (Option<&'static str>, Option<SystemTime>) {
    let path = dir.join(SVID_FILE);
    let Ok(pem) = read_required(&path) else {
        return (Some("no certificate"), None);
    };
    let Some(leaf) = certificates(&pem, &path)
        .ok()
        .and_then(|c| c.into_iter().next())
    else {
        return (Some("unreadable certificate"), None);
    };
    let Ok(cert) = parse(&leaf, &path) else {
        return (Some("unreadable certificate"), None);
    };
    let not_before = system_time(cert.validity().not_before);
    let not_after = system_time(cert.validity().not_after);
    if cert.issuer().as_raw() != ca_subject {
        return (Some("signed by an old CA"), Some(not_after));
    }
    // The key must be the certificate's (a crash between the two writes).
    let key_path = dir.join(SVID_KEY_FILE);
    let key_matches = read_required(&key_path)
        .ok()
        .and_then(|pem| private_key(&pem, &key_path).ok())
        .and_then(|key| rcgen::KeyPair::try_from(&key).ok())
        .is_some_and(|key| {
            rcgen::PublicKeyData::subject_public_key_info(&key) == cert.public_key().raw
        });
    if !key_matches {
        return (Some("key does not match the certificate"), Some(not_after));
    }
    let life = not_after
        .duration_since(not_before)
        .unwrap_or_default()
        .as_secs_f64();
    let lived = now
        .duration_since(not_before)
        .unwrap_or_default()
        .as_secs_f64();
    if life <= 0.0 || lived >= life * fraction {
        return (Some("past the renewal point"), Some(not_after));
    }
    (None, Some(not_after))
}

/// Renews every X.509-SVID of the root that is past `fraction` of its
/// lifetime (0.5: half; 0: all), signed by an old CA (after
/// [`rotate_ca`](super::rotate_ca)), unreadable, or whose key does not
/// match its certificate (an interrupted issue). Each renewed SVID gets a
/// new key and lives `ttl`.
///
/// # Errors
///
/// [`Error::NoCa`], I/O errors. `fraction` outside 0..=1 is clamped.
pub fn renew_svids(root: impl AsRef<Path>, fraction: f64, ttl: Duration) -> Result<Renewed, Error> {
    let fraction = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let open = X509Root::write(root.as_ref())?;
    let ca = load_ca(&open)?;
    let ca_subject = parse(&ca.cert, &open.ca_file())?
        .subject()
        .as_raw()
        .to_vec();
    let now = SystemTime::now();
    let mut result = Renewed::default();
    for (name, dir) in open.svid_dirs() {
        let (why, not_after) = needs_renewal(&dir, &ca_subject, fraction, now);
        match why {
            None => result.kept.push((name, not_after.unwrap_or(now))),
            Some(why) => {
                let (name, id, dir) = open.service(&name)?;
                tracing::info!(target: "spiffile::provision", %id, why, "renewing an X.509-SVID");
                let dns_names = dns_names_of(&dir);
                result
                    .renewed
                    .push(issue_one(&open, &ca, name, id, &dir, ttl, &dns_names)?);
            }
        }
    }
    Ok(result)
}
