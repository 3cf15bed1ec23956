//! Serving any tower HTTP service (axum, tonic, hyper) over mutual TLS with
//! X.509-SVIDs, the verified peer in every request's extensions.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use spiffile_tls::Peer;
use tokio::net::TcpListener;
use tower_service::Service;

use crate::{BoxError, Caller};

const TARGET: &str = "spiffile_tower";

/// How long a client may take to finish its handshake before the
/// connection is dropped (a slow or silent client cannot hold a task).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A request extension with the TCP peer of an mTLS connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtlsConnectInfo {
    /// The client's address.
    pub remote_addr: SocketAddr,
}

/// Serves `service` over mutual TLS on `listener`, forever.
///
/// Every connection's handshake runs `config` (build it with
/// [`spiffile_tls::server_config`], which verifies the client's X.509-SVID
/// and its SPIFFE ID inside the handshake, and reads the current SVID and
/// bundles on every handshake so rotations never touch established
/// connections). Each request of a connection carries, in its extensions,
/// the verified [`Caller`] (credential `X509Svid`), the
/// [`spiffile_tls::Peer`] and the [`MtlsConnectInfo`]: axum handlers take
/// `caller: Caller` (feature `axum`), [`AuthorizeLayer`](crate::AuthorizeLayer)
/// authorizes per route (403), tonic handlers read
/// `request.extensions().get::<Caller>()`.
///
/// HTTP/1.1 and HTTP/2 (tonic) are both served; when `config` has no ALPN
/// protocols, `h2` and `http/1.1` are offered. Handshakes run concurrently,
/// each bounded by [`HANDSHAKE_TIMEOUT`]; a refused handshake is logged
/// (target `spiffile_tls`, with its reason) and costs nothing else.
///
/// # Errors
///
/// Only when the listener fails in a way that is not about one connection.
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use spiffile_tls::{Allow, X509Source};
/// use spiffile_tower::Caller;
///
/// # async fn run(source: X509Source) -> Result<(), Box<dyn std::error::Error>> {
/// let orders: spiffile::SpiffeId = "spiffe://example.org/orders".parse()?;
/// let config = spiffile_tls::server_config(&source, Allow::ids([orders]))?;
/// let app = Router::new().route("/whoami", get(|caller: Caller| async move { caller.id().to_string() }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// spiffile_tower::serve_mtls(listener, config, app).await?;
/// # Ok(()) }
/// ```
pub async fn serve_mtls<S, B>(
    listener: TcpListener,
    config: rustls::ServerConfig,
    service: S,
) -> io::Result<()>
where
    S: Service<Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    serve_mtls_with_shutdown(listener, config, service, std::future::pending()).await
}

/// [`serve_mtls`] until `shutdown` completes: then no new connection is
/// accepted, open connections finish their requests (HTTP/2 gets a GOAWAY,
/// HTTP/1.1 closes after the current response), and the function returns
/// when the last one is done.
///
/// # Errors
///
/// As [`serve_mtls`].
pub async fn serve_mtls_with_shutdown<S, B>(
    listener: TcpListener,
    mut config: rustls::ServerConfig,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: Service<Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    if config.alpn_protocols.is_empty() {
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (tcp, remote_addr) = tokio::select! {
            accepted = accept(&listener) => match accepted {
                Some(accepted) => accepted,
                None => continue,
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let service = service.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let Some((tls, peer)) = handshake(&acceptor, tcp, remote_addr).await else {
                return;
            };
            let service = TowerToHyperService::new(WithPeer {
                inner: service,
                caller: Caller::from(peer.clone()),
                peer,
                info: MtlsConnectInfo { remote_addr },
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(target: TARGET, %remote_addr, error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One server handshake, bounded by [`HANDSHAKE_TIMEOUT`]: the TLS stream
/// and its verified peer, or `None` (logged) when it failed.
pub(crate) async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    remote_addr: SocketAddr,
) -> Option<(tokio_rustls::server::TlsStream<tokio::net::TcpStream>, Peer)> {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(target: TARGET, %remote_addr, %error, "mTLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(target: TARGET, %remote_addr, "mTLS handshake timed out");
            return None;
        }
    };
    // The handshake verified the chain; this only reads the ID again.
    let Some(peer) = Peer::from_connection(tls.get_ref().1) else {
        tracing::error!(
            target: TARGET, %remote_addr,
            "mTLS connection without a verified client certificate: use spiffile_tls::server_config"
        );
        return None;
    };
    tracing::debug!(target: TARGET, %remote_addr, peer = %peer.id(), "mTLS connection");
    Some((tls, peer))
}

/// Waits for the next connection of `listener`: `None` only when the
/// listener fails in a way that is not about one connection (after a
/// pause, so that a loop does not spin).
pub(crate) async fn accept(listener: &TcpListener) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    match listener.accept().await {
        Ok(accepted) => Some(accepted),
        Err(error) if is_per_connection(&error) => None,
        Err(error) => {
            // Out of file descriptors and the like: wait, do not spin.
            tracing::warn!(target: TARGET, %error, "cannot accept connections");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// Errors of `accept` that concern one connection only.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Puts the connection's peer into each request.
#[derive(Clone)]
struct WithPeer<S> {
    inner: S,
    caller: Caller,
    peer: Peer,
    info: MtlsConnectInfo,
}

impl<S, B> Service<Request<B>> for WithPeer<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let extensions = request.extensions_mut();
        extensions.insert(self.caller.clone());
        extensions.insert(self.peer.clone());
        extensions.insert(self.info);
        self.inner.call(request)
    }
}
