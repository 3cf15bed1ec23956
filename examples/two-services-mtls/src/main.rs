//! Two services authenticating each other with mutual TLS and X.509-SVIDs.
//!
//! `cargo run -p two-services-mtls` makes a temporary spiffile root
//! (`example.org`) with its own X.509 CA, issues X.509-SVIDs to orders,
//! billing and mallory (what `spiffile x509 init` / `issue` do), starts
//! billing as an axum service over mTLS on an ephemeral loopback port, and
//! checks:
//!
//! * orders calls billing's orders-only `/charge`; billing sees the caller's
//!   SPIFFE ID from the handshake;
//! * mallory, a valid member of the trust domain, gets `403` on `/charge`
//!   (the route's `AuthorizeLayer`) but `200` on `/whoami`;
//! * orders, expecting billing, refuses a server that is mallory (inside the
//!   handshake, before any request is sent);
//! * a client with a certificate from another CA gets no connection;
//! * billing's SVID is renewed and the CA rotated while a keep-alive
//!   connection stays up and new connections keep working.
//!
//! It prints a transcript and exits non-zero if any expectation fails.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use spiffile::SpiffeId;
use spiffile_provision::{self as provision, x509};
use spiffile_tls::{Allow, Reason, ServerIds, X509Files, X509Source};
use spiffile_tower::{AuthorizeLayer, Caller};

type Error = Box<dyn std::error::Error + Send + Sync>;
type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<bytes::Bytes>>;

const TD: &str = "example.org";
const HOUR: Duration = Duration::from_secs(3600);

fn id(name: &str) -> Result<SpiffeId, Error> {
    Ok(format!("spiffe://{TD}/{name}").parse()?)
}

/// billing: `/whoami` for anyone of the trust domain, `/charge` for orders.
async fn start_billing(source: &X509Source, port: u16) -> Result<SocketAddr, Error> {
    async fn whoami(caller: Caller) -> String {
        format!("hello, {}", caller.id())
    }
    async fn charge(caller: Caller) -> String {
        format!("charged on behalf of {}", caller.id())
    }
    let app = Router::new().route("/whoami", get(whoami)).route(
        "/charge",
        get(charge).route_layer(AuthorizeLayer::ids([id("orders")?])),
    );
    // The handshake admits members of example.org; routes narrow it.
    let config = spiffile_tls::server_config(source, Allow::trust_domain(TD.parse()?))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(spiffile_tower::serve_mtls(listener, config, app));
    Ok(addr)
}

/// An HTTPS client presenting `source`'s SVID and accepting only `servers`.
fn client(source: &X509Source, servers: impl Into<ServerIds>) -> Result<HttpsClient, Error> {
    let config = spiffile_tls::client_config(source, servers)?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

async fn get_text(client: &HttpsClient, url: &str) -> Result<(u16, String), Error> {
    let response = client.get(url.parse()?).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

struct Checks {
    failed: usize,
}

impl Checks {
    fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            println!("  ok    {what}: {detail}");
        } else {
            println!("  FAIL  {what}: {detail}");
            self.failed += 1;
        }
    }
}

fn provision(root: &Path) -> Result<(), Error> {
    provision::init_root(root, TD)?;
    x509::init_ca(root, x509::CaOptions::default())?;
    for name in ["orders", "billing", "mallory"] {
        x509::issue_svid(root, name, HOUR)?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    provision(root)?;
    println!(
        "provisioned {} (trust domain {TD}, X.509 CA, SVIDs for orders, billing, mallory)",
        root.display()
    );

    // Each service follows its files (the file watcher: events plus a poll).
    let watch = || spiffile_watch::WatchOptions::default();
    let billing = X509Source::watch(X509Files::root(root, "billing"), watch())?;
    let orders = X509Source::watch(X509Files::root(root, "orders"), watch())?;
    let mallory = X509Source::from_files(X509Files::root(root, "mallory"))?; // read once
    let addr = start_billing(&billing, 0).await?;
    let url = |path: &str| format!("https://127.0.0.1:{}{path}", addr.port());
    println!("billing listens on https://{addr} (mTLS)");
    let mut checks = Checks { failed: 0 };

    let as_orders = client(&orders, id("billing")?)?;
    let (status, body) = get_text(&as_orders, &url("/charge")).await?;
    checks.check(
        "orders -> billing /charge",
        status == 200 && body.ends_with("/orders"),
        format!("{status} {body}"),
    );

    let as_mallory = client(&mallory, id("billing")?)?;
    let (status, body) = get_text(&as_mallory, &url("/charge")).await?;
    checks.check(
        "mallory -> billing /charge (route refuses)",
        status == 403,
        format!("{status} {body}"),
    );
    let (status, body) = get_text(&as_mallory, &url("/whoami")).await?;
    checks.check(
        "mallory -> billing /whoami",
        status == 200,
        format!("{status} {body}"),
    );

    // orders expects billing; a server that is mallory is refused in the handshake.
    let impostor = start_billing(&mallory, 0).await?;
    let result = get_text(
        &as_orders,
        &format!("https://127.0.0.1:{}/whoami", impostor.port()),
    )
    .await;
    let reason = result.as_ref().err().and_then(|e| Reason::of(&**e));
    checks.check(
        "orders -> impostor (mallory as billing)",
        reason == Some(Reason::NotAllowed),
        format!("{reason:?}"),
    );

    // A client whose CA billing does not trust.
    let other = tempfile::tempdir()?;
    provision(other.path())?;
    let stranger = X509Source::from_files(X509Files::root(other.path(), "orders"))?;
    let result = get_text(&client(&stranger, Allow::any())?, &url("/whoami")).await;
    checks.check(
        "stranger (another CA) -> billing",
        result.is_err(),
        "no connection (handshake alert)",
    );

    // Rotation: a keep-alive connection opened now must survive it.
    let keep_alive = client(&orders, id("billing")?)?;
    get_text(&keep_alive, &url("/whoami")).await?;
    x509::renew_svids(root, 0.0, HOUR)?;
    x509::rotate_ca(root, x509::CaOptions::default())?;
    for source in [&billing, &orders] {
        // The watcher does this on its own within milliseconds; reloading
        // here makes the transcript deterministic.
        source.reload()?;
    }
    x509::renew_svids(root, 1.0, HOUR)?; // under the new CA
    for source in [&billing, &orders] {
        source.reload()?;
    }
    x509::retire_old_cas(root)?;
    for source in [&billing, &orders] {
        source.reload()?;
    }
    let (status, _) = get_text(&keep_alive, &url("/whoami")).await?;
    checks.check(
        "keep-alive connection across renewal and CA rotation",
        status == 200,
        status,
    );
    let (status, body) = get_text(&client(&orders, id("billing")?)?, &url("/charge")).await?;
    checks.check(
        "new connection under the new CA",
        status == 200,
        format!("{status} {body}"),
    );
    let result = get_text(&client(&mallory, id("billing")?)?, &url("/whoami")).await;
    checks.check(
        "mallory still presenting its SVID of the retired CA -> billing",
        result.is_err(),
        "no connection",
    );

    if checks.failed > 0 {
        println!("{} expectation(s) failed", checks.failed);
        std::process::exit(1);
    }
    println!("all expectations met");
    Ok(())
}
