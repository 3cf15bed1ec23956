//! The repairs an operation makes under the exclusive lock (stale temporary
//! files, interrupted rotations) and the inconsistencies it reports.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use spiffile_id::SpiffeId;
use spiffile_svid::{Zeroizing, public_key_of_pem};

use crate::Error;
use crate::Notice;
use crate::fsutil::{self, TEMP_PREFIX, read_optional, remove_if_present, sync_dir};
use crate::layout::{DiskService, NEXT_KEY_FILE, service_dirs};
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
    pub(crate) fn report_inconsistencies(&mut self) {
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
}
