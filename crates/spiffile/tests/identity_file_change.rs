//! The identity file is read once; when it changes under a running process,
//! a warning says that a restart is needed (and the identity stays as it
//! was). In a test binary of its own: the warning comes from the watcher's
//! thread, so it is captured with a process-wide subscriber.

use std::time::{Duration, Instant};

use spiffile_testkit::{LogCapture, Root};

#[test]
fn a_changed_identity_file_asks_for_a_restart() {
    let capture = LogCapture::default();
    let writer = capture.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();

    let mut root = Root::new("example.org");
    let dir = root.add("orders");
    let orders = root.identity("orders");
    std::fs::write(dir.join("id"), "spiffe://example.org/someone-else\n").unwrap();

    let start = Instant::now();
    let text = loop {
        let text = capture.text();
        if text.contains("restarted") || start.elapsed() > Duration::from_secs(5) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("identity file"), "{text}");
    assert!(
        text.contains("no longer says `spiffe://example.org/orders`"),
        "{text}"
    );
    assert!(text.contains("until it is restarted"), "{text}");
    // The running identity is unchanged.
    assert_eq!(orders.id().as_str(), "spiffe://example.org/orders");
    let t = orders.token(orders.id()).unwrap();
    assert_eq!(orders.verify(&t).unwrap().id(), orders.id());
}
