//! The verified caller as an axum extractor.

use std::ops::Deref;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

/// The verified caller, as an axum extractor: a handler behind an
/// [`AuthenticateLayer`](crate::AuthenticateLayer) takes `caller: Caller`.
///
/// Dereferences to [`spiffile::Caller`] (`caller.id()`, `caller.claims()`).
/// `Option<Caller>` is `None` where no layer verified a caller.
///
/// ```
/// use spiffile_tower::Caller;
/// async fn whoami(caller: Caller) -> String {
///     format!("hello, {}", caller.id())
/// }
/// let app: axum::Router = axum::Router::new().route("/whoami", axum::routing::get(whoami));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub spiffile::Caller);

impl Caller {
    /// The verified caller.
    pub fn into_inner(self) -> spiffile::Caller {
        self.0
    }
}

impl Deref for Caller {
    type Target = spiffile::Caller;

    fn deref(&self) -> &spiffile::Caller {
        &self.0
    }
}

impl From<Caller> for spiffile::Caller {
    fn from(caller: Caller) -> Self {
        caller.0
    }
}

/// The rejection of the [`Caller`] extractor: the handler is not behind an
/// [`AuthenticateLayer`](crate::AuthenticateLayer), a configuration mistake
/// answered with `500` (and an error in the log), never as a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NoVerifiedCaller;

impl IntoResponse for NoVerifiedCaller {
    fn into_response(self) -> Response {
        tracing::error!(
            target: "spiffile_tower",
            "a handler takes the spiffile Caller but no AuthenticateLayer verified one: add the layer to its route"
        );
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(http::header::CONTENT_TYPE, "application/json")],
            r#"{"error":"internal"}"#,
        )
            .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = NoVerifiedCaller;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<spiffile::Caller>()
            .cloned()
            .map(Caller)
            .ok_or(NoVerifiedCaller)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<spiffile::Caller>()
            .cloned()
            .map(Caller))
    }
}
