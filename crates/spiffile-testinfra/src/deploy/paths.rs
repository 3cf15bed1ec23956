//! Where things live: the binary cache (outside the clone) and the run
//! directories (inside it, under `target/`, unless overridden).

use std::path::{Path, PathBuf};

/// The workspace root of this clone (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(Path::parent)
        .map_or_else(|| here.to_path_buf(), Path::to_path_buf)
}

/// The root of the binary cache: `$XDG_CACHE_HOME/spiffile-rs`, else
/// `$HOME/.cache/spiffile-rs`. Binaries live in
/// `<cache>/<component>/<version>/bin/`, shared by every clone of the
/// project on the machine.
pub fn cache_root() -> PathBuf {
    let base = non_empty_env("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty_env("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| std::env::temp_dir().join("spiffile-cache"));
    base.join("spiffile-rs")
}

/// The infrastructure directory of this clone: `$SPIFFILE_INFRA_DIR`, else
/// `<workspace>/target/infra`. Each deployment has its run directory below
/// it (`k8s/`, `spire/`); on-demand deployments started by a test process
/// live in `ondemand/<pid>/`.
pub fn infra_dir() -> PathBuf {
    non_empty_env("SPIFFILE_INFRA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("infra"))
}

pub(crate) fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
