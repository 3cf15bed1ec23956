//! The operator benchmark against a real API server (not a timed test):
//! 1 000 ServiceIdentities in 10 namespaces created at once; time until all
//! are Ready, API requests per identity, ConfigMap writes per namespace, the
//! operator's peak RSS, and the time from deleting an identity to the
//! bundle ConfigMap no longer carrying its key.
//!
//! ```sh
//! cargo build --release -p spiffile-operator --example bench --bin spiffile-operator
//! KUBECONFIG=… target/release/examples/bench [--identities 1000] [--namespaces 10] [--deletes 10]
//! ```
//! (`cargo xtask infra up k8s` prints a KUBECONFIG.) It creates and deletes
//! its own namespaces `bench-<pid>-N`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use spiffile_operator::crd::{ServiceIdentity, ServiceIdentityClaim, ServiceIdentitySpec};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn metrics(port: u16) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return out;
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some((k, v)) = line.rsplit_once(' ')
            && let Ok(v) = v.parse::<f64>()
        {
            out.insert(k.to_owned(), v);
        }
    }
    out
}

fn sum(m: &BTreeMap<String, f64>, prefix: &str, filter: impl Fn(&str) -> bool) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix) && filter(k))
        .map(|(_, v)| v)
        .sum()
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Waits until no namespace matching `matches` exists (at most 5 minutes).
async fn wait_gone(api: &Api<Namespace>, matches: impl Fn(&str) -> bool) -> Result {
    let start = Instant::now();
    loop {
        let left = api
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter(|ns| ns.metadata.name.as_deref().is_some_and(&matches))
            .count();
        if left == 0 {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(300) {
            return Err(format!("{left} benchmark namespaces still there after 300 s").into());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::main]
async fn main() -> Result {
    let n = arg("--identities", 1000);
    let namespaces = arg("--namespaces", 10);
    let deletes = arg("--deletes", 10);
    let client = Client::try_default().await?;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for crd in [ServiceIdentity::crd(), ServiceIdentityClaim::crd()] {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(
            &name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&crd),
        )
        .await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let run = std::process::id();
    let ns_api: Api<Namespace> = Api::all(client.clone());
    // The operator watches the whole cluster: an earlier run's namespaces,
    // still being torn down, would be measured too.
    wait_gone(&ns_api, |name| name.starts_with("bench-")).await?;
    let names: Vec<String> = (0..namespaces)
        .map(|i| format!("bench-{run}-{i}"))
        .collect();
    for name in &names {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        ns_api.create(&PostParams::default(), &ns).await?;
    }
    let lease_ns = names[0].clone();

    let exe = std::env::current_exe()?;
    let operator = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("spiffile-operator"))
        .ok_or("no operator binary beside the example")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let log =
        std::fs::File::create(std::env::temp_dir().join(format!("bench-operator-{run}.log")))?;
    let mut child = Command::new(&operator)
        .args([
            "--namespace",
            &lease_ns,
            "--probe-addr",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
        ])
        .env(
            "RUST_LOG",
            std::env::var("OPERATOR_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let pid = child.id();
    let started = Instant::now();
    while metrics(port).get("spiffile_operator_leader").copied() != Some(1.0) {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the operator did not become the leader".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = metrics(port);

    // All at once: 32 creates in flight.
    let td = format!("bench-{run}.test");
    let t0 = Instant::now();
    let work: Vec<(String, String)> = (0..n)
        .map(|i| (names[i % namespaces].clone(), format!("svc-{i:05}")))
        .collect();
    let client2 = client.clone();
    let td2 = td.clone();
    let results: Vec<_> = futures::stream::iter(work.clone())
        .map(|(ns, name)| {
            let (client, td) = (client2.clone(), td2.clone());
            async move {
                let si = ServiceIdentity::new(
                    &name,
                    ServiceIdentitySpec {
                        trust_domain: td,
                        path: format!("{ns}/{name}"),
                        secret_name: String::new(),
                        rotation_overlap: String::new(),
                    },
                );
                Api::<ServiceIdentity>::namespaced(client, &ns)
                    .create(&PostParams::default(), &si)
                    .await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    let created_in = t0.elapsed();
    // Watch, not poll: listing 1 000 objects every few hundred ms would
    // load the API server the operator is measured on.
    let ready_in = {
        use kube::runtime::{WatchStreamExt, watcher};
        let mut ready = std::collections::HashSet::new();
        let stream = watcher(
            Api::<ServiceIdentity>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .applied_objects();
        let mut stream = std::pin::pin!(stream);
        loop {
            let next = tokio::time::timeout(
                Duration::from_secs(600).saturating_sub(t0.elapsed()),
                stream.next(),
            )
            .await;
            let Ok(Some(Ok(si))) = next else {
                return Err(format!("only {} of {n} Ready after 600 s", ready.len()).into());
            };
            if si.spec.trust_domain == td && si.status.as_ref().is_some_and(|st| st.ready) {
                ready.insert((si.metadata.namespace.clone(), si.metadata.name.clone()));
                if ready.len() == n - failed {
                    break t0.elapsed();
                }
            }
        }
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = metrics(port);

    let not_lease = |k: &str| !k.contains("resource=\"leases\"");
    let requests = sum(&after, "spiffile_operator_api_requests_total", not_lease)
        - sum(&before, "spiffile_operator_api_requests_total", not_lease);
    let writes = |m: &BTreeMap<String, f64>| {
        sum(m, "spiffile_operator_api_requests_total", |k| {
            not_lease(k) && !k.contains("method=\"GET\"")
        })
    };
    let write_requests = writes(&after) - writes(&before);
    let mut by_resource: BTreeMap<String, f64> = BTreeMap::new();
    for (k, v) in &after {
        if k.starts_with("spiffile_operator_api_requests_total") && not_lease(k) {
            let b = before.get(k).copied().unwrap_or(0.0);
            *by_resource
                .entry(
                    k.trim_start_matches("spiffile_operator_api_requests_total")
                        .to_owned(),
                )
                .or_default() += v - b;
        }
    }
    let cm_writes: Vec<f64> = names
        .iter()
        .map(|ns| {
            let key = format!("spiffile_operator_configmap_writes_total{{namespace=\"{ns}\"}}");
            after.get(&key).copied().unwrap_or(0.0) - before.get(&key).copied().unwrap_or(0.0)
        })
        .collect();

    // Revocation latency: delete, then watch the namespace's ConfigMap
    // lose the key (a watch sees the write the moment it is stored).
    let mut latencies = Vec::new();
    for i in 0..deletes {
        use kube::runtime::{WatchStreamExt, watcher};
        let (ns, name) = &work[(i * 97) % work.len()];
        let id = format!("spiffe://{td}/{ns}/{name}");
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let key = format!("{td}.json");
        let stream = watcher(
            cms,
            watcher::Config::default().fields("metadata.name=spiffile-bundle"),
        )
        .default_backoff()
        .applied_objects();
        let mut stream = std::pin::pin!(stream);
        // The initial list: the key is there.
        let _ = stream.next().await;
        let t = Instant::now();
        Api::<ServiceIdentity>::namespaced(client.clone(), ns)
            .delete(name, &Default::default())
            .await?;
        loop {
            let next = tokio::time::timeout(Duration::from_secs(30), stream.next()).await;
            let Ok(Some(Ok(cm))) = next else {
                return Err(format!("{id} still in the bundle after 30 s").into());
            };
            if !cm
                .data
                .as_ref()
                .and_then(|d| d.get(&key))
                .is_some_and(|v| v.contains(&id))
            {
                latencies.push(t.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    latencies.sort();
    let rss = peak_rss_kib(pid);
    let idle_rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let bundle_bytes = sum(&after, "spiffile_operator_bundle_bytes", |k| {
        k.contains(&names[0])
    });

    let _ = child.kill();
    let _ = child.wait();
    for name in &names {
        let _ = ns_api.delete(name, &Default::default()).await;
    }
    wait_gone(&ns_api, |name| names.iter().any(|n| n == name)).await?;

    let per = |x: f64| x / (n - failed) as f64;
    let (cm_min, cm_max) = cm_writes
        .iter()
        .fold((f64::MAX, 0.0f64), |(a, b), &w| (a.min(w), b.max(w)));
    let median = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or_default();
    let worst = latencies.last().copied().unwrap_or_default();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| identities, namespaces, trust domains | {} ({failed} failed), {namespaces}, 1 |",
        n - failed
    );
    println!(
        "| creating them (32 requests in flight) | {:.1} s |",
        created_in.as_secs_f64()
    );
    println!("| time until all Ready | {:.1} s |", ready_in.as_secs_f64());
    println!(
        "| API requests per identity (all / writes), leases excluded | {:.2} / {:.2} |",
        per(requests),
        per(write_requests)
    );
    println!("| ConfigMap writes per namespace (min–max) | {cm_min:.0}–{cm_max:.0} |");
    println!(
        "| bundle ConfigMap size | {:.0} KiB |",
        bundle_bytes / 1024.0
    );
    println!(
        "| operator RSS: peak / after the run | {:.1} MiB / {:.1} MiB |",
        rss as f64 / 1024.0,
        idle_rss as f64 / 1024.0
    );
    println!(
        "| delete → key gone from the ConfigMap (median / worst of {deletes}) | {:.2} s / {:.2} s ({:.2}× the 2 s target) |",
        median.as_secs_f64(),
        worst.as_secs_f64(),
        worst.as_secs_f64() / 2.0
    );
    println!();
    println!("requests by method and resource during the burst:");
    for (k, v) in by_resource {
        if v > 0.0 {
            println!("  {k} {v:.0}");
        }
    }
    Ok(())
}
