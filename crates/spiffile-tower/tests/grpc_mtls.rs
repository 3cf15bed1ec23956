//! tonic over mutual TLS with X.509-SVIDs: tonic's own `Server`, fed by
//! `spiffile_tower::tonic::mtls_incoming`, serving a real tonic service
//! whose handler reads the verified `Caller` (the JWT path's type) from the
//! request extensions; a tonic `Channel` through `MtlsConnector`. And what
//! tonic's own `ServerTlsConfig` (no custom verifier) lets through, with
//! the check that is still possible per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use http::Uri;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use spiffile::SpiffeId;
use spiffile_provision::{self as provision, x509};
use spiffile_tls::{Allow, Reason, Usage, X509Files, X509Source};
use spiffile_tower::{AddTokenLayer, AuthenticateLayer, AuthorizeLayer, Caller};
use spiffile_watch::WatchOptions;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_check_response};

const TD: &str = "example.org";

fn id(name: &str) -> SpiffeId {
    format!("spiffe://{TD}/{name}").parse().unwrap()
}

fn root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    provision::init_root(dir.path(), TD).unwrap();
    x509::init_ca(dir.path(), x509::CaOptions::default()).unwrap();
    let hour = Duration::from_secs(3600);
    for name in ["orders", "mallory"] {
        x509::issue_svid(dir.path(), name, hour).unwrap();
    }
    let billing = x509::IssueOptions::ttl(hour).dns_name("billing.test");
    x509::issue_svid_with(dir.path(), "billing", &billing).unwrap();
    // The JWT-SVID keys of the same services, for the JWT path.
    for name in ["orders", "billing", "mallory"] {
        provision::add_service(dir.path(), name).unwrap();
    }
    dir
}

/// `name`'s JWT identity in the root.
fn jwt_identity(root: &std::path::Path, name: &str) -> spiffile::Identity {
    let service = root.join("services").join(name);
    spiffile::Identity::from_files(
        service.join(provision::ID_FILE),
        service.join(provision::KEY_FILE),
        root.join(provision::BUNDLE_FILE),
    )
    .unwrap()
}

fn source(root: &std::path::Path, name: &str) -> X509Source {
    X509Source::watch(X509Files::root(root, name), WatchOptions::default()).unwrap()
}

/// A real tonic service (grpc.health.v1.Health, tonic's generated server
/// trait) whose handler answers with the caller it finds: SERVING, and the
/// caller's ID in the `x-caller` response metadata.
struct Whoami {
    /// With tonic's own TLS: verify the peer's chain per request (see the
    /// second test); with `mtls_incoming`, `None`: the handshake did.
    verify_with: Option<X509Source>,
}

impl Whoami {
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        match &self.verify_with {
            None => request
                .extensions()
                .get::<Caller>()
                .cloned()
                .ok_or_else(|| Status::unauthenticated("no verified caller")),
            Some(source) => {
                let chain = request
                    .peer_certs()
                    .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
                let peer = spiffile_tls::verify_svid(
                    &chain,
                    &source.bundles(),
                    Usage::Client,
                    SystemTime::now(),
                )
                .map_err(|refusal| Status::unauthenticated(refusal.reason().as_str()))?;
                Ok(Caller::from(peer))
            }
        }
    }
}

#[tonic::async_trait]
impl Health for Whoami {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let caller = self.caller(&request)?;
        let how = if caller.x509().is_some() {
            "x509"
        } else {
            "jwt"
        };
        let mut response = Response::new(HealthCheckResponse {
            status: health_check_response::ServingStatus::Serving as i32,
        });
        let value = format!("{} via {how}", caller.id());
        response.metadata_mut().insert(
            "x-caller",
            value.parse().map_err(|_| Status::internal("id"))?,
        );
        Ok(response)
    }

    type WatchStream = tonic::codegen::BoxStream<HealthCheckResponse>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

/// billing on tonic's own server, connections through `mtls_incoming`.
async fn serve(root: &std::path::Path, handshake: Allow, route: AuthorizeLayer) -> u16 {
    serve_from(&source(root, "billing"), handshake, route).await
}

/// billing from `source` on tonic's own server, through `mtls_incoming`.
async fn serve_from(source: &X509Source, handshake: Allow, route: AuthorizeLayer) -> u16 {
    let config = spiffile_tls::server_config(source, handshake).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let service = HealthServer::new(Whoami { verify_with: None });
    tokio::spawn(
        Server::builder()
            .layer(route)
            .add_service(service)
            .serve_with_incoming(spiffile_tower::tonic::mtls_incoming(listener, config)),
    );
    port
}

async fn channel_as(
    root: &std::path::Path,
    name: &str,
    expect: SpiffeId,
    port: u16,
) -> Result<Channel, tonic::transport::Error> {
    let config = spiffile_tls::client_config(&source(root, name), expect).unwrap();
    Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_with_connector(spiffile_tower::tonic::MtlsConnector::new(config))
        .await
}

async fn check(channel: Channel) -> Result<String, Status> {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    assert_eq!(
        response.get_ref().status,
        health_check_response::ServingStatus::Serving as i32
    );
    Ok(response
        .metadata()
        .get("x-caller")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test]
async fn tonic_server_over_mtls_incoming_gives_handlers_the_caller() {
    let dir = root();
    // The handshake admits the trust domain; the server layer orders only.
    let port = serve(
        dir.path(),
        Allow::trust_domain(TD.parse().unwrap()),
        AuthorizeLayer::ids([id("orders")]),
    )
    .await;

    let orders = channel_as(dir.path(), "orders", id("billing"), port)
        .await
        .unwrap();
    assert_eq!(
        check(orders).await.unwrap(),
        "spiffe://example.org/orders via x509"
    );
    // mallory passes the handshake, the AuthorizeLayer refuses.
    let mallory = channel_as(dir.path(), "mallory", id("billing"), port)
        .await
        .unwrap();
    assert_eq!(
        check(mallory).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    // orders expecting another server refuses billing in the handshake.
    let error = channel_as(dir.path(), "orders", id("ledger"), port)
        .await
        .unwrap_err();
    assert_eq!(Reason::of(&error), Some(Reason::NotAllowed), "{error:?}");

    // With the rule in the handshake, mallory gets no connection at all.
    let strict = serve(
        dir.path(),
        Allow::ids([id("orders")]),
        AuthorizeLayer::ids([id("orders")]),
    )
    .await;
    let refused = match channel_as(dir.path(), "mallory", id("billing"), strict).await {
        // TLS 1.3: the client's side of the handshake finishes first; the
        // alert comes with the first request (or, racing it, a reset).
        Ok(channel) => check(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "mallory got an answer");
    // Read before writing, the alert itself: access_denied.
    let config =
        spiffile_tls::client_config(&source(dir.path(), "mallory"), id("billing")).unwrap();
    let error = read_first(config, strict, "127.0.0.1").await;
    assert!(format!("{error:?}").contains("AccessDenied"), "{error:?}");
    let orders = channel_as(dir.path(), "orders", id("billing"), strict)
        .await
        .unwrap();
    assert_eq!(
        check(orders).await.unwrap(),
        "spiffe://example.org/orders via x509"
    );
}

/// Connects to 127.0.0.1:`port` and reads before writing anything: the
/// error the server's handshake ends with.
async fn read_first(config: rustls::ClientConfig, port: u16, name: &str) -> std::io::Error {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let result = async {
        let mut tls = connector.connect(name, tcp).await?;
        let mut byte = [0u8; 1];
        tokio::io::AsyncReadExt::read(&mut tls, &mut byte).await
    }
    .await;
    result.expect_err("refused in the handshake")
}

/// A client presenting any chain, trusting the CA of `root` for the server
/// (the stock verifier; billing's SVID carries the DNS name billing.test).
fn stock_client(
    root: &std::path::Path,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(root.join("bundle.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(spiffile_tls::provider().clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

/// A tonic channel to 127.0.0.1:`port` whose TLS names the server
/// billing.test.
async fn stock_channel(config: rustls::ClientConfig, port: u16) -> Channel {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let connect = tower::service_fn(move |_: Uri| {
        let connector = connector.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let name = ServerName::try_from("billing.test").unwrap();
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    Endpoint::from_static("http://billing.test")
        .connect_with_connector(connect)
        .await
        .unwrap()
}

/// A leaf for `ids` (several URI SANs: not an X.509-SVID) signed by the
/// root's own CA.
fn forged_leaf(
    root: &std::path::Path,
    ids: &[&str],
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_pem = std::fs::read(root.join("x509/ca.pem")).unwrap();
    let ca_cert = CertificateDer::pem_slice_iter(&ca_pem)
        .next()
        .unwrap()
        .unwrap();
    let ca_key = PrivateKeyDer::from_pem_slice(&ca_pem).unwrap();
    let ca_key = rcgen::KeyPair::try_from(ca_key.secret_der()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_der(&ca_cert, &ca_key).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = ids
        .iter()
        .map(|i| rcgen::SanType::URI((*i).try_into().unwrap()))
        .collect();
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (
        vec![cert.der().clone()],
        PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
}

/// tonic's `ServerTlsConfig` builds rustls' stock `WebPkiClientVerifier`
/// from `client_ca_root` and takes no verifier of ours: a leaf with two URI
/// SANs (orders *and* billing: which one is it?) completes its handshake.
/// What remains possible is verifying the chain per request from tonic's
/// TLS connect info (`request.peer_certs()`), which refuses it; our own
/// handshake (`mtls_incoming`) refuses it before any request.
#[tokio::test]
async fn tonic_server_tls_config_lets_a_two_uri_san_leaf_through_the_handshake() {
    let dir = root();
    let billing = dir.path().join("services/billing");
    let identity = tonic::transport::Identity::from_pem(
        std::fs::read(billing.join("svid.pem")).unwrap(),
        std::fs::read(billing.join("svid_key.pem")).unwrap(),
    );
    let ca = tonic::transport::Certificate::from_pem(
        std::fs::read(dir.path().join("bundle.pem")).unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let service = HealthServer::new(Whoami {
        verify_with: Some(source(dir.path(), "billing")),
    });
    tokio::spawn(
        Server::builder()
            .tls_config(
                tonic::transport::ServerTlsConfig::new()
                    .identity(identity)
                    .client_ca_root(ca),
            )
            .unwrap()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let orders = dir.path().join("services/orders");
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(orders.join("svid.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(orders.join("svid_key.pem")).unwrap();
    let channel = stock_channel(stock_client(dir.path(), chain, key), port).await;
    assert_eq!(
        check(channel).await.unwrap(),
        "spiffe://example.org/orders via x509"
    );

    let (chain, key) = forged_leaf(
        dir.path(),
        &[
            "spiffe://example.org/orders",
            "spiffe://example.org/billing",
        ],
    );
    // The stock handshake lets it in: the refusal comes from our per-request
    // check, not from tonic's TLS.
    let channel = stock_channel(
        stock_client(dir.path(), chain.clone(), key.clone_key()),
        port,
    )
    .await;
    let status = check(channel).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), "too_many_uri_sans");

    // Our handshake refuses it outright.
    let ours = serve(
        dir.path(),
        Allow::any(),
        AuthorizeLayer::ids([id("orders")]),
    )
    .await;
    let error = read_first(stock_client(dir.path(), chain, key), ours, "billing.test").await;
    assert!(
        format!("{error:?}").contains("CertificateUnknown"),
        "{error:?}"
    );
}

/// One handler and one authorization rule for both proofs: the same
/// `Whoami` behind the same `AuthorizeLayer::ids([orders])`, (1) as tonic
/// `Routes` served by `serve_mtls`, called over mTLS through
/// `MtlsConnector`; (2) on tonic's `Server` behind `AuthenticateLayer`,
/// called with JWT-SVIDs (`AddTokenLayer`). The handler sees a `Caller`
/// with orders' ID either way; mallory is refused either way.
#[tokio::test]
async fn one_handler_and_one_rule_serve_mtls_and_jwt_callers_alike() {
    let dir = root();
    let only_orders = || AuthorizeLayer::ids([id("orders")]);
    let whoami = || HealthServer::new(Whoami { verify_with: None });

    // (1) mTLS: tonic's Routes as a tower service under serve_mtls.
    let config = spiffile_tls::server_config(
        &source(dir.path(), "billing"),
        Allow::trust_domain(TD.parse().unwrap()),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mtls_port = listener.local_addr().unwrap().port();
    let routes = tower::ServiceBuilder::new()
        .layer(only_orders())
        .service(tonic::service::Routes::new(whoami()).prepare());
    tokio::spawn(spiffile_tower::serve_mtls(listener, config, routes));

    let orders = channel_as(dir.path(), "orders", id("billing"), mtls_port)
        .await
        .unwrap();
    assert_eq!(
        check(orders).await.unwrap(),
        "spiffe://example.org/orders via x509"
    );
    let mallory = channel_as(dir.path(), "mallory", id("billing"), mtls_port)
        .await
        .unwrap();
    assert_eq!(
        check(mallory).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // (2) JWT: the same service and rule behind AuthenticateLayer.
    let incoming =
        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .layer(AuthenticateLayer::new(jwt_identity(dir.path(), "billing")))
            .layer(only_orders())
            .add_service(whoami())
            .serve_with_incoming(incoming),
    );
    let plain = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let signed = |name: &str| {
        tower::ServiceBuilder::new()
            .layer(
                AddTokenLayer::new(jwt_identity(dir.path(), name)).default_audience(id("billing")),
            )
            .service(plain.clone())
    };
    let answer = HealthClient::new(signed("orders"))
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        answer.metadata().get("x-caller").unwrap().to_str().unwrap(),
        "spiffe://example.org/orders via jwt"
    );
    let refused = HealthClient::new(signed("mallory"))
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

/// Waits (at most 10 s) until `done`.
async fn until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Rotation through tonic's own server and channel: a keep-alive channel
/// calls continuously and new channels keep connecting while the SVIDs are
/// renewed, the CA rotated, the SVIDs renewed under the new CA, the old CA
/// retired and the SVIDs renewed again, both ends following their files.
/// No call fails, no handshake fails, and the keep-alive channel never
/// reconnects (its connector is called once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_over_mtls_follows_rotation_without_a_failure_or_a_reconnect() {
    let dir = root();
    let root = dir.path().to_owned();
    let (server, client) = (source(&root, "billing"), source(&root, "orders"));
    let port = serve_from(
        &server,
        Allow::trust_domain(TD.parse().unwrap()),
        AuthorizeLayer::ids([id("orders")]),
    )
    .await;
    let config = spiffile_tls::client_config(&client, id("billing")).unwrap();
    let connects = Arc::new(AtomicUsize::new(0));
    let counting = {
        let (connector, connects) = (
            spiffile_tower::tonic::MtlsConnector::new(config.clone()),
            connects.clone(),
        );
        tower::service_fn(move |uri: Uri| {
            connects.fetch_add(1, Ordering::Relaxed);
            let mut connector = connector.clone();
            async move { tower::Service::call(&mut connector, uri).await }
        })
    };
    let keepalive = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_with_connector(counting)
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let calls = |channel: Channel, stop: Arc<AtomicBool>| async move {
        let (mut ok, mut failed) = (0u32, 0u32);
        while !stop.load(Ordering::Relaxed) {
            match check(channel.clone()).await {
                Ok(caller) if caller == "spiffe://example.org/orders via x509" => ok += 1,
                other => {
                    eprintln!("keep-alive call: {other:?}");
                    failed += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (ok, failed)
    };
    let keepalive_calls = tokio::spawn(calls(keepalive, stop.clone()));
    let fresh = {
        let (config, stop) = (config.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let connector = spiffile_tower::tonic::MtlsConnector::new(config.clone());
                let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
                    .unwrap()
                    .connect_with_connector(connector)
                    .await;
                let called = match channel {
                    Ok(channel) => check(channel).await.map_err(|e| e.to_string()),
                    Err(e) => Err(format!("{e:?}")),
                };
                match called {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        eprintln!("new channel: {e}");
                        failed += 1;
                    }
                }
            }
            (ok, failed)
        })
    };

    let leaves = || {
        (
            server.svid().chain()[0].clone(),
            client.svid().chain()[0].clone(),
        )
    };
    let roots = || {
        let td = TD.parse().unwrap();
        let count = |s: &X509Source| s.bundles().get(&td).map_or(0, |b| b.roots().len());
        (count(&server), count(&client))
    };
    let hour = Duration::from_secs(3600);
    let renew = |fraction: f64| {
        let before = leaves();
        x509::renew_svids(&root, fraction, hour).unwrap();
        before
    };
    let settle = || tokio::time::sleep(Duration::from_millis(200));
    settle().await;
    for _ in 0..2 {
        let before = renew(0.0);
        until("both ends serve the renewed SVIDs", || {
            let now = leaves();
            now.0 != before.0 && now.1 != before.1
        })
        .await;
        settle().await;
    }
    x509::rotate_ca(&root, x509::CaOptions::default()).unwrap();
    until("both ends trust both CAs", || roots() == (2, 2)).await;
    settle().await;
    let before = renew(1.0);
    until("both ends serve SVIDs of the new CA", || {
        let now = leaves();
        now.0 != before.0 && now.1 != before.1
    })
    .await;
    settle().await;
    x509::retire_old_cas(&root).unwrap();
    until("both ends trust the new CA only", || roots() == (1, 1)).await;
    settle().await;
    let before = renew(0.0);
    until("both ends serve the last SVIDs", || {
        let now = leaves();
        now.0 != before.0 && now.1 != before.1
    })
    .await;
    settle().await;
    stop.store(true, Ordering::Relaxed);

    let (keepalive_ok, keepalive_failed) = keepalive_calls.await.unwrap();
    let (fresh_ok, fresh_failed) = fresh.await.unwrap();
    let reconnects = connects.load(Ordering::Relaxed) - 1;
    println!(
        "tonic rotation under load: keep-alive calls {keepalive_ok} (failed {keepalive_failed}), \
         new channels {fresh_ok} (failed {fresh_failed}), keep-alive reconnects {reconnects}"
    );
    assert_eq!((keepalive_failed, fresh_failed, reconnects), (0, 0, 0));
    assert!(keepalive_ok > 20 && fresh_ok > 5, "the load ran");
}
