//! Shared plumbing of the operator's tests against a real control plane:
//! the cluster, the CRDs, operator processes, waiting, and the kubelet's
//! `..data` volume layout.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The control plane the tests run against.
pub struct Env {
    pub kubeconfig: PathBuf,
    pub client: Client,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

/// Operators watch the whole cluster: tests that run one take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The cluster with the CRDs installed, or `None` when there is none and
/// none may be started (the test then returns early, after
/// `spiffile-testinfra` has printed how to get one). Under `CI=true` or
/// `SPIFFILE_INFRA_REQUIRE=1` — as `cargo xtask test` sets it — a missing
/// control plane is a failure, never a skip: `k8s()` panics with the reason.
pub async fn env() -> Option<Env> {
    // Attaching (or starting one on demand) blocks: keep it off the runtime.
    let k8s = tokio::task::spawn_blocking(spiffile_testinfra::k8s)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    let kubeconfig = k8s.kubeconfig_path().to_owned();
    let serial = SERIAL.lock().await;
    let client = k8s.client().await.expect("a client for the test cluster");
    install_crds(&client).await.expect("the CRDs install");
    Some(Env {
        kubeconfig,
        client,
        _serial: serial,
    })
}

pub async fn client(kubeconfig: &Path) -> Result<Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Applies the generated CRDs and waits until they are established.
pub async fn install_crds(client: &Client) -> Result {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in spiffile_operator::crd::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply("spiffile-operator-tests").force(),
            &Patch::Apply(&crd),
        )
        .await?;
        wait_for(
            Duration::from_secs(30),
            &format!("CRD {name} established"),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    crd.status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// A name no other test, process or run uses.
pub fn unique(prefix: &str) -> String {
    spiffile_testinfra::unique_name(prefix)
}

/// Creates a namespace (with labels) that is deleted when dropped.
pub async fn namespace(
    client: &Client,
    name: &str,
    labels: &[(&str, &str)],
) -> Result<NamespaceGuard> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create(&PostParams::default(), &ns).await?;
    Ok(NamespaceGuard {
        api,
        name: name.into(),
    })
}

pub struct NamespaceGuard {
    api: Api<Namespace>,
    pub name: String,
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let api = self.api.clone();
        let name = self.name.clone();
        // Best effort, without blocking the test's runtime.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(api.delete(&name, &Default::default()));
            }
        })
        .join();
    }
}

/// Polls `check` until it gives a value, or fails after `timeout` saying
/// what it waited for.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `spiffile-operator` process, killed when dropped.
pub struct Operator {
    child: Option<Child>,
    pub probe: SocketAddr,
    pub log: PathBuf,
    pub name: String,
}

static OPERATORS: AtomicU32 = AtomicU32::new(0);

impl Operator {
    /// Starts the operator with the test defaults (short lease, loopback
    /// probes, its Lease in `lease_namespace`) and `extra` flags.
    pub fn start(env: &Env, lease_namespace: &str, extra: &[&str]) -> Result<Self> {
        Self::start_with(&env.kubeconfig, lease_namespace, extra)
    }

    /// Like [`Operator::start`], with another kubeconfig.
    pub fn start_with(kubeconfig: &Path, lease_namespace: &str, extra: &[&str]) -> Result<Self> {
        let n = OPERATORS.fetch_add(1, Ordering::Relaxed);
        let name = format!("op-{}-{n}", std::process::id());
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("operator-tests");
        std::fs::create_dir_all(&dir)?;
        let log = dir.join(format!("{name}.log"));
        let probe: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
        let child = Command::new(env!("CARGO_BIN_EXE_spiffile-operator"))
            .args([
                "--namespace",
                lease_namespace,
                "--probe-addr",
                &probe.to_string(),
                "--identity",
                &name,
                "--lease-duration",
                "4s",
                "--renew-deadline",
                "3s",
                "--retry-period",
                "500ms",
                "--log-format",
                "text",
            ])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,spiffile_operator=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Self {
            child: Some(child),
            probe,
            log,
            name,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGKILL: no cleanup of any kind.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit (graceful shutdown).
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let mut c = self.child.take().ok_or("not running")?;
        Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()?;
        let start = Instant::now();
        loop {
            if let Some(s) = c.try_wait()? {
                return Ok(s);
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = c.kill();
                return Err("the operator did not stop within 30 s of SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process has exited (and how).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// GET on the probe server: (status code, body).
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        let mut s = TcpStream::connect_timeout(&self.probe, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let code = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        Ok((code, body))
    }

    /// The value of one metric sample (summed over label sets matching
    /// `labels`, e.g. `namespace="shop"`).
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let Ok((_, body)) = self.get("/metrics") else {
            return f64::NAN;
        };
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if self.child.is_some() && std::thread::panicking() {
            eprintln!(
                "--- {} log ({}):\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
        }
        self.kill();
    }
}

/// A directory laid out the way kubelet's AtomicWriter lays out a Secret or
/// ConfigMap volume: visible files are symlinks into `..data`, itself a
/// symlink to a timestamped directory swapped atomically on each update.
pub struct Mounted {
    pub dir: PathBuf,
    generation: u32,
}

impl Mounted {
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            generation: 0,
        })
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// Publishes `data` (file mode `mode`) the way kubelet does.
    pub fn update(&mut self, data: &BTreeMap<String, Vec<u8>>, mode: u32) -> Result {
        use std::os::unix::fs::{PermissionsExt, symlink};
        self.generation += 1;
        let ts = format!("..2026_12_01_00_00_00.{:09}", self.generation);
        let new_dir = self.dir.join(&ts);
        std::fs::create_dir(&new_dir)?;
        for (k, v) in data {
            let p = new_dir.join(k);
            std::fs::write(&p, v)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
        }
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        let tmp = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        symlink(&ts, &tmp)?;
        std::fs::rename(&tmp, self.dir.join("..data"))?;
        for k in data.keys() {
            let visible = self.dir.join(k);
            if std::fs::symlink_metadata(&visible).is_err() {
                symlink(format!("..data/{k}"), &visible)?;
            }
        }
        if let Some(old) = old {
            let _ = std::fs::remove_dir_all(self.dir.join(old));
        }
        Ok(())
    }
}

/// Secret data as bytes.
pub fn secret_data(s: &k8s_openapi::api::core::v1::Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

/// ConfigMap data as bytes.
pub fn configmap_data(c: &k8s_openapi::api::core::v1::ConfigMap) -> BTreeMap<String, Vec<u8>> {
    c.data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect()
}

/// Applies a YAML document (several, separated by `---`) with server-side
/// apply, as `kubectl apply --server-side` would.
pub async fn apply_yaml(client: &Client, namespace: &str, yaml: &str) -> Result {
    use kube::core::{DynamicObject, GroupVersionKind};
    use kube::discovery::ApiResource;
    for doc in yaml.split("\n---") {
        if doc.trim().is_empty() {
            continue;
        }
        let obj: DynamicObject = serde_saphyr::from_str(doc)?;
        let types = obj
            .types
            .clone()
            .ok_or("a document without apiVersion/kind")?;
        let (group, version) = match types.api_version.split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), types.api_version.clone()),
        };
        let gvk = GroupVersionKind::gvk(&group, &version, &types.kind);
        let (ar, caps) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .map_err(|e| format!("discovering {}/{}: {e}", types.api_version, types.kind))?;
        let ar: ApiResource = ar;
        let ns = obj
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_owned());
        let api: Api<DynamicObject> = match caps.scope {
            kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &ar),
            kube::discovery::Scope::Namespaced => Api::namespaced_with(client.clone(), &ns, &ar),
        };
        let name = obj
            .metadata
            .name
            .clone()
            .ok_or("a document without a name")?;
        api.patch(&name, &PatchParams::apply("kubectl"), &Patch::Apply(&obj))
            .await
            .map_err(|e| format!("applying {} {name}: {e}", types.kind))?;
    }
    Ok(())
}

/// A namespace under a fixed name (as a manifest names it), deleting a
/// leftover of an earlier run first.
pub async fn fresh_namespace(client: &Client, name: &str) -> Result<NamespaceGuard> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(name).await?.is_some() {
        let _ = api.delete(name, &Default::default()).await;
    }
    wait_for(
        Duration::from_secs(120),
        &format!("an earlier namespace {name} to be gone"),
        || {
            let api = api.clone();
            async move { api.get_opt(name).await.ok()?.is_none().then_some(()) }
        },
    )
    .await?;
    namespace(client, name, &[]).await
}
