//! spiffile for tower: authenticate axum, tonic and hyper services with
//! JWT-SVIDs, authorize callers by SPIFFE ID, and sign outbound calls.
//!
//! * [`AuthenticateLayer`] (server): takes the token from
//!   `Authorization: Bearer …`, verifies it with a shared
//!   [`spiffile::Identity`] and puts the verified [`spiffile::Caller`] into
//!   the request extensions; refuses with `401` (gRPC `UNAUTHENTICATED`).
//! * [`AuthorizeLayer`] / [`Allow`] (server): per route or router, lets only
//!   allowed callers through; `403` (gRPC `PERMISSION_DENIED`) for the rest.
//! * [`Caller`]: the verified caller, by JWT-SVID or by X.509-SVID; with
//!   the `axum` feature, a handler argument.
//! * [`AddTokenLayer`] (client): adds a token for each request's target,
//!   chosen by host or per request ([`Audience`]); for hyper-util's client
//!   and tonic channels. Tokens are reused while they have more than half
//!   of their lifetime left ([`spiffile::Identity::token`]).
//! * `RequestBuilderExt` (feature `reqwest`): the same for reqwest.
//! * `serve_mtls` (feature `tls`): any tower HTTP service (axum, tonic
//!   `Routes`, hyper) over mutual TLS with X.509-SVIDs, the verified
//!   [`Caller`] in every request.
//! * `tonic::mtls_incoming` / `tonic::MtlsConnector` (feature `tonic`):
//!   tonic's own `Server` and `Channel` over the same mTLS, the [`Caller`]
//!   as tonic's connect info.
//!
//! Every accepted and refused request is a `tracing` event (target
//! `spiffile_tower`) with the caller's ID and the refusal code; tokens are
//! never logged. tonic needs no feature: the layers are plain tower layers
//! (`Server::builder().layer(…)`, `ServiceBuilder::new().layer(…).service(channel)`),
//! and a tonic handler reads the caller with
//! `request.extensions().get::<spiffile_tower::Caller>()`.
//!
//! # axum in ten lines
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use spiffile_tower::{AuthenticateLayer, Caller};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // SPIFFILE_DIR=./idroot/services/billing (or id, key.pem, bundle.json in one directory)
//!     let identity = spiffile::Identity::from_env()?;
//!     let app = Router::new()
//!         .route("/whoami", get(|caller: Caller| async move { caller.id().to_string() }))
//!         .layer(AuthenticateLayer::new(identity));
//!     axum::serve(tokio::net::TcpListener::bind("127.0.0.1:8080").await?, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! # Example
//!
//! Billing accepts calls to `/charge` from orders only; orders calls billing.
//! The two would be two processes; here they share one, each with its own
//! identity (made with `spiffile init ./idroot --trust-domain example.org`
//! and `spiffile add ./idroot orders billing`).
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use http_body_util::{BodyExt, Empty};
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use spiffile_tower::{AddTokenLayer, AuthenticateLayer, AuthorizeLayer, Caller};
//! use tower::ServiceBuilder;
//!
//! async fn whoami(caller: Caller) -> String {
//!     format!("hello, {}", caller.id())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//!     // Server (billing), with billing's identity.
//!     let billing_identity = spiffile::Identity::from_dir("./idroot/services/billing")?;
//!     let orders: spiffile::SpiffeId = "spiffe://example.org/orders".parse()?;
//!     let app = Router::new()
//!         .route("/whoami", get(whoami))
//!         .route(
//!             "/charge",
//!             get(whoami).route_layer(AuthorizeLayer::ids([orders])),
//!         )
//!         .layer(AuthenticateLayer::new(billing_identity.clone()));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//!     tokio::spawn(async move { axum::serve(listener, app).await });
//!
//!     // Client (orders), with orders' own identity: every request to
//!     // 127.0.0.1:8081 carries a token from orders for billing.
//!     let orders_identity = spiffile::Identity::from_dir("./idroot/services/orders")?;
//!     let client = ServiceBuilder::new()
//!         .layer(AddTokenLayer::new(orders_identity).target("127.0.0.1:8081", billing_identity.id().clone()))
//!         .service(Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>());
//!     let request = http::Request::get("http://127.0.0.1:8081/whoami").body(Empty::new())?;
//!     let response = tower::ServiceExt::oneshot(client, request).await?;
//!     let body = response.into_body().collect().await?.to_bytes();
//!     println!("{}", String::from_utf8_lossy(&body));
//!     Ok(())
//! }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The workspace README's examples, compiled as doctests here, where axum
// and tokio are at hand.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct WorkspaceReadme;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct CrateReadme;

#[cfg(feature = "axum")]
mod axum;
mod body;
mod caller;
mod client;
#[cfg(feature = "tls")]
mod mtls;
#[cfg(feature = "reqwest")]
mod reqwest;
mod server;
#[cfg(feature = "tonic")]
pub mod tonic;

#[cfg(feature = "axum")]
pub use crate::axum::NoVerifiedCaller;
#[cfg(feature = "reqwest")]
pub use crate::reqwest::RequestBuilderExt;
pub use body::ResponseBody;
pub use caller::{Caller, Credential};
pub use client::{AddToken, AddTokenFuture, AddTokenLayer, Audience, BoxError, OutboundError};
#[cfg(feature = "tls")]
pub use mtls::{HANDSHAKE_TIMEOUT, MtlsConnectInfo, serve_mtls, serve_mtls_with_shutdown};
pub use server::{
    Allow, Authenticate, AuthenticateLayer, Authorize, AuthorizeLayer, ResponseFuture,
};
