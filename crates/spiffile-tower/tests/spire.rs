//! SPIRE-issued X.509-SVIDs, through the files SPIRE's own tools write,
//! accepted by our server and our client: the real SPIRE deployment of
//! `spiffile-testinfra` (server + agent, trust domain `spire.test`), the
//! real spiffe-helper (its layout: `svid.pem`, `svid_key.pem`,
//! `svid_bundle.pem`) and `spire-agent api fetch x509 -write` (its layout:
//! `svid.0.pem`, `svid.0.key`, `bundle.0.pem`).
//!
//! billing serves over mTLS from spiffe-helper's files with
//! `X509Source::watch`; orders connects from the agent's `-write` files.
//! Accepted when the SPIFFE ID is allowed, refused in the handshake
//! (`not_allowed`) when it is not, and — with a 20 s X.509 TTL on billing's
//! entry and spiffe-helper in daemon mode rewriting its files in place — the
//! server follows every rotation under load without a failed handshake or
//! a dropped connection.
//!
//! Without a deployment the tests are skipped loudly; under `CI=true` or
//! `SPIFFILE_INFRA_REQUIRE=1` (`cargo xtask test`) they fail instead.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use rustls::pki_types::{CertificateDer, ServerName};
use spiffile::SpiffeId;
use spiffile_testinfra::{HelperFiles, Spire, Workload, unique_name};
use spiffile_tls::{Allow, Reason, Usage, X509Files, X509Source};
use spiffile_tower::Caller;
use spiffile_watch::WatchOptions;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// spiffe-helper's X.509 files with their usual names.
fn helper_x509() -> HelperFiles {
    HelperFiles::new().x509("svid.pem", "svid_key.pem", "svid_bundle.pem")
}

fn spiffe_id(workload: &Workload) -> SpiffeId {
    workload
        .spiffe_id()
        .parse()
        .expect("SPIRE issues valid SPIFFE IDs")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn app() -> Router {
    Router::new().route(
        "/whoami",
        get(|caller: Caller| async move {
            let how = if caller.x509().is_some() {
                "x509"
            } else {
                "jwt"
            };
            format!("{} via {how}", caller.id())
        }),
    )
}

/// billing's server: `serve_mtls` over `source`, the handshake admitting
/// `allow`.
async fn serve(source: &X509Source, allow: Allow) -> SocketAddr {
    let config = spiffile_tls::server_config(source, allow).expect("server config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(spiffile_tower::serve_mtls(listener, config, app()));
    addr
}

type Conn = hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>;

/// One mTLS connection: the HTTP/1.1 sender and the server's leaf.
async fn connect(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
) -> Result<(Conn, CertificateDer<'static>), Box<dyn std::error::Error + Send + Sync>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("127.0.0.1")?, tcp)
        .await?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no server certificate")?
        .clone()
        .into_owned();
    let (send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    Ok((send, leaf))
}

async fn whoami(send: &mut Conn) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    send.ready().await?;
    let request = http::Request::get("/whoami")
        .header("host", "billing")
        .body(Empty::new())?;
    let response = send.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    if status != 200 {
        return Err(format!("status {status}: {body}").into());
    }
    Ok(body)
}

/// orders' X.509 files by `spire-agent api fetch x509 -write`, read back as
/// the `-write` layout.
fn orders_from_agent(
    orders: &Workload,
    dir: &Path,
) -> Result<X509Source, Box<dyn std::error::Error>> {
    let written = orders.fetch_x509_into(dir)?;
    let names: BTreeSet<String> = written
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    for name in ["svid.0.pem", "svid.0.key", "bundle.0.pem"] {
        assert!(names.contains(name), "spire-agent wrote {name}: {names:?}");
    }
    Ok(X509Source::watch(
        X509Files::spire_agent(dir),
        WatchOptions::default(),
    )?)
}

fn the_spire() -> Option<&'static Spire> {
    spiffile_testinfra::spire()
}

#[test]
fn spire_svids_from_spiffe_helper_and_spire_agent_files_authenticate_both_ends() -> TestResult {
    let Some(spire) = the_spire() else {
        return Ok(());
    };
    let billing = spire.register("billing")?;
    let orders = spire.register("orders")?;
    let (billing_dir, orders_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);

    // spiffe-helper (daemon_mode = false) writes billing's files once.
    billing.write_helper_files(billing_dir.path(), &helper_x509())?;
    let server_source = X509Source::watch(
        X509Files::spiffe_helper(billing_dir.path()),
        WatchOptions::default(),
    )?;
    let client_source = orders_from_agent(&orders, orders_dir.path())?;

    // What SPIRE issued is a valid X.509-SVID by our rules, both ways.
    let status = server_source.status();
    assert_eq!(status.id, spiffe_id(&billing));
    assert_eq!((status.svid_error, status.bundle_error), (None, None));
    let life = status.not_after.duration_since(SystemTime::now())?;
    assert!(
        life <= Duration::from_secs(120),
        "SPIRE's short TTL: {life:?}"
    );
    let peer = spiffile_tls::verify_svid(
        client_source.svid().chain(),
        &server_source.bundles(),
        Usage::Client,
        SystemTime::now(),
    )?;
    assert_eq!(peer.id(), &spiffe_id(&orders));
    spiffile_tls::verify_svid(
        server_source.svid().chain(),
        &client_source.bundles(),
        Usage::Server,
        SystemTime::now(),
    )?;

    runtime().block_on(async {
        let addr = serve(&server_source, Allow::ids([spiffe_id(&orders)])).await;
        let client = Arc::new(spiffile_tls::client_config(
            &client_source,
            spiffe_id(&billing),
        )?);
        let (mut send, server_leaf) = connect(client, addr).await.map_err(|e| e.to_string())?;
        assert_eq!(
            server_leaf,
            server_source.svid().chain()[0],
            "billing presented the SVID spiffe-helper wrote"
        );
        let body = whoami(&mut send).await.map_err(|e| e.to_string())?;
        assert_eq!(body, format!("{} via x509", orders.spiffe_id()));
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

#[test]
fn spire_svids_whose_id_is_not_allowed_are_refused_in_the_handshake() -> TestResult {
    let Some(spire) = the_spire() else {
        return Ok(());
    };
    let billing = spire.register("billing")?;
    let orders = spire.register("orders")?;
    let mallory = spire.register(&unique_name("mallory"))?;
    let dirs = [
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    ];
    billing.write_helper_files(dirs[0].path(), &helper_x509())?;
    let server_source = X509Source::watch(
        X509Files::spiffe_helper(dirs[0].path()),
        WatchOptions::default(),
    )?;
    let orders_source = orders_from_agent(&orders, dirs[1].path())?;
    let mallory_source = orders_from_agent(&mallory, dirs[2].path())?;

    runtime().block_on(async {
        // A bare acceptor, so the server's own refusal can be read back.
        let config = spiffile_tls::server_config(&server_source, Allow::ids([spiffe_id(&orders)]))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accept_one = || {
            let (listener, acceptor) = (&listener, &acceptor);
            async move {
                let (tcp, _) = listener.accept().await?;
                Ok::<_, std::io::Error>(acceptor.accept(tcp).await.map(|_| ()))
            }
        };

        // mallory holds a valid SPIRE SVID of spire.test: refused because
        // of its ID, inside the handshake.
        let client = Arc::new(spiffile_tls::client_config(
            &mallory_source,
            spiffe_id(&billing),
        )?);
        let (accepted, connected) = tokio::join!(accept_one(), async {
            // Read without writing first: with TLS 1.3 the client's side of
            // the handshake is done before the server has judged it, and the
            // server's alert comes on the first read (a request written
            // meanwhile could turn the server's close into a reset).
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let mut tls = tokio_rustls::TlsConnector::from(client)
                .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
                .await?;
            let mut byte = [0u8; 1];
            tokio::io::AsyncReadExt::read(&mut tls, &mut byte).await
        });
        let refused = accepted?.expect_err("billing refuses mallory");
        assert_eq!(
            Reason::of(&refused),
            Some(Reason::NotAllowed),
            "{refused:?}"
        );
        let seen = connected.expect_err("mallory reads nothing");
        assert!(format!("{seen:?}").contains("AccessDenied"), "{seen:?}");

        // orders passes the same server.
        let client = Arc::new(spiffile_tls::client_config(
            &orders_source,
            spiffe_id(&billing),
        )?);
        let (accepted, connected) = tokio::join!(accept_one(), async {
            connect(client, addr).await.map(|_| ())
        });
        accepted??;
        connected.map_err(|e| e.to_string())?;

        // orders expecting another server refuses billing (its own
        // verifier, `not_allowed`).
        let payments: SpiffeId = spire.id("payments").parse()?;
        let client = Arc::new(spiffile_tls::client_config(&orders_source, payments)?);
        let (_, connected) = tokio::join!(accept_one(), connect(client, addr));
        let error = connected.map(|_| ()).expect_err("orders refuses billing");
        assert_eq!(Reason::of(&*error), Some(Reason::NotAllowed), "{error:?}");
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;

    // A server of another trust domain (a spiffile root, example.org) has no
    // bundle for spire.test: orders' SPIRE SVID is refused as such.
    let root = tempfile::tempdir()?;
    spiffile_provision::init_root(root.path(), "example.org")?;
    spiffile_provision::x509::init_ca(root.path(), Default::default())?;
    spiffile_provision::x509::issue_svid(root.path(), "billing", Duration::from_secs(3600))?;
    let other = X509Source::watch(
        X509Files::root(root.path(), "billing"),
        WatchOptions::default(),
    )?;
    let refusal = spiffile_tls::verify_svid(
        orders_source.svid().chain(),
        &other.bundles(),
        Usage::Client,
        SystemTime::now(),
    )
    .expect_err("no bundle for spire.test");
    assert_eq!(refusal.reason(), Reason::UnknownTrustDomain);
    Ok(())
}

#[derive(Default)]
struct Counts {
    handshakes: AtomicU64,
    failed_handshakes: AtomicU64,
    requests: AtomicU64,
    failed_requests: AtomicU64,
    dropped_connections: AtomicU64,
}

/// How long the rotation test may run at most.
const ROTATION_DEADLINE: Duration = Duration::from_secs(150);
/// billing's X.509-SVID lifetime: SPIRE backdates by 10 s and the agent
/// renews at half the lifetime, so a new SVID every ~15 s.
const BILLING_TTL: Duration = Duration::from_secs(20);

#[test]
fn spiffe_helper_daemon_rotation_under_load_fails_no_handshake_and_drops_no_connection()
-> TestResult {
    let Some(spire) = the_spire() else {
        return Ok(());
    };
    // A billing of its own: its entry's short TTL changes nobody else's.
    let billing = spire
        .registration(&unique_name("billing-rotating"))
        .x509_svid_ttl(BILLING_TTL)
        .register()?;
    let orders = spire.register("orders")?;
    let (billing_dir, orders_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);

    // spiffe-helper in daemon mode: rewrites svid.pem, svid_key.pem and
    // svid_bundle.pem in place (truncate, write) on every update.
    let helper = billing.spawn_helper(billing_dir.path(), &helper_x509())?;
    helper.wait_for_files(Duration::from_secs(60))?;
    // The files may still be mid-write: retry the first read.
    let server_source = {
        let started = Instant::now();
        loop {
            match X509Source::watch(
                X509Files::spiffe_helper(billing_dir.path()),
                WatchOptions::default(),
            ) {
                Ok(source) => break source,
                Err(e) if started.elapsed() < Duration::from_secs(10) => {
                    eprintln!("first read of spiffe-helper's files: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let client_source = orders_from_agent(&orders, orders_dir.path())?;
    let first_not_after = server_source.svid().not_after();

    let stop = Arc::new(AtomicBool::new(false));
    // orders' files are rewritten in place by `-write` every few seconds
    // meanwhile, so the client follows a writer too (a new SVID when SPIRE
    // has rotated orders', the same one otherwise).
    let rewriter = {
        let (orders, dir, stop) = (orders.clone(), orders_dir.path().to_owned(), stop.clone());
        std::thread::spawn(move || {
            let mut rewrites = 0u32;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(3));
                if orders.fetch_x509_into(&dir).is_ok() {
                    rewrites += 1;
                }
            }
            rewrites
        })
    };

    let counts = Arc::new(Counts::default());
    let seen_leaves: Arc<Mutex<Vec<CertificateDer<'static>>>> = Arc::default();
    let orders_id = orders.spiffe_id().to_owned();
    let (elapsed, keepalive_outlived) = runtime().block_on(async {
        let addr = serve(&server_source, Allow::ids([spiffe_id(&orders)])).await;
        let client = Arc::new(spiffile_tls::client_config(
            &client_source,
            spiffe_id(&billing),
        )?);
        let mut tasks = Vec::new();
        // Four keep-alive connections, opened once, used throughout, long
        // after the certificate they were opened with has expired.
        for _ in 0..4 {
            let (client, counts, stop, want) = (
                client.clone(),
                counts.clone(),
                stop.clone(),
                orders_id.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let (mut send, _) = connect(client, addr).await.expect("keep-alive handshake");
                counts.handshakes.fetch_add(1, Ordering::Relaxed);
                while !stop.load(Ordering::Relaxed) {
                    match whoami(&mut send).await {
                        Ok(body) => {
                            assert_eq!(body, format!("{want} via x509"));
                            counts.requests.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("keep-alive connection dropped: {e}");
                            counts.dropped_connections.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        // Two streams of new connections, a full handshake each.
        for _ in 0..2 {
            let (client, counts, stop, seen) = (
                client.clone(),
                counts.clone(),
                stop.clone(),
                seen_leaves.clone(),
            );
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match connect(client.clone(), addr).await {
                        Ok((mut send, leaf)) => {
                            counts.handshakes.fetch_add(1, Ordering::Relaxed);
                            {
                                let mut seen = seen.lock().expect("lock");
                                if !seen.contains(&leaf) {
                                    seen.push(leaf);
                                }
                            }
                            match whoami(&mut send).await {
                                Ok(_) => counts.requests.fetch_add(1, Ordering::Relaxed),
                                Err(e) => {
                                    eprintln!("request failed: {e}");
                                    counts.failed_requests.fetch_add(1, Ordering::Relaxed)
                                }
                            };
                        }
                        Err(e) => {
                            eprintln!("handshake failed: {e}");
                            counts.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        // Until the server has presented three SVIDs (two rotations) and the
        // keep-alive connections have outlived the first one.
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let rotations = seen_leaves.lock().expect("lock").len();
            let outlived = SystemTime::now() > first_not_after + Duration::from_secs(1);
            if (rotations >= 3 && outlived) || started.elapsed() > ROTATION_DEADLINE {
                break;
            }
        }
        let elapsed = started.elapsed();
        let outlived = SystemTime::now() > first_not_after;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await?;
        }
        Ok::<_, Box<dyn std::error::Error>>((elapsed, outlived))
    })?;
    let rewrites = rewriter.join().map_err(|_| "the rewriter panicked")?;

    let c = &*counts;
    let (handshakes, failed, requests, failed_requests, dropped) = (
        c.handshakes.load(Ordering::Relaxed),
        c.failed_handshakes.load(Ordering::Relaxed),
        c.requests.load(Ordering::Relaxed),
        c.failed_requests.load(Ordering::Relaxed),
        c.dropped_connections.load(Ordering::Relaxed),
    );
    let leaves = seen_leaves.lock().expect("lock").clone();
    println!(
        "SPIRE rotation under load ({:.0} s, billing X.509 TTL {} s, spiffe-helper daemon): \
         {} billing SVIDs served, handshakes {handshakes}, failed handshakes {failed}, \
         requests {requests}, failed requests {failed_requests}, dropped keep-alive \
         connections {dropped}, orders' -write files rewritten {rewrites} times",
        elapsed.as_secs_f64(),
        BILLING_TTL.as_secs(),
        leaves.len(),
    );
    assert_eq!((failed, failed_requests, dropped), (0, 0, 0));
    assert!(
        leaves.len() >= 3,
        "the server followed spiffe-helper through two rotations ({} SVIDs seen)",
        leaves.len()
    );
    assert!(
        keepalive_outlived,
        "the keep-alive connections outlived the SVID they were opened with"
    );
    // Every SVID served was SPIRE's, for billing, and valid by our rules.
    for leaf in &leaves {
        assert_eq!(spiffile_tls::spiffe_id_of(leaf)?, spiffe_id(&billing));
    }
    assert!(handshakes > 20, "the load ran ({handshakes} handshakes)");
    helper.stop()?;
    Ok(())
}
