//! Test helpers: servers on loopback, a plain HTTP client, and the world of
//! the HTTP tests (its root comes from `spiffile-testkit`).
#![allow(dead_code)]

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use spiffile::Identity;
use spiffile_testkit::{Root, id};

/// Serves an axum router on an ephemeral loopback port.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

pub type PlainClient = Client<HttpConnector, Empty<Bytes>>;

pub fn plain_client() -> PlainClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn get(url: &str) -> http::Request<Empty<Bytes>> {
    http::Request::get(url).body(Empty::new()).unwrap()
}

/// Status, headers and body text of a response.
/// Sends a GET to `url` through `client` and reads the whole response.
pub async fn fetch<S, B>(client: S, url: &str) -> (http::StatusCode, http::HeaderMap, String)
where
    S: tower::Service<http::Request<Empty<Bytes>>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    use tower::ServiceExt as _;
    read(client.oneshot(get(url)).await.unwrap()).await
}

pub async fn read<B>(response: http::Response<B>) -> (http::StatusCode, http::HeaderMap, String)
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

/// The world of the HTTP tests: orders, billing and mallory, and billing
/// served on loopback.
pub async fn whoami(caller: spiffile_tower::Caller) -> String {
    caller.id().to_string()
}

/// billing: `/whoami` for any verified caller, `/charge` for orders only.
pub fn billing_app(billing: &Identity) -> axum::Router {
    axum::Router::new()
        .route("/whoami", axum::routing::get(whoami))
        .route(
            "/charge",
            axum::routing::get(whoami).route_layer(spiffile_tower::AuthorizeLayer::ids([id(
                "spiffe://example.org/orders",
            )])),
        )
        .layer(spiffile_tower::AuthenticateLayer::new(billing.clone()))
}

pub struct World {
    pub root: Root,
    pub orders: Identity,
    pub billing: Identity,
    pub mallory: Identity,
    pub base: String,
}

pub async fn world() -> World {
    let mut root = Root::new("example.org");
    let [orders, billing, mallory] = root.add_all(["orders", "billing", "mallory"]);
    let addr = serve(billing_app(&billing)).await;
    World {
        root,
        orders,
        billing,
        mallory,
        base: format!("http://{addr}"),
    }
}
