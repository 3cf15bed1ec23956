//! The ways real producers change files, shared by the tests and the
//! `latency` example (`#[path]`-included by both).
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One way of replacing a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Write a temporary file next to it, rename it over the old one.
    RenameOver,
    /// Truncate and rewrite in place, in two writes with a pause between
    /// (readers can see an empty, then half-written file).
    TruncateRewrite,
    /// Delete the file, then create it again.
    DeleteRecreate,
    /// Kubernetes AtomicWriter: new timestamped directory, `..data` symlink
    /// swapped by renaming `..data_tmp` over it, old directory deleted.
    Kubernetes,
    /// Overwrite in place with content of the same size and put the old
    /// mtime back: only ctime (and content) change.
    SameSizeSameMtime,
    /// Remove the file, wait 50 ms, create it again.
    MissingMoment,
}

impl Style {
    /// Every style.
    pub const ALL: [Style; 6] = [
        Style::RenameOver,
        Style::TruncateRewrite,
        Style::DeleteRecreate,
        Style::Kubernetes,
        Style::SameSizeSameMtime,
        Style::MissingMoment,
    ];

    /// A short label.
    pub fn name(self) -> &'static str {
        match self {
            Style::RenameOver => "write temp + rename over",
            Style::TruncateRewrite => "truncate + rewrite in place",
            Style::DeleteRecreate => "delete + recreate",
            Style::Kubernetes => "kubernetes ..data swap",
            Style::SameSizeSameMtime => "same size + same mtime",
            Style::MissingMoment => "missing for 50 ms",
        }
    }
}

/// Pause between the two halves of a truncate-and-rewrite.
pub const HALF_WRITE_PAUSE: Duration = Duration::from_millis(20);

static K8S_SERIAL: AtomicU64 = AtomicU64::new(1);

fn k8s_dir_name() -> String {
    format!(
        "..2026_11_24_10_00_00.{:09}",
        K8S_SERIAL.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(unix)]
fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// Creates `name` in `dir` the way `style` lays files out, with `content`;
/// returns the path a consumer is configured with.
pub fn setup(style: Style, dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    if style == Style::Kubernetes {
        let ts = k8s_dir_name();
        fs::create_dir(dir.join(&ts)).unwrap();
        fs::write(dir.join(&ts).join(name), content).unwrap();
        symlink(&ts, dir.join("..data"));
        symlink(Path::new("..data").join(name), &path);
    } else {
        fs::write(&path, content).unwrap();
    }
    path
}

/// Replaces the content of `path` (made by [`setup`] with the same style);
/// returns when the writer is done.
pub fn update(style: Style, path: &Path, content: &[u8]) {
    let dir = path.parent().unwrap();
    let name = path.file_name().unwrap();
    match style {
        Style::RenameOver => {
            let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
            fs::write(&tmp, content).unwrap();
            fs::rename(&tmp, path).unwrap();
        }
        Style::TruncateRewrite => {
            let mut file = fs::File::create(path).unwrap();
            let half = content.len() / 2;
            file.write_all(&content[..half]).unwrap();
            file.flush().unwrap();
            std::thread::sleep(HALF_WRITE_PAUSE);
            file.write_all(&content[half..]).unwrap();
        }
        Style::DeleteRecreate => {
            fs::remove_file(path).unwrap();
            fs::write(path, content).unwrap();
        }
        Style::MissingMoment => {
            fs::remove_file(path).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            fs::write(path, content).unwrap();
        }
        Style::SameSizeSameMtime => {
            let old = fs::metadata(path).unwrap();
            assert_eq!(old.len(), content.len() as u64, "same-size content needed");
            let mtime = old.modified().unwrap();
            let mut file = fs::OpenOptions::new().write(true).open(path).unwrap();
            file.write_all(content).unwrap();
            file.set_modified(mtime).unwrap();
            drop(file);
            let new = fs::metadata(path).unwrap();
            assert_eq!(new.modified().unwrap(), mtime);
            assert_eq!(new.len(), old.len());
        }
        Style::Kubernetes => {
            let old_target = fs::read_link(dir.join("..data")).unwrap();
            let ts = k8s_dir_name();
            fs::create_dir(dir.join(&ts)).unwrap();
            fs::write(dir.join(&ts).join(name), content).unwrap();
            symlink(&ts, dir.join("..data_tmp"));
            fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
            fs::remove_dir_all(dir.join(old_target)).unwrap();
        }
    }
}

/// Creates several files in `dir` the way `style` lays them out (one
/// Kubernetes volume holding them all); returns their visible paths.
pub fn setup_files(style: Style, dir: &Path, files: &[(&str, &[u8])]) -> Vec<PathBuf> {
    if style == Style::Kubernetes {
        let ts = k8s_dir_name();
        fs::create_dir(dir.join(&ts)).unwrap();
        for (name, content) in files {
            fs::write(dir.join(&ts).join(name), content).unwrap();
        }
        symlink(&ts, dir.join("..data"));
        for (name, _) in files {
            symlink(Path::new("..data").join(name), dir.join(name));
        }
    } else {
        for (name, content) in files {
            fs::write(dir.join(name), content).unwrap();
        }
    }
    files.iter().map(|(name, _)| dir.join(name)).collect()
}

/// Changes several files of `dir` (made by [`setup_files`] or [`setup`])
/// to the given complete state: every file listed gets its content, and,
/// with `remove`, files of the directory not listed are removed.
///
/// Kubernetes: one `..data` swap to a directory holding exactly `files`,
/// then the visible links of new files are created and those of removed
/// files deleted (kubelet's order), then the old directory is deleted.
/// Other styles: each listed file is written one after the other with the
/// style (a file that does not exist yet is created plainly), then the
/// others are removed.
pub fn update_files(style: Style, dir: &Path, files: &[(&str, &[u8])], remove: bool) {
    let mut visible: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    if style == Style::Kubernetes {
        // The volume's files are its visible links; anything else in the
        // directory is not part of it.
        visible.retain(|n| {
            fs::symlink_metadata(dir.join(n)).is_ok_and(|m| m.file_type().is_symlink())
        });
        let old_target = fs::read_link(dir.join("..data")).unwrap();
        let ts = k8s_dir_name();
        fs::create_dir(dir.join(&ts)).unwrap();
        let mut names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        if !remove {
            // Unchanged files carry over into the new directory.
            for name in &visible {
                if !names.contains(&name.as_str()) {
                    fs::copy(dir.join(&old_target).join(name), dir.join(&ts).join(name)).unwrap();
                }
            }
        }
        for (name, content) in files {
            fs::write(dir.join(&ts).join(name), content).unwrap();
        }
        symlink(&ts, dir.join("..data_tmp"));
        fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        for (name, _) in files {
            if !visible.iter().any(|v| v == name) {
                symlink(Path::new("..data").join(name), dir.join(name));
            }
        }
        if remove {
            names.sort_unstable();
            for name in &visible {
                if names.binary_search(&name.as_str()).is_err() {
                    fs::remove_file(dir.join(name)).unwrap();
                }
            }
        }
        fs::remove_dir_all(dir.join(old_target)).unwrap();
        return;
    }
    for (name, content) in files {
        let path = dir.join(name);
        if visible.iter().any(|v| v == name) {
            update(style, &path, content);
        } else {
            fs::write(&path, content).unwrap();
        }
    }
    if remove {
        for name in &visible {
            if !files.iter().any(|(n, _)| n == name) {
                fs::remove_file(dir.join(name)).unwrap();
            }
        }
    }
}

/// The test payload format: `v=<letters>;` (anything else is rejected, so a
/// half-written or empty file never parses).
pub fn payload(letter: char, len: usize) -> Vec<u8> {
    let mut out = b"v=".to_vec();
    out.extend(std::iter::repeat_n(letter as u8, len));
    out.push(b';');
    out
}

/// The error of [`parse_payload`]; never quotes the content.
#[derive(Debug)]
pub struct Malformed;

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed payload")
    }
}

impl std::error::Error for Malformed {}

/// Parses [`payload`] output.
pub fn parse_payload(bytes: &[u8]) -> Result<String, Malformed> {
    let text = std::str::from_utf8(bytes).map_err(|_| Malformed)?;
    let inner = text
        .strip_prefix("v=")
        .and_then(|t| t.strip_suffix(';'))
        .ok_or(Malformed)?;
    if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(Malformed);
    }
    Ok(text.to_owned())
}

/// Formats a latency for the measurement tables.
pub fn human(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else if d < Duration::from_millis(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.0} ms", d.as_secs_f64() * 1e3)
    }
}
