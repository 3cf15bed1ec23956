//! The operations on a root.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use spiffile_bundle::{Bundle, MAX_BUNDLE_BYTES, PublicKey, WarningKind};
use spiffile_id::{SpiffeId, TrustDomain};
use spiffile_svid::{Zeroizing, generate_pkcs8_pem, public_key_of_pem};

use crate::fsutil::{
    self, RESERVED_PREFIX, RootLock, TEMP_PREFIX, create_dirs, read_optional, remove_if_present,
    sync_dir, write_atomic,
};
use crate::{
    BUNDLE_FILE, ENV_BUNDLE_FILE, ENV_ID_FILE, ENV_KEY_FILE, Error, ID_FILE, KEY_FILE, LOCK_FILE,
    SERVICES_DIR,
};

/// A rotated key staged beside `key.pem` until the bundle holds it.
const NEXT_KEY_FILE: &str = ".spiffile-next-key.pem";
/// Largest key file read.
const MAX_KEY_BYTES: u64 = 64 * 1024;
/// Largest id file read.
const MAX_ID_BYTES: u64 = 4096;
/// Deepest service directory looked at (a SPIFFE ID is at most 2048 bytes).
const MAX_DEPTH: usize = 1024;

// ---------------------------------------------------------------------------
// Public result types

/// What [`add_service`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddAction {
    /// A new key was generated and bound to the new identity.
    Created,
    /// The service existed with its key bound: nothing changed.
    Unchanged,
    /// A key was on disk without being bound to the identity in the bundle
    /// (an interrupted `add`, or a producer that crashed mid-rotation); it
    /// was bound (first in the identity's list).
    Repaired,
}

/// The result of [`add_service`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Added {
    /// The service's SPIFFE ID.
    pub id: SpiffeId,
    /// The `kid` of its current key.
    pub kid: String,
    /// What was done.
    pub action: AddAction,
    /// Inconsistencies found in the root and repairs made on the way.
    pub notices: Vec<Notice>,
}

/// The result of [`rotate_service`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Rotated {
    /// The service's SPIFFE ID.
    pub id: SpiffeId,
    /// The `kid` of the new key (first in the bundle).
    pub kid: String,
    /// The kids bound to the identity after the rotation, in bundle order.
    pub kids: Vec<String>,
    /// The kids dropped from the bundle (when the old keys were not kept).
    pub revoked: Vec<String>,
    /// Inconsistencies found in the root and repairs made on the way.
    pub notices: Vec<Notice>,
}

/// The result of [`revoke_old_keys`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Revoked {
    /// The service's SPIFFE ID.
    pub id: SpiffeId,
    /// The `kid` kept (the key in `key.pem`).
    pub kid: String,
    /// The kids dropped from the bundle.
    pub revoked: Vec<String>,
    /// Inconsistencies found in the root and repairs made on the way.
    pub notices: Vec<Notice>,
}

/// The result of [`remove_service`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Removed {
    /// The service's SPIFFE ID.
    pub id: SpiffeId,
    /// The kids dropped from the bundle.
    pub revoked: Vec<String>,
    /// Inconsistencies found in the root and repairs made on the way.
    pub notices: Vec<Notice>,
}

/// Something found in a root (and reported as a warning) or repaired on the
/// way by an operation that holds the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The bundle holds keys for an identity whose private key file is
    /// missing (an interrupted `remove`, or a key moved away).
    KeyMissing {
        /// The identity.
        id: SpiffeId,
        /// Where its key should be.
        key_file: PathBuf,
    },
    /// A key on disk has no entry in the bundle (an interrupted `add`).
    NotInBundle {
        /// The service name.
        name: String,
        /// The key file.
        key_file: PathBuf,
    },
    /// A rotation interrupted after the bundle was updated was finished: its
    /// staged key was put in place.
    RotationCompleted {
        /// The identity.
        id: SpiffeId,
    },
    /// A rotation interrupted before the bundle was updated was abandoned:
    /// its staged key, never bound, was deleted.
    RotationDiscarded {
        /// The service name.
        name: String,
    },
    /// A temporary file left by an interrupted write was deleted.
    TempFileRemoved {
        /// The file.
        path: PathBuf,
    },
    /// A removed service's directory still holds other files and was left.
    FilesLeft {
        /// The directory.
        dir: PathBuf,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::KeyMissing { id, key_file } => write!(
                f,
                "key missing: `{id}` is in the bundle but {} does not exist; remove the service to revoke it, or rotate it with --revoke-old to issue a new key",
                key_file.display()
            ),
            Notice::NotInBundle { name, key_file } => write!(
                f,
                "not in bundle: {} has no bundle entry (an interrupted add?); add `{name}` again to bind it, or remove it",
                key_file.display()
            ),
            Notice::RotationCompleted { id } => {
                write!(f, "repaired: finished an interrupted rotation of `{id}`")
            }
            Notice::RotationDiscarded { name } => write!(
                f,
                "repaired: discarded the unbound key of an interrupted rotation of `{name}`"
            ),
            Notice::TempFileRemoved { path } => write!(
                f,
                "repaired: deleted {} left by an interrupted write",
                path.display()
            ),
            Notice::FilesLeft { dir } => write!(
                f,
                "left {} in place: it holds files spiffile did not create",
                dir.display()
            ),
        }
    }
}

/// The state of one service in [`list_services`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceStatus {
    /// Its key is on disk and bound to it in the bundle.
    Ok,
    /// The bundle holds keys for it but its key file is missing.
    KeyMissing,
    /// Its key is on disk but it has no bundle entry.
    NotInBundle,
    /// It has a bundle entry, but the key on disk is not among its keys.
    KeyNotBound,
    /// A rotation was interrupted; the next provisioning operation finishes
    /// or discards it.
    RotationPending,
    /// The key file cannot be read or parsed.
    KeyUnreadable(String),
}

impl fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceStatus::Ok => f.write_str("ok"),
            ServiceStatus::KeyMissing => f.write_str("key missing"),
            ServiceStatus::NotInBundle => f.write_str("not in bundle"),
            ServiceStatus::KeyNotBound => f.write_str("key not bound"),
            ServiceStatus::RotationPending => f.write_str("rotation pending"),
            ServiceStatus::KeyUnreadable(why) => write!(f, "key unreadable: {why}"),
        }
    }
}

/// One service of a root, as [`list_services`] finds it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceInfo {
    /// The service name (the SPIFFE ID path without its leading slash).
    pub name: String,
    /// Its SPIFFE ID.
    pub id: SpiffeId,
    /// Its directory.
    pub dir: PathBuf,
    /// The kids bound to it in the bundle, in bundle order (current first).
    pub kids: Vec<String>,
    /// The kid of the key in its `key.pem`, when readable.
    pub key_kid: Option<String>,
    /// Whether key and bundle agree.
    pub status: ServiceStatus,
}

/// The files of a provisioned service and the `SPIFFILE_*` variables that
/// name them (see [`service_env`]). The `spiffile` facade loads an
/// `Identity` from it (`spiffile::provision::load_identity`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceEnv {
    /// The service's SPIFFE ID.
    pub id: SpiffeId,
    /// Its identity file (absolute path).
    pub id_file: PathBuf,
    /// Its private key file (absolute path).
    pub key_file: PathBuf,
    /// The root's bundle file (absolute path).
    pub bundle_file: PathBuf,
}

impl ServiceEnv {
    /// `SPIFFILE_ID_FILE`, `SPIFFILE_KEY_FILE` and `SPIFFILE_BUNDLE_FILE` with
    /// their values, in that order.
    pub fn vars(&self) -> [(&'static str, &Path); 3] {
        [
            (ENV_ID_FILE, self.id_file.as_path()),
            (ENV_KEY_FILE, self.key_file.as_path()),
            (ENV_BUNDLE_FILE, self.bundle_file.as_path()),
        ]
    }
}

// ---------------------------------------------------------------------------
// Internals

/// A service name resolved against a root.
struct Service {
    name: String,
    id: SpiffeId,
    dir: PathBuf,
}

impl Service {
    fn key_file(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }
    fn id_file(&self) -> PathBuf {
        self.dir.join(ID_FILE)
    }
}

/// A root opened under its lock, with its bundle read.
struct Open {
    root: PathBuf,
    bundle: Bundle,
    notices: Vec<Notice>,
    _lock: Option<RootLock>,
}

fn bundle_path(root: &Path) -> PathBuf {
    root.join(BUNDLE_FILE)
}

fn read_bundle(root: &Path) -> Result<Bundle, Error> {
    let path = bundle_path(root);
    match read_optional(&path, MAX_BUNDLE_BYTES as u64)? {
        None => Err(Error::NotARoot {
            root: root.to_owned(),
        }),
        Some(bytes) => {
            Bundle::from_json_quiet(&bytes).map_err(|source| Error::Bundle { path, source })
        }
    }
}

fn check_root_dir(root: &Path) -> Result<(), Error> {
    if root.is_dir() {
        Ok(())
    } else {
        Err(Error::NotARoot {
            root: root.to_owned(),
        })
    }
}

impl Open {
    /// Opens for writing: exclusive lock, bundle read, leftovers repaired.
    fn write(root: &Path) -> Result<Open, Error> {
        check_root_dir(root)?;
        if !bundle_path(root).exists() {
            return Err(Error::NotARoot {
                root: root.to_owned(),
            });
        }
        let lock = fsutil::lock_exclusive(&root.join(LOCK_FILE))?;
        let bundle = read_bundle(root)?;
        let problems: Vec<String> = bundle
            .warnings()
            .iter()
            .filter(|w| w.kind != WarningKind::Advice)
            .map(|w| w.to_string())
            .collect();
        if !problems.is_empty() {
            return Err(Error::UnreadableEntries {
                path: bundle_path(root),
                problems,
            });
        }
        let mut open = Open {
            root: root.to_owned(),
            bundle,
            notices: Vec::new(),
            _lock: Some(lock),
        };
        open.housekeeping()?;
        Ok(open)
    }

    /// Opens for reading: shared lock when possible, bundle read.
    fn read(root: &Path) -> Result<Open, Error> {
        check_root_dir(root)?;
        let lock = fsutil::lock_shared(&root.join(LOCK_FILE));
        let bundle = read_bundle(root)?;
        Ok(Open {
            root: root.to_owned(),
            bundle,
            notices: Vec::new(),
            _lock: lock,
        })
    }

    fn services_dir(&self) -> PathBuf {
        self.root.join(SERVICES_DIR)
    }

    /// Resolves a service name (or a full SPIFFE ID of the root's trust
    /// domain).
    fn service(&self, name: &str) -> Result<Service, Error> {
        let td = self.bundle.trust_domain();
        let path = match name.strip_prefix(spiffile_id::SCHEME_PREFIX) {
            Some(_) => {
                let id = SpiffeId::new(name).map_err(|e| Error::InvalidName {
                    name: name.to_owned(),
                    problem: format!("it {e}"),
                })?;
                if id.trust_domain() != td {
                    return Err(Error::TrustDomainMismatch {
                        id,
                        trust_domain: td.clone(),
                    });
                }
                id.path().trim_start_matches('/').to_owned()
            }
            None => name.to_owned(),
        };
        self.service_at(&path)
            .map_err(|problem| Error::InvalidName {
                name: name.to_owned(),
                problem,
            })
    }

    fn service_at(&self, path: &str) -> Result<Service, String> {
        if path.is_empty() {
            return Err("it is empty (the trust domain itself is not a service)".into());
        }
        let id = self
            .bundle
            .trust_domain()
            .join(path)
            .map_err(|e| format!("as a SPIFFE ID path, it {e}"))?;
        let mut dir = self.services_dir();
        for (i, segment) in path.split('/').enumerate() {
            if segment.starts_with(RESERVED_PREFIX) {
                return Err(format!(
                    "the segment {segment:?} starts with {RESERVED_PREFIX:?}, which spiffile reserves for its own files"
                ));
            }
            if i > 0 && (segment == KEY_FILE || segment == ID_FILE) {
                return Err(format!(
                    "the segment {segment:?} would collide with the {segment} file of the service above it"
                ));
            }
            dir.push(segment);
        }
        Ok(Service {
            name: path.to_owned(),
            id,
            dir,
        })
    }

    fn bundle_kids(&self, id: &SpiffeId) -> Vec<String> {
        self.bundle
            .keys(id.as_str())
            .map(|keys| keys.iter().map(|k| k.kid().to_owned()).collect())
            .unwrap_or_default()
    }

    fn write_bundle(&self) -> Result<(), Error> {
        let json = self.bundle.to_json();
        write_atomic(&self.root, BUNDLE_FILE, json.as_bytes(), 0o644, true)?;
        Ok(())
    }

    fn note(&mut self, notice: Notice) {
        tracing::warn!(target: "spiffile::provision", "{notice}");
        self.notices.push(notice);
    }

    /// Deletes stale temporary files and finishes or discards interrupted
    /// rotations. Runs under the exclusive lock, so no other provisioner
    /// that honours the lock is writing.
    fn housekeeping(&mut self) -> Result<(), Error> {
        let root = self.root.clone();
        self.remove_temps(&root)?;
        for dir in service_dirs(&self.services_dir()) {
            self.remove_temps(&dir.path)?;
            if dir.has_next_key {
                self.resolve_staged_key(&dir)?;
            }
        }
        Ok(())
    }

    fn remove_temps(&mut self, dir: &Path) -> Result<(), Error> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let is_temp = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TEMP_PREFIX));
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_temp && is_file && remove_if_present(&entry.path())? {
                self.note(Notice::TempFileRemoved { path: entry.path() });
            }
        }
        Ok(())
    }

    fn resolve_staged_key(&mut self, dir: &DiskService) -> Result<(), Error> {
        let staged = dir.path.join(NEXT_KEY_FILE);
        let service = self.service_at(&dir.name).ok();
        let pem = read_optional(&staged, MAX_KEY_BYTES)?.map(Zeroizing::new);
        let kid = pem
            .as_ref()
            .and_then(|p| public_key_of_pem(p).ok())
            .map(|k| k.kid().to_owned());
        let bound = match (&service, &kid) {
            (Some(s), Some(kid)) => self.bundle_kids(&s.id).contains(kid),
            _ => false,
        };
        match service {
            Some(s) if bound => {
                fs::rename(&staged, s.key_file())
                    .map_err(fsutil::fail(&s.key_file(), "rename the staged key over"))?;
                sync_dir(&s.dir).map_err(fsutil::fail(&s.dir, "fsync directory"))?;
                self.note(Notice::RotationCompleted { id: s.id });
            }
            _ => {
                remove_if_present(&staged)?;
                sync_dir(&dir.path).map_err(fsutil::fail(&dir.path, "fsync directory"))?;
                self.note(Notice::RotationDiscarded {
                    name: dir.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Reports bundle entries without a key and keys without an entry.
    fn report_inconsistencies(&mut self) {
        let mut on_disk = BTreeSet::new();
        for dir in service_dirs(&self.services_dir()) {
            if !dir.has_key {
                continue;
            }
            if let Ok(s) = self.service_at(&dir.name) {
                if !self.bundle.contains(s.id.as_str()) {
                    self.note(Notice::NotInBundle {
                        name: s.name.clone(),
                        key_file: s.key_file(),
                    });
                }
                on_disk.insert(s.id);
            }
        }
        let missing: Vec<SpiffeId> = self
            .bundle
            .identities()
            .map(|(id, _)| id.clone())
            .filter(|id| !on_disk.contains(id))
            .collect();
        for id in missing {
            let key_file = self
                .service_at(id.path().trim_start_matches('/'))
                .map(|s| s.key_file())
                .unwrap_or_else(|_| self.services_dir());
            self.note(Notice::KeyMissing { id, key_file });
        }
    }

    fn finish(mut self) -> Vec<Notice> {
        self.report_inconsistencies();
        self.notices
    }
}

/// A directory under `services/` that holds service files.
struct DiskService {
    name: String,
    path: PathBuf,
    has_key: bool,
    has_next_key: bool,
}

/// Walks `services/` for directories holding `key.pem`, `id`, a staged key
/// or a temporary file. Symbolic links and spiffile's own files are not followed.
fn service_dirs(services: &Path) -> Vec<DiskService> {
    let mut found = Vec::new();
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(services.to_owned(), String::new(), 0)];
    while let Some((dir, name, depth)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let (mut has_key, mut has_id, mut has_next_key, mut has_temp) =
            (false, false, false, false);
        for entry in entries.flatten() {
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if file_type.is_dir() {
                if depth < MAX_DEPTH && !file_name.starts_with(RESERVED_PREFIX) {
                    let child = if name.is_empty() {
                        file_name
                    } else {
                        format!("{name}/{file_name}")
                    };
                    stack.push((entry.path(), child, depth + 1));
                }
                continue;
            }
            match file_name.as_str() {
                KEY_FILE => has_key = true,
                ID_FILE => has_id = true,
                NEXT_KEY_FILE => has_next_key = true,
                n if n.starts_with(TEMP_PREFIX) => has_temp = true,
                _ => {}
            }
        }
        // A directory holding only a temporary file is an `add` interrupted
        // before its key was in place: listed for the housekeeping.
        if depth > 0 && (has_key || has_id || has_next_key || has_temp) {
            found.push(DiskService {
                name,
                path: dir,
                has_key,
                has_next_key,
            });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

fn read_key(path: &Path) -> Result<Option<PublicKey>, Error> {
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
fn write_key(dir: &Path, name: &str) -> Result<PublicKey, Error> {
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

/// Makes sure the service's `id` file holds its ID (writing it when absent).
fn ensure_id_file(service: &Service, td: &TrustDomain) -> Result<(), Error> {
    let path = service.id_file();
    match read_optional(&path, MAX_ID_BYTES)? {
        None => {
            let text = format!("{}\n", service.id);
            write_atomic(&service.dir, ID_FILE, text.as_bytes(), 0o644, false)?;
            Ok(())
        }
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let found = text.trim_end();
            if found == service.id.as_str() {
                return Ok(());
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
    }
}

fn create_service_dir(open: &Open, service: &Service) -> Result<(), Error> {
    let services = open.services_dir();
    if !services.is_dir() {
        create_dirs(&services, 0o755)?;
    }
    create_dirs(&service.dir, 0o700)?;
    Ok(())
}

fn in_bundle_error(e: spiffile_bundle::BundleError, root: &Path) -> Error {
    Error::Bundle {
        path: bundle_path(root),
        source: e,
    }
}

// ---------------------------------------------------------------------------
// Operations

/// Initializes a root for `trust_domain`: creates the directory (if needed),
/// `services/`, and an empty `bundle.json`.
///
/// Fails with [`Error::AlreadyInitialized`] when the root already has a
/// bundle.
pub fn init_root(root: impl AsRef<Path>, trust_domain: &str) -> Result<TrustDomain, Error> {
    let root = root.as_ref();
    let td = TrustDomain::new(trust_domain).map_err(|source| Error::InvalidTrustDomain {
        given: trust_domain.chars().take(300).collect(),
        source,
    })?;
    create_dirs(root, 0o755)?;
    let _lock = fsutil::lock_exclusive(&root.join(LOCK_FILE))?;
    if bundle_path(root).exists() {
        let existing = match read_bundle(root) {
            Ok(b) => b.trust_domain().to_string(),
            Err(_) => "unreadable".to_owned(),
        };
        return Err(Error::AlreadyInitialized {
            root: root.to_owned(),
            trust_domain: existing,
        });
    }
    create_dirs(&root.join(SERVICES_DIR), 0o755)?;
    let bundle = Bundle::new(td.clone());
    write_atomic(root, BUNDLE_FILE, bundle.to_json().as_bytes(), 0o644, false)?;
    Ok(td)
}

/// Adds a service: a new key pair (`services/<name>/key.pem`, 0600), its
/// `id` file, and its public key bound to `spiffe://<td>/<name>` in the
/// bundle.
///
/// Idempotent: an existing service keeps its key ([`AddAction::Unchanged`]).
/// A key on disk that the bundle does not bind (an interrupted `add`) is
/// bound ([`AddAction::Repaired`]). A bundle entry whose key file is gone is
/// [`Error::KeyMissing`]: `add` does not guess whether to revoke or re-key.
///
/// `name` is a SPIFFE ID path (`orders`, `team/orders`) or a full SPIFFE ID of
/// the root's trust domain.
pub fn add_service(root: impl AsRef<Path>, name: &str) -> Result<Added, Error> {
    let mut open = Open::write(root.as_ref())?;
    let service = open.service(name)?;
    let key_file = service.key_file();
    let bound = open.bundle_kids(&service.id);
    let existing = read_key(&key_file)?;
    if existing.is_none() && !bound.is_empty() {
        return Err(Error::KeyMissing {
            name: service.name,
            id: service.id,
            key_file,
        });
    }
    create_service_dir(&open, &service)?;
    let (key, generated) = match existing {
        Some(k) => (k, false),
        None => (write_key(&service.dir, KEY_FILE)?, true),
    };
    ensure_id_file(&service, open.bundle.trust_domain())?;
    let kid = key.kid().to_owned();
    let action = if bound.contains(&kid) {
        AddAction::Unchanged
    } else {
        open.bundle
            .add_key_first(&service.id, key)
            .map_err(|e| in_bundle_error(e, &open.root))?;
        open.write_bundle()?;
        if generated {
            AddAction::Created
        } else {
            AddAction::Repaired
        }
    };
    Ok(Added {
        id: service.id,
        kid,
        action,
        notices: open.finish(),
    })
}

/// Rotates a service's key: a new key pair is bound first in the identity's
/// list and replaces `key.pem`. The old keys stay bound (for the overlap
/// while the new key and bundle are distributed) unless `keep_old` is false.
///
/// The order is safe at every instant: the new key is staged beside the old
/// one, added to the bundle, then renamed over `key.pem`; the old keys are
/// dropped last.
pub fn rotate_service(
    root: impl AsRef<Path>,
    name: &str,
    keep_old: bool,
) -> Result<Rotated, Error> {
    let mut open = Open::write(root.as_ref())?;
    let service = open.service(name)?;
    let old = open.bundle_kids(&service.id);
    if old.is_empty() && !service.key_file().exists() {
        return Err(Error::UnknownService {
            name: service.name,
            root: open.root.clone(),
        });
    }
    create_service_dir(&open, &service)?;
    let key = write_key(&service.dir, NEXT_KEY_FILE)?;
    let kid = key.kid().to_owned();
    open.bundle
        .add_key_first(&service.id, key.clone())
        .map_err(|e| in_bundle_error(e, &open.root))?;
    open.write_bundle()?;
    let key_file = service.key_file();
    fs::rename(service.dir.join(NEXT_KEY_FILE), &key_file)
        .map_err(fsutil::fail(&key_file, "rename the new key over"))?;
    sync_dir(&service.dir).map_err(fsutil::fail(&service.dir, "fsync directory"))?;
    ensure_id_file(&service, open.bundle.trust_domain())?;
    let mut revoked = Vec::new();
    if !keep_old {
        revoked = old;
        open.bundle
            .set_keys(&service.id, vec![key])
            .map_err(|e| in_bundle_error(e, &open.root))?;
        open.write_bundle()?;
    }
    Ok(Rotated {
        kids: open.bundle_kids(&service.id),
        id: service.id,
        kid,
        revoked,
        notices: open.finish(),
    })
}

/// Drops every key bound to a service except the one in its `key.pem`: the
/// end of a rotation overlap, once every holder of the old key has the new
/// one.
pub fn revoke_old_keys(root: impl AsRef<Path>, name: &str) -> Result<Revoked, Error> {
    let mut open = Open::write(root.as_ref())?;
    let service = open.service(name)?;
    let key_file = service.key_file();
    let bound = open.bundle_kids(&service.id);
    let Some(key) = read_key(&key_file)? else {
        if bound.is_empty() {
            return Err(Error::UnknownService {
                name: service.name,
                root: open.root.clone(),
            });
        }
        return Err(Error::KeyMissing {
            name: service.name,
            id: service.id,
            key_file,
        });
    };
    let kid = key.kid().to_owned();
    if !bound.contains(&kid) {
        return Err(Error::KeyNotBound {
            name: service.name,
            id: service.id,
            key_file,
            kid,
        });
    }
    let revoked: Vec<String> = bound.into_iter().filter(|k| *k != kid).collect();
    if !revoked.is_empty() {
        open.bundle
            .set_keys(&service.id, vec![key])
            .map_err(|e| in_bundle_error(e, &open.root))?;
        open.write_bundle()?;
    }
    Ok(Revoked {
        id: service.id,
        kid,
        revoked,
        notices: open.finish(),
    })
}

/// Removes a service: its key file first, then its bundle entry (revocation:
/// peers refuse its tokens once they read the new bundle), then its `id`
/// file and its directory (left in place, with a [`Notice::FilesLeft`], if
/// it holds other files or nested services).
pub fn remove_service(root: impl AsRef<Path>, name: &str) -> Result<Removed, Error> {
    let mut open = Open::write(root.as_ref())?;
    let service = open.service(name)?;
    let in_bundle = open.bundle.contains(service.id.as_str());
    let has_files = service.key_file().exists() || service.id_file().exists();
    if !in_bundle && !has_files {
        return Err(Error::UnknownService {
            name: service.name,
            root: open.root.clone(),
        });
    }
    if remove_if_present(&service.key_file())? {
        sync_dir(&service.dir).map_err(fsutil::fail(&service.dir, "fsync directory"))?;
    }
    let revoked: Vec<String> = open
        .bundle
        .remove_identity(service.id.as_str())
        .map(|keys| keys.iter().map(|k| k.kid().to_owned()).collect())
        .unwrap_or_default();
    if in_bundle {
        open.write_bundle()?;
    }
    remove_if_present(&service.id_file())?;
    // Remove the directory and then its empty parents, up to `services/`.
    let services = open.services_dir();
    let mut dir = service.dir.clone();
    let mut first = true;
    while dir != services && dir.starts_with(&services) {
        match fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => {
                if first {
                    open.note(Notice::FilesLeft { dir: dir.clone() });
                }
                break;
            }
        }
        first = false;
        if !dir.pop() {
            break;
        }
    }
    let _ = sync_dir(&services);
    Ok(Removed {
        id: service.id,
        revoked,
        notices: open.finish(),
    })
}

/// The three `SPIFFILE_*` variables (absolute paths) for a service, for its
/// process environment: `SPIFFILE_ID_FILE`, `SPIFFILE_KEY_FILE`,
/// `SPIFFILE_BUNDLE_FILE`.
///
/// Fails with [`Error::UnknownService`] when the service has neither a
/// bundle entry nor files.
pub fn service_env(root: impl AsRef<Path>, name: &str) -> Result<ServiceEnv, Error> {
    let root = root.as_ref();
    check_root_dir(root)?;
    let root = fs::canonicalize(root).map_err(fsutil::fail(root, "resolve"))?;
    let open = Open::read(&root)?;
    let service = open.service(name)?;
    if !open.bundle.contains(service.id.as_str())
        && !service.key_file().exists()
        && !service.id_file().exists()
    {
        return Err(Error::UnknownService {
            name: service.name,
            root: open.root.clone(),
        });
    }
    Ok(ServiceEnv {
        id_file: service.id_file(),
        key_file: service.key_file(),
        bundle_file: bundle_path(&root),
        id: service.id,
    })
}

/// Lists the services of a root: every identity of the bundle and every
/// service directory holding a key, each with its status (a bundle entry
/// without its key is [`ServiceStatus::KeyMissing`]; a key without an entry
/// is [`ServiceStatus::NotInBundle`]). Sorted by name.
pub fn list_services(root: impl AsRef<Path>) -> Result<Vec<ServiceInfo>, Error> {
    let open = Open::read(root.as_ref())?;
    let mut names: BTreeSet<String> = open
        .bundle
        .identities()
        .map(|(id, _)| id.path().trim_start_matches('/').to_owned())
        .collect();
    let mut pending = BTreeSet::new();
    for dir in service_dirs(&open.services_dir()) {
        if dir.has_next_key {
            pending.insert(dir.name.clone());
        }
        if dir.has_key || dir.has_next_key {
            names.insert(dir.name);
        }
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let (id, dir) = match open.service_at(&name) {
            Ok(s) => (s.id, s.dir),
            // An identity of the bundle whose path cannot be a directory
            // here (such as the trust domain's own ID): listed without one.
            Err(_) => match open.bundle.trust_domain().join(&name) {
                Ok(id) => (id, open.services_dir()),
                Err(_) => continue,
            },
        };
        let kids = open.bundle_kids(&id);
        let key_file = dir.join(KEY_FILE);
        let (key_kid, key_problem) = if dir == open.services_dir() {
            (None, None)
        } else {
            match read_key(&key_file) {
                Ok(k) => (k.map(|k| k.kid().to_owned()), None),
                Err(e) => (None, Some(e.to_string())),
            }
        };
        let status = if let Some(problem) = key_problem {
            ServiceStatus::KeyUnreadable(problem)
        } else if pending.contains(&name) {
            ServiceStatus::RotationPending
        } else {
            match (&key_kid, kids.is_empty()) {
                (None, _) => ServiceStatus::KeyMissing,
                (Some(_), true) => ServiceStatus::NotInBundle,
                (Some(kid), false) if !kids.contains(kid) => ServiceStatus::KeyNotBound,
                _ => ServiceStatus::Ok,
            }
        };
        out.push(ServiceInfo {
            name,
            id,
            dir,
            kids,
            key_kid,
            status,
        });
    }
    Ok(out)
}
