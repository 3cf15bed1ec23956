//! Where X.509 material lives on disk: the layouts of spiffe-helper,
//! `spire-agent api fetch x509 -write`, cert-manager's csi-driver-spiffe and
//! a spiffile root.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use spiffile_id::{SpiffeId, TrustDomain};
use spiffile_watch::DirSource;

use crate::bundle::{X509Bundle, X509BundleSet, certificates_from_pem};
use crate::cert;
use crate::error::Error;
use crate::svid::X509Svid;

/// Largest file read (a PEM chain or bundle).
pub(crate) const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The files of one workload's X.509 material: its certificate chain, its
/// private key, its trust domain's bundle and any federated bundles.
///
/// Federated bundles are files ([`federated`](Self::federated)) or every
/// matching file of a directory ([`federated_dir`](Self::federated_dir);
/// SPIRE's `federated_bundle.N.M.pem` files are one): a watching source
/// picks up a bundle added to or removed from the directory later. Each
/// federated file holds the CAs of **one** trust domain, never the
/// workload's own (whose CAs come from its bundle file only), and no two
/// files hold the same trust domain; a file that breaks these rules is
/// refused ([`Error::FederatedBundle`]).
///
/// ```
/// use spiffile_tls::X509Files;
/// let helper = X509Files::spiffe_helper("/run/spiffe");      // svid.pem, svid_key.pem, svid_bundle.pem
/// let agent = X509Files::spire_agent("/tmp/x509");           // svid.0.pem, svid.0.key, bundle.0.pem, federated_bundle.0.N.pem
/// let csi = X509Files::csi_driver("/var/run/secrets/spiffe.io"); // tls.crt, tls.key, ca.crt
/// let root = X509Files::root("./idroot", "orders");          // services/orders/svid.pem, svid_key.pem, bundle.pem
/// assert!(helper.cert().ends_with("svid.pem"));
/// ```
#[derive(Clone)]
pub struct X509Files {
    cert: PathBuf,
    key: PathBuf,
    bundle: PathBuf,
    federated: Vec<Federated>,
}

#[derive(Clone)]
pub(crate) enum Federated {
    /// One file, of a named trust domain or of the one its CAs name.
    File(Option<TrustDomain>, PathBuf),
    /// Every matching file of a directory, each a trust domain its CAs name.
    Dir(DirSource),
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
    /// `federated_bundle.0.<m>.pem` in DIR, now and later (their trust
    /// domains are read from the CA certificates' SPIFFE URI SANs: SPIRE
    /// numbers the files in no stable order).
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
        files.federated.push(Federated::Dir(
            DirSource::new(dir).pattern(&format!("federated_bundle.{n}.*.pem")),
        ));
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

    /// Adds a federated bundle file of `trust_domain` (`None`: the trust
    /// domain its CA certificates name in their SPIFFE URI SAN, one for the
    /// whole file; with `Some`, CAs without such a SAN belong to it and a
    /// CA naming another trust domain is refused).
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

    /// Adds every file of a directory that `dir` matches as a federated
    /// bundle, each of the one trust domain its CA certificates name in
    /// their SPIFFE URI SAN (a Kubernetes volume of federated bundles, a
    /// directory a sync job writes). A watching source follows the
    /// directory: a bundle added later is trusted from the next handshake,
    /// a bundle removed is no longer trusted.
    ///
    /// ```
    /// use spiffile_tls::X509Files;
    /// use spiffile_watch::DirSource;
    /// let files = X509Files::spiffe_helper("/run/spiffe")
    ///     .federated_dir(DirSource::new("/etc/spiffe/federated").pattern("*.pem"));
    /// # let _ = files;
    /// ```
    #[must_use]
    pub fn federated_dir(mut self, dir: DirSource) -> Self {
        self.federated.push(Federated::Dir(dir));
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

    /// The federated bundle files and directories, in the order added.
    pub(crate) fn federated_sources(&self) -> &[Federated] {
        &self.federated
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

    /// Reads the bundles now (directories listed now); the workload's own
    /// trust domain is `own`.
    pub(crate) fn read_bundles(&self, own: &TrustDomain) -> Result<X509BundleSet, Error> {
        let mut bundles = Bundles::new(own.clone());
        bundles.add_own_file(&self.bundle, &read(&self.bundle)?)?;
        for federated in &self.federated {
            match federated {
                Federated::File(td, path) => {
                    let bundle = federated_bundle(own, td.as_ref(), path, &read(path)?)?;
                    bundles.add_federated(bundle, path)?;
                }
                Federated::Dir(dir) => {
                    for path in list_dir(dir)? {
                        let bundle = federated_bundle(own, None, &path, &read(&path)?)?;
                        bundles.add_federated(bundle, &path)?;
                    }
                }
            }
        }
        Ok(bundles.into_set())
    }
}

impl fmt::Debug for X509Files {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let federated: Vec<String> = self
            .federated
            .iter()
            .map(|f| match f {
                Federated::File(_, path) => path.display().to_string(),
                Federated::Dir(dir) => format!("{}/", dir.dir().display()),
            })
            .collect();
        f.debug_struct("X509Files")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("bundle", &self.bundle)
            .field("federated", &federated)
            .finish()
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

/// The regular, non-hidden files of `dir` it matches, sorted (what a
/// watching source sees at startup).
fn list_dir(dir: &DirSource) -> Result<Vec<PathBuf>, Error> {
    let io = |source| Error::Io {
        path: dir.dir().to_owned(),
        source,
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir.dir()).map_err(io)? {
        let entry = entry.map_err(io)?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        // Through symlinks (a Kubernetes volume's visible names).
        if dir.matches(&name) && entry.path().is_file() {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// A bundle set being assembled from the workload's own bundle file and
/// its federated bundles, with the rules that keep trust domains apart.
pub(crate) struct Bundles {
    own: TrustDomain,
    set: X509BundleSet,
    /// Each federated trust domain and the file it came from.
    federated: Vec<(TrustDomain, PathBuf)>,
}

impl Bundles {
    pub(crate) fn new(own: TrustDomain) -> Self {
        Bundles {
            own,
            set: X509BundleSet::new(),
            federated: Vec::new(),
        }
    }

    /// The workload's own bundle file: each certificate goes to the bundle
    /// of the trust domain its SPIFFE URI SAN names (a CA certificate says
    /// which trust domain it signs for), else to the own trust domain's. So
    /// a bundle file that mixes federated CAs into the local one
    /// (spiffe-helper's `include_federated_domains`) never lets a CA that
    /// names a federated trust domain sign local IDs.
    pub(crate) fn add_own_file(&mut self, path: &Path, pem: &[u8]) -> Result<(), Error> {
        let what = format!("bundle {}", path.display());
        let certs = certificates_from_pem(pem, &what)?;
        let mut groups: Vec<(TrustDomain, Vec<CertificateDer<'static>>)> = Vec::new();
        for cert in certs {
            let td = ca_trust_domain(&cert).unwrap_or_else(|| self.own.clone());
            match groups.iter_mut().find(|(t, _)| *t == td) {
                Some((_, group)) => group.push(cert),
                None => groups.push((td, vec![cert])),
            }
        }
        if !groups.iter().any(|(td, _)| *td == self.own) {
            return Err(Error::EmptyBundle {
                what,
                trust_domain: self.own.clone(),
            });
        }
        for (td, certs) in groups {
            self.merge(X509Bundle::from_der_named(td, certs, &what)?, &what)?;
        }
        Ok(())
    }

    /// A federated bundle ([`federated_bundle`]) from `path`: refused when
    /// another federated file already holds its trust domain.
    pub(crate) fn add_federated(&mut self, bundle: X509Bundle, path: &Path) -> Result<(), Error> {
        let td = bundle.trust_domain().clone();
        if let Some((_, first)) = self.federated.iter().find(|(t, _)| *t == td) {
            return Err(Error::FederatedBundle {
                what: format!("bundle {}", path.display()),
                message: format!(
                    "{} already holds the CAs of {td}: one file per federated trust domain",
                    first.display()
                ),
            });
        }
        self.federated.push((td, path.to_owned()));
        self.merge(bundle, &format!("bundle {}", path.display()))
    }

    /// Every bundle of `set` (an own bundle file read before).
    pub(crate) fn add_set(&mut self, set: &X509BundleSet) -> Result<(), Error> {
        for bundle in set.iter() {
            self.merge(bundle.clone(), "bundle")?;
        }
        Ok(())
    }

    /// Adds `bundle`'s roots to those already held for its trust domain.
    fn merge(&mut self, bundle: X509Bundle, what: &str) -> Result<(), Error> {
        let bundle = match self.set.get(bundle.trust_domain()) {
            Some(existing) => {
                let mut roots = existing.roots().to_vec();
                roots.extend(bundle.roots().iter().cloned());
                X509Bundle::from_der_named(bundle.trust_domain().clone(), roots, what)?
            }
            None => bundle,
        };
        self.set.insert(bundle);
        Ok(())
    }

    pub(crate) fn into_set(self) -> X509BundleSet {
        self.set
    }
}

/// One federated bundle file: the CAs of one trust domain, `named` or the
/// one their SPIFFE URI SANs name, which may not be `own` (the workload's
/// own CAs come from its bundle file alone: a federated trust domain cannot
/// slip a CA for ours into its bundle).
pub(crate) fn federated_bundle(
    own: &TrustDomain,
    named: Option<&TrustDomain>,
    path: &Path,
    pem: &[u8],
) -> Result<X509Bundle, Error> {
    let what = format!("bundle {}", path.display());
    let refuse = |message: String| Error::FederatedBundle {
        what: what.clone(),
        message,
    };
    let certs = certificates_from_pem(pem, &what)?;
    let mut trust_domain: Option<TrustDomain> = named.cloned();
    for (index, cert) in certs.iter().enumerate() {
        let td = match (ca_trust_domain(cert), named) {
            (Some(td), _) => td,
            (None, Some(named)) => named.clone(),
            (None, None) => {
                return Err(Error::Root {
                    what,
                    index,
                    message: "a federated bundle certificate without a SPIFFE URI SAN: name its trust domain with X509Files::federated".into(),
                });
            }
        };
        match &trust_domain {
            Some(first) if *first != td => {
                return Err(refuse(format!(
                    "certificate {index} is a CA of {td}, the file is {first}'s: \
                     a federated bundle file holds one trust domain"
                )));
            }
            Some(_) => {}
            None => trust_domain = Some(td),
        }
    }
    let Some(trust_domain) = trust_domain else {
        return Err(Error::Pem {
            what,
            message: "no CERTIFICATE block".to_owned(),
        });
    };
    if trust_domain == *own {
        return Err(refuse(format!(
            "a federated bundle of the workload's own trust domain {own}: its CAs come \
             from the bundle file only"
        )));
    }
    X509Bundle::from_der_named(trust_domain, certs, &what)
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
