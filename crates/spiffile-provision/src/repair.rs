//! The repairs an operation makes under the exclusive lock (stale temporary
//! files, interrupted rotations) and the inconsistencies it reports.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use spiffile_id::SpiffeId;
use spiffile_svid::{Zeroizing, public_key_of_pem};

use crate::Error;
use crate::Notice;
use crate::fsutil::{self, TEMP_PREFIX, remove_if_present, sync_dir};
use crate::layout::{DiskService, NEXT_KEY_FILE, REMOVED_KEY_FILE, service_dirs};
use crate::nofollow;
use crate::open::Open;
use crate::service_files::MAX_KEY_BYTES;

impl Open {
    /// Deletes stale temporary files and finishes or discards interrupted
    /// rotations. Runs under the exclusive lock, so no other provisioner
    /// that honours the lock is writing.
    pub(crate) fn housekeeping(&mut self) -> Result<(), Error> {
        let root = self.root.clone();
        self.remove_temps(&root)?;
        for dir in service_dirs(&self.services_dir()) {
            self.remove_temps(&dir.path)?;
            if dir.has_next_key {
                self.resolve_staged_key(&dir)?;
            }
            if dir.has_removed_key {
                self.resolve_removed_key(&dir)?;
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
        let bound = match (&service, self.kid_of(&staged)) {
            (Some(s), Some(kid)) => self.bundle_kids(&s.id).contains(&kid),
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

    /// The kid of the key in `path`, if it is a readable key file and not a
    /// link (a link is never put in place).
    fn kid_of(&self, path: &Path) -> Option<String> {
        let pem = nofollow::read_optional(path, MAX_KEY_BYTES)
            .ok()
            .flatten()
            .map(Zeroizing::new)?;
        public_key_of_pem(&pem).ok().map(|k| k.kid().to_owned())
    }

    /// A key set aside by an interrupted `remove`: put back when the bundle
    /// still binds it (the removal never committed), deleted when it does
    /// not (the identity is revoked).
    fn resolve_removed_key(&mut self, dir: &DiskService) -> Result<(), Error> {
        let aside = dir.path.join(REMOVED_KEY_FILE);
        let service = self.service_at(&dir.name).ok();
        let bound = match (&service, self.kid_of(&aside)) {
            (Some(s), Some(kid)) => self.bundle_kids(&s.id).contains(&kid),
            _ => false,
        };
        match service {
            Some(s) if bound && !dir.has_key => {
                fs::rename(&aside, s.key_file())
                    .map_err(fsutil::fail(&s.key_file(), "put back the set-aside key as"))?;
                sync_dir(&s.dir).map_err(fsutil::fail(&s.dir, "fsync directory"))?;
                self.note(Notice::RemovalUndone { id: s.id });
            }
            // Bound, but a key is in place again: leave both for the user.
            Some(_) if bound => {}
            _ => {
                remove_if_present(&aside)?;
                sync_dir(&dir.path).map_err(fsutil::fail(&dir.path, "fsync directory"))?;
                self.note(Notice::RemovalCompleted {
                    name: dir.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Reports bundle entries without a key and keys without an entry.
    pub(crate) fn report_inconsistencies(&mut self) {
        let mut on_disk = BTreeSet::new();
        for dir in service_dirs(&self.services_dir()) {
            if !dir.has_key {
                continue;
            }
            if let Ok(s) = self.service_at(&dir.name) {
                if !self.bundle.contains(&s.id) {
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
}
