//! Inbound side: authenticate the bearer token, then authorize the caller.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use spiffile::{Identity, SpiffeId, TrustDomain};
use tower_layer::Layer;
use tower_service::Service;

use crate::Caller;
use crate::body::ResponseBody;

const TARGET: &str = "spiffile_tower";

// ---------------------------------------------------------------------------
// Allow

/// Which verified callers may pass: a set of SPIFFE IDs, the members of
/// trust domains, a predicate, or anyone who verifies. The same vocabulary
/// as `spiffile_tls::Allow` (which applies it inside the TLS handshake);
/// here it applies to a [`Caller`] whatever its credential (JWT-SVID or
/// X.509-SVID).
///
/// ```
/// use spiffile_tower::Allow;
/// let orders: spiffile::SpiffeId = "spiffe://example.org/orders".parse()?;
/// let only_orders = Allow::ids([orders]);
/// let internal = Allow::predicate(|caller| caller.id().path().starts_with("/internal/"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Allow {
    rule: Rule,
}

#[derive(Clone)]
enum Rule {
    Any,
    Ids(Arc<HashSet<SpiffeId>>),
    TrustDomains(Arc<HashSet<TrustDomain>>),
    Predicate(Arc<dyn Fn(&Caller) -> bool + Send + Sync>),
}

impl Allow {
    /// Every caller whose token verifies (the default of [`Authenticate`]).
    pub fn any() -> Self {
        Allow { rule: Rule::Any }
    }

    /// Exactly these SPIFFE IDs.
    pub fn ids(ids: impl IntoIterator<Item = SpiffeId>) -> Self {
        Allow {
            rule: Rule::Ids(Arc::new(ids.into_iter().collect())),
        }
    }

    /// Every member of `trust_domain`.
    pub fn trust_domain(trust_domain: TrustDomain) -> Self {
        Self::trust_domains([trust_domain])
    }

    /// Every member of these trust domains.
    pub fn trust_domains(trust_domains: impl IntoIterator<Item = TrustDomain>) -> Self {
        Allow {
            rule: Rule::TrustDomains(Arc::new(trust_domains.into_iter().collect())),
        }
    }

    /// Callers for which `allowed` returns true.
    pub fn predicate(allowed: impl Fn(&Caller) -> bool + Send + Sync + 'static) -> Self {
        Allow {
            rule: Rule::Predicate(Arc::new(allowed)),
        }
    }

    /// Whether `caller` may pass.
    pub fn allows(&self, caller: &Caller) -> bool {
        match &self.rule {
            Rule::Any => true,
            Rule::Ids(ids) => ids.contains(caller.id()),
            Rule::TrustDomains(tds) => tds.contains(caller.id().trust_domain()),
            Rule::Predicate(allowed) => allowed(caller),
        }
    }
}

impl fmt::Debug for Allow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Rule::Any => f.write_str("Allow::any()"),
            Rule::Ids(ids) => {
                let mut ids: Vec<&str> = ids.iter().map(SpiffeId::as_str).collect();
                ids.sort_unstable();
                f.debug_tuple("Allow::ids").field(&ids).finish()
            }
            Rule::TrustDomains(tds) => {
                let mut tds: Vec<&str> = tds.iter().map(TrustDomain::as_str).collect();
                tds.sort_unstable();
                f.debug_tuple("Allow::trust_domains").field(&tds).finish()
            }
            Rule::Predicate(_) => f.write_str("Allow::predicate(..)"),
        }
    }
}

impl Default for Allow {
    fn default() -> Self {
        Allow::any()
    }
}

// ---------------------------------------------------------------------------
// Refusals

/// Why a request was refused, and how to say so without helping an attacker.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// No `Authorization: Bearer` credentials at all.
    MissingToken,
    /// A bearer token (or header) that does not verify; the code is a
    /// [`spiffile::Reason`] code, `unknown_identity`, or `malformed`.
    InvalidToken(&'static str),
    /// A verified caller that is not allowed here.
    Forbidden,
    /// A local fault (the system clock, a missing layer).
    Internal,
}

/// Settings shared by the refusals of one layer.
#[derive(Debug, Clone, Copy)]
struct RefusalStyle {
    reveal_reason: bool,
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

impl Refusal {
    fn response<B>(self, grpc: bool, style: RefusalStyle) -> Response<ResponseBody<B>> {
        if grpc {
            return self.grpc_response(style);
        }
        let (status, body) = match self {
            Refusal::MissingToken => (
                StatusCode::UNAUTHORIZED,
                r#"{"error":"missing_token"}"#.to_owned(),
            ),
            Refusal::InvalidToken(code) if style.reveal_reason => (
                StatusCode::UNAUTHORIZED,
                format!(r#"{{"error":"invalid_token","reason":"{code}"}}"#),
            ),
            Refusal::InvalidToken(_) => (
                StatusCode::UNAUTHORIZED,
                r#"{"error":"invalid_token"}"#.to_owned(),
            ),
            Refusal::Forbidden => (StatusCode::FORBIDDEN, r#"{"error":"forbidden"}"#.to_owned()),
            Refusal::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"internal"}"#.to_owned(),
            ),
        };
        let mut response = Response::new(ResponseBody::refusal(Bytes::from(body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        match self {
            // RFC 6750 §3.1: no error code when the request has no credentials.
            Refusal::MissingToken => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Refusal::InvalidToken(_) => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            Refusal::Forbidden | Refusal::Internal => {}
        }
        response
    }

    /// A trailers-only gRPC response: HTTP 200 with `grpc-status` in the
    /// headers, which every gRPC client reads as the call's status.
    fn grpc_response<B>(self, style: RefusalStyle) -> Response<ResponseBody<B>> {
        let (status, message) = match self {
            Refusal::MissingToken => ("16", "missing_token"),
            Refusal::InvalidToken(code) if style.reveal_reason => ("16", code),
            Refusal::InvalidToken(_) => ("16", "invalid_token"),
            Refusal::Forbidden => ("7", "forbidden"),
            Refusal::Internal => ("13", "internal"),
        };
        let mut response = Response::new(ResponseBody::refusal(Bytes::new()));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from_static(status));
        headers.insert("grpc-message", HeaderValue::from_static(message));
        response
    }
}

/// The stable code of a verification failure, for the response and the log.
fn refusal_code(error: &spiffile::Error) -> &'static str {
    match error {
        spiffile::Error::UnknownIdentity(_) => "unknown_identity",
        e => e.reason().map_or("invalid_token", spiffile::Reason::as_str),
    }
}

/// The bearer token of a request, or the refusal.
fn bearer_token(headers: &HeaderMap) -> Result<&str, Refusal> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Refusal::MissingToken);
    };
    if values.next().is_some() {
        return Err(Refusal::InvalidToken("malformed"));
    }
    let value = value
        .to_str()
        .map_err(|_| Refusal::InvalidToken("malformed"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Other schemes (Basic, ...) carry no bearer credentials.
        return Err(Refusal::MissingToken);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(Refusal::InvalidToken("malformed"));
    }
    Ok(token)
}

// ---------------------------------------------------------------------------
// Authenticate

/// A tower [`Layer`] that authenticates every request with its
/// `Authorization: Bearer` JWT-SVID and puts the verified
/// [`spiffile::Caller`] into the request extensions.
///
/// Refusals:
///
/// | request | HTTP answer | gRPC answer (`content-type: application/grpc…`) |
/// |---|---|---|
/// | no bearer credentials | `401`, `WWW-Authenticate: Bearer`, `{"error":"missing_token"}` | `UNAUTHENTICATED` |
/// | token refused | `401`, `WWW-Authenticate: Bearer error="invalid_token"`, `{"error":"invalid_token","reason":"<code>"}` | `UNAUTHENTICATED` |
/// | caller not allowed ([`AuthenticateLayer::allow`]) | `403`, `{"error":"forbidden"}` | `PERMISSION_DENIED` |
///
/// The `<code>` is a [`spiffile::Reason`] code (`expired`, `audience`,
/// `signature`, …), `unknown_identity` or `malformed`; nothing else of the
/// verifier's message leaves the process ([`AuthenticateLayer::hide_reason`]
/// drops even the code). The full message goes to the `tracing` log.
///
/// Verification is an ECDSA check of about 80 µs of CPU and makes no
/// file-system calls, so it runs inline in `call`; moving it to
/// `spawn_blocking` would cost more than it saves.
#[derive(Debug, Clone)]
pub struct AuthenticateLayer {
    config: Arc<AuthConfig>,
}

#[derive(Debug, Clone)]
struct AuthConfig {
    identity: Identity,
    audience: Option<SpiffeId>,
    allow: Allow,
    style: RefusalStyle,
}

impl AuthenticateLayer {
    /// Authenticates requests with tokens addressed to `identity`'s own ID,
    /// verified against its bundle (so a reload or a revocation applies to
    /// the next request).
    pub fn new(identity: Identity) -> Self {
        AuthenticateLayer {
            config: Arc::new(AuthConfig {
                identity,
                audience: None,
                allow: Allow::any(),
                style: RefusalStyle {
                    reveal_reason: true,
                },
            }),
        }
    }

    fn edit(mut self, edit: impl FnOnce(&mut AuthConfig)) -> Self {
        edit(Arc::make_mut(&mut self.config));
        self
    }

    /// Accepts tokens addressed to `audience` instead of the identity's own
    /// ID (a service reached under a shared name).
    pub fn audience(self, audience: SpiffeId) -> Self {
        self.edit(|c| c.audience = Some(audience))
    }

    /// Lets only the callers `allow` admits through, answering `403` to the
    /// others. For a rule per route, use [`AuthorizeLayer`] inside this
    /// layer instead.
    pub fn allow(self, allow: Allow) -> Self {
        self.edit(|c| c.allow = allow)
    }

    /// Answers a refused token with `invalid_token` only, without the
    /// reason code.
    pub fn hide_reason(self) -> Self {
        self.edit(|c| c.style.reveal_reason = false)
    }
}

impl<S> Layer<S> for AuthenticateLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`AuthenticateLayer`].
#[derive(Debug, Clone)]
pub struct Authenticate<S> {
    inner: S,
    config: Arc<AuthConfig>,
}

impl<S> Authenticate<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn check<B>(&self, request: &Request<B>) -> Result<spiffile::Caller, Refusal> {
        let config = &self.config;
        let method = request.method().as_str();
        let path = request.uri().path();
        let token = bearer_token(request.headers()).inspect_err(|refusal| {
            let reason = match refusal {
                Refusal::InvalidToken(code) => code,
                _ => "missing_token",
            };
            tracing::info!(target: TARGET, method, path, reason, "request refused: 401");
        })?;
        let verified = match &config.audience {
            Some(audience) => config.identity.verify_for(token, audience),
            None => config.identity.verify(token),
        };
        let caller = match verified {
            Ok(caller) => caller,
            Err(error) if error.is_unauthenticated() => {
                let reason = refusal_code(&error);
                match &error {
                    spiffile::Error::UnknownIdentity(claimed) => tracing::info!(
                        target: TARGET, method, path, reason, caller = %claimed,
                        "request refused: 401: {error}"
                    ),
                    _ => tracing::info!(
                        target: TARGET, method, path, reason,
                        "request refused: 401: {error}"
                    ),
                }
                return Err(Refusal::InvalidToken(reason));
            }
            Err(error) => {
                tracing::error!(target: TARGET, method, path, "cannot verify tokens: {error}");
                return Err(Refusal::Internal);
            }
        };
        if !config.allow.allows(&Caller::from(caller.clone())) {
            tracing::info!(
                target: TARGET, method, path, caller = %caller.id(), reason = "forbidden",
                "request refused: 403: caller not allowed"
            );
            return Err(Refusal::Forbidden);
        }
        tracing::debug!(target: TARGET, method, path, caller = %caller.id(), "request accepted");
        Ok(caller)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Authenticate<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        match self.check(&request) {
            Ok(caller) => {
                // Both forms: tonic handlers and older code read
                // `spiffile::Caller`; Allow, the extractor and code that does
                // not care about the credential read `spiffile_tower::Caller`.
                request
                    .extensions_mut()
                    .insert(Caller::from(caller.clone()));
                request.extensions_mut().insert(caller);
                ResponseFuture::inner(self.inner.call(request))
            }
            Err(refusal) => ResponseFuture::refused(
                refusal.response(is_grpc(request.headers()), self.config.style),
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Authorize

/// A tower [`Layer`] that lets only allowed callers through, answering `403`
/// (gRPC `PERMISSION_DENIED`) to the others: put it on a route or a router
/// *inside* an [`AuthenticateLayer`], which supplies the verified caller.
///
/// A request that reaches it without a verified caller (the authenticating
/// layer is missing: a configuration mistake) gets `500` and an error in the
/// log, never a pass.
#[derive(Debug, Clone)]
pub struct AuthorizeLayer {
    allow: Allow,
}

impl AuthorizeLayer {
    /// Allows the callers `allow` admits.
    pub fn new(allow: Allow) -> Self {
        AuthorizeLayer { allow }
    }

    /// Allows exactly these SPIFFE IDs; shorthand for
    /// `AuthorizeLayer::new(Allow::ids(ids))`.
    pub fn ids(ids: impl IntoIterator<Item = SpiffeId>) -> Self {
        AuthorizeLayer::new(Allow::ids(ids))
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            allow: self.allow.clone(),
        }
    }
}

/// The service of [`AuthorizeLayer`].
#[derive(Debug, Clone)]
pub struct Authorize<S> {
    inner: S,
    allow: Allow,
}

impl<S> Authorize<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Authorize<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let method = request.method().as_str();
        let path = request.uri().path();
        let refusal = match request.extensions().get::<Caller>() {
            Some(caller) if self.allow.allows(caller) => None,
            Some(caller) => {
                tracing::info!(
                    target: TARGET, method, path, caller = %caller.id(), reason = "forbidden",
                    "request refused: 403: caller not allowed on this route"
                );
                Some(Refusal::Forbidden)
            }
            None => {
                tracing::error!(
                    target: TARGET, method, path,
                    "no verified caller in the request: AuthorizeLayer must be inside an AuthenticateLayer"
                );
                Some(Refusal::Internal)
            }
        };
        match refusal {
            None => ResponseFuture::inner(self.inner.call(request)),
            Some(refusal) => ResponseFuture::refused(refusal.response(
                is_grpc(request.headers()),
                RefusalStyle {
                    reveal_reason: true,
                },
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// Future

pin_project! {
    /// The response future of [`Authenticate`] and [`Authorize`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<ResponseBody<B>>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    fn inner(future: F) -> Self {
        ResponseFuture {
            state: State::Inner { future },
        }
    }

    fn refused(response: Response<ResponseBody<B>>) -> Self {
        ResponseFuture {
            state: State::Refused {
                response: Some(response),
            },
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future
                .poll(cx)
                .map(|result| result.map(|response| response.map(ResponseBody::inner))),
            StateProj::Refused { response } => Poll::Ready(Ok(response.take().unwrap_or_else(
                // Polled again after completion: answer a refusal rather than panic.
                || {
                    Refusal::Internal.response(
                        false,
                        RefusalStyle {
                            reveal_reason: false,
                        },
                    )
                },
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn code(r: Result<&str, Refusal>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(Refusal::MissingToken) => "missing_token",
            Err(Refusal::InvalidToken(c)) => c,
            Err(_) => "other",
        }
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token(&headers(&["Bearer a.b.c"])).unwrap(), "a.b.c");
        assert_eq!(
            bearer_token(&headers(&["bearer  a.b.c "])).unwrap(),
            "a.b.c"
        );
        assert_eq!(code(bearer_token(&headers(&[]))), "missing_token");
        assert_eq!(
            code(bearer_token(&headers(&["Basic dXNlcjpwYXNz"]))),
            "missing_token"
        );
        assert_eq!(code(bearer_token(&headers(&["Bearer"]))), "malformed");
        assert_eq!(code(bearer_token(&headers(&["Bearer   "]))), "malformed");
        assert_eq!(code(bearer_token(&headers(&["Bearer a b"]))), "malformed");
        assert_eq!(
            code(bearer_token(&headers(&["Bearer a", "Bearer b"]))),
            "malformed"
        );
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert_eq!(code(bearer_token(&h)), "malformed");
    }

    #[test]
    fn refusal_headers_follow_rfc_6750() {
        let style = RefusalStyle {
            reveal_reason: true,
        };
        let r: Response<ResponseBody<String>> = Refusal::MissingToken.response(false, style);
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
        let r: Response<ResponseBody<String>> =
            Refusal::InvalidToken("expired").response(false, style);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
        let r: Response<ResponseBody<String>> = Refusal::Forbidden.response(false, style);
        assert_eq!(r.status(), 403);
        assert!(r.headers().get(WWW_AUTHENTICATE).is_none());
        let r: Response<ResponseBody<String>> = Refusal::Forbidden.response(true, style);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "7");
    }

    #[test]
    fn allow_rules() {
        let allow = Allow::ids(["spiffe://example.org/a".parse().unwrap()]);
        assert!(format!("{allow:?}").contains("spiffe://example.org/a"));
        assert!(format!("{:?}", Allow::predicate(|_| true)).contains("predicate"));
    }
}
