//! The verified caller as an axum extractor: a handler behind an
//! [`AuthenticateLayer`](crate::AuthenticateLayer) or served by
//! `serve_mtls` takes `caller: Caller`; `Option<Caller>` is `None` where
//! nothing verified a caller.

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::Caller;

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
            "a handler takes the spiffile Caller but no AuthenticateLayer (or mTLS server) verified one: add the layer to its route"
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
            .get::<Caller>()
            .cloned()
            .ok_or(NoVerifiedCaller)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned())
    }
}
