//! `spiffile rotate` and `spiffile revoke-old`: a service's new key, and the
//! end of the overlap with its old ones.

use std::path::PathBuf;

use spiffile::provision;

use crate::output::{Failure, out, print_notices};

/// Give a service a new key, first in its bundle entry. The old keys stay
/// bound until `revoke-old` (or use --revoke-old to drop them now).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  spiffile rotate ./idroot orders\n  spiffile rotate ./idroot orders --revoke-old"
)]
pub struct RotateArgs {
    /// The root.
    root: PathBuf,
    /// The service.
    name: String,
    /// Drop the old keys from the bundle right away: tokens signed with
    /// them are refused as soon as peers read the new bundle.
    #[arg(long)]
    revoke_old: bool,
}

impl RotateArgs {
    /// Runs `spiffile rotate`.
    pub fn run(self) -> Result<(), Failure> {
        let old_keys = if self.revoke_old {
            provision::OldKeys::Revoke
        } else {
            provision::OldKeys::Keep
        };
        let r =
            provision::rotate_service(&self.root, &self.name, old_keys).map_err(Failure::failed)?;
        print_notices(&r.notices);
        out(&format!("rotated {}: new kid {}", r.id, r.kid));
        out(&format!(
            "bound keys (current first): {}",
            r.kids.join(", ")
        ));
        if !r.revoked.is_empty() {
            out(&format!("revoked: {}", r.revoked.join(", ")));
        }
        Ok(())
    }
}

/// Drop every key of a service except its current one (the end of a
/// rotation overlap).
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  spiffile revoke-old ./idroot orders")]
pub struct RevokeOldArgs {
    /// The root.
    root: PathBuf,
    /// The service.
    name: String,
}

impl RevokeOldArgs {
    /// Runs `spiffile revoke-old`.
    pub fn run(self) -> Result<(), Failure> {
        let r = provision::revoke_old_keys(&self.root, &self.name).map_err(Failure::failed)?;
        print_notices(&r.notices);
        if r.revoked.is_empty() {
            out(&format!(
                "{}: only the current key {} is bound",
                r.id, r.kid
            ));
        } else {
            out(&format!(
                "{}: kept {}, revoked {}",
                r.id,
                r.kid,
                r.revoked.join(", ")
            ));
        }
        Ok(())
    }
}
