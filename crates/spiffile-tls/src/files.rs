//! Where X.509 material lives on disk: the layouts of spiffe-helper,
//! `spire-agent api fetch x509 -write`, cert-manager's csi-driver-spiffe and
//! a spiffile root.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use spiffile_id::{SpiffeId, TrustDomain};

use crate::bundle::{X509Bundle, X509BundleSet, certificates_from_pem};
use crate::cert;
use crate::error::Error;
use crate::svid::X509Svid;

/// Largest file read (a PEM chain or bundle).
pub(crate) const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The files of one workload's X.509 material: its certificate chain, its
/// private key, its trust domain's bundle and any federated bundles.
///
/// ```
/// use spiffile_tls::X509Files;
/// let helper = X509Files::spiffe_helper("/run/spiffe");      // svid.pem, svid_key.pem, svid_bundle.pem
/// let agent = X509Files::spire_agent("/tmp/x509");           // svid.0.pem, svid.0.key, bundle.0.pem, federated_bundle.0.N.pem
/// let csi = X509Files::csi_driver("/var/run/secrets/spiffe.io"); // tls.crt, tls.key, ca.crt
/// let root = X509Files::root("./idroot", "orders");          // services/orders/svid.pem, svid_key.pem, bundle.pem
/// assert!(helper.cert().ends_with("svid.pem"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct X509Files {
    cert: PathBuf,
    key: PathBuf,
    bundle: PathBuf,
    federated: Vec<Federated>,
}

#[derive(Clone, PartialEq, Eq)]
enum Federated {
    /// One file of a known trust domain.
    File(Option<TrustDomain>, PathBuf),
    /// Every `federated_bundle.<n>.<m>.pem` of a directory (SPIRE's names).
    SpireDir(PathBuf, u32),
}

impl X509Files {
    /// Explicit paths.
    pub fn new(
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
        bundle: impl Into<PathBuf>,
    ) -> Self {
        X509Files {
            cert: cert.into(),
            key: key.into(),
            bundle: bundle.into(),
            federated: Vec::new(),
        }
    }

    /// spiffe-helper's default names in `dir`: `svid.pem` (leaf, then
    /// intermediates), `svid_key.pem`, `svid_bundle.pem`.
    pub fn spiffe_helper(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        Self::new(
            dir.join("svid.pem"),
            dir.join("svid_key.pem"),
            dir.join("svid_bundle.pem"),
        )
    }

    /// What `spire-agent api fetch x509 -write DIR` writes for its first
    /// SVID: `svid.0.pem`, `svid.0.key`, `bundle.0.pem`, and every
    /// `federated_bundle.0.<n>.pem` (their trust domains are read from the
    /// CA certificates' SPIFFE URI SANs).
    pub fn spire_agent(dir: impl AsRef<Path>) -> Self {
        Self::spire_agent_index(dir, 0)
    }

    /// [`spire_agent`](Self::spire_agent) for the SVID of index `n`.
    pub fn spire_agent_index(dir: impl AsRef<Path>, n: u32) -> Self {
        let dir = dir.as_ref();
        let mut files = Self::new(
            dir.join(format!("svid.{n}.pem")),
            dir.join(format!("svid.{n}.key")),
            dir.join(format!("bundle.{n}.pem")),
        );
        files.federated.push(Federated::SpireDir(dir.to_owned(), n));
        files
    }

    /// cert-manager csi-driver-spiffe's volume: `tls.crt`, `tls.key`,
    /// `ca.crt`.
    pub fn csi_driver(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        Self::new(dir.join("tls.crt"), dir.join("tls.key"), dir.join("ca.crt"))
    }

    /// A service of a spiffile root (`spiffile x509 issue ROOT NAME`):
    /// `services/<name>/svid.pem`, `services/<name>/svid_key.pem`,
    /// `<root>/bundle.pem`.
    pub fn root(root: impl AsRef<Path>, name: &str) -> Self {
        let root = root.as_ref();
        let dir = root.join("services").join(name);
        Self::new(
            dir.join("svid.pem"),
            dir.join("svid_key.pem"),
            root.join("bundle.pem"),
        )
    }

    /// Adds a federated bundle file of `trust_domain` (`None`: read the
    /// trust domain from each CA certificate's SPIFFE URI SAN).
    #[must_use]
    pub fn federated(
        mut self,
        trust_domain: Option<TrustDomain>,
        path: impl Into<PathBuf>,
    ) -> Self {
        self.federated
            .push(Federated::File(trust_domain, path.into()));
        self
    }

    /// The certificate chain file.
    pub fn cert(&self) -> &Path {
        &self.cert
    }

    /// The private key file.
    pub fn key(&self) -> &Path {
        &self.key
    }

    /// The bundle file of the workload's own trust domain.
    pub fn bundle(&self) -> &Path {
        &self.bundle
    }

    /// Every federated bundle file, now (SPIRE's directory is listed).
    pub(crate) fn federated_files(&self) -> Vec<(Option<TrustDomain>, PathBuf)> {
        let mut out = Vec::new();
        for f in &self.federated {
            match f {
                Federated::File(td, path) => out.push((td.clone(), path.clone())),
                Federated::SpireDir(dir, n) => {
                    let prefix = format!("federated_bundle.{n}.");
                    let Ok(entries) = std::fs::read_dir(dir) else {
                        continue;
                    };
                    let mut found: Vec<PathBuf> = entries
                        .flatten()
                        .filter_map(|e| {
                            let name = e.file_name().into_string().ok()?;
                            (name.starts_with(&prefix) && name.ends_with(".pem")).then(|| e.path())
                        })
                        .collect();
                    found.sort();
                    out.extend(found.into_iter().map(|p| (None, p)));
                }
            }
        }
        out
    }

    /// Reads the certificate and key as one pair.
    pub(crate) fn read_svid(&self) -> Result<X509Svid, Error> {
        let chain = read(&self.cert)?;
        let key = zeroize::Zeroizing::new(read(&self.key)?);
        X509Svid::from_pem_named(
            &chain,
            &key,
            &format!("certificate chain {}", self.cert.display()),
            &format!("private key {}", self.key.display()),
        )
    }

    /// Reads the bundles; the workload's own trust domain is `own`.
    pub(crate) fn read_bundles(&self, own: &TrustDomain) -> Result<X509BundleSet, Error> {
        let mut set = X509BundleSet::new();
        add_bundle_file(&mut set, Some(own), &self.bundle)?;
        for (td, path) in self.federated_files() {
            add_bundle_file(&mut set, td.as_ref(), &path)?;
        }
        Ok(set)
    }
}

impl fmt::Debug for X509Files {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Files")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("bundle", &self.bundle)
            .finish_non_exhaustive()
    }
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, Error> {
    spiffile_watch::read_regular_file(path, MAX_FILE_BYTES)
        .map(|bytes| bytes.to_vec())
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
}

/// Adds the certificates of a bundle file, each to the bundle of the trust
/// domain its SPIFFE URI SAN names (a CA certificate says which trust
/// domain it signs for), else to `default`'s. So a bundle file that mixes
/// federated CAs into the local one (spiffe-helper's
/// `include_federated_domains`) never lets a federated CA sign local IDs.
pub(crate) fn add_bundle_file(
    set: &mut X509BundleSet,
    default: Option<&TrustDomain>,
    path: &Path,
) -> Result<(), Error> {
    let pem = read(path)?;
    add_bundle_bytes(set, default, path, &pem)
}

/// [`add_bundle_file`] on content already read.
pub(crate) fn add_bundle_bytes(
    set: &mut X509BundleSet,
    default: Option<&TrustDomain>,
    path: &Path,
    pem: &[u8],
) -> Result<(), Error> {
    let what = format!("bundle {}", path.display());
    let certs = certificates_from_pem(pem, &what)?;
    let mut groups: Vec<(TrustDomain, Vec<CertificateDer<'static>>)> = Vec::new();
    for (index, cert) in certs.into_iter().enumerate() {
        let td = match ca_trust_domain(&cert) {
            Some(td) => td,
            None => match default {
                Some(td) => td.clone(),
                None => {
                    return Err(Error::Root {
                        what,
                        index,
                        message: "a federated bundle certificate without a SPIFFE URI SAN: name its trust domain with X509Files::federated".into(),
                    });
                }
            },
        };
        match groups.iter_mut().find(|(t, _)| *t == td) {
            Some((_, group)) => group.push(cert),
            None => groups.push((td, vec![cert])),
        }
    }
    if groups.is_empty() {
        return Err(match default {
            Some(td) => Error::EmptyBundle {
                what,
                trust_domain: td.clone(),
            },
            None => Error::Pem {
                what,
                message: "no CERTIFICATE block".to_owned(),
            },
        });
    }
    for (td, mut certs) in groups {
        if let Some(existing) = set.get(&td) {
            let mut merged = existing.roots().to_vec();
            merged.append(&mut certs);
            certs = merged;
        }
        set.insert(X509Bundle::from_der_named(td, certs, &what)?);
    }
    Ok(())
}

/// The trust domain named by a CA certificate's SPIFFE URI SAN, if it has
/// exactly one such SAN.
fn ca_trust_domain(der: &[u8]) -> Option<TrustDomain> {
    let parsed = cert::parse(der).ok()?;
    let san = parsed.subject_alternative_name().ok()??;
    let mut ids = san.value.general_names.iter().filter_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(uri) => SpiffeId::new(uri).ok(),
        _ => None,
    });
    let id = ids.next()?;
    if ids.next().is_some() {
        return None;
    }
    Some(id.trust_domain().clone())
}
