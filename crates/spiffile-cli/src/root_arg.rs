//! `[ROOT] NAME…`: the root a provisioning command works on, from its first
//! argument or `SPIFFILE_ROOT`, and the service names after it.

use std::path::{Path, PathBuf};

use crate::exit::{self, check_not_swapped, is_root};
use crate::output::Failure;

/// The environment variable giving the root when the command line does not.
pub const ENV_ROOT: &str = "SPIFFILE_ROOT";

/// `SPIFFILE_ROOT`, when set and not empty.
pub fn env_root() -> Option<PathBuf> {
    std::env::var_os(ENV_ROOT)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A root given as an optional argument, else `SPIFFILE_ROOT`.
pub fn optional_root(arg: Option<PathBuf>) -> Option<PathBuf> {
    arg.or_else(env_root)
}

/// The root and the names of `spiffile COMMAND [ROOT] NAME…`.
///
/// With `SPIFFILE_ROOT` set, the first argument is the root only when it is
/// one (or when the command takes one name and two arguments were given);
/// otherwise every argument is a name. A root that is not one while a later
/// argument is gets "did you mean" with the arguments in order.
pub fn root_and_names(
    command: &str,
    args: Vec<String>,
    max_names: Option<usize>,
) -> Result<(PathBuf, Vec<String>), Failure> {
    let usage = || {
        let names = if max_names == Some(1) {
            "NAME"
        } else {
            "NAME…"
        };
        format!(
            "`spiffile {command} ROOT {names}`, or `spiffile {command} {names}` with {ENV_ROOT} set to the root"
        )
    };
    let env = env_root();
    let first_is_root = match (&env, args.first()) {
        (_, None) => {
            return Err(Failure::usage(format!(
                "spiffile {command} needs a service name: {}",
                usage()
            )));
        }
        (None, Some(_)) => true,
        (Some(_), Some(first)) => {
            is_root(Path::new(first)) || (max_names == Some(1) && args.len() == 2)
        }
    };
    let (root, names) = match env.filter(|_| !first_is_root) {
        Some(env) => (env, args),
        None => {
            let mut args = args.into_iter();
            let root = args.next().map(PathBuf::from).unwrap_or_default();
            (root, args.collect::<Vec<_>>())
        }
    };
    if names.is_empty() {
        let hint = if is_root(&root) {
            String::new()
        } else {
            format!(
                " ({} is not a spiffile root; if it is the service, give the root first or set {ENV_ROOT})",
                exit::shell_word(&root.to_string_lossy())
            )
        };
        return Err(Failure::usage(format!(
            "spiffile {command} needs a service name: {}{hint}",
            usage()
        )));
    }
    if let Some(max) = max_names
        && names.len() > max
    {
        return Err(Failure::usage(format!(
            "spiffile {command} takes one service name, not {}: {}",
            names.len(),
            usage()
        )));
    }
    let rest: Vec<&str> = names.iter().map(String::as_str).collect();
    check_not_swapped(command, &root, &rest)?;
    Ok((root, names))
}
