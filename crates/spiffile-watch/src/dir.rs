//! Which files of a directory a directory source reads.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default [`DirSource::max_files`].
pub const DEFAULT_MAX_FILES: usize = 1024;
/// Default [`DirSource::max_total_size`] (64 MiB).
pub const DEFAULT_MAX_TOTAL_SIZE: u64 = 64 * 1024 * 1024;
/// Default [`DirSource::removal_grace`].
pub const DEFAULT_REMOVAL_GRACE: Duration = Duration::from_millis(25);
/// Longest accepted [`DirSource::removal_grace`]; longer values are clamped.
pub const MAX_REMOVAL_GRACE: Duration = Duration::from_secs(1);

/// A directory whose matching files are parsed and combined into one value
/// (see [`Watched::dir`](crate::Watched::dir)).
///
/// Which entries are files of the source:
///
/// * names starting with `.` never are: hidden files, the temporary files of
///   most atomic writers (`.bundle.json.tmp`), and the internals of a
///   Kubernetes volume (`..data`, `..data_tmp`, `..2026_11_24_…`);
/// * of the others, those the filter accepts ([`pattern`](Self::pattern),
///   [`filter`](Self::filter); default: every name) and that are regular
///   files or symlinks to regular files (a Kubernetes volume's visible
///   `bundle.json -> ..data/bundle.json` is read through its link);
///   subdirectories are not descended into.
///
/// ```
/// use std::time::Duration;
/// use spiffile_watch::DirSource;
///
/// let bundles = DirSource::new("/etc/spiffe/bundles")
///     .pattern("*.json")
///     .max_files(256)
///     .max_total_size(16 * 1024 * 1024)
///     .removal_grace(Duration::from_millis(25));
/// assert!(bundles.matches("example.org.json"));
/// assert!(!bundles.matches("README"));
/// assert!(!bundles.matches(".example.org.json.tmp"));
/// ```
#[derive(Clone)]
pub struct DirSource {
    dir: PathBuf,
    filter: Filter,
    max_files: usize,
    max_total_size: u64,
    removal_grace: Duration,
}

#[derive(Clone)]
enum Filter {
    All,
    Pattern(String),
    Fn(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl DirSource {
    /// Every regular, non-hidden file in `dir` (see [`DirSource`]).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirSource {
            dir: dir.into(),
            filter: Filter::All,
            max_files: DEFAULT_MAX_FILES,
            max_total_size: DEFAULT_MAX_TOTAL_SIZE,
            removal_grace: DEFAULT_REMOVAL_GRACE,
        }
    }

    /// Only names matching a shell-style pattern: `*` matches any run of
    /// characters, `?` one character, everything else itself (`*.json`,
    /// `svid.?.pem`, `federated_bundle.0.*.pem`). Replaces any earlier
    /// filter.
    #[must_use]
    pub fn pattern(mut self, pattern: &str) -> Self {
        self.filter = Filter::Pattern(pattern.to_owned());
        self
    }

    /// Only names `accept` returns `true` for (names starting with `.` are
    /// skipped before it is asked). Replaces any earlier filter.
    #[must_use]
    pub fn filter(mut self, accept: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Filter::Fn(Arc::new(accept));
        self
    }

    /// The most matching files accepted (default [`DEFAULT_MAX_FILES`]).
    /// With more, the directory is not read: an error, the last good value
    /// stays.
    #[must_use]
    pub fn max_files(mut self, count: usize) -> Self {
        self.max_files = count;
        self
    }

    /// The largest total size of the matching files, in bytes (default
    /// [`DEFAULT_MAX_TOTAL_SIZE`], 64 MiB). Over it, the directory is not
    /// read: an error, the last good value stays. Each file is also held to
    /// [`WatchOptions::max_size`](crate::WatchOptions::max_size).
    #[must_use]
    pub fn max_total_size(mut self, bytes: u64) -> Self {
        self.max_total_size = bytes;
        self
    }

    /// How long a file that vanished keeps its place in the value (default
    /// 25 ms, at most [`MAX_REMOVAL_GRACE`]).
    ///
    /// Writers that delete and recreate a file leave it missing for a
    /// moment; within the grace the value does not lose it. A file that
    /// stays missing is dropped from the value once the grace has passed, so
    /// a removal takes effect within the grace plus the usual latency.
    /// `Duration::ZERO` drops a file the moment it is seen missing.
    #[must_use]
    pub fn removal_grace(mut self, grace: Duration) -> Self {
        self.removal_grace = grace.min(MAX_REMOVAL_GRACE);
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether an entry named `name` would be one of the source's files (if
    /// it is a regular file): not hidden, and accepted by the filter.
    pub fn matches(&self, name: &str) -> bool {
        if name.starts_with('.') || name.is_empty() {
            return false;
        }
        match &self.filter {
            Filter::All => true,
            Filter::Pattern(pattern) => glob_match(pattern, name),
            Filter::Fn(accept) => accept(name),
        }
    }

    pub(crate) fn current_max_files(&self) -> usize {
        self.max_files
    }

    pub(crate) fn current_max_total_size(&self) -> u64 {
        self.max_total_size
    }

    pub(crate) fn current_removal_grace(&self) -> Duration {
        self.removal_grace
    }

    pub(crate) fn with_dir(mut self, dir: PathBuf) -> Self {
        self.dir = dir;
        self
    }
}

impl fmt::Debug for DirSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let filter = match &self.filter {
            Filter::All => "every file".to_owned(),
            Filter::Pattern(p) => format!("pattern {p:?}"),
            Filter::Fn(_) => "a filter function".to_owned(),
        };
        f.debug_struct("DirSource")
            .field("dir", &self.dir)
            .field("filter", &filter)
            .field("max_files", &self.max_files)
            .field("max_total_size", &self.max_total_size)
            .field("removal_grace", &self.removal_grace)
            .finish()
    }
}

/// Shell-style matching of a whole name: `*` any run, `?` one character.
/// Linear backtracking on the last `*` (no recursion, no blow-up).
fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob() {
        for (p, n, want) in [
            ("*.json", "a.json", true),
            ("*.json", ".json", true),
            ("*.json", "a.json.tmp", false),
            ("*.json", "a.jsonx", false),
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("svid.?.pem", "svid.0.pem", true),
            ("svid.?.pem", "svid.10.pem", false),
            (
                "federated_bundle.0.*.pem",
                "federated_bundle.0.12.pem",
                true,
            ),
            (
                "federated_bundle.0.*.pem",
                "federated_bundle.1.12.pem",
                false,
            ),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("**a", "bba", true),
            ("é?", "éü", true),
        ] {
            assert_eq!(glob_match(p, n), want, "{p:?} vs {n:?}");
        }
        // Pathological patterns stay linear-ish.
        let name = "a".repeat(2000);
        assert!(!glob_match("*a*a*a*a*a*a*b", &name));
    }
}
