//! A directory source follows files added, changed and removed, whichever
//! way producers write them (Kubernetes volumes included), never serves a
//! half-written file, and keeps one bad file from holding back the others.
#![cfg(unix)]

#[path = "support/writers.rs"]
mod writers;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use spiffile_watch::{DirEntry, DirSource, FileRef, WatchError, WatchOptions, Watched};
use writers::{Malformed, Style, parse_payload, payload, setup_files, update, update_files};

const DEADLINE: Duration = Duration::from_secs(5);

/// File name -> payload.
type Table = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
enum TableError {
    #[error(transparent)]
    Malformed(#[from] Malformed),
    #[error("{0} and {1} hold the same payload")]
    Duplicate(String, String),
}

fn parse_file(file: &FileRef<'_>) -> Result<String, TableError> {
    Ok(parse_payload(file.bytes())?)
}

/// Two files with the same payload conflict (stands in for two bundles
/// claiming one trust domain).
fn combine(files: &[DirEntry<String>]) -> Result<Table, TableError> {
    let mut table = Table::new();
    for file in files {
        if let Some((other, _)) = table.iter().find(|(_, v)| *v == file.value().as_str()) {
            return Err(TableError::Duplicate(other.clone(), file.name().to_owned()));
        }
        table.insert(file.name().to_owned(), file.value().as_ref().clone());
    }
    Ok(table)
}

type Source = Watched<Table, TableError>;

fn table(entries: &[(&str, &[u8])]) -> Table {
    entries
        .iter()
        .map(|(n, c)| (n.to_string(), String::from_utf8(c.to_vec()).unwrap()))
        .collect()
}

fn json_files(dir: &Path) -> DirSource {
    DirSource::new(dir).pattern("*.json")
}

fn with_events() -> WatchOptions {
    // The poll is at its 2 s maximum: only events can meet the 1 s bound.
    WatchOptions::new().poll_interval(Duration::from_secs(2))
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < DEADLINE,
            "not within {DEADLINE:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until `want` is served; only the states in `allowed` may be
/// served on the way. Returns the latency.
fn observe(source: &Source, allowed: &[&Table], want: &Table) -> Duration {
    let start = Instant::now();
    loop {
        let current = source.load();
        if **current == *want {
            return start.elapsed();
        }
        assert!(
            allowed.contains(&&**current),
            "served a state that was never written: {current:?} (waiting for {want:?})"
        );
        assert!(
            start.elapsed() < DEADLINE,
            "not followed within {DEADLINE:?}: still {current:?}"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Change a file, add one, remove one; returns the worst latency.
fn follow(style: Style, options: WatchOptions) -> Duration {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let [a, b, c, d] = ['A', 'B', 'C', 'D'].map(|l| payload(l, 40));
    setup_files(style, dir, &[("a.json", &a), ("b.json", &b)]);
    // Never files of the source: they would not parse.
    std::fs::write(dir.join("notes.txt"), "not a payload").unwrap();
    std::fs::write(dir.join(".c.json.tmp"), "not a payload").unwrap();
    let source = Watched::dir(json_files(dir), parse_file, combine, options).unwrap();
    let s0 = table(&[("a.json", &a), ("b.json", &b)]);
    assert_eq!(**source.load(), s0);

    // Changed.
    update_files(style, dir, &[("a.json", &c)], false);
    let s1 = table(&[("a.json", &c), ("b.json", &b)]);
    // A file missing for 50 ms may be seen removed (it was, for longer than
    // the 25 ms grace); no other writer makes it flicker.
    let without_a = table(&[("b.json", &b)]);
    let allowed: Vec<&Table> = match style {
        Style::MissingMoment => vec![&s0, &without_a],
        _ => vec![&s0],
    };
    let l1 = observe(&source, &allowed, &s1);

    // Added.
    update_files(style, dir, &[("c.json", &d)], false);
    let s2 = table(&[("a.json", &c), ("b.json", &b), ("c.json", &d)]);
    let l2 = observe(&source, &[&s1], &s2);

    // Removed.
    if style == Style::Kubernetes {
        update_files(style, dir, &[("a.json", &c), ("c.json", &d)], true);
    } else {
        std::fs::remove_file(dir.join("b.json")).unwrap();
    }
    let s3 = table(&[("a.json", &c), ("c.json", &d)]);
    let l3 = observe(&source, &[&s2], &s3);

    // The status is published right after the value it describes. A file
    // seen missing for a while was dropped and came back: one change more,
    // and its own count starts again.
    let dropped = |generation: u64| style == Style::MissingMoment && generation == 5;
    wait_until("settled", || {
        let status = source.status();
        status.is_current() && (status.generation == 4 || dropped(status.generation))
    });
    let status = source.status();
    let a_generation = if dropped(status.generation) { 1 } else { 2 };
    assert_eq!(status.dir.as_deref(), Some(dir));
    let files: Vec<(String, u64)> = status
        .files
        .iter()
        .map(|f| {
            (
                f.path.file_name().unwrap().to_string_lossy().into_owned(),
                f.generation,
            )
        })
        .collect();
    assert_eq!(
        files,
        [("a.json".into(), a_generation), ("c.json".into(), 1)]
    );
    let worst = l1.max(l2).max(l3);
    eprintln!(
        "{:<28} notify={:<5} change {l1:?}, add {l2:?}, remove {l3:?}",
        style.name(),
        status.notify_active
    );
    worst
}

fn follow_with_events(style: Style) {
    let worst = follow(style, with_events());
    assert!(
        worst < Duration::from_secs(1),
        "{}: {worst:?}",
        style.name()
    );
}

#[test]
fn rename_over() {
    follow_with_events(Style::RenameOver);
}

#[test]
fn truncate_and_rewrite_in_place() {
    follow_with_events(Style::TruncateRewrite);
}

#[test]
fn delete_and_recreate() {
    follow_with_events(Style::DeleteRecreate);
}

#[test]
fn kubernetes_atomic_writer() {
    follow_with_events(Style::Kubernetes);
}

#[test]
fn same_size_same_mtime() {
    follow_with_events(Style::SameSizeSameMtime);
}

#[test]
fn missing_for_a_moment() {
    follow_with_events(Style::MissingMoment);
}

#[test]
fn polling_alone_follows_every_style() {
    for style in Style::ALL {
        follow(
            style,
            WatchOptions::new()
                .use_notify(false)
                .poll_interval(Duration::from_millis(50)),
        );
    }
}

fn file_error(source: &Source, name: &str) -> Option<String> {
    source
        .status()
        .files
        .into_iter()
        .find(|f| f.path.file_name().is_some_and(|n| n == name))
        .and_then(|f| f.last_error)
}

/// One file that stops parsing keeps its last good content and reports its
/// error; a revocation in another file is applied all the same.
#[test]
fn a_bad_file_holds_back_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let [a, b, c, d] = ['A', 'B', 'C', 'D'].map(|l| payload(l, 16));
    setup_files(Style::RenameOver, dir, &[("a.json", &a), ("b.json", &b)]);
    let source = Watched::dir(json_files(dir), parse_file, combine, with_events()).unwrap();
    update(Style::RenameOver, &dir.join("a.json"), b"SECRET garbage");
    wait_until("a.json's error", || file_error(&source, "a.json").is_some());
    let error = file_error(&source, "a.json").unwrap();
    assert!(
        error.contains("a.json") && error.contains("malformed payload"),
        "{error}"
    );
    assert!(!error.contains("SECRET"), "{error}");
    assert!(source.status().last_error.is_some());
    assert_eq!(**source.load(), table(&[("a.json", &a), ("b.json", &b)]));

    update(Style::RenameOver, &dir.join("b.json"), &d);
    let s1 = table(&[("a.json", &a), ("b.json", &d)]);
    observe(&source, &[&table(&[("a.json", &a), ("b.json", &b)])], &s1);
    assert!(
        file_error(&source, "a.json").is_some(),
        "a.json is still bad"
    );

    update(Style::RenameOver, &dir.join("a.json"), &c);
    observe(&source, &[&s1], &table(&[("a.json", &c), ("b.json", &d)]));
    wait_until("healed", || source.status().is_current());
    // `reload` reports the same thing, typed.
    std::fs::write(dir.join("b.json"), b"v=").unwrap();
    let err = source.reload().unwrap_err();
    assert!(
        matches!(
            err,
            WatchError::Parse {
                source: TableError::Malformed(_),
                ..
            }
        ),
        "{err:?}"
    );
}

/// A new file appears in the value only once it parses; until then its
/// status says why (generation 0: never served).
#[test]
fn a_new_file_is_served_only_once_it_parses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (a, c) = (payload('A', 16), payload('C', 16));
    std::fs::write(dir.join("a.json"), &a).unwrap();
    let source = Watched::dir(json_files(dir), parse_file, combine, with_events()).unwrap();
    std::fs::write(dir.join("c.json"), &c[..5]).unwrap();
    wait_until("c.json's error", || file_error(&source, "c.json").is_some());
    let status = source.status();
    let c_status = status
        .files
        .iter()
        .find(|f| f.path.ends_with("c.json"))
        .unwrap();
    assert_eq!((c_status.generation, c_status.loaded_at), (0, None));
    assert_eq!(**source.load(), table(&[("a.json", &a)]));
    std::fs::write(dir.join("c.json"), &c).unwrap();
    observe(
        &source,
        &[&table(&[("a.json", &a)])],
        &table(&[("a.json", &a), ("c.json", &c)]),
    );
    // And one that is removed before it ever parsed just goes away.
    std::fs::write(dir.join("d.json"), b"v=").unwrap();
    wait_until("d.json's error", || file_error(&source, "d.json").is_some());
    std::fs::remove_file(dir.join("d.json")).unwrap();
    wait_until("d.json gone", || source.status().is_current());
    assert_eq!(source.status().files.len(), 2);
}

/// The combining parser's refusal keeps the last good value, reported at
/// the directory level.
#[test]
fn a_refused_combination_keeps_the_last_good_value() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let [a, b, c] = ['A', 'B', 'C'].map(|l| payload(l, 16));
    setup_files(Style::RenameOver, dir, &[("a.json", &a), ("b.json", &b)]);
    let source = Watched::dir(json_files(dir), parse_file, combine, with_events()).unwrap();
    update(Style::RenameOver, &dir.join("b.json"), &a);
    wait_until("the conflict", || source.status().last_error.is_some());
    let status = source.status();
    let error = status.last_error.unwrap();
    assert!(
        error.contains("a.json and b.json hold the same payload"),
        "{error}"
    );
    assert!(error.contains("directory"), "{error}");
    assert!(status.files.iter().all(|f| f.last_error.is_none()));
    assert_eq!(**source.load(), table(&[("a.json", &a), ("b.json", &b)]));
    assert_eq!(source.generation(), 1);
    update(Style::RenameOver, &dir.join("b.json"), &c);
    observe(
        &source,
        &[&table(&[("a.json", &a), ("b.json", &b)])],
        &table(&[("a.json", &a), ("b.json", &c)]),
    );
    wait_until("healed", || source.status().is_current());
}

#[test]
fn size_and_count_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let [a, b] = ['A', 'B'].map(|l| payload(l, 16));
    std::fs::write(dir.join("a.json"), &a).unwrap();
    std::fs::write(dir.join("b.json"), &b).unwrap();
    let small = || json_files(dir).max_files(2).max_total_size(50);
    let source = Watched::dir(
        small(),
        parse_file,
        combine,
        WatchOptions::manual().max_size(30),
    )
    .unwrap();
    let good = table(&[("a.json", &a), ("b.json", &b)]);

    // One file over the per-file limit: that file's error, the others apply.
    std::fs::write(dir.join("a.json"), payload('C', 28)).unwrap();
    let err = source.reload().unwrap_err();
    assert!(
        err.to_string()
            .contains("larger than the limit of 30 bytes"),
        "{err}"
    );
    assert!(file_error(&source, "a.json").unwrap().contains("a.json"));
    assert_eq!(**source.load(), good);
    std::fs::write(dir.join("a.json"), &a).unwrap();
    assert!(!source.reload().unwrap());

    // Too many files: the directory is not read at all.
    std::fs::write(dir.join("c.json"), payload('C', 16)).unwrap();
    let err = source.reload().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read {}: holds 3 matching files, more than the limit of 2",
            dir.display()
        )
    );
    assert_eq!(**source.load(), good);
    std::fs::remove_file(dir.join("c.json")).unwrap();
    assert!(!source.reload().unwrap());

    // Over the total: neither.
    std::fs::write(dir.join("b.json"), payload('B', 26)).unwrap();
    std::fs::write(dir.join("a.json"), payload('A', 26)).unwrap();
    let err = source.reload().unwrap_err();
    assert!(
        err.to_string()
            .contains("holds 58 bytes in 2 matching files, more than the limit of 50 bytes"),
        "{err}"
    );
    assert_eq!(**source.load(), good);
    assert!(source.status().last_error.is_some());

    // At startup, limits are errors.
    assert!(Watched::dir(small(), parse_file, combine, WatchOptions::manual()).is_err());
}

/// Subdirectories, FIFOs, dangling symlinks and hidden entries are not
/// files of the source; a symlink to a file elsewhere is, and its in-place
/// writes are seen (its target directory is watched).
#[test]
fn what_counts_as_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let [a, b, c] = ['A', 'B', 'C'].map(|l| payload(l, 16));
    std::fs::write(dir.join("a.json"), &a).unwrap();
    std::fs::create_dir(dir.join("sub.json")).unwrap();
    std::fs::write(dir.join("sub.json").join("x.json"), "nested: not read").unwrap();
    std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("dangling.json")).unwrap();
    std::os::unix::fs::symlink(dir.join("sub.json"), dir.join("linked-dir.json")).unwrap();
    std::fs::write(dir.join(".hidden.json"), "hidden: not read").unwrap();
    let fifo_made = std::process::Command::new("mkfifo")
        .arg(dir.join("fifo.json"))
        .status()
        .is_ok_and(|s| s.success());
    std::fs::write(other.path().join("b.json"), &b).unwrap();
    std::os::unix::fs::symlink(other.path().join("b.json"), dir.join("b.json")).unwrap();

    let source = Watched::dir(json_files(dir), parse_file, combine, with_events()).unwrap();
    let s0 = table(&[("a.json", &a), ("b.json", &b)]);
    assert_eq!(**source.load(), s0);
    assert!(source.status().is_current(), "{:?}", source.status());
    eprintln!("fifo tested: {fifo_made}");

    wait_until("watching", || source.status().notify_active);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(other.path().join("b.json"))
        .unwrap();
    std::io::Write::write_all(&mut f, &c).unwrap();
    drop(f);
    let latency = observe(&source, &[&s0], &table(&[("a.json", &a), ("b.json", &c)]));
    assert!(latency < Duration::from_secs(1), "{latency:?}");

    // Every regular file, without a pattern: still not the hidden one.
    let all = Watched::dir(
        DirSource::new(other.path()),
        parse_file,
        combine,
        WatchOptions::manual(),
    )
    .unwrap();
    assert_eq!(all.load().keys().collect::<Vec<_>>(), ["b.json"]);
}

#[test]
fn the_directory_itself_can_vanish_and_come_back() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("bundles");
    std::fs::create_dir(&dir).unwrap();
    let [a, b] = ['A', 'B'].map(|l| payload(l, 16));
    std::fs::write(dir.join("a.json"), &a).unwrap();
    let source = Watched::dir(json_files(&dir), parse_file, combine, with_events()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    wait_until("the error", || source.status().last_error.is_some());
    let error = source.status().last_error.unwrap();
    assert!(
        error.contains("cannot read") && error.contains("bundles"),
        "{error}"
    );
    assert_eq!(**source.load(), table(&[("a.json", &a)]));
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("b.json"), &b).unwrap();
    // a.json keeps its place for the removal grace, beside the new b.json.
    let both = table(&[("a.json", &a), ("b.json", &b)]);
    observe(
        &source,
        &[&table(&[("a.json", &a)]), &both],
        &table(&[("b.json", &b)]),
    );
    wait_until("healed", || source.status().is_current());
}

#[test]
fn startup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let missing = Watched::dir(
        json_files(&dir.join("missing")),
        parse_file,
        combine,
        WatchOptions::manual(),
    );
    assert!(matches!(missing, Err(WatchError::Io { .. })), "{missing:?}");
    // Empty: the combining parser decides (here: an empty table is fine).
    let empty = Watched::dir(json_files(dir), parse_file, combine, WatchOptions::manual()).unwrap();
    assert!(empty.load().is_empty());
    assert_eq!(empty.generation(), 1);
    // Any bad file is an error at startup, naming it.
    std::fs::write(dir.join("bad.json"), "SECRET").unwrap();
    let err =
        Watched::dir(json_files(dir), parse_file, combine, WatchOptions::manual()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("bad.json") && !message.contains("SECRET"),
        "{message}"
    );
    // A panicking parser is refused, not propagated.
    std::fs::write(dir.join("bad.json"), payload('A', 4)).unwrap();
    let err = Watched::dir(
        json_files(dir),
        |_: &FileRef<'_>| -> Result<(), TableError> { panic!("parser bug") },
        |_: &[DirEntry<()>]| Ok(()),
        WatchOptions::manual(),
    )
    .unwrap_err();
    assert!(matches!(err, WatchError::Panicked { .. }), "{err:?}");
}

/// A removed file keeps its place for the removal grace, then goes.
#[test]
fn removal_grace() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let [a, b] = ['A', 'B'].map(|l| payload(l, 16));
    std::fs::write(dir.join("a.json"), &a).unwrap();
    std::fs::write(dir.join("b.json"), &b).unwrap();
    let source = Watched::dir(
        json_files(dir).removal_grace(Duration::from_millis(400)),
        parse_file,
        combine,
        with_events(),
    )
    .unwrap();
    wait_until("watching", || source.status().notify_active);
    let both = table(&[("a.json", &a), ("b.json", &b)]);
    std::fs::remove_file(dir.join("b.json")).unwrap();
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(150));
    if start.elapsed() < Duration::from_millis(350) {
        assert_eq!(**source.load(), both, "dropped before the grace ended");
    }
    observe(&source, &[&both], &table(&[("a.json", &a)]));
    let total = start.elapsed();
    assert!(
        total >= Duration::from_millis(400),
        "dropped after {total:?}"
    );
    assert!(source.status().is_current());
}
