//! The X.509 part of a root on disk: opening it under the lock, repairing
//! what a crash left, resolving service names, reading and writing PEM.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use spiffile_bundle::Bundle;
use spiffile_id::{SpiffeId, TrustDomain};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use super::{CA_FILE, SVID_FILE, SVID_KEY_FILE, X509_BUNDLE_FILE, X509_DIR};
use crate::error::Error;
use crate::fsutil::{self, RESERVED_PREFIX, TEMP_PREFIX, remove_if_present, sync_dir};
use crate::lock::{self, RootLock};
use crate::nofollow::{self, read_optional};
use crate::{BUNDLE_FILE, ID_FILE, KEY_FILE, LOCK_FILE, SERVICES_DIR};

/// A staged new CA, put in place once the bundle holds its certificate.
pub(super) const NEXT_CA_FILE: &str = ".spiffile-next-ca.pem";
const MAX_PEM_BYTES: u64 = 1024 * 1024;
const MAX_BUNDLE_JSON_BYTES: u64 = 48 * 1024 * 1024;

/// A root opened for X.509 work, under its lock.
pub(super) struct X509Root {
    pub(super) root: PathBuf,
    pub(super) trust_domain: TrustDomain,
    _lock: Option<RootLock>,
}

impl X509Root {
    /// Exclusive lock, trust domain read from `bundle.json`, leftovers of a
    /// crash repaired.
    pub(super) fn write(root: &Path) -> Result<X509Root, Error> {
        crate::open::check_root(root)?;
        nofollow::check_dir(&root.join(X509_DIR))?;
        let lock = lock::lock_exclusive(&root.join(LOCK_FILE))?;
        let open = X509Root {
            trust_domain: trust_domain_of(root)?,
            root: root.to_owned(),
            _lock: Some(lock),
        };
        open.housekeeping()?;
        Ok(open)
    }

    /// Shared lock (when the lock file can be opened), no repairs.
    pub(super) fn read(root: &Path) -> Result<X509Root, Error> {
        crate::open::check_root(root)?;
        nofollow::check_dir(&root.join(X509_DIR))?;
        let lock = lock::lock_shared(&root.join(LOCK_FILE))?;
        Ok(X509Root {
            trust_domain: trust_domain_of(root)?,
            root: root.to_owned(),
            _lock: lock,
        })
    }

    pub(super) fn x509_dir(&self) -> PathBuf {
        self.root.join(X509_DIR)
    }

    pub(super) fn ca_file(&self) -> PathBuf {
        self.x509_dir().join(CA_FILE)
    }

    pub(super) fn bundle_file(&self) -> PathBuf {
        self.root.join(X509_BUNDLE_FILE)
    }

    fn services_dir(&self) -> PathBuf {
        self.root.join(SERVICES_DIR)
    }

    /// Deletes temporary files of the X.509 directories and finishes or
    /// discards an interrupted CA rotation.
    fn housekeeping(&self) -> Result<(), Error> {
        remove_temps(&self.root)?;
        remove_temps(&self.x509_dir())?;
        let staged = self.x509_dir().join(NEXT_CA_FILE);
        let Some(pem) = read_optional(&staged, MAX_PEM_BYTES)?.map(Zeroizing::new) else {
            return Ok(());
        };
        let staged_cert = certificates(&pem, &staged)?.into_iter().next();
        let in_bundle = match (&staged_cert, self.read_bundle()?) {
            (Some(cert), Some(bundle)) => bundle.contains(cert),
            _ => false,
        };
        if in_bundle {
            fs::rename(&staged, self.ca_file())
                .map_err(fsutil::fail(&self.ca_file(), "rename the staged CA over"))?;
            tracing::warn!(target: "spiffile::provision", "completed an interrupted CA rotation");
        } else {
            remove_if_present(&staged)?;
            tracing::warn!(target: "spiffile::provision", "discarded an interrupted CA rotation");
        }
        sync_dir(&self.x509_dir()).map_err(fsutil::fail(&self.x509_dir(), "fsync directory"))?;
        Ok(())
    }

    /// The certificates of `bundle.pem`; `None` when it does not exist.
    pub(super) fn read_bundle(&self) -> Result<Option<Vec<CertificateDer<'static>>>, Error> {
        let path = self.bundle_file();
        match read_optional(&path, MAX_PEM_BYTES)? {
            None => Ok(None),
            Some(pem) => certificates(&pem, &path).map(Some),
        }
    }

    /// Writes `bundle.pem` atomically.
    pub(super) fn write_bundle(&self, certs: &[CertificateDer<'_>]) -> Result<(), Error> {
        let pem: String = certs.iter().map(|c| pem_block("CERTIFICATE", c)).collect();
        fsutil::write_atomic(&self.root, X509_BUNDLE_FILE, pem.as_bytes(), 0o644, true)?;
        Ok(())
    }

    /// Resolves a service name (or a SPIFFE ID of the root's trust domain)
    /// to its ID and directory, with the rules of the JWT provisioning.
    pub(super) fn service(&self, name: &str) -> Result<(String, SpiffeId, PathBuf), Error> {
        let invalid = |problem: String| Error::InvalidName {
            name: name.to_owned(),
            problem,
        };
        let path = match name.strip_prefix(spiffile_id::SCHEME_PREFIX) {
            Some(_) => {
                let id = SpiffeId::new(name).map_err(|e| invalid(format!("it {e}")))?;
                if id.trust_domain() != &self.trust_domain {
                    return Err(Error::TrustDomainMismatch {
                        id,
                        trust_domain: self.trust_domain.clone(),
                    });
                }
                id.path().trim_start_matches('/').to_owned()
            }
            None => name.to_owned(),
        };
        if path.is_empty() {
            return Err(invalid(
                "it is empty (the trust domain itself is not a service)".into(),
            ));
        }
        let id = self
            .trust_domain
            .join(&path)
            .map_err(|e| invalid(format!("as a SPIFFE ID path, it {e}")))?;
        let mut dir = self.services_dir();
        for (i, segment) in path.split('/').enumerate() {
            if segment.starts_with(RESERVED_PREFIX) {
                return Err(invalid(format!(
                    "the segment {segment:?} starts with {RESERVED_PREFIX:?}, which spiffile reserves for its own files"
                )));
            }
            let reserved = [KEY_FILE, ID_FILE, SVID_FILE, SVID_KEY_FILE];
            if i > 0 && reserved.contains(&segment) {
                return Err(invalid(format!(
                    "the segment {segment:?} would collide with the {segment} file of the service above it"
                )));
            }
            dir.push(segment);
        }
        // No link is followed on the way to the service or at its files
        // (the rule of every per-service operation, see `nofollow`).
        nofollow::check_dirs(&self.services_dir(), path.split('/'))?;
        for file in [SVID_FILE, SVID_KEY_FILE] {
            nofollow::entry(&dir.join(file))?;
        }
        Ok((path, id, dir))
    }

    /// Every service directory holding an `svid.pem` or `svid_key.pem`,
    /// with its name. Symbolic links and spiffile's own entries are not
    /// followed.
    pub(super) fn svid_dirs(&self) -> Vec<(String, PathBuf)> {
        let mut found = Vec::new();
        let mut stack = vec![(self.services_dir(), String::new(), 0usize)];
        while let Some((dir, name, depth)) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            let mut has_svid = false;
            for entry in entries.flatten() {
                let Ok(file_type) = entry.file_type() else {
                    continue;
                };
                let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if file_type.is_dir() {
                    if depth < 64 && !file_name.starts_with(RESERVED_PREFIX) {
                        let child = if name.is_empty() {
                            file_name
                        } else {
                            format!("{name}/{file_name}")
                        };
                        stack.push((entry.path(), child, depth + 1));
                    }
                } else if file_name == SVID_FILE || file_name == SVID_KEY_FILE {
                    has_svid = true;
                }
            }
            if depth > 0 && has_svid {
                found.push((name, dir));
            }
        }
        found.sort();
        found
    }
}

fn trust_domain_of(root: &Path) -> Result<TrustDomain, Error> {
    let path = root.join(BUNDLE_FILE);
    let bytes = read_optional(&path, MAX_BUNDLE_JSON_BYTES)?.ok_or_else(|| Error::NotARoot {
        root: root.to_owned(),
    })?;
    Bundle::from_json_quiet(&bytes)
        .map(|b| b.trust_domain().clone())
        .map_err(|source| Error::Bundle { path, source })
}

fn remove_temps(dir: &Path) -> Result<(), Error> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let is_temp = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TEMP_PREFIX));
        if is_temp && entry.file_type().is_ok_and(|t| t.is_file()) {
            remove_if_present(&entry.path())?;
        }
    }
    Ok(())
}

/// Reads a file that must exist.
pub(super) fn read_required(path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    read_optional(path, MAX_PEM_BYTES)?
        .map(Zeroizing::new)
        .ok_or_else(|| Error::Certificate {
            path: path.to_owned(),
            problem: "does not exist".to_owned(),
        })
}

/// Every `CERTIFICATE` block of a PEM document.
pub(super) fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Certificate {
            path: path.to_owned(),
            problem: format!("bad PEM: {e}"),
        })
}

/// The private key of a PEM document (never quoted in errors).
pub(super) fn private_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| Error::Certificate {
        path: path.to_owned(),
        problem: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "has no PRIVATE KEY block".to_owned(),
            e => format!("bad private key PEM: {e}"),
        },
    })
}

/// A parsed certificate; the error names the file.
pub(super) fn parse<'a>(der: &'a [u8], path: &Path) -> Result<X509Certificate<'a>, Error> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(Error::Certificate {
            path: path.to_owned(),
            problem: "trailing bytes after the certificate".to_owned(),
        }),
        Err(e) => Err(Error::Certificate {
            path: path.to_owned(),
            problem: format!("not an X.509 certificate: {e}"),
        }),
    }
}

pub(super) fn system_time(t: x509_parser::time::ASN1Time) -> SystemTime {
    let secs = t.timestamp();
    let abs = std::time::Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + abs
    } else {
        SystemTime::UNIX_EPOCH
            .checked_sub(abs)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// One PEM block (RFC 7468: 64-column base64).
pub(super) fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}
