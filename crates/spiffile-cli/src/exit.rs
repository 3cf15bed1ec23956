//! The exit codes, one table for every command, and the classification of
//! library errors into them (with the "did you mean" a person needs).

use std::path::Path;

use spiffile::provision;

use crate::output::Failure;

/// Success: done, token accepted, nothing wrong found.
pub const OK: u8 = 0;
/// Refused or unhealthy: a token was rejected; `list`, `status` or `bundle
/// check` found a problem; a provisioning step was refused or failed.
pub const FAILED: u8 = 1;
/// Usage: the command line is wrong.
pub const USAGE: u8 = 2;
/// Configuration: the identity to use is not configured or cannot be used.
pub const CONFIG: u8 = 3;

/// The table, as `--help` and the README show it (a test checks both).
pub const TABLE: &str = "\
Exit codes (the same for every command):
  0  success: done, token accepted, nothing wrong found
  1  refused or unhealthy: a token was rejected; list, status or bundle check
     found a problem; a provisioning step was refused or failed
  2  usage: the command line is wrong (an unknown command or option, a value
     that is not valid, a root or service that does not exist)
  3  configuration: the identity to use is not configured, or its files
     cannot be read or used
  exec passes on the program's own exit code (126: it cannot be run,
  127: it is not found; 128+N: it was killed by signal N)";

/// The exit code of a provisioning error: a name or root that does not
/// exist, or a value that is not valid, is usage; the rest is a refused or
/// failed operation.
pub fn provision_code(e: &provision::Error) -> u8 {
    use provision::Error as E;
    match e {
        E::NotARoot { .. }
        | E::InvalidTrustDomain { .. }
        | E::InvalidName { .. }
        | E::TrustDomainMismatch { .. }
        | E::UnknownService { .. } => USAGE,
        _ => FAILED,
    }
}

/// A provisioning error as a failure, with a suggestion for a misspelt
/// service name.
pub fn provision_failure(e: provision::Error) -> Failure {
    if let provision::Error::UnknownService { name, root } = &e
        && let Some(message) = unknown_service(name, root)
    {
        return Failure {
            message,
            code: USAGE,
        };
    }
    Failure {
        code: provision_code(&e),
        message: e.to_string(),
    }
}

/// The exit code of an error loading the identity to use.
pub fn identity_code(e: &spiffile::Error) -> u8 {
    use spiffile::Error as E;
    match e {
        E::Provision(p) => provision_code(p),
        E::InvalidTtl { .. } => USAGE,
        // Nothing to present right now (spiffe-helper not done, or stopped):
        // the operation failed, the configuration is fine.
        E::InvalidToken(_) | E::UnknownIdentity(_) | E::NoJwtSvid { .. } => FAILED,
        _ => CONFIG,
    }
}

/// An error loading the identity to use, as a failure.
pub fn identity_failure(e: spiffile::Error) -> Failure {
    match e {
        spiffile::Error::Provision(p) => provision_failure(p),
        other => Failure {
            code: identity_code(&other),
            message: other.to_string(),
        },
    }
}

/// "unknown service `ordres` in ROOT; did you mean `orders`?", when a
/// service of the root is close to the name.
fn unknown_service(name: &str, root: &Path) -> Option<String> {
    let names: Vec<String> = provision::list_services(root)
        .ok()?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let best = closest(name, names.iter().map(String::as_str))?;
    Some(format!(
        "unknown service `{name}` in {}; did you mean `{best}`? (its services: {})",
        root.display(),
        names.join(", ")
    ))
}

/// The candidate nearest to `typed`, if it is near enough to be a typo: at
/// most one edit for short names, two for longer ones (a swap of two
/// neighbouring letters counts as one).
pub fn closest<'a>(typed: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = if typed.chars().count() <= 4 { 1 } else { 2 };
    candidates
        .filter(|c| *c != typed)
        .map(|c| (edit_distance(typed, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: insertions, deletions, substitutions
/// and transpositions of neighbours each cost one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Whether `path` is a spiffile root (it holds `bundle.json`).
pub fn is_root(path: &Path) -> bool {
    path.join(provision::BUNDLE_FILE).is_file()
}

/// Refuses a command whose ROOT is not a root while one of its other
/// arguments is: "did you mean `spiffile add ./idroot orders`?".
///
/// `command` is the subcommand, `root` the argument taken as the root and
/// `rest` the arguments after it, in order.
pub fn check_not_swapped(command: &str, root: &Path, rest: &[&str]) -> Result<(), Failure> {
    if is_root(root) {
        return Ok(());
    }
    let Some(i) = rest.iter().position(|a| is_root(Path::new(a))) else {
        return Ok(());
    };
    let mut args: Vec<String> = rest.iter().map(|a| shell_word(a)).collect();
    let actual_root = args.remove(i);
    args.insert(i.min(args.len()), shell_word(&root.to_string_lossy()));
    Err(Failure {
        code: USAGE,
        message: format!(
            "{} is not a spiffile root, but {} is (the root comes first): did you mean `spiffile {command} {actual_root} {}`?",
            shell_word(&root.to_string_lossy()),
            shell_word(rest[i]),
            args.join(" ")
        ),
    })
}

/// A word as a person would type it back into a shell.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@,".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_near_and_other_names_are_not() {
        let names = ["orders", "billing", "team/orders", "db"];
        let c = |t| closest(t, names.into_iter());
        assert_eq!(c("ordres"), Some("orders"));
        assert_eq!(c("order"), Some("orders"));
        assert_eq!(c("biling"), Some("billing"));
        assert_eq!(c("team/ordrs"), Some("team/orders"));
        assert_eq!(c("dc"), Some("db"));
        assert_eq!(c("inventory"), None);
        assert_eq!(c("xy"), None);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("./idroot"), "./idroot");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word(""), "''");
    }
}
