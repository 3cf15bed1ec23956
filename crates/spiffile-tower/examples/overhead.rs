//! What the layers add to a request over loopback HTTP/1.1 (keep-alive, one
//! request at a time): the same axum handler with and without
//! `AuthenticateLayer` + `AddTokenLayer`.
//!
//! `cargo run --release -p spiffile-tower --example overhead [requests]`
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use spiffile::Identity;
use spiffile::bundle::Bundle;
use spiffile::svid::{generate_pkcs8_pem, public_key_of_pem};
use spiffile_tower::{AddTokenLayer, AuthenticateLayer};
use tower::{Service, ServiceBuilder, ServiceExt};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn provision(root: &std::path::Path) -> Result<(Identity, Identity), Error> {
    let mut bundle = Bundle::new("example.org".parse()?);
    for name in ["orders", "billing"] {
        let id = bundle.trust_domain().join(name)?;
        let dir = root.join(name);
        std::fs::create_dir_all(&dir)?;
        let pem = generate_pkcs8_pem()?;
        std::fs::write(dir.join("key.pem"), pem.as_bytes())?;
        std::fs::write(dir.join("id"), id.as_str())?;
        bundle.add_key_first(&id, public_key_of_pem(pem.as_bytes())?)?;
    }
    std::fs::write(root.join("bundle.json"), bundle.to_json())?;
    let load = |name: &str| {
        let dir = root.join(name);
        Identity::from_files(
            dir.join("id"),
            dir.join("key.pem"),
            root.join("bundle.json"),
        )
    };
    Ok((load("orders")?, load("billing")?))
}

async fn run<S>(mut client: S, url: &str, n: usize) -> Result<Duration, Error>
where
    S: Service<
            http::Request<Empty<bytes::Bytes>>,
            Response = http::Response<hyper::body::Incoming>,
        >,
    S::Error: Into<Error>,
{
    let one = async |client: &mut S| -> Result<(), Error> {
        let request = http::Request::get(url).body(Empty::new())?;
        let response = client
            .ready()
            .await
            .map_err(Into::into)?
            .call(request)
            .await
            .map_err(Into::into)?;
        if response.status() != 200 {
            return Err(format!("status {}", response.status()).into());
        }
        response.into_body().collect().await?;
        Ok(())
    };
    for _ in 0..n / 10 {
        one(&mut client).await?;
    }
    let start = Instant::now();
    for _ in 0..n {
        one(&mut client).await?;
    }
    Ok(start.elapsed() / n as u32)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let n: usize = std::env::args().nth(1).map_or(Ok(5000), |a| a.parse())?;
    let root = tempfile::tempdir()?;
    let (orders, billing) = provision(root.path())?;
    let app = Router::new().route("/", get(|| async { "ok" }));
    let plain_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let plain = plain_listener.local_addr()?;
    let authed_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let authed = authed_listener.local_addr()?;
    let authed_app = app.clone().layer(AuthenticateLayer::new(billing.clone()));
    tokio::spawn(async move { axum::serve(plain_listener, app).await });
    tokio::spawn(async move { axum::serve(authed_listener, authed_app).await });

    let token = orders.token(billing.id())?;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(orders.token(billing.id())?);
    }
    let mint = start.elapsed() / n as u32;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(billing.verify(&token)?);
    }
    let verify = start.elapsed() / n as u32;

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let signed = ServiceBuilder::new()
        .layer(AddTokenLayer::new(orders).default_audience(billing.id().clone()))
        .service(client.clone());
    let without = run(client, &format!("http://{plain}/"), n).await?;
    let with = run(signed, &format!("http://{authed}/"), n).await?;
    println!("{n} sequential requests over loopback, mean per request:");
    println!("  without spiffile layers: {without:?}");
    println!(
        "  with mint + verify:      {with:?}  (+{:?})",
        with.saturating_sub(without)
    );
    println!("  of which Identity::token {mint:?}, Identity::verify {verify:?} (measured alone)");
    Ok(())
}
