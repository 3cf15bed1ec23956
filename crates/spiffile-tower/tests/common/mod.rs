//! Test helpers: a temporary root written by hand, servers on loopback, and
//! a plain HTTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use spiffile::bundle::Bundle;
use spiffile::svid::{generate_pkcs8_pem, public_key_of_pem};
use spiffile::{Identity, SpiffeId};

pub fn id(s: &str) -> SpiffeId {
    s.parse().unwrap()
}

/// A trust domain's files in a temporary directory, in the provisioning
/// layout (`bundle.json`, `services/<name>/{id,key.pem}`).
pub struct Root {
    pub dir: tempfile::TempDir,
    pub bundle: Bundle,
}

impl Root {
    pub fn new(td: &str) -> Root {
        Root {
            dir: tempfile::tempdir().unwrap(),
            bundle: Bundle::new(td.parse().unwrap()),
        }
    }

    pub fn bundle_path(&self) -> PathBuf {
        self.dir.path().join("bundle.json")
    }

    pub fn service_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("services").join(name)
    }

    pub fn pem(&self, name: &str) -> String {
        std::fs::read_to_string(self.service_dir(name).join("key.pem")).unwrap()
    }

    /// Adds services with fresh keys, writes their files and the bundle,
    /// and loads their identities (after the bundle has all of them).
    pub fn add_all<const N: usize>(&mut self, names: [&str; N]) -> [Identity; N] {
        for name in names {
            self.add(name);
        }
        names.map(|name| self.identity(name))
    }

    pub fn identity(&self, name: &str) -> Identity {
        let dir = self.service_dir(name);
        Identity::from_files(dir.join("id"), dir.join("key.pem"), self.bundle_path()).unwrap()
    }

    /// Adds a service with a fresh key and writes its files and the bundle.
    pub fn add(&mut self, name: &str) {
        let pem = generate_pkcs8_pem().unwrap();
        let id = self.bundle.trust_domain().join(name).unwrap();
        let dir = self.service_dir(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("id"), format!("{id}\n")).unwrap();
        write_private(&dir.join("key.pem"), pem.as_bytes());
        let key = public_key_of_pem(pem.as_bytes()).unwrap();
        self.bundle.add_key_first(&id, key).unwrap();
        self.write_bundle();
    }

    /// Removes a service from the bundle (revocation) and rewrites it.
    pub fn revoke(&mut self, name: &str) {
        let id = self.bundle.trust_domain().join(name).unwrap();
        self.bundle.remove_identity(id.as_str()).unwrap();
        self.write_bundle();
    }

    /// Writes the bundle atomically (temporary file + rename).
    pub fn write_bundle(&self) {
        let tmp = self.dir.path().join(".bundle.json.tmp");
        std::fs::write(&tmp, self.bundle.to_json()).unwrap();
        std::fs::rename(&tmp, self.bundle_path()).unwrap();
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).unwrap().write_all(bytes).unwrap();
}

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
