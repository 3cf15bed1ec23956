//! A service's own files: its private key, its `id` file, its directory.

use std::path::Path;

use spiffile_bundle::PublicKey;
use spiffile_id::{SpiffeId, TrustDomain};
use spiffile_svid::{Zeroizing, generate_pkcs8_pem, public_key_of_pem};

use std::path::PathBuf;

use crate::fsutil::{create_dir_chain, write_atomic};
use crate::layout::Service;
use crate::nofollow::read_optional;
use crate::open::Open;
use crate::{Error, ID_FILE, SERVICES_DIR};

/// Largest key file read.
pub(crate) const MAX_KEY_BYTES: u64 = 64 * 1024;
/// Largest id file read.
pub(crate) const MAX_ID_BYTES: u64 = 4096;

pub(crate) fn read_key(path: &Path) -> Result<Option<PublicKey>, Error> {
    match read_optional(path, MAX_KEY_BYTES)? {
        None => Ok(None),
        Some(pem) => {
            let pem = Zeroizing::new(pem);
            public_key_of_pem(&pem)
                .map(Some)
                .map_err(|source| Error::Key {
                    path: path.to_owned(),
                    source,
                })
        }
    }
}

/// Writes a new private key file: created 0600, complete before it appears
/// under its name.
pub(crate) fn write_key(dir: &Path, name: &str) -> Result<PublicKey, Error> {
    crate::faults::check("key")?;
    let pem = generate_pkcs8_pem().map_err(|source| Error::Key {
        path: dir.join(name),
        source,
    })?;
    let public = public_key_of_pem(pem.as_bytes()).map_err(|source| Error::Key {
        path: dir.join(name),
        source,
    })?;
    write_atomic(dir, name, pem.as_bytes(), 0o600, false)?;
    Ok(public)
}

/// Checks the service's `id` file before anything is written: `Ok(true)`
/// when it holds the service's ID, `Ok(false)` when it is absent (to be
/// written), an error when it holds anything else.
pub(crate) fn check_id_file(service: &Service, td: &TrustDomain) -> Result<bool, Error> {
    let path = service.id_file();
    let Some(bytes) = read_optional(&path, MAX_ID_BYTES)? else {
        return Ok(false);
    };
    let text = String::from_utf8_lossy(&bytes);
    let found = text.trim_end();
    if found == service.id.as_str() {
        return Ok(true);
    }
    if let Ok(id) = SpiffeId::new(found)
        && id.trust_domain() != td
    {
        return Err(Error::TrustDomainMismatch {
            id,
            trust_domain: td.clone(),
        });
    }
    let mut found: String = found.chars().take(120).collect();
    if found.len() < text.trim_end().len() {
        found.push('…');
    }
    Err(Error::IdFileMismatch {
        path,
        found,
        expected: service.id.clone(),
    })
}

/// Writes the service's `id` file (checked absent by [`check_id_file`]).
pub(crate) fn write_id_file(service: &Service) -> Result<(), Error> {
    crate::faults::check("id")?;
    let text = format!("{}\n", service.id);
    write_atomic(&service.dir, ID_FILE, text.as_bytes(), 0o644, false)?;
    Ok(())
}

/// Creates `services/` (0755) and the service's directories (0700) that are
/// missing; returns the ones created, outermost first.
pub(crate) fn create_service_dir(open: &Open, service: &Service) -> Result<Vec<PathBuf>, Error> {
    let mut created = create_dir_chain(&open.root, [SERVICES_DIR], 0o755)?;
    created.extend(create_dir_chain(
        &open.services_dir(),
        service.segments(),
        0o700,
    )?);
    Ok(created)
}
