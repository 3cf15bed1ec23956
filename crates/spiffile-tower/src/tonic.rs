//! tonic's own `Server` and `Channel` over mutual TLS with X.509-SVIDs,
//! verified by `spiffile-tls` inside the handshake (feature `tonic`).
//!
//! tonic's built-in TLS cannot do this: `ServerTlsConfig` (tonic 0.14)
//! takes an identity and a `client_ca_root` and builds rustls' stock
//! `WebPkiClientVerifier` from them, with no way to pass a verifier or a
//! `rustls::ServerConfig`; `ClientTlsConfig` likewise. The stock verifier
//! accepts a leaf with two URI SANs, a leaf with keyCertSign, and a leaf
//! naming another trust domain than the CA that signed it, and the
//! configuration is built once, so neither a new SVID nor a new bundle is
//! ever picked up. tonic does take any stream of connections
//! (`serve_with_incoming`) and any connector (`connect_with_connector`):
//!
//! * [`mtls_incoming`]: the connections of a listener, each through a
//!   [`spiffile_tls::server_config`] handshake, for
//!   `Server::serve_with_incoming`. Each request carries the verified
//!   [`Caller`] in its extensions (tonic's connect info): handlers read
//!   `request.extensions().get::<Caller>()` exactly as behind
//!   [`AuthenticateLayer`](crate::AuthenticateLayer), and
//!   [`AuthorizeLayer`](crate::AuthorizeLayer) works as a server layer.
//! * [`MtlsConnector`]: a connector doing the
//!   [`spiffile_tls::client_config`] handshake, for
//!   `Endpoint::connect_with_connector`.
//!
//! ```no_run
//! use spiffile_tls::{Allow, X509Files, X509Source};
//! use spiffile_tower::Caller;
//! use spiffile_watch::WatchOptions;
//! use tonic::transport::{Endpoint, Server};
//!
//! # async fn run(health: tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>) -> Result<(), Box<dyn std::error::Error>> {
//! let source = X509Source::watch(X509Files::spiffe_helper("/run/spiffe"), WatchOptions::default())?;
//! // Server: tonic's own, our handshake.
//! let config = spiffile_tls::server_config(&source, Allow::trust_domain("example.org".parse()?))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
//! let orders: spiffile::SpiffeId = "spiffe://example.org/orders".parse()?;
//! tokio::spawn(
//!     Server::builder()
//!         .layer(spiffile_tower::AuthorizeLayer::ids([orders]))
//!         .add_service(health)
//!         .serve_with_incoming(spiffile_tower::tonic::mtls_incoming(listener, config)),
//! );
//! // In a handler: `request.extensions().get::<Caller>()`.
//!
//! // Client: a channel whose connections are our handshake.
//! let billing: spiffile::SpiffeId = "spiffe://example.org/billing".parse()?;
//! let connector = spiffile_tower::tonic::MtlsConnector::new(spiffile_tls::client_config(&source, billing)?);
//! let channel = Endpoint::from_static("http://127.0.0.1:50051")
//!     .connect_with_connector(connector)
//!     .await?;
//! # let _ = channel; Ok(()) }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::Caller;
use crate::mtls::{accept, handshake};

/// How many verified connections wait for tonic to take them.
const QUEUE: usize = 64;

/// The verified mTLS connections of a listener, for tonic's
/// `Server::serve_with_incoming` (see the [module](self)).
///
/// Handshakes run concurrently, each on its own task and bounded by
/// [`HANDSHAKE_TIMEOUT`](crate::HANDSHAKE_TIMEOUT), so a slow client never
/// holds up the others; refused handshakes are logged (target
/// `spiffile_tls`, with the reason) and never reach tonic. When `config`
/// has no ALPN protocols, `h2` is offered (gRPC is HTTP/2; add `http/1.1`
/// yourself for grpc-web with `accept_http1`).
///
/// The accepting starts at the first poll (inside tonic's server, so inside
/// the Tokio runtime) and stops when the stream is dropped, which closes
/// the listener.
pub fn mtls_incoming(listener: TcpListener, mut config: rustls::ServerConfig) -> MtlsIncoming {
    if config.alpn_protocols.is_empty() {
        config.alpn_protocols = vec![b"h2".to_vec()];
    }
    MtlsIncoming {
        pending: Some((listener, TlsAcceptor::from(Arc::new(config)))),
        receiver: None,
        task: None,
    }
}

/// The stream of [`mtls_incoming`].
pub struct MtlsIncoming {
    pending: Option<(TcpListener, TlsAcceptor)>,
    receiver: Option<mpsc::Receiver<MtlsStream>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for MtlsIncoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtlsIncoming")
            .field("started", &self.task.is_some())
            .finish()
    }
}

impl MtlsIncoming {
    fn start(&mut self) {
        let Some((listener, acceptor)) = self.pending.take() else {
            return;
        };
        let (sender, receiver) = mpsc::channel(QUEUE);
        self.receiver = Some(receiver);
        self.task = Some(tokio::spawn(async move {
            loop {
                let Some((tcp, remote_addr)) = accept(&listener).await else {
                    if sender.is_closed() {
                        return;
                    }
                    continue;
                };
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    if let Some((tls, peer)) = handshake(&acceptor, tcp, remote_addr).await {
                        let stream = MtlsStream {
                            tls,
                            caller: Caller::from(peer),
                            remote_addr,
                        };
                        // A closed receiver: tonic stopped; the connection goes.
                        let _ = sender.send(stream).await;
                    }
                });
            }
        }));
    }
}

impl futures_core::Stream for MtlsIncoming {
    type Item = io::Result<MtlsStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.start();
        match self.receiver.as_mut() {
            Some(receiver) => receiver.poll_recv(cx).map(|next| next.map(Ok)),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for MtlsIncoming {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One verified mTLS connection of [`mtls_incoming`]. tonic's connect info
/// ([`Connected`](::tonic::transport::server::Connected)) is its
/// [`Caller`], so every request on it carries the caller in its
/// extensions.
pub struct MtlsStream {
    tls: tokio_rustls::server::TlsStream<TcpStream>,
    caller: Caller,
    remote_addr: SocketAddr,
}

impl MtlsStream {
    /// The verified client.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The client's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// The TLS stream.
    pub fn get_ref(&self) -> &tokio_rustls::server::TlsStream<TcpStream> {
        &self.tls
    }
}

impl std::fmt::Debug for MtlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtlsStream")
            .field("caller", &self.caller)
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

impl ::tonic::transport::server::Connected for MtlsStream {
    type ConnectInfo = Caller;

    fn connect_info(&self) -> Caller {
        self.caller.clone()
    }
}

impl AsyncRead for MtlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for MtlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }
}

/// A connector for tonic's `Endpoint::connect_with_connector`: TCP to the
/// URI's host and port, then the handshake of `config` (build it with
/// [`spiffile_tls::client_config`], which checks the server's SPIFFE ID for
/// the host, never its DNS name). Every connection is mTLS whatever the
/// URI's scheme says (use `http://` when tonic itself has a TLS feature on:
/// it refuses `https://` without its own TLS config). When `config` has no
/// ALPN protocols, `h2` is offered.
#[derive(Clone)]
pub struct MtlsConnector {
    connector: TlsConnector,
}

impl MtlsConnector {
    /// A connector doing `config`'s handshake.
    pub fn new(mut config: rustls::ClientConfig) -> Self {
        if config.alpn_protocols.is_empty() {
            config.alpn_protocols = vec![b"h2".to_vec()];
        }
        MtlsConnector {
            connector: TlsConnector::from(Arc::new(config)),
        }
    }
}

impl std::fmt::Debug for MtlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MtlsConnector")
    }
}

impl tower_service::Service<Uri> for MtlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.connector.clone();
        Box::pin(async move {
            let invalid = |what: &str| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("{what} in URI {uri}"))
            };
            let host = uri.host().ok_or_else(|| invalid("no host"))?;
            // `[::1]` in a URI, `::1` as a server name.
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                Some("http") => 80,
                _ => 443,
            });
            let name = ServerName::try_from(host.to_owned())
                .map_err(|_| invalid("a host that is neither a DNS name nor an IP address"))?;
            let tcp = TcpStream::connect((host, port)).await?;
            let _ = tcp.set_nodelay(true);
            let tls = connector.connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}
