//! All-or-nothing operations: what an operation has written so far, undone
//! in reverse when a later step fails, so that its outcome is exactly "done
//! as asked" or "unchanged" ([`Error::RolledBack`]).
//!
//! Every operation validates everything it can before its first write. The
//! writes themselves are ordered so that one step (the bundle write, which
//! is atomic) commits: before it, undoing restores the root; after it, the
//! operation finishes, and a crash at any point leaves files the next
//! operation's housekeeping completes or discards.

use std::fs;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::fsutil::{self, remove_if_present, sync_dir, write_atomic};
use crate::open::Open;
use crate::{BUNDLE_FILE, SERVICES_DIR};

/// One write to undo.
enum Step {
    /// A file the operation created.
    Created(PathBuf),
    /// A directory the operation created.
    CreatedDir(PathBuf),
    /// A file the operation renamed: rename it back.
    Renamed { from: PathBuf, to: PathBuf },
    /// The bundle was rewritten: write back the bytes read when the root
    /// was opened.
    Bundle,
}

/// The writes of one operation, in order.
pub(crate) struct Undo {
    operation: String,
    steps: Vec<Step>,
}

impl Undo {
    pub(crate) fn new(operation: String) -> Self {
        Undo {
            operation,
            steps: Vec::new(),
        }
    }

    pub(crate) fn created(&mut self, path: PathBuf) {
        self.steps.push(Step::Created(path));
    }

    pub(crate) fn created_dirs(&mut self, dirs: Vec<PathBuf>) {
        self.steps.extend(dirs.into_iter().map(Step::CreatedDir));
    }

    pub(crate) fn renamed(&mut self, from: PathBuf, to: PathBuf) {
        self.steps.push(Step::Renamed { from, to });
    }

    pub(crate) fn bundle_written(&mut self) {
        self.steps.push(Step::Bundle);
    }

    /// The commit of `add` and `rotate`: writes `open`'s bundle (which now
    /// binds the key staged in `staged`), then renames the staged key over
    /// `key_file`. A failure of the rename is reported with the bundle
    /// already written, which [`Undo::roll_back`] then undoes.
    pub(crate) fn commit_staged_key(
        &mut self,
        open: &Open,
        staged: &Path,
        key_file: &Path,
        fault: &'static str,
    ) -> Result<(), Error> {
        open.write_bundle()?;
        self.bundle_written();
        crate::faults::check(fault)?;
        fs::rename(staged, key_file).map_err(fsutil::fail(key_file, "rename the new key over"))?;
        Ok(())
    }

    /// Undoes every step, newest first (stopping at one that fails), and
    /// returns the error to report:
    /// [`Error::RolledBack`] when the root is as it was, or
    /// [`Error::Incomplete`] with `state` (what the root holds, and what the
    /// next operation does with it) when undoing failed too.
    pub(crate) fn roll_back(self, open: &Open, cause: Error, state: &str) -> Error {
        let mut failure = None;
        for step in self.steps.into_iter().rev() {
            let result = match step {
                Step::Created(path) => remove_if_present(&path).map(|_| ()).map_err(Error::from),
                Step::CreatedDir(dir) => fs::remove_dir(&dir)
                    .map_err(fsutil::fail(&dir, "remove directory"))
                    .map_err(Error::from),
                Step::Renamed { from, to } => fs::rename(&to, &from)
                    .map_err(fsutil::fail(&from, "rename back"))
                    .map_err(Error::from),
                Step::Bundle => crate::faults::check("undo:bundle")
                    .and_then(|()| {
                        write_atomic(&open.root, BUNDLE_FILE, &open.original, 0o644, true)
                    })
                    .map_err(Error::from),
            };
            // Stop at the first step that cannot be undone: the earlier
            // writes are what the state left behind relies on (the staged
            // key a restored-or-not bundle binds).
            if let Err(e) = result {
                failure = Some(e);
                break;
            }
        }
        let _ = sync_dir(&open.root.join(SERVICES_DIR));
        match failure {
            None => Error::RolledBack {
                operation: self.operation,
                source: Box::new(cause),
            },
            Some(rollback) => Error::Incomplete {
                operation: self.operation,
                source: Box::new(cause),
                rollback: Box::new(rollback),
                state: state.to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    //! Failures injected after the first write of each operation: the
    //! outcome is "unchanged" (rolled back), or, when undoing fails too, a
    //! state the next operation completes.

    use std::fs;
    use std::path::{Path, PathBuf};

    use crate::faults::arm;
    use crate::{
        Error, Notice, OldKeys, add_service, init_root, list_services, remove_service,
        rotate_service,
    };

    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    out.push((e.path(), Vec::new()));
                    stack.push(e.path());
                } else {
                    out.push((e.path(), fs::read(e.path()).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    fn root() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        init_root(&root, "example.org").unwrap();
        add_service(&root, "orders").unwrap();
        (dir, root)
    }

    fn kids(root: &Path) -> Vec<String> {
        let b = spiffile_bundle::Bundle::from_json(&fs::read(root.join("bundle.json")).unwrap())
            .unwrap();
        b.keys(&"spiffe://example.org/orders".parse().unwrap())
            .map(|k| k.iter().map(|k| k.kid().to_owned()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_rotation_failing_after_the_bundle_write_is_rolled_back() {
        for keep_old in [OldKeys::Keep, OldKeys::Revoke] {
            let (_dir, root) = root();
            let before = snapshot(&root);
            arm("rotate:rename");
            let e = rotate_service(&root, "orders", keep_old).unwrap_err();
            assert!(matches!(e, Error::RolledBack { .. }), "{e}");
            assert!(e.to_string().contains("the root is unchanged"), "{e}");
            assert_eq!(snapshot(&root), before);
        }
    }

    #[test]
    fn a_rotation_that_cannot_be_undone_says_so_and_the_next_operation_completes_it() {
        let (_dir, root) = root();
        let old = kids(&root);
        arm("rotate:rename");
        arm("undo:bundle");
        let e = rotate_service(&root, "orders", OldKeys::Revoke).unwrap_err();
        assert!(matches!(e, Error::Incomplete { .. }), "{e}");
        assert!(e.to_string().contains("puts it in place"), "{e}");
        let new = kids(&root);
        assert_eq!(new.len(), 1);
        assert_ne!(new, old);
        let listed = list_services(&root).unwrap();
        assert_eq!(listed[0].status, crate::ServiceStatus::RotationPending);
        let a = add_service(&root, "orders").unwrap();
        assert!(
            a.notices
                .iter()
                .any(|n| matches!(n, Notice::RotationCompleted { .. }))
        );
        assert_eq!(a.kid, new[0], "rotated as asked");
        assert_eq!(
            list_services(&root).unwrap()[0].status,
            crate::ServiceStatus::Ok
        );
    }

    #[test]
    fn a_failed_add_leaves_nothing_behind() {
        for step in ["key", "id", "bundle", "add:rename"] {
            let (_dir, root) = root();
            let before = snapshot(&root);
            arm(step);
            let e = add_service(&root, "team/billing").unwrap_err();
            assert!(matches!(e, Error::RolledBack { .. }), "{step}: {e}");
            assert_eq!(snapshot(&root), before, "{step}");
        }
    }

    #[test]
    fn a_remove_failing_at_the_bundle_write_puts_the_key_back() {
        let (_dir, root) = root();
        let before = snapshot(&root);
        arm("bundle");
        let e = remove_service(&root, "orders").unwrap_err();
        assert!(matches!(e, Error::RolledBack { .. }), "{e}");
        assert_eq!(snapshot(&root), before);
    }

    #[test]
    fn a_remove_interrupted_by_a_crash_is_undone_or_finished() {
        // Set aside, bundle not written yet: put back.
        let (_dir, root) = root();
        let svc = root.join("services/orders");
        let before = snapshot(&root);
        fs::rename(
            svc.join("key.pem"),
            svc.join(crate::layout::REMOVED_KEY_FILE),
        )
        .unwrap();
        let a = add_service(&root, "billing").unwrap();
        assert!(
            a.notices
                .iter()
                .any(|n| matches!(n, Notice::RemovalUndone { .. })),
            "{:?}",
            a.notices
        );
        assert_eq!(
            fs::read(svc.join("key.pem")).unwrap(),
            before
                .iter()
                .find(|(p, _)| p.ends_with("orders/key.pem"))
                .unwrap()
                .1
        );
        // Set aside and the bundle written (revoked): deleted.
        fs::rename(
            svc.join("key.pem"),
            svc.join(crate::layout::REMOVED_KEY_FILE),
        )
        .unwrap();
        let mut b =
            spiffile_bundle::Bundle::from_json(&fs::read(root.join("bundle.json")).unwrap())
                .unwrap();
        b.remove_identity(&"spiffe://example.org/orders".parse().unwrap());
        fs::write(root.join("bundle.json"), b.to_json()).unwrap();
        let a = add_service(&root, "billing").unwrap();
        assert!(
            a.notices
                .iter()
                .any(|n| matches!(n, Notice::RemovalCompleted { .. })),
            "{:?}",
            a.notices
        );
        assert!(!svc.join(crate::layout::REMOVED_KEY_FILE).exists());
    }

    #[test]
    fn a_failed_init_leaves_no_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        arm("bundle");
        init_root(&root, "example.org").unwrap_err();
        assert!(!root.join("bundle.json").exists());
        assert!(!root.join("services").exists());
        init_root(&root, "example.org").unwrap();
    }
}
