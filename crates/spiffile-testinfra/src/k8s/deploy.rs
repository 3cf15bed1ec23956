//! Starting the control plane: etcd, kube-apiserver, kube-controller-manager
//! on 127.0.0.1 with dynamic ports, TLS everywhere (etcd included, with
//! client-certificate authentication), RBAC, and a kubeconfig.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::certs::{self, Pki};
use crate::deploy::components::Component;
use crate::deploy::https;
use crate::deploy::ports::free_ports;
use crate::deploy::state::{Owner, State};
use crate::deploy::{StartContext, WaitError, wait_ready, write_file};
use crate::error::{Result, io};

/// The controllers run: what tests of an operator need (namespace deletion,
/// garbage collection by owner references, service accounts and their
/// token secrets, the `kube-root-ca.crt` ConfigMap, aggregated roles).
pub const CONTROLLERS: &str = "namespace-controller,garbage-collector-controller,\
serviceaccount-controller,serviceaccount-token-controller,\
root-ca-certificate-publisher-controller,clusterrole-aggregation-controller";

/// The service CIDR (no Service is ever reachable: there is no kube-proxy).
const SERVICE_CIDR: &str = "10.0.0.0/24";

pub(crate) fn start(ctx: &mut StartContext<'_>) -> std::result::Result<State, WaitError> {
    let run = ctx.run_dir.to_path_buf();
    let progress = ctx.progress.clone();
    let pki = certs::generate(&run.join("pki"))?;
    progress.step(format!(
        "generated certificates in {}",
        run.join("pki").display()
    ));

    let [etcd_port, peer_port, api_port, kcm_port] = <[u16; 4]>::try_from(free_ports(4)?)
        .map_err(|_| crate::error::step("choose ports", "wrong number of ports"))?;

    // etcd.
    let etcd_bin = Component::Etcd.binary("etcd")?;
    let data = run.join("etcd-data");
    let client_url = format!("https://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let etcd = ctx.spawn(
        "etcd",
        &etcd_bin,
        &[
            "--name=spiffile-test".into(),
            format!("--data-dir={}", data.display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=spiffile-test={peer_url}"),
            format!("--cert-file={}", pki.etcd.0.display()),
            format!("--key-file={}", pki.etcd.1.display()),
            format!("--trusted-ca-file={}", pki.ca.display()),
            "--client-cert-auth=true".into(),
            // A throw-away test store: durability is not worth the fsyncs.
            "--unsafe-no-fsync=true".into(),
            "--log-level=warn".into(),
        ],
        &[],
    )?;
    let client = &pki.apiserver_etcd_client;
    wait_ready("etcd /health", &etcd, ctx.timeout, &progress, || {
        let r = https::get(
            etcd_port,
            "/health",
            &pki.ca,
            Some((&client.0, &client.1)),
            Duration::from_secs(2),
        )?;
        if r.status == 200 && r.body.contains("\"health\":\"true\"") {
            Ok(())
        } else {
            Err(format!("{} {}", r.status, r.body.trim()))
        }
    })?;

    // kube-apiserver.
    let apiserver_bin = Component::Kubernetes.binary("kube-apiserver")?;
    let cert_dir = run.join("apiserver-certs");
    std::fs::create_dir_all(&cert_dir).map_err(io(&cert_dir))?;
    let apiserver = ctx.spawn(
        "kube-apiserver",
        &apiserver_bin,
        &[
            format!("--etcd-servers={client_url}"),
            format!("--etcd-cafile={}", pki.ca.display()),
            format!("--etcd-certfile={}", client.0.display()),
            format!("--etcd-keyfile={}", client.1.display()),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            format!("--cert-dir={}", cert_dir.display()),
            format!("--tls-cert-file={}", pki.apiserver.0.display()),
            format!("--tls-private-key-file={}", pki.apiserver.1.display()),
            format!("--client-ca-file={}", pki.ca.display()),
            "--authorization-mode=RBAC".into(),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!(
                "--service-account-key-file={}",
                pki.service_account.1.display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                pki.service_account.0.display()
            ),
            // The aggregation layer (and the extension-apiserver-authentication
            // ConfigMap that delegated authentication reads).
            format!("--requestheader-client-ca-file={}", pki.ca.display()),
            "--requestheader-allowed-names=front-proxy-client".into(),
            "--requestheader-username-headers=X-Remote-User".into(),
            "--requestheader-group-headers=X-Remote-Group".into(),
            "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
            format!(
                "--proxy-client-cert-file={}",
                pki.front_proxy_client.0.display()
            ),
            format!(
                "--proxy-client-key-file={}",
                pki.front_proxy_client.1.display()
            ),
            // The `kubernetes` Service's endpoint would be 127.0.0.1, which
            // Endpoints validation refuses; nothing here needs it.
            "--endpoint-reconciler-type=none".into(),
            "--profiling=false".into(),
            "--v=1".into(),
        ],
        &[],
    )?;
    let admin = &pki.admin;
    wait_ready(
        "kube-apiserver /readyz",
        &apiserver,
        ctx.timeout,
        &progress,
        || readyz(api_port, &pki.ca, admin),
    )?;

    // Kubeconfigs.
    let server = format!("https://127.0.0.1:{api_port}");
    let kubeconfig = run.join("kubeconfig");
    write_kubeconfig(
        &kubeconfig,
        &server,
        &pki.ca,
        admin,
        "spiffile-testinfra-admin",
    )?;
    let kcm_kubeconfig = run.join("controller-manager.kubeconfig");
    write_kubeconfig(
        &kcm_kubeconfig,
        &server,
        &pki.ca,
        &pki.controller_manager,
        "system:kube-controller-manager",
    )?;

    // kube-controller-manager.
    let kcm_bin = Component::Kubernetes.binary("kube-controller-manager")?;
    let kcm = ctx.spawn(
        "kube-controller-manager",
        &kcm_bin,
        &[
            format!("--kubeconfig={}", kcm_kubeconfig.display()),
            format!("--authentication-kubeconfig={}", kcm_kubeconfig.display()),
            format!("--authorization-kubeconfig={}", kcm_kubeconfig.display()),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={kcm_port}"),
            format!(
                "--tls-cert-file={}",
                pki.controller_manager_serving.0.display()
            ),
            format!(
                "--tls-private-key-file={}",
                pki.controller_manager_serving.1.display()
            ),
            "--leader-elect=false".into(),
            format!("--controllers={CONTROLLERS}"),
            format!(
                "--service-account-private-key-file={}",
                pki.service_account.0.display()
            ),
            format!("--root-ca-file={}", pki.ca.display()),
            "--use-service-account-credentials=false".into(),
            "--profiling=false".into(),
            "--v=1".into(),
        ],
        &[],
    )?;
    wait_ready(
        "kube-controller-manager /healthz",
        &kcm,
        ctx.timeout,
        &progress,
        || {
            let r = https::get(kcm_port, "/healthz", &pki.ca, None, Duration::from_secs(2))?;
            if r.status == 200 && r.body.trim() == "ok" {
                Ok(())
            } else {
                Err(format!("{} {}", r.status, r.body.trim()))
            }
        },
    )?;

    Ok(state(
        &run,
        &pki,
        ctx,
        etcd_port,
        peer_port,
        api_port,
        kcm_port,
        &kubeconfig,
    ))
}

#[allow(clippy::too_many_arguments)]
fn state(
    run: &Path,
    pki: &Pki,
    ctx: &StartContext<'_>,
    etcd_port: u16,
    peer_port: u16,
    api_port: u16,
    kcm_port: u16,
    kubeconfig: &Path,
) -> State {
    let mut versions = BTreeMap::new();
    for c in [Component::Kubernetes, Component::Etcd] {
        versions.insert(c.name().to_owned(), c.version().to_owned());
    }
    let ports = BTreeMap::from([
        ("etcd-client".to_owned(), etcd_port),
        ("etcd-peer".to_owned(), peer_port),
        ("apiserver".to_owned(), api_port),
        ("controller-manager".to_owned(), kcm_port),
    ]);
    let paths = BTreeMap::from([
        ("kubeconfig".to_owned(), kubeconfig.to_path_buf()),
        ("ca".to_owned(), pki.ca.clone()),
        ("ca-key".to_owned(), pki.ca_key.clone()),
        ("admin-cert".to_owned(), pki.admin.0.clone()),
        ("admin-key".to_owned(), pki.admin.1.clone()),
        ("logs".to_owned(), run.join("logs")),
    ]);
    let values = BTreeMap::from([
        (
            "server-url".to_owned(),
            format!("https://127.0.0.1:{api_port}"),
        ),
        ("controllers".to_owned(), CONTROLLERS.to_owned()),
    ]);
    State {
        deployment: "k8s".into(),
        versions,
        owner: Owner::Persistent,
        ready_at_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        startup_seconds: 0.0,
        processes: ctx.started.clone(),
        ports,
        paths,
        values,
    }
}

fn readyz(
    port: u16,
    ca: &Path,
    admin: &(std::path::PathBuf, std::path::PathBuf),
) -> std::result::Result<(), String> {
    let r = https::get(
        port,
        "/readyz",
        ca,
        Some((&admin.0, &admin.1)),
        Duration::from_secs(3),
    )?;
    if r.status == 200 && r.body.trim() == "ok" {
        Ok(())
    } else {
        let failing: Vec<&str> = r.body.lines().filter(|l| l.contains("failed")).collect();
        Err(format!(
            "HTTP {}{}",
            r.status,
            if failing.is_empty() {
                String::new()
            } else {
                format!(": {}", failing.join("; "))
            }
        ))
    }
}

/// The readiness check of a running control plane (`/readyz` = `ok`).
pub(crate) fn probe(state: &State) -> std::result::Result<(), String> {
    let port = state.port("apiserver").map_err(|e| e.to_string())?;
    let ca = state.path("ca").map_err(|e| e.to_string())?;
    let cert = state.path("admin-cert").map_err(|e| e.to_string())?;
    let key = state.path("admin-key").map_err(|e| e.to_string())?;
    readyz(port, ca, &(cert.to_path_buf(), key.to_path_buf()))
        .map_err(|e| format!("kube-apiserver /readyz: {e}"))
}

fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca: &Path,
    client: &(std::path::PathBuf, std::path::PathBuf),
    user: &str,
) -> Result<()> {
    let b64 = |p: &Path| -> Result<String> {
        let bytes = std::fs::read(p).map_err(io(p))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: spiffile-test\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
users:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n\
contexts:\n- name: spiffile-test\n  context:\n    cluster: spiffile-test\n    user: {user}\n    namespace: default\n\
current-context: spiffile-test\n",
        ca = b64(ca)?,
        cert = b64(&client.0)?,
        key = b64(&client.1)?,
    );
    write_file(path, text.as_bytes(), 0o600)
}
