//! `list_services`: every service of a root with its status.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use spiffile_id::SpiffeId;

use crate::audit;
use crate::layout::{check_service_paths, service_dirs};
use crate::open::Open;
use crate::service_files::read_key;
use crate::{Error, KEY_FILE};

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
    /// An `add` or a rotation was interrupted; the next provisioning
    /// operation finishes or discards it.
    RotationPending,
    /// A `remove` was interrupted; the next provisioning operation finishes
    /// it (the bundle no longer binds the key) or undoes it.
    RemovalPending,
    /// The key file cannot be read or parsed.
    KeyUnreadable(String),
    /// Someone other than this user can change the service's files: a
    /// directory on the way to it is writable by others or owned by another
    /// user, or a symbolic link (which spiffile refuses to follow). The text
    /// says which and how to fix it.
    Unsafe(String),
}

impl ServiceStatus {
    /// A stable `snake_case` code for scripts and monitoring (`ok`,
    /// `key_missing`, `not_in_bundle`, `key_not_bound`, `rotation_pending`,
    /// `removal_pending`, `key_unreadable`, `unsafe`); the `Display` form is
    /// for people.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceStatus::Ok => "ok",
            ServiceStatus::KeyMissing => "key_missing",
            ServiceStatus::NotInBundle => "not_in_bundle",
            ServiceStatus::KeyNotBound => "key_not_bound",
            ServiceStatus::RotationPending => "rotation_pending",
            ServiceStatus::RemovalPending => "removal_pending",
            ServiceStatus::KeyUnreadable(_) => "key_unreadable",
            ServiceStatus::Unsafe(_) => "unsafe",
        }
    }

    /// Whether key and bundle agree and nothing needs attention.
    pub fn is_ok(&self) -> bool {
        matches!(self, ServiceStatus::Ok)
    }

    /// The detail behind the status, when there is more to say than its
    /// code (why a key is unreadable, what makes a service unsafe).
    pub fn detail(&self) -> Option<&str> {
        match self {
            ServiceStatus::KeyUnreadable(why) | ServiceStatus::Unsafe(why) => Some(why),
            _ => None,
        }
    }
}

impl fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceStatus::Ok => f.write_str("ok"),
            ServiceStatus::KeyMissing => f.write_str("key missing"),
            ServiceStatus::NotInBundle => f.write_str("not in bundle"),
            ServiceStatus::KeyNotBound => f.write_str("key not bound"),
            ServiceStatus::RotationPending => f.write_str("rotation pending"),
            ServiceStatus::RemovalPending => f.write_str("removal pending"),
            ServiceStatus::KeyUnreadable(why) => write!(f, "key unreadable: {why}"),
            ServiceStatus::Unsafe(why) => write!(f, "unsafe: {why}"),
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

/// Lists the services of a root: every identity of the bundle and every
/// service directory holding a key, each with its status (a bundle entry
/// without its key is [`ServiceStatus::KeyMissing`]; a key without an entry
/// is [`ServiceStatus::NotInBundle`]; a service whose files others can
/// change is [`ServiceStatus::Unsafe`], which comes before every other
/// status). Sorted by name.
pub fn list_services(root: impl AsRef<Path>) -> Result<Vec<ServiceInfo>, Error> {
    let open = Open::read(root.as_ref())?;
    let root_problem = [open.root.clone(), open.services_dir()]
        .iter()
        .find_map(|d| audit::unsafe_dir(d).map(|p| format!("{} {p}", d.display())));
    let mut names: BTreeSet<String> = open
        .bundle
        .identities()
        .map(|(id, _)| id.path().trim_start_matches('/').to_owned())
        .collect();
    let mut pending = BTreeSet::new();
    let mut removing = BTreeSet::new();
    for dir in service_dirs(&open.services_dir()) {
        if dir.has_next_key {
            pending.insert(dir.name.clone());
        }
        if dir.has_removed_key {
            removing.insert(dir.name.clone());
        }
        if dir.has_key || dir.has_next_key || dir.has_removed_key {
            names.insert(dir.name);
        }
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let mut unsafe_problem = root_problem.clone();
        let (id, dir) = match open.service_at(&name) {
            Ok(s) => {
                if unsafe_problem.is_none() {
                    unsafe_problem = match check_service_paths(&open.services_dir(), &s) {
                        Err(e) => Some(e.to_string()),
                        Ok(()) => s
                            .existing_dirs(&open.services_dir())
                            .iter()
                            .skip(1)
                            .find_map(|d| {
                                audit::unsafe_dir(d).map(|p| format!("{} {p}", d.display()))
                            }),
                    };
                }
                (s.id, s.dir)
            }
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
        let status = if let Some(problem) = unsafe_problem {
            ServiceStatus::Unsafe(problem)
        } else if let Some(problem) = key_problem {
            ServiceStatus::KeyUnreadable(problem)
        } else if pending.contains(&name) {
            ServiceStatus::RotationPending
        } else if removing.contains(&name) {
            ServiceStatus::RemovalPending
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
