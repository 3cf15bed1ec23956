//! The root's X.509 CA: create, rotate with a bundle overlap, retire the old.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use spiffile_id::TrustDomain;
use zeroize::Zeroizing;

use super::files::{
    NEXT_CA_FILE, X509Root, certificates, parse, pem_block, private_key, read_required, system_time,
};
use super::{CA_FILE, DEFAULT_CA_TTL, SVID_FILE};
use crate::error::Error;
use crate::fsutil::{self, create_dirs, write_atomic};

/// How a CA is made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CaOptions {
    /// Lifetime of the CA certificate (default one year).
    pub ttl: Duration,
}

impl Default for CaOptions {
    fn default() -> Self {
        CaOptions {
            ttl: DEFAULT_CA_TTL,
        }
    }
}

impl CaOptions {
    /// A CA living `ttl`.
    pub fn ttl(ttl: Duration) -> Self {
        CaOptions { ttl }
    }
}

/// The CA of a root and its X.509 bundle.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CaInfo {
    /// The trust domain.
    pub trust_domain: TrustDomain,
    /// `x509/ca.pem`.
    pub ca_file: PathBuf,
    /// `bundle.pem`.
    pub bundle_file: PathBuf,
    /// The active CA's subject (unique per CA).
    pub subject: String,
    /// End of the active CA's validity.
    pub not_after: SystemTime,
    /// How many CA certificates the bundle holds (more than one during a
    /// rotation's overlap).
    pub bundle_cas: usize,
}

/// What [`retire_old_cas`] removed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Retired {
    /// How many old CA certificates left the bundle.
    pub removed: usize,
    /// The CA that stays.
    pub ca: CaInfo,
}

/// The active CA, loaded for signing.
pub(super) struct Ca {
    pub(super) cert: CertificateDer<'static>,
    pub(super) issuer: Issuer<'static, KeyPair>,
}

fn generation_error(what: &str) -> impl FnOnce(rcgen::Error) -> Error + '_ {
    move |e| Error::CertificateGeneration {
        what: what.to_owned(),
        message: e.to_string(),
    }
}

/// A fresh P-256 key (ring's generator, as for JWT keys), as rcgen's
/// signer, and its PKCS#8 PEM.
pub(super) fn new_key(what: &str) -> Result<(KeyPair, spiffile_svid::PrivateKeyPem), Error> {
    let pem = spiffile_svid::generate_pkcs8_pem().map_err(|e| Error::CertificateGeneration {
        what: what.to_owned(),
        message: e.to_string(),
    })?;
    let key = KeyPair::from_pem(&pem).map_err(generation_error(what))?;
    Ok((key, pem))
}

/// 16 random bytes, the top bit cleared (a positive serial).
pub(super) fn serial() -> Result<SerialNumber, Error> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| {
        Error::CertificateGeneration {
            what: "serial number".to_owned(),
            message: "the system random generator failed".to_owned(),
        }
    })?;
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}

/// The parameters of a CA of `td`: CA with path length 0 (it signs leaves
/// only), keyCertSign and cRLSign, the trust domain as its URI SAN, a
/// subject made unique by a random tag so that rotations never produce two
/// CAs of the same name.
fn ca_params(td: &TrustDomain, ttl: Duration) -> Result<CertificateParams, Error> {
    let serial = serial()?;
    let tag: String = serial.to_bytes()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "spiffile");
    dn.push(DnType::CommonName, format!("{td} X.509 CA {tag}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let uri = td
        .id()
        .as_str()
        .to_owned()
        .try_into()
        .map_err(generation_error("CA"))?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(60)).into();
    params.not_after = (now + ttl).into();
    params.serial_number = Some(serial);
    Ok(params)
}

/// A new CA: its certificate and the one-file PEM (certificate + key).
fn make_ca(
    td: &TrustDomain,
    ttl: Duration,
) -> Result<(CertificateDer<'static>, Zeroizing<String>), Error> {
    let (key, key_pem) = new_key("CA key")?;
    let params = ca_params(td, ttl)?;
    let cert = params
        .self_signed(&key)
        .map_err(generation_error("CA certificate"))?;
    let der = cert.der().clone();
    let mut file = Zeroizing::new(pem_block("CERTIFICATE", &der));
    file.push_str(&key_pem);
    Ok((der, file))
}

/// Creates the root's X.509 CA (`x509/ca.pem`, 0600 in a 0700 directory)
/// and the X.509 bundle `bundle.pem` holding its certificate. The root
/// must exist (`init_root`); the trust domain is its bundle's.
///
/// # Errors
///
/// [`Error::CaExists`] when the root has a CA already, [`Error::NotARoot`],
/// I/O errors.
pub fn init_ca(root: impl AsRef<Path>, options: CaOptions) -> Result<CaInfo, Error> {
    let open = X509Root::write(root.as_ref())?;
    if open.ca_file().exists() {
        return Err(Error::CaExists {
            root: open.root.clone(),
        });
    }
    create_dirs(&open.x509_dir(), 0o700)?;
    let (cert, file) = make_ca(&open.trust_domain, options.ttl)?;
    // The bundle first: a crash before the CA file leaves a bundle root
    // without its key, which a retried init replaces.
    open.write_bundle(std::slice::from_ref(&cert))?;
    write_atomic(&open.x509_dir(), CA_FILE, file.as_bytes(), 0o600, false)?;
    info(&open)
}

/// Rotates the CA: a new CA is created and added to `bundle.pem` beside
/// the old one (the overlap: SVIDs of both verify), and becomes the CA
/// that [`issue_svid`](super::issue_svid) and
/// [`renew_svids`](super::renew_svids) sign with. The old CA's key is
/// deleted (it signs nothing any more); its certificate stays in the
/// bundle until [`retire_old_cas`].
///
/// Existing SVIDs are not touched. Let the new bundle reach every workload
/// (here, the file watcher's poll interval; a Kubernetes Secret takes up to
/// a minute), then renew (`renew_svids` renews SVIDs of an old CA whatever
/// their age), then retire the old CA.
///
/// # Errors
///
/// [`Error::NoCa`], I/O errors.
pub fn rotate_ca(root: impl AsRef<Path>, options: CaOptions) -> Result<CaInfo, Error> {
    let open = X509Root::write(root.as_ref())?;
    if !open.ca_file().exists() {
        return Err(Error::NoCa {
            root: open.root.clone(),
        });
    }
    let (cert, file) = make_ca(&open.trust_domain, options.ttl)?;
    // 1. staged beside the old CA; 2. trusted; 3. put in place. A crash
    // between the steps is finished or undone by the next operation.
    write_atomic(
        &open.x509_dir(),
        NEXT_CA_FILE,
        file.as_bytes(),
        0o600,
        false,
    )?;
    let mut bundle = open.read_bundle()?.unwrap_or_default();
    if !bundle.contains(&cert) {
        bundle.push(cert);
    }
    open.write_bundle(&bundle)?;
    let staged = open.x509_dir().join(NEXT_CA_FILE);
    std::fs::rename(&staged, open.ca_file())
        .map_err(fsutil::fail(&open.ca_file(), "rename the new CA over"))?;
    fsutil::sync_dir(&open.x509_dir())
        .map_err(fsutil::fail(&open.x509_dir(), "fsync directory"))?;
    info(&open)
}

/// Removes every CA but the active one from `bundle.pem`: the end of a
/// rotation. Refused while an SVID of the root is still signed by an old
/// CA (it would stop verifying): renew first.
///
/// # Errors
///
/// [`Error::OldCaInUse`], [`Error::NoCa`], I/O errors.
pub fn retire_old_cas(root: impl AsRef<Path>) -> Result<Retired, Error> {
    let open = X509Root::write(root.as_ref())?;
    let ca = load_ca(&open)?;
    let ca_subject = subject_of(&ca.cert, &open.ca_file())?;
    let mut in_use = Vec::new();
    for (name, dir) in open.svid_dirs() {
        let path = dir.join(SVID_FILE);
        let Ok(pem) = read_required(&path) else {
            continue;
        };
        let Some(leaf) = certificates(&pem, &path)?.into_iter().next() else {
            continue;
        };
        let issuer = parse(&leaf, &path)?.issuer().as_raw().to_vec();
        if issuer != ca_subject {
            in_use.push(name);
        }
    }
    if !in_use.is_empty() {
        return Err(Error::OldCaInUse {
            root: open.root.clone(),
            services: in_use,
        });
    }
    let bundle = open.read_bundle()?.unwrap_or_default();
    let removed = bundle.iter().filter(|c| **c != ca.cert).count();
    open.write_bundle(std::slice::from_ref(&ca.cert))?;
    Ok(Retired {
        removed,
        ca: info(&open)?,
    })
}

/// The root's CA and bundle, read under the shared lock.
///
/// # Errors
///
/// [`Error::NoCa`], [`Error::Certificate`], I/O errors.
pub fn read_ca_info(root: impl AsRef<Path>) -> Result<CaInfo, Error> {
    let open = X509Root::read(root.as_ref())?;
    info(&open)
}

fn info(open: &X509Root) -> Result<CaInfo, Error> {
    let ca = load_ca(open)?;
    let path = open.ca_file();
    let cert = parse(&ca.cert, &path)?;
    Ok(CaInfo {
        trust_domain: open.trust_domain.clone(),
        subject: cert.subject().to_string(),
        not_after: system_time(cert.validity().not_after),
        ca_file: path,
        bundle_file: open.bundle_file(),
        bundle_cas: open.read_bundle()?.map_or(0, |b| b.len()),
    })
}

fn subject_of(cert: &CertificateDer<'_>, path: &Path) -> Result<Vec<u8>, Error> {
    Ok(parse(cert, path)?.subject().as_raw().to_vec())
}

/// Loads the active CA for signing.
pub(super) fn load_ca(open: &X509Root) -> Result<Ca, Error> {
    let path = open.ca_file();
    if !path.exists() {
        return Err(Error::NoCa {
            root: open.root.clone(),
        });
    }
    let pem = read_required(&path)?;
    let cert = certificates(&pem, &path)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Certificate {
            path: path.clone(),
            problem: "has no CERTIFICATE block".to_owned(),
        })?;
    let key = private_key(&pem, &path)?;
    let key = KeyPair::try_from(&key).map_err(|e| Error::Certificate {
        path: path.clone(),
        problem: format!("unusable CA key: {e}"),
    })?;
    let issuer = Issuer::from_ca_cert_der(&cert, key).map_err(|e| Error::Certificate {
        path: path.clone(),
        problem: format!("not a usable CA certificate: {e}"),
    })?;
    Ok(Ca { cert, issuer })
}
