//! A directory: every matching file parsed on its own, then combined.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::{Checked, Engine, run_parser};
use crate::dir::DirSource;
use crate::error::{Origin, WatchError};
use crate::input::{DirEntry, FileRef};
use crate::read::{Hash, Seen, digest, read_file};
use crate::status::FileStatus;
use crate::worker::Mode;

pub(crate) type FileParser<U, E> = Box<dyn Fn(&FileRef<'_>) -> Result<U, E> + Send + Sync>;
pub(crate) type Combiner<T, U, E> = Box<dyn Fn(&[DirEntry<U>]) -> Result<T, E> + Send + Sync>;

/// The last content of a file that its parser accepted.
struct Good<U> {
    hash: Hash,
    value: Arc<U>,
}

/// One matching file of the directory.
struct Member<U> {
    name: Arc<str>,
    path: Arc<Path>,
    good: Option<Good<U>>,
    /// Metadata when `good` (or an unchanged content) was last read.
    seen: Option<Seen>,
    error: Option<String>,
    /// When the file was first seen missing (it keeps its place in the
    /// value until the removal grace has passed).
    missing_since: Option<Instant>,
    /// Hash of this file's content in the served value.
    served: Option<Hash>,
    generation: u64,
    loaded_at: Option<SystemTime>,
}

impl<U> Member<U> {
    fn new(name: &str, path: PathBuf) -> Self {
        Member {
            name: name.into(),
            path: path.into(),
            good: None,
            seen: None,
            error: None,
            missing_since: None,
            served: None,
            generation: 0,
            loaded_at: None,
        }
    }
}

/// A file listed in the directory.
struct Listed {
    name: String,
    path: PathBuf,
    len: u64,
}

/// Each file is parsed on its own, only when its content changed; a file
/// that stops parsing keeps its last good content in the value (and reports
/// its error), so one bad file never holds back the others' changes. The
/// combining parser then builds the value from every file's parsed content
/// whenever that set changed; if it refuses, the last good value stays.
pub(crate) struct DirEngine<T, E, U> {
    source: DirSource,
    max_size: u64,
    parse_file: FileParser<U, E>,
    combine: Combiner<T, U, E>,
    members: BTreeMap<String, Member<U>>,
    /// (name, hash) of the files the served value was built from; `None`
    /// before the first value.
    served: Option<Vec<(Arc<str>, Hash)>>,
    failing: bool,
}

impl<T, E, U> DirEngine<T, E, U> {
    /// `source.dir()` is absolute.
    pub(crate) fn new(
        source: DirSource,
        max_size: u64,
        parse_file: FileParser<U, E>,
        combine: Combiner<T, U, E>,
    ) -> Self {
        DirEngine {
            source,
            max_size,
            parse_file,
            combine,
            members: BTreeMap::new(),
            served: None,
            failing: false,
        }
    }

    fn dir(&self) -> &Path {
        self.source.dir()
    }

    fn fail(&mut self, error: WatchError<E>) -> Checked<T, E> {
        self.failing = true;
        Checked {
            value: None,
            error: Some(error),
            looked: true,
            wake_at: None,
        }
    }
}

/// The matching regular files (or symlinks to regular files) of the
/// directory, with their sizes.
fn list(source: &DirSource) -> io::Result<Vec<Listed>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(source.dir())? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            tracing::debug!(dir = %source.dir().display(), "skipping a file name that is not UTF-8");
            continue;
        };
        if !source.matches(name) {
            continue;
        }
        let path = entry.path();
        // Follows symlinks: a Kubernetes entry is a link into `..data/`.
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => out.push(Listed {
                name: name.to_owned(),
                path,
                len: meta.len(),
            }),
            // Directories, FIFOs, sockets, devices: not files of the source.
            Ok(_) => {}
            // A dangling link (Kubernetes removes a key's link after the
            // swap) or a file deleted since the listing: not there.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // Cannot even stat it: let the read report why.
            Err(_) => out.push(Listed {
                name: name.to_owned(),
                path,
                len: 0,
            }),
        }
    }
    Ok(out)
}

fn limit(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::FileTooLarge, message)
}

impl<T, E: std::fmt::Display, U: Send + Sync> Engine<T, E> for DirEngine<T, E, U> {
    fn check(&mut self, mode: Mode) -> Checked<T, E> {
        let listing = match list(&self.source) {
            Ok(listing) => listing,
            Err(source) => {
                let error = WatchError::io(self.dir(), source);
                return self.fail(error);
            }
        };
        let max_files = self.source.current_max_files();
        if listing.len() > max_files {
            let error = WatchError::io(
                self.dir(),
                limit(format!(
                    "holds {} matching files, more than the limit of {max_files}",
                    listing.len()
                )),
            );
            return self.fail(error);
        }
        let total: u64 = listing.iter().map(|l| l.len).sum();
        let max_total = self.source.current_max_total_size();
        if total > max_total {
            let error = WatchError::io(
                self.dir(),
                limit(format!(
                    "holds {total} bytes in {} matching files, more than the limit of {max_total} bytes",
                    listing.len()
                )),
            );
            return self.fail(error);
        }
        if mode == Mode::Poll
            && !self.failing
            && listing.len() == self.members.len()
            && listing.iter().all(|l| {
                self.members.get(&l.name).is_some_and(|m| {
                    m.missing_since.is_none()
                        && m.seen.is_some_and(|seen| seen.still_matches(&m.path))
                })
            })
        {
            return Checked::unchanged_unread();
        }

        let now = Instant::now();
        let read_at = SystemTime::now();
        let mut first_error: Option<WatchError<E>> = None;
        let mut present: HashSet<String> = HashSet::with_capacity(listing.len());
        for listed in listing {
            let member = self
                .members
                .entry(listed.name.clone())
                .or_insert_with(|| Member::new(&listed.name, listed.path));
            match read_file(&member.path, self.max_size) {
                Ok((bytes, stamp)) => {
                    member.missing_since = None;
                    present.insert(listed.name);
                    let hash = digest(&bytes);
                    if member.good.as_ref().is_some_and(|g| g.hash == hash) {
                        member.error = None;
                        member.seen = Some(Seen { stamp, read_at });
                        continue;
                    }
                    let file = FileRef::new(&member.name, &member.path, &bytes);
                    let path = &member.path;
                    let parsed = run_parser(
                        || Origin::File(path.to_path_buf()),
                        || (self.parse_file)(&file),
                    );
                    match parsed {
                        Ok(value) => {
                            member.good = Some(Good {
                                hash,
                                value: Arc::new(value),
                            });
                            member.error = None;
                            member.seen = Some(Seen { stamp, read_at });
                        }
                        Err(error) => {
                            member.error = Some(error.to_string());
                            member.seen = None;
                            first_error.get_or_insert(error);
                        }
                    }
                }
                // Deleted between the listing and the read: handled below
                // like any file that is gone.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    member.missing_since = None;
                    present.insert(listed.name);
                    let error = WatchError::io(member.path.to_path_buf(), source);
                    member.error = Some(error.to_string());
                    member.seen = None;
                    first_error.get_or_insert(error);
                }
            }
        }

        // Files that are gone: dropped once the removal grace has passed
        // (at once if they were never part of a value).
        let grace = self.source.current_removal_grace();
        let mut wake_at: Option<Instant> = None;
        self.members.retain(|name, member| {
            if present.contains(name) {
                return true;
            }
            if member.good.is_none() {
                return false;
            }
            member.error = None;
            member.seen = None;
            let since = *member.missing_since.get_or_insert(now);
            let until = since + grace;
            if now >= until {
                tracing::debug!(path = %member.path.display(), "file removed from the directory");
                return false;
            }
            wake_at = Some(wake_at.map_or(until, |w| w.min(until)));
            true
        });

        let candidate: Vec<(Arc<str>, Hash)> = self
            .members
            .values()
            .filter_map(|m| m.good.as_ref().map(|g| (Arc::clone(&m.name), g.hash)))
            .collect();
        let mut value = None;
        let mut combine_error = None;
        if self.served.as_ref() != Some(&candidate) {
            let entries: Vec<DirEntry<U>> = self
                .members
                .values()
                .filter_map(|m| {
                    m.good.as_ref().map(|g| {
                        DirEntry::from_parts(
                            Arc::clone(&m.name),
                            Arc::clone(&m.path),
                            Arc::clone(&g.value),
                        )
                    })
                })
                .collect();
            let dir = self.source.dir();
            match run_parser(
                || Origin::Dir(dir.to_path_buf()),
                || (self.combine)(&entries),
            ) {
                Ok(v) => {
                    value = Some(v);
                    let loaded = SystemTime::now();
                    for member in self.members.values_mut() {
                        let hash = member.good.as_ref().map(|g| g.hash);
                        if hash.is_some() && member.served != hash {
                            member.served = hash;
                            member.generation += 1;
                            member.loaded_at = Some(loaded);
                        }
                    }
                    self.served = Some(candidate);
                }
                Err(error) => combine_error = Some(error),
            }
        }
        // A file's own problem is the more precise report.
        let error = first_error.or(combine_error);
        self.failing = error.is_some();
        Checked {
            value,
            error,
            looked: true,
            wake_at,
        }
    }

    fn files(&self) -> Vec<FileStatus> {
        self.members
            .values()
            .map(|m| FileStatus {
                path: m.path.to_path_buf(),
                generation: m.generation,
                loaded_at: m.loaded_at,
                last_error: m.error.clone(),
            })
            .collect()
    }
}
