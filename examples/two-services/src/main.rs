//! Two services authenticating each other with spiffile over real HTTP.
//!
//! `cargo run -p two-services` provisions a temporary trust domain
//! (`example.org`: orders, billing, mallory), starts `orders` and `billing`
//! as axum services on ephemeral loopback ports, and checks:
//!
//! * orders' `/checkout` calls billing's orders-only `/charge` with a token
//!   for billing, and billing answers with who called;
//! * mallory, though in the bundle, gets `403` on `/charge`;
//! * a forged token (mallory's key, claiming to be orders) gets `401`;
//! * no token gets `401`.
//!
//! It prints a short transcript and exits non-zero if any expectation fails.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use spiffile::bundle::Bundle;
use spiffile::svid::{Signer, generate_pkcs8_pem, public_key_of_pem};
use spiffile::{Identity, SpiffeId};
use spiffile_tower::{AddToken, AddTokenLayer, AuthenticateLayer, AuthorizeLayer, Caller};
use tower::{ServiceBuilder, ServiceExt};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Body = Empty<bytes::Bytes>;
type HttpClient = Client<HttpConnector, Body>;

// ---------------------------------------------------------------------------
// Provisioning by hand: the provisioning layout, every file written
// atomically (temporary file, fsync, rename).

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// `<root>/bundle.json` and `<root>/services/<name>/{id,key.pem}`.
fn provision(root: &Path, trust_domain: &str, names: &[&str]) -> Result<(), Error> {
    let mut bundle = Bundle::new(trust_domain.parse()?);
    for name in names {
        let id = bundle.trust_domain().join(name)?;
        let dir = root.join("services").join(name);
        std::fs::create_dir_all(&dir)?;
        let pem = generate_pkcs8_pem()?;
        write_atomic(&dir.join("key.pem"), pem.as_bytes(), 0o600)?;
        write_atomic(&dir.join("id"), format!("{id}\n").as_bytes(), 0o644)?;
        bundle.add_key_first(&id, public_key_of_pem(pem.as_bytes())?)?;
    }
    write_atomic(
        &root.join("bundle.json"),
        bundle.to_json().as_bytes(),
        0o644,
    )?;
    Ok(())
}

fn service_dir(root: &Path, name: &str) -> PathBuf {
    root.join("services").join(name)
}

fn load(root: &Path, name: &str) -> Result<Identity, Error> {
    let dir = service_dir(root, name);
    Ok(Identity::from_files(
        dir.join("id"),
        dir.join("key.pem"),
        root.join("bundle.json"),
    )?)
}

// ---------------------------------------------------------------------------
// The services

/// billing: `/charge` for orders only, `/whoami` for any verified caller.
fn billing(identity: Identity, orders: SpiffeId) -> Router {
    async fn charge(caller: Caller) -> String {
        format!("charged, on behalf of {}", caller.id())
    }
    async fn whoami(caller: Caller) -> String {
        caller.id().to_string()
    }
    Router::new()
        .route(
            "/charge",
            get(charge).route_layer(AuthorizeLayer::ids([orders])),
        )
        .route("/whoami", get(whoami))
        .layer(AuthenticateLayer::new(identity))
}

#[derive(Clone)]
struct Orders {
    billing: AddToken<HttpClient>,
    billing_url: String,
}

/// orders: a public `/checkout` that calls billing's `/charge` with a token.
fn orders(identity: Identity, billing_id: SpiffeId, billing_addr: SocketAddr) -> Router {
    async fn checkout(State(orders): State<Orders>) -> (StatusCode, String) {
        let request =
            match http::Request::get(format!("{}/charge", orders.billing_url)).body(Body::new()) {
                Ok(request) => request,
                Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            };
        match orders.billing.oneshot(request).await {
            Ok(response) => {
                let status = response.status();
                let body = match response.into_body().collect().await {
                    Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
                    Err(e) => e.to_string(),
                };
                (status, format!("billing said: {body}"))
            }
            Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
        }
    }
    let client = ServiceBuilder::new()
        .layer(AddTokenLayer::new(identity).target(billing_addr.to_string(), billing_id))
        .service(Client::builder(TokioExecutor::new()).build_http());
    Router::new()
        .route("/checkout", get(checkout))
        .with_state(Orders {
            billing: client,
            billing_url: format!("http://{billing_addr}"),
        })
}

async fn serve(app: Router) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

// ---------------------------------------------------------------------------
// The transcript

/// GET `url` with an optional bearer token; status and body.
async fn call(url: &str, token: Option<&str>) -> Result<(u16, String), Error> {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::get(url);
    if let Some(token) = token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = client.request(request.body(Body::new())?).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

struct Transcript {
    failures: usize,
}

impl Transcript {
    fn expect(&mut self, what: &str, want: u16, got: &(u16, String), must_contain: &str) {
        let ok = got.0 == want && got.1.contains(must_contain);
        if !ok {
            self.failures += 1;
        }
        println!(
            "{} {what}\n    -> {} {}",
            if ok { "ok  " } else { "FAIL" },
            got.0,
            got.1
        );
        if !ok {
            println!("    expected {want} with a body containing {must_contain:?}");
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let root = tempfile::tempdir()?;
    provision(
        root.path(),
        "example.org",
        &["orders", "billing", "mallory"],
    )?;
    println!("provisioned example.org in {}", root.path().display());
    let orders_identity = load(root.path(), "orders")?;
    let billing_identity = load(root.path(), "billing")?;
    let mallory = load(root.path(), "mallory")?;

    let billing_addr = serve(billing(
        billing_identity.clone(),
        orders_identity.id().clone(),
    ))
    .await?;
    let orders_addr = serve(orders(
        orders_identity.clone(),
        billing_identity.id().clone(),
        billing_addr,
    ))
    .await?;
    println!("billing on http://{billing_addr}, orders on http://{orders_addr}\n");

    let mut t = Transcript { failures: 0 };
    let charge = format!("http://{billing_addr}/charge");

    let got = call(&format!("http://{orders_addr}/checkout"), None).await?;
    t.expect(
        "orders calls billing /charge with its token",
        200,
        &got,
        "charged, on behalf of spiffe://example.org/orders",
    );

    let token = mallory.token(billing_identity.id())?;
    let got = call(&charge, Some(&token)).await?;
    t.expect(
        "mallory calls billing /charge (orders only)",
        403,
        &got,
        "forbidden",
    );
    let got = call(&format!("http://{billing_addr}/whoami"), Some(&token)).await?;
    t.expect(
        "mallory calls billing /whoami (any verified caller)",
        200,
        &got,
        "spiffe://example.org/mallory",
    );

    let mallory_pem = std::fs::read(service_dir(root.path(), "mallory").join("key.pem"))?;
    let forger = Signer::from_pkcs8_pem(orders_identity.id().clone(), &mallory_pem)?;
    let forged = forger.mint(billing_identity.id(), Duration::from_secs(60))?;
    let got = call(&charge, Some(&forged)).await?;
    t.expect(
        "a token claiming orders, signed with mallory's key",
        401,
        &got,
        r#""reason":"signature""#,
    );

    let got = call(&charge, None).await?;
    t.expect("a call without a token", 401, &got, "missing_token");

    if t.failures > 0 {
        println!("\n{} expectation(s) failed", t.failures);
        std::process::exit(1);
    }
    println!("\nall expectations met");
    Ok(())
}
