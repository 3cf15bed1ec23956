//! The layers' `tracing` events. In a test binary of its own: a
//! thread-local subscriber sees events reliably only when no other test of
//! the process runs (and registers the same call sites) at the same time.

mod common;

use common::{get, plain_client, read, world};
use http::header::AUTHORIZATION;
use spiffile_testkit::LogCapture;
use tower::ServiceExt;

/// Accepted and refused calls are logged with the caller and the reason
/// code, never with the token. Single-threaded, so the server's events reach
/// this thread's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn events_name_caller_and_reason_never_the_token() {
    let captured = LogCapture::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let w = world().await;
    let mut tokens = Vec::new();
    for (who, audience, path) in [
        (&w.orders, w.billing.id(), "/whoami"),
        (&w.orders, w.orders.id(), "/whoami"),
        (&w.mallory, w.billing.id(), "/charge"),
    ] {
        let token = who.token(audience).unwrap();
        let mut request = get(&format!("{}{path}", w.base));
        request
            .headers_mut()
            .insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        read(plain_client().oneshot(request).await.unwrap()).await;
        tokens.push(token);
    }
    let log = captured.text();
    assert!(
        log.contains("request accepted") && log.contains("caller=spiffe://example.org/orders"),
        "{log}"
    );
    assert!(log.contains("reason=\"audience\""), "{log}");
    assert!(
        log.contains("caller=spiffe://example.org/mallory reason=\"forbidden\""),
        "{log}"
    );
    for token in &tokens {
        for part in token.split('.') {
            assert!(!log.contains(part), "a token part is in the log:\n{log}");
        }
    }
}
