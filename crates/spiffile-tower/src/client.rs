//! Outbound side: sign each request with a token for its target.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{AUTHORIZATION, HOST};
use http::{HeaderValue, Request};
use pin_project_lite::pin_project;
use spiffile::{Identity, SpiffeId};
use tower_layer::Layer;
use tower_service::Service;

/// The error type of [`AddToken`]: the wrapped client's error or an
/// [`OutboundError`], boxed (the form hyper-util, tonic and tower's own
/// middleware all accept).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request extension naming the audience (the target's SPIFFE ID) of one
/// request, overriding the layer's host mapping.
///
/// ```
/// let mut request = http::Request::new(());
/// request
///     .extensions_mut()
///     .insert(spiffile_tower::Audience("spiffe://example.org/billing".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Audience(pub SpiffeId);

/// Why [`AddToken`] could not sign a request. The request is not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    /// Nothing says which SPIFFE ID the request is for.
    #[error(
        "no audience for a request to `{host}`: map the host with AddTokenLayer::target, \
         set AddTokenLayer::default_audience, or add an Audience extension to the request"
    )]
    NoAudience {
        /// The request's host (`host:port` as in the URI or `Host` header),
        /// or `(none)`.
        host: String,
    },
    /// The identity could not mint the token.
    #[error("cannot mint a token for `{audience}`: {source}")]
    Mint {
        /// The target.
        audience: SpiffeId,
        /// What went wrong.
        source: spiffile::Error,
    },
    /// The minted token is not a valid header value (a token is base64url
    /// and dots, so this does not happen with tokens minted here).
    #[error("the token minted for `{audience}` is not a valid header value")]
    HeaderValue {
        /// The target.
        audience: SpiffeId,
    },
}

/// A tower [`Layer`] for clients that adds `Authorization: Bearer <token>` to
/// every outgoing request, with a token from `identity` for the request's
/// target.
///
/// The target's SPIFFE ID (the token's audience) is, in order: the request's
/// [`Audience`] extension; the mapping of the request's `host:port`, then of
/// its host alone ([`AddTokenLayer::target`]), taken from the URI or else
/// the `Host` header; the [`AddTokenLayer::default_audience`]. A request with
/// none of these fails with [`OutboundError::NoAudience`] before anything is
/// sent. A request that already has an `Authorization` header is sent as it
/// is.
///
/// Tokens come from [`Identity::token`]: a token minted for a target is
/// reused while at most half of its lifetime has passed (so it always has at
/// least half left: 30 s of the default 60 s), then a new one is minted (an
/// ECDSA signature, about 20 µs). Reuse is what lets the receiver answer a
/// repeated token from its verified-token cache; no token signed by a key
/// that has since been rotated is ever handed out. Set
/// [`spiffile::IdentityBuilder::token_reuse_fraction`] to 0 for a token per
/// request. The header value is marked sensitive (not indexed by HTTP/2
/// header compression, hidden from `Debug`).
///
/// Works with anything that is a `tower::Service<http::Request<B>>`:
/// hyper-util's legacy `Client`, a tonic `Channel` (requests there carry only
/// a path, so use a default audience or the extension), axum's test helpers.
#[derive(Clone)]
pub struct AddTokenLayer {
    config: Arc<ClientConfig>,
}

#[derive(Clone)]
struct ClientConfig {
    identity: Identity,
    by_host: HashMap<String, SpiffeId>,
    default_audience: Option<SpiffeId>,
    ttl: Option<Duration>,
}

impl fmt::Debug for AddTokenLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddTokenLayer")
            .field("identity", self.config.identity.id())
            .field("targets", &self.config.by_host)
            .field("default_audience", &self.config.default_audience)
            .finish_non_exhaustive()
    }
}

impl AddTokenLayer {
    /// Signs requests as `identity`; add targets with
    /// [`AddTokenLayer::target`] or [`AddTokenLayer::default_audience`].
    pub fn new(identity: Identity) -> Self {
        AddTokenLayer {
            config: Arc::new(ClientConfig {
                identity,
                by_host: HashMap::new(),
                default_audience: None,
                ttl: None,
            }),
        }
    }

    /// Requests to `host` (a host name or address, or `host:port` as written
    /// in the URI; compared without regard to ASCII case) are for
    /// `audience`. A `host:port` entry wins over a host entry.
    pub fn target(mut self, host: impl Into<String>, audience: SpiffeId) -> Self {
        let mut host = host.into();
        host.make_ascii_lowercase();
        Arc::make_mut(&mut self.config)
            .by_host
            .insert(host, audience);
        self
    }

    /// Requests that no mapping or extension covers are for `audience` (one
    /// target per client, as with a tonic channel).
    pub fn default_audience(mut self, audience: SpiffeId) -> Self {
        Arc::make_mut(&mut self.config).default_audience = Some(audience);
        self
    }

    /// Lifetime of the tokens (default: the identity's, 60 s unless its
    /// builder says otherwise).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        Arc::make_mut(&mut self.config).ttl = Some(ttl);
        self
    }
}

impl<S> Layer<S> for AddTokenLayer {
    type Service = AddToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AddToken {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`AddTokenLayer`].
#[derive(Clone)]
pub struct AddToken<S> {
    inner: S,
    config: Arc<ClientConfig>,
}

impl<S: fmt::Debug> fmt::Debug for AddToken<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddToken")
            .field("inner", &self.inner)
            .field("identity", self.config.identity.id())
            .finish_non_exhaustive()
    }
}

impl<S> AddToken<S> {
    /// The wrapped client.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn audience_of<B>(&self, request: &Request<B>) -> Result<SpiffeId, Box<OutboundError>> {
        if let Some(Audience(audience)) = request.extensions().get::<Audience>() {
            return Ok(audience.clone());
        }
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| request.headers().get(HOST).and_then(|h| h.to_str().ok()));
        if let Some(authority) = authority {
            // Drop userinfo; the key is `host[:port]`.
            let host_port = authority.rsplit('@').next().unwrap_or(authority);
            let host_port = host_port.to_ascii_lowercase();
            let host_only = match host_port.rsplit_once(':') {
                Some((host, port))
                    if !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    host
                }
                _ => host_port.as_str(),
            };
            let found = self
                .config
                .by_host
                .get(&host_port)
                .or_else(|| self.config.by_host.get(host_only));
            if let Some(audience) = found.or(self.config.default_audience.as_ref()) {
                return Ok(audience.clone());
            }
            return Err(Box::new(OutboundError::NoAudience { host: host_port }));
        }
        self.config.default_audience.clone().ok_or_else(|| {
            Box::new(OutboundError::NoAudience {
                host: "(none)".into(),
            })
        })
    }

    fn sign<B>(&self, request: &mut Request<B>) -> Result<(), Box<OutboundError>> {
        if request.headers().contains_key(AUTHORIZATION) {
            return Ok(());
        }
        let audience = self.audience_of(request)?;
        let identity = &self.config.identity;
        let minted = match self.config.ttl {
            Some(ttl) => identity.token_with_ttl(&audience, ttl),
            None => identity.token(&audience),
        };
        let token = minted.map_err(|source| {
            Box::new(OutboundError::Mint {
                audience: audience.clone(),
                source,
            })
        })?;
        // A minted token is base64url and dots: always a valid header value.
        let mut value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
            Box::new(OutboundError::HeaderValue {
                audience: audience.clone(),
            })
        })?;
        value.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, value);
        tracing::trace!(target: "spiffile_tower", audience = %audience, "token added");
        Ok(())
    }
}

impl<S, B> Service<Request<B>> for AddToken<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = AddTokenFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match self.sign(&mut request) {
            Ok(()) => AddTokenFuture {
                state: ClientState::Inner {
                    future: self.inner.call(request),
                },
            },
            Err(error) => {
                tracing::warn!(target: "spiffile_tower", "request not sent: {error}");
                AddTokenFuture {
                    state: ClientState::Failed { error: Some(error) },
                }
            }
        }
    }
}

pin_project! {
    /// The response future of [`AddToken`].
    pub struct AddTokenFuture<F> {
        #[pin]
        state: ClientState<F>,
    }
}

pin_project! {
    #[project = ClientStateProj]
    enum ClientState<F> {
        Inner { #[pin] future: F },
        Failed { error: Option<Box<OutboundError>> },
    }
}

impl<F> fmt::Debug for AddTokenFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AddTokenFuture")
    }
}

impl<F, T, E> Future for AddTokenFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            ClientStateProj::Inner { future } => future.poll(cx).map_err(Into::into),
            ClientStateProj::Failed { error } => Poll::Ready(Err(match error.take() {
                Some(error) => error as BoxError, // one box, so `downcast::<OutboundError>` works
                None => "AddTokenFuture polled after completion".into(),
            })),
        }
    }
}
