//! Identities own no threads: every key, bundle and identity file of the
//! process is followed by one shared worker, and none is left once the last
//! identity is dropped. (Its own test binary: it counts the process's
//! threads.)
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use spiffile_testkit::Root;

fn threads(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end().starts_with(prefix))
        .count()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn identities_share_one_watcher_thread() {
    let mut root = Root::new("example.org");
    let names: Vec<String> = (0..20).map(|i| format!("svc{i}")).collect();
    for name in &names {
        root.add(name);
    }
    let manual: Vec<_> = names.iter().map(|n| root.manual_identity(n)).collect();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        threads("spiffile-watch"),
        0,
        "hot_reload(false) starts no thread"
    );

    let identities: Vec<_> = names.iter().map(|n| root.identity(n)).collect();
    wait_for("events on", || {
        identities
            .iter()
            .all(|i| i.status().bundle.events && i.status().key.is_some_and(|k| k.events))
    });
    assert_eq!(threads("spiffile-watch"), 1, "20 identities, one worker");
    assert_eq!(threads("notify-rs"), 1);

    // Still followed: a revocation reaches every identity.
    let token = identities[1]
        .token_with_ttl(identities[0].id(), Duration::from_secs(600))
        .unwrap();
    assert!(identities[0].verify(&token).is_ok());
    root.bundle.remove_identity(identities[1].id());
    root.write_bundle();
    wait_for("revoked", || identities[0].verify(&token).is_err());

    drop(identities);
    wait_for("no thread left", || {
        threads("spiffile-watch") == 0 && threads("notify-rs") == 0
    });
    drop(manual);
}
