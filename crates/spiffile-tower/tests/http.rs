//! The layers over real HTTP on loopback: axum servers, hyper-util clients.

mod common;

use axum::Router;
use axum::routing::get as route_get;
use common::{World, fetch, get, plain_client, read, serve, whoami, world};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use spiffile::Identity;
use spiffile_testkit::{Root, id};
use spiffile_tower::{AddTokenLayer, Allow, Audience, AuthenticateLayer};
use tower::{ServiceBuilder, ServiceExt};

/// A hyper-util client that signs every request to billing as `identity`.
fn signed_client(
    identity: &Identity,
    w: &World,
) -> impl tower::Service<
    http::Request<http_body_util::Empty<bytes::Bytes>>,
    Response = http::Response<hyper::body::Incoming>,
    Error = spiffile_tower::BoxError,
> + Clone
+ use<> {
    let host = w.base.trim_start_matches("http://").to_owned();
    ServiceBuilder::new()
        .layer(AddTokenLayer::new(identity.clone()).target(host, w.billing.id().clone()))
        .service(plain_client())
}

#[tokio::test]
async fn accepted_caller_reaches_the_handler_with_its_id() {
    let w = world().await;
    let client = signed_client(&w.orders, &w);
    let (status, _, body) = fetch(client.clone(), &format!("{}/whoami", w.base)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "spiffe://example.org/orders");
    let (status, _, body) = fetch(client, &format!("{}/charge", w.base)).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "spiffe://example.org/orders")
    );
}

#[tokio::test]
async fn no_token_is_401_with_a_bare_bearer_challenge() {
    let w = world().await;
    let (status, headers, body) = fetch(plain_client(), &format!("{}/whoami", w.base)).await;
    assert_eq!(status, 401);
    assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
    assert_eq!(body, r#"{"error":"missing_token"}"#);

    // Another scheme carries no bearer credentials either.
    let mut request = get(&format!("{}/whoami", w.base));
    request
        .headers_mut()
        .insert(AUTHORIZATION, "Basic b3JkZXJzOnB3".parse().unwrap());
    let (status, headers, _) = read(plain_client().oneshot(request).await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn token_for_another_audience_is_401_invalid_token() {
    let w = world().await;
    // The per-request extension overrides the host mapping: a token for
    // inventory sent to billing.
    let mut request = get(&format!("{}/whoami", w.base));
    request
        .extensions_mut()
        .insert(Audience(id("spiffe://example.org/inventory")));
    let response = signed_client(&w.orders, &w).oneshot(request).await.unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, 401);
    assert_eq!(headers[WWW_AUTHENTICATE], r#"Bearer error="invalid_token""#);
    assert_eq!(body, r#"{"error":"invalid_token","reason":"audience"}"#);
    assert!(
        !body.contains("inventory") && !body.contains("billing"),
        "{body}"
    );
}

#[tokio::test]
async fn forged_and_garbage_tokens_are_401() {
    let w = world().await;
    // mallory signs a token claiming to be orders, with her own key.
    let forger = spiffile::svid::Signer::from_pkcs8_pem(
        w.orders.id().clone(),
        w.root.pem("mallory").as_bytes(),
    )
    .unwrap();
    let forged = forger
        .mint(w.billing.id(), std::time::Duration::from_secs(60))
        .unwrap();
    for (token, reason) in [(forged.as_str(), "signature"), ("not-a-token", "malformed")] {
        let mut request = get(&format!("{}/whoami", w.base));
        request
            .headers_mut()
            .insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        let (status, headers, body) = read(plain_client().oneshot(request).await.unwrap()).await;
        assert_eq!(status, 401, "{token}");
        assert_eq!(headers[WWW_AUTHENTICATE], r#"Bearer error="invalid_token""#);
        assert_eq!(
            body,
            format!(r#"{{"error":"invalid_token","reason":"{reason}"}}"#)
        );
    }
}

#[tokio::test]
async fn verified_but_disallowed_caller_is_403_on_the_restricted_route_only() {
    let w = world().await;
    let client = signed_client(&w.mallory, &w);
    let (status, headers, body) = fetch(client.clone(), &format!("{}/charge", w.base)).await;
    assert_eq!(status, 403);
    assert!(headers.get(WWW_AUTHENTICATE).is_none());
    assert_eq!(body, r#"{"error":"forbidden"}"#);
    let (status, _, body) = fetch(client, &format!("{}/whoami", w.base)).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "spiffe://example.org/mallory")
    );
}

#[tokio::test]
async fn allow_on_the_authenticate_layer_and_hidden_reasons() {
    let mut root = Root::new("example.org");
    let [orders, billing, mallory] = root.add_all(["orders", "billing", "mallory"]);
    let app = Router::new().route("/whoami", route_get(whoami)).layer(
        AuthenticateLayer::new(billing.clone())
            .allow(Allow::predicate(|caller| caller.id().path() == "/orders"))
            .hide_reason(),
    );
    let base = format!("http://{}", serve(app).await);
    let call = |who: &Identity, audience: &spiffile::SpiffeId| {
        let mut request = get(&format!("{base}/whoami"));
        let token = who.token(audience).unwrap();
        request
            .headers_mut()
            .insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        plain_client().oneshot(request)
    };
    let (status, _, body) = read(call(&orders, billing.id()).await.unwrap()).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "spiffe://example.org/orders")
    );
    let (status, _, _) = read(call(&mallory, billing.id()).await.unwrap()).await;
    assert_eq!(status, 403);
    let (status, _, body) = read(call(&orders, orders.id()).await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body, r#"{"error":"invalid_token"}"#);
}

/// Waits until the server's Identity has picked up the rewritten bundle on
/// its own (hot reload: file events, then a 1 s poll as a safety net). No
/// explicit reload: the running server follows the file.
fn bundle_rewritten(server: &Identity, before: u64) {
    let start = std::time::Instant::now();
    while server.bundle_generation() == before {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "bundle change not seen"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[tokio::test]
async fn revocation_during_the_run_refuses_the_next_request() {
    let mut w = world().await;
    let client = signed_client(&w.orders, &w);
    let url = format!("{}/whoami", w.base);
    let (status, _, _) = fetch(client.clone(), &url).await;
    assert_eq!(status, 200);

    let before = w.billing.bundle_generation();
    w.root.revoke("orders");
    bundle_rewritten(&w.billing, before);

    let (status, headers, body) = fetch(client.clone(), &url).await;
    assert_eq!(status, 401);
    assert_eq!(headers[WWW_AUTHENTICATE], r#"Bearer error="invalid_token""#);
    assert_eq!(
        body,
        r#"{"error":"invalid_token","reason":"unknown_identity"}"#
    );
    // Others are unaffected.
    let (status, _, _) = fetch(signed_client(&w.mallory, &w), &url).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn client_without_an_audience_fails_before_sending() {
    let w = world().await;
    let client = ServiceBuilder::new()
        .layer(
            AddTokenLayer::new(w.orders.clone()).target("billing.internal", w.billing.id().clone()),
        )
        .service(plain_client());
    let error = client
        .oneshot(get(&format!("{}/whoami", w.base)))
        .await
        .unwrap_err();
    let error = error.downcast::<spiffile_tower::OutboundError>().unwrap();
    assert!(
        matches!(&*error, spiffile_tower::OutboundError::NoAudience { host } if host.starts_with("127.0.0.1:")),
        "{error}"
    );
}

#[tokio::test]
async fn host_mapping_without_port_and_default_audience() {
    let w = world().await;
    for layer in [
        AddTokenLayer::new(w.orders.clone()).target("127.0.0.1", w.billing.id().clone()),
        AddTokenLayer::new(w.orders.clone()).default_audience(w.billing.id().clone()),
    ] {
        let client = ServiceBuilder::new().layer(layer).service(plain_client());
        let (status, _, body) = fetch(client, &format!("{}/whoami", w.base)).await;
        assert_eq!(
            (status.as_u16(), body.as_str()),
            (200, "spiffe://example.org/orders")
        );
    }
}

/// The same layer in front of a plain hyper service (no axum).
#[tokio::test]
async fn plain_hyper_service() {
    let mut root = Root::new("example.org");
    let [orders, billing] = root.add_all(["orders", "billing"]);
    let service = ServiceBuilder::new()
        .layer(AuthenticateLayer::new(billing.clone()))
        .service_fn(|request: http::Request<hyper::body::Incoming>| async move {
            let caller = request
                .extensions()
                .get::<spiffile::Caller>()
                .unwrap()
                .id()
                .to_string();
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                bytes::Bytes::from(caller),
            )))
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    let url = format!("http://{addr}/");
    let client = ServiceBuilder::new()
        .layer(AddTokenLayer::new(orders).target(addr.to_string(), billing.id().clone()))
        .service(plain_client());
    let (status, _, body) = fetch(client, &url).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "spiffe://example.org/orders")
    );
    let (status, _, _) = fetch(plain_client(), &url).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn reqwest_helper_signs_the_request() {
    use spiffile_tower::RequestBuilderExt;
    let w = world().await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/charge", w.base))
        .spiffile_token(&w.orders, w.billing.id())
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "spiffe://example.org/orders"
    );
    let response = client
        .get(format!("{}/charge", w.base))
        .spiffile_token(&w.orders, w.orders.id())
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
