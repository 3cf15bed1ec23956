//! The bundles of a watching source: the bundle file and the federated
//! files as one watched file set, each federated directory as a watched
//! directory, combined into one [`X509BundleSet`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};
use spiffile_id::TrustDomain;
use spiffile_watch::{DirEntry, FileRef, WatchOptions, Watched};

use crate::bundle::{X509Bundle, X509BundleSet};
use crate::error::Error;
use crate::files::{Bundles, Federated, MAX_FILE_BYTES, X509Files, federated_bundle};

/// What one watched part contributes: the own bundle file with the
/// federated files (part 0), or one directory's federated bundles.
struct Part {
    /// `(bundle, file)`, federated bundles only.
    federated: Vec<(X509Bundle, std::path::PathBuf)>,
    /// The own bundle file's bundles (part 0 only).
    own: Option<X509BundleSet>,
}

/// The combined snapshot, rebuilt when a part's generation moves.
///
/// Readers (every handshake) compare each part's generation, one atomic
/// load each, with the one the snapshot was built from, then load the
/// snapshot: no lock. The first reader to see a part move rebuilds the
/// snapshot under a lock (merging bundles is microseconds, once per
/// change); `spiffile-watch` has no change callback, and a thread of our
/// own only to merge would cost more than it saves.
pub(crate) struct WatchedBundles {
    own: TrustDomain,
    parts: Vec<Watched<Part, Error>>,
    built_from: Vec<AtomicU64>,
    current: ArcSwap<X509BundleSet>,
    /// Held while rebuilding; the last combination error.
    rebuild: Mutex<Option<String>>,
}

impl WatchedBundles {
    pub(crate) fn watch(
        files: &X509Files,
        own: TrustDomain,
        options: &WatchOptions,
    ) -> Result<Self, Error> {
        let options = options.clone().max_size(MAX_FILE_BYTES);
        let watch_error = |e| Error::Watch(Box::new(e));
        let mut named = Vec::new();
        let mut dirs = Vec::new();
        for federated in files.federated_sources() {
            match federated {
                Federated::File(td, path) => named.push((td.clone(), path.clone())),
                Federated::Dir(dir) => dirs.push(dir.clone()),
            }
        }
        let mut paths = vec![files.bundle().to_owned()];
        paths.extend(named.iter().map(|(_, p)| p.clone()));
        let domains: Vec<Option<TrustDomain>> = named.into_iter().map(|(td, _)| td).collect();
        let own_td = own.clone();
        let files_part = Watched::files(
            paths,
            move |f: &[FileRef<'_>]| {
                let mut bundles = Bundles::new(own_td.clone());
                bundles.add_own_file(f[0].path(), f[0].bytes())?;
                let federated = f[1..]
                    .iter()
                    .zip(&domains)
                    .map(|(file, td)| {
                        federated_bundle(&own_td, td.as_ref(), file.path(), file.bytes())
                            .map(|bundle| (bundle, file.path().to_owned()))
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                Ok(Part {
                    federated,
                    own: Some(bundles.into_set()),
                })
            },
            options.clone(),
        )
        .map_err(watch_error)?;
        let mut parts = vec![files_part];
        for dir in dirs {
            let own_td = own.clone();
            let part = Watched::dir(
                dir,
                move |f: &FileRef<'_>| federated_bundle(&own_td, None, f.path(), f.bytes()),
                |entries: &[DirEntry<X509Bundle>]| {
                    Ok(Part {
                        federated: entries
                            .iter()
                            .map(|e| (X509Bundle::clone(e.value()), e.path().to_owned()))
                            .collect(),
                        own: None,
                    })
                },
                options.clone(),
            )
            .map_err(watch_error)?;
            parts.push(part);
        }
        let built_from: Vec<AtomicU64> = parts
            .iter()
            .map(|p| AtomicU64::new(p.generation()))
            .collect();
        let loaded: Vec<Arc<Part>> = parts.iter().map(Watched::load_full).collect();
        let set = combine(&own, &loaded)?;
        Ok(WatchedBundles {
            own,
            parts,
            built_from,
            current: ArcSwap::from_pointee(set),
            rebuild: Mutex::new(None),
        })
    }

    /// The current bundles: an atomic load per part and one for the
    /// snapshot (a rebuild first, when a part changed).
    #[inline]
    pub(crate) fn load(&self) -> Guard<Arc<X509BundleSet>> {
        self.refresh();
        self.current.load()
    }

    /// Rebuilds the snapshot if a part moved since it was built.
    #[inline]
    fn refresh(&self) {
        let moved = self
            .parts
            .iter()
            .zip(&self.built_from)
            .any(|(part, built)| part.generation() != built.load(Ordering::Acquire));
        if moved {
            self.rebuild();
        }
    }

    #[cold]
    fn rebuild(&self) -> Option<String> {
        let mut error = self
            .rebuild
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Generations before values: a generation never belongs to a newer
        // value than the one loaded after it.
        let generations: Vec<u64> = self.parts.iter().map(Watched::generation).collect();
        let unchanged = generations
            .iter()
            .zip(&self.built_from)
            .all(|(g, built)| *g == built.load(Ordering::Acquire));
        if !unchanged {
            let loaded: Vec<Arc<Part>> = self.parts.iter().map(Watched::load_full).collect();
            match combine(&self.own, &loaded) {
                Ok(set) => {
                    self.current.store(Arc::new(set));
                    *error = None;
                }
                Err(e) => {
                    let message = e.to_string();
                    if error.as_deref() != Some(message.as_str()) {
                        tracing::warn!(
                            target: "spiffile_tls",
                            "the bundles on disk are not used (the previous ones stay): {message}"
                        );
                    }
                    *error = Some(message);
                }
            }
            // The snapshot first, then what it was built from.
            for (g, built) in generations.iter().zip(&self.built_from) {
                built.store(*g, Ordering::Release);
            }
        }
        error.clone()
    }

    /// Reads every part now; the first failure is returned (the others are
    /// still read), then the combination's.
    pub(crate) fn reload(&self) -> Result<(), Error> {
        let mut first = None;
        for part in &self.parts {
            if let Err(e) = part.reload() {
                first.get_or_insert(Error::Watch(Box::new(e)));
            }
        }
        let combined = self.rebuild();
        match (first, combined) {
            (Some(e), _) => Err(e),
            (None, Some(message)) => Err(Error::FederatedBundle {
                what: "bundles".to_owned(),
                message,
            }),
            (None, None) => Ok(()),
        }
    }

    /// Why the files on disk are not what is served, if they are not.
    pub(crate) fn error(&self) -> Option<String> {
        self.refresh();
        let combined = self
            .rebuild
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let parts: Vec<String> = self
            .parts
            .iter()
            .filter_map(|p| p.status().last_error)
            .collect();
        let all: Vec<String> = parts.into_iter().chain(combined).collect();
        (!all.is_empty()).then(|| all.join("; "))
    }
}

/// The parts' bundles as one set: the own bundle file's, then every
/// federated bundle, one file per federated trust domain across all parts.
fn combine(own: &TrustDomain, parts: &[Arc<Part>]) -> Result<X509BundleSet, Error> {
    let mut bundles = Bundles::new(own.clone());
    for part in parts {
        if let Some(set) = &part.own {
            bundles.add_set(set)?;
        }
    }
    for part in parts {
        for (bundle, path) in &part.federated {
            bundles.add_federated(bundle.clone(), path)?;
        }
    }
    Ok(bundles.into_set())
}
