//! A single file, or a set of files parsed together into one value.

use std::path::PathBuf;
use std::time::SystemTime;

use super::{Checked, Engine, run_parser};
use crate::error::{Origin, WatchError};
use crate::input::FileRef;
use crate::read::{Hash, Seen, digest, read_file};
use crate::status::FileStatus;
use crate::worker::Mode;

pub(crate) type FilesParser<T, E> = Box<dyn Fn(&[FileRef<'_>]) -> Result<T, E> + Send + Sync>;

/// One file of the set.
struct Member {
    path: PathBuf,
    name: String,
    /// Metadata at the last successful read.
    seen: Option<Seen>,
    /// Hash of the content behind the served value.
    served: Option<Hash>,
    generation: u64,
    loaded_at: Option<SystemTime>,
    error: Option<String>,
}

/// Every file is read on each check and the parser sees them all together;
/// the value changes only when all of them read and the parser accepts the
/// combination (a certificate whose key has not arrived yet is refused by
/// the parser, and retried on the next event or backoff).
pub(crate) struct FilesEngine<T, E> {
    members: Vec<Member>,
    parse: FilesParser<T, E>,
    origin: Origin,
    max_size: u64,
    /// The last check ended in an error.
    failing: bool,
}

impl<T, E> FilesEngine<T, E> {
    /// `paths` are absolute; there is at least one.
    pub(crate) fn new(paths: Vec<PathBuf>, parse: FilesParser<T, E>, max_size: u64) -> Self {
        let origin = match paths.as_slice() {
            [one] => Origin::File(one.clone()),
            _ => Origin::Files(paths.clone()),
        };
        let members = paths
            .into_iter()
            .map(|path| Member {
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path,
                seen: None,
                served: None,
                generation: 0,
                loaded_at: None,
                error: None,
            })
            .collect();
        FilesEngine {
            members,
            parse,
            origin,
            max_size,
            failing: false,
        }
    }

    fn single(&self) -> bool {
        self.members.len() == 1
    }

    fn fail(&mut self, error: WatchError<E>) -> Checked<T, E>
    where
        E: std::fmt::Display,
    {
        self.failing = true;
        Checked {
            value: None,
            error: Some(error),
            looked: true,
            wake_at: None,
        }
    }
}

impl<T, E: std::fmt::Display> Engine<T, E> for FilesEngine<T, E> {
    fn check(&mut self, mode: Mode) -> Checked<T, E> {
        if mode == Mode::Poll
            && !self.failing
            && self
                .members
                .iter()
                .all(|m| m.seen.is_some_and(|seen| seen.still_matches(&m.path)))
        {
            return Checked::unchanged_unread();
        }
        let read_at = SystemTime::now();
        let mut contents = Vec::with_capacity(self.members.len());
        let mut first_error = None;
        for member in &mut self.members {
            match read_file(&member.path, self.max_size) {
                Ok(read) => contents.push(read),
                Err(source) => {
                    let error = WatchError::io(&member.path, source);
                    member.error = Some(error.to_string());
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            return self.fail(error);
        }
        let hashes: Vec<Hash> = contents.iter().map(|(bytes, _)| digest(bytes)).collect();
        let unchanged = self
            .members
            .iter()
            .zip(&hashes)
            .all(|(m, h)| m.served.as_ref() == Some(h));
        let mut value = None;
        if !unchanged {
            let files: Vec<FileRef<'_>> = self
                .members
                .iter()
                .zip(&contents)
                .map(|(m, (bytes, _))| FileRef::new(&m.name, &m.path, bytes))
                .collect();
            let parsed = run_parser(|| self.origin.clone(), || (self.parse)(&files));
            drop(files);
            match parsed {
                Ok(v) => value = Some(v),
                Err(error) => {
                    // Drop (and wipe) the content before anything else.
                    drop(contents);
                    if self.single() {
                        self.members[0].error = Some(error.to_string());
                    } else {
                        for m in &mut self.members {
                            m.error = None;
                        }
                    }
                    return self.fail(error);
                }
            }
        }
        let now = SystemTime::now();
        for ((member, (_, stamp)), hash) in self.members.iter_mut().zip(&contents).zip(hashes) {
            if member.served != Some(hash) {
                member.served = Some(hash);
                member.generation += 1;
                member.loaded_at = Some(now);
            }
            member.seen = Some(Seen {
                stamp: *stamp,
                read_at,
            });
            member.error = None;
        }
        self.failing = false;
        Checked {
            value,
            error: None,
            looked: true,
            wake_at: None,
        }
    }

    fn files(&self) -> Vec<FileStatus> {
        self.members
            .iter()
            .map(|m| FileStatus {
                path: m.path.clone(),
                generation: m.generation,
                loaded_at: m.loaded_at,
                last_error: m.error.clone(),
            })
            .collect()
    }
}
