//! The probe and metrics server (`/healthz`, `/readyz`, `/metrics`) and the
//! webhook's TLS server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::tls::HotCertificate;

/// What `/readyz` reports.
#[derive(Debug, Default)]
pub struct Health {
    webhook_required: bool,
    /// The webhook serves TLS.
    pub webhook_serving: AtomicBool,
    /// This replica leads.
    pub leader: AtomicBool,
    /// The leader's caches have synced.
    pub synced: AtomicBool,
    /// Shutting down.
    pub stopping: AtomicBool,
}

impl Health {
    /// Health for a replica that serves the webhook or not.
    pub fn new(webhook_required: bool) -> Self {
        Self {
            webhook_required,
            ..Default::default()
        }
    }

    /// Whether the replica is ready: serving the webhook when enabled, and,
    /// when leading, with its caches synced. A follower is ready (it serves
    /// the webhook and stands by).
    pub fn ready(&self) -> Result<(), &'static str> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err("shutting down");
        }
        if self.webhook_required && !self.webhook_serving.load(Ordering::Relaxed) {
            return Err("webhook not serving yet (waiting for its certificate)");
        }
        if self.leader.load(Ordering::Relaxed) && !self.synced.load(Ordering::Relaxed) {
            return Err("caches not synced yet");
        }
        Ok(())
    }
}

/// Serves the probes and metrics on `listener` until `shutdown`.
pub async fn serve_probes(
    listener: TcpListener,
    health: Arc<Health>,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let health = health.clone();
                async move {
                    match health.ready() {
                        Ok(()) => (StatusCode::OK, "ok".to_owned()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why.to_owned()),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.render(),
                    )
                }
            }),
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves `router` over TLS from `cert_dir/tls.{crt,key}` (waiting for them
/// to appear) until `shutdown`.
pub async fn serve_webhook(
    addr: SocketAddr,
    cert_dir: PathBuf,
    router: axum::Router,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let mut shutdown = std::pin::pin!(shutdown);
    let cert = loop {
        match HotCertificate::load(&cert_dir) {
            Ok(c) => break Arc::new(c),
            Err(e) => {
                tracing::info!(dir = %cert_dir.display(), "waiting for the webhook certificate: {e}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = &mut shutdown => return Ok(()),
        }
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cert.server_config()?));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, "webhook serving");
    health.webhook_serving.store(true, Ordering::Relaxed);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => { tracing::warn!(error = %e, "webhook accept failed"); continue }
            },
            _ = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let service = TowerToHyperService::new(router);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "webhook connection ended");
            }
        });
    }
    health.webhook_serving.store(false, Ordering::Relaxed);
    Ok(())
}
