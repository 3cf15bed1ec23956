//! What an operation found in a root, or repaired on the way.

use std::fmt;
use std::path::PathBuf;

use spiffile_id::SpiffeId;

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
    /// A key on disk has no entry in the bundle (put there by hand, by
    /// another tool, or by someone who can write the directory).
    NotInBundle {
        /// The service name.
        name: String,
        /// The key file.
        key_file: PathBuf,
    },
    /// An `add` or rotation interrupted after the bundle was updated was
    /// finished: its staged key was put in place.
    RotationCompleted {
        /// The identity.
        id: SpiffeId,
    },
    /// An `add` or rotation interrupted before the bundle was updated was
    /// abandoned: its staged key, never bound, was deleted.
    RotationDiscarded {
        /// The service name.
        name: String,
    },
    /// A temporary file left by an interrupted write was deleted.
    TempFileRemoved {
        /// The file.
        path: PathBuf,
    },
    /// A directory of the root is writable by others or owned by another
    /// user: whoever can write it can replace the keys (or the bundle) in
    /// it.
    UnsafeDirectory {
        /// The directory.
        dir: PathBuf,
        /// What is wrong, and the fix.
        problem: String,
    },
    /// A `remove` interrupted before the bundle was written was undone: the
    /// key it had set aside is back in place (the service is unchanged).
    RemovalUndone {
        /// The identity.
        id: SpiffeId,
    },
    /// The set-aside key of a removed (revoked) service was deleted.
    RemovalCompleted {
        /// The service name.
        name: String,
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
                "not in bundle: {} has no bundle entry; spiffile did not bind it (it may have been put there by someone else): remove `{name}`, rotate it to issue a new key, or add it with --adopt-existing-key if it is the service's own",
                key_file.display()
            ),
            Notice::RotationCompleted { id } => {
                write!(
                    f,
                    "repaired: put in place the key of an interrupted add or rotation of `{id}`"
                )
            }
            Notice::RotationDiscarded { name } => write!(
                f,
                "repaired: discarded the unbound key of an interrupted add or rotation of `{name}`"
            ),
            Notice::TempFileRemoved { path } => write!(
                f,
                "repaired: deleted {} left by an interrupted write",
                path.display()
            ),
            Notice::UnsafeDirectory { dir, problem } => {
                write!(f, "unsafe: {} {problem}", dir.display())
            }
            Notice::RemovalUndone { id } => write!(
                f,
                "repaired: undid an interrupted remove of `{id}` (its key is back in place; run the remove again)"
            ),
            Notice::RemovalCompleted { name } => write!(
                f,
                "repaired: deleted the revoked key of the removed service `{name}`"
            ),
            Notice::FilesLeft { dir } => write!(
                f,
                "left {} in place: it holds files spiffile did not create",
                dir.display()
            ),
        }
    }
}
