//! Building the components from the Go module proxy into the cache.
//!
//! Each component is built in a scratch module of its own under
//! `<cache>/<component>/<version>/module/`, into `bin.partial/`, which is
//! renamed to `bin/` and marked complete only when every step succeeded: a
//! half-finished build is never used. A lock file serializes builds of the
//! same component from several clones. Every step prints a line with the
//! elapsed time (and a heartbeat every minute while it runs); a failure
//! names the step and ends with the tail of `build.log`.
//!
//! Kubernetes cannot be `go install`ed: its go.mod replaces every staging
//! module (`k8s.io/api`, `k8s.io/client-go`, …) by `./staging/src/…`. The
//! scratch module for it is generated from that go.mod: it requires
//! `k8s.io/kubernetes` and replaces each staging module it requires by the
//! published `v0.<minor>.<patch>` release of the same tag.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::components::{Component, ETCD_VERSION};
use super::progress::{Progress, log_tail};
use crate::error::{Result, io, step};

/// Builds `component` unless a complete build is cached. Returns whether it
/// built.
pub fn ensure_built(component: Component, progress: &Progress) -> Result<bool> {
    if component.is_cached() {
        progress.step(format!(
            "{} {} cached in {}",
            component.name(),
            component.version(),
            component.bin_dir().display()
        ));
        return Ok(false);
    }
    let dir = component.dir();
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let lock_path = dir.join(".build.lock");
    let lock = fs::File::create(&lock_path).map_err(io(&lock_path))?;
    if lock.try_lock().is_err() {
        progress.step(format!(
            "{} {}: another build holds {}; waiting",
            component.name(),
            component.version(),
            lock_path.display()
        ));
        lock.lock().map_err(io(&lock_path))?;
    }
    // Someone else may have finished it while we waited.
    if component.is_cached() {
        progress.step(format!(
            "{} {} built by another process",
            component.name(),
            component.version()
        ));
        return Ok(false);
    }
    let result = build(component, progress);
    drop(lock);
    result.map(|()| true)
}

fn build(component: Component, progress: &Progress) -> Result<()> {
    let started = Instant::now();
    let dir = component.dir();
    let module = dir.join("module");
    let partial = dir.join("bin.partial");
    let bin = component.bin_dir();
    let log = dir.join("build.log");
    for stale in [&module, &partial, &bin] {
        if stale.exists() {
            fs::remove_dir_all(stale).map_err(io(stale))?;
        }
    }
    fs::create_dir_all(&module).map_err(io(&module))?;
    fs::create_dir_all(&partial).map_err(io(&partial))?;
    fs::write(&log, b"").map_err(io(&log))?;

    let go = Go::new(component, &module, &log, progress)?;
    let label = format!("{} {}", component.name(), component.version());
    progress.step(format!(
        "building {label} with {} (log: {})",
        go.version,
        log.display()
    ));
    if component == Component::Spire && which("gcc").is_none() && which("cc").is_none() {
        return Err(step(
            format!("build {label}"),
            "SPIRE uses cgo (sqlite) and needs a C compiler: install gcc (Debian: apt-get install gcc)",
        ));
    }

    let version = component.version();
    match component {
        Component::Kubernetes => {
            write_kubernetes_module(&go, &module, version)?;
            let pkgs = [
                "k8s.io/kubernetes/cmd/kube-apiserver",
                "k8s.io/kubernetes/cmd/kube-controller-manager",
            ];
            let mut get = vec!["get".to_owned()];
            get.extend(pkgs.iter().map(|p| format!("{p}@{version}")));
            go.run("go get (resolve dependencies)", &get, &[])?;
            let mut args = vec![
                "build".to_owned(),
                "-tags".to_owned(),
                "providerless".to_owned(),
                "-o".to_owned(),
                format!("{}/", partial.display()),
            ];
            args.extend(pkgs.iter().map(|p| (*p).to_owned()));
            go.run(
                "go build kube-apiserver kube-controller-manager",
                &args,
                &[("CGO_ENABLED", "0")],
            )?;
        }
        Component::Etcd => {
            go.init_module("etcd")?;
            go.run(
                "go get (resolve dependencies)",
                &[
                    "get".to_owned(),
                    format!("go.etcd.io/etcd/server/v3@{version}"),
                ],
                &[],
            )?;
            go.run(
                "go build etcd",
                &[
                    "build".to_owned(),
                    "-o".to_owned(),
                    partial.join("etcd").display().to_string(),
                    "go.etcd.io/etcd/server/v3".to_owned(),
                ],
                &[("CGO_ENABLED", "0")],
            )?;
        }
        Component::Spire | Component::SpiffeHelper => {
            let pkgs: &[&str] = if component == Component::Spire {
                &[
                    "github.com/spiffe/spire/cmd/spire-server",
                    "github.com/spiffe/spire/cmd/spire-agent",
                ]
            } else {
                &["github.com/spiffe/spiffe-helper/cmd/spiffe-helper"]
            };
            go.init_module(component.name())?;
            // The modules' own go.mod files replace some dependencies, so
            // `go install pkg@version` refuses them; as tools of a scratch
            // module their replaces are ignored and the build works.
            for pkg in pkgs {
                go.run(
                    &format!("go get -tool {pkg}@{version}"),
                    &[
                        "get".to_owned(),
                        "-tool".to_owned(),
                        format!("{pkg}@{version}"),
                    ],
                    &[],
                )?;
            }
            let mut args = vec![
                "build".to_owned(),
                "-o".to_owned(),
                format!("{}/", partial.display()),
            ];
            args.extend(pkgs.iter().map(|p| (*p).to_owned()));
            let cgo = if component == Component::Spire {
                "1"
            } else {
                "0"
            };
            go.run(
                &format!("go build {}", component.binaries().join(" ")),
                &args,
                &[("CGO_ENABLED", cgo)],
            )?;
        }
    }

    for name in component.binaries() {
        let path = partial.join(name);
        if !path.is_file() {
            return Err(step(
                format!("build {label}"),
                format!("go build did not produce {}", path.display()),
            ));
        }
    }
    let secs = started.elapsed().as_secs();
    let record = serde_json::json!({
        "component": component.name(),
        "version": version,
        "go": go.version,
        "build_seconds": secs,
        "built_at_unix": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    });
    let marker = partial.join(".complete");
    fs::write(&marker, format!("{record}\n")).map_err(io(&marker))?;
    fs::rename(&partial, &bin).map_err(io(&bin))?;
    progress.step(format!(
        "built {label} in {} into {}",
        fmt_duration(started.elapsed()),
        bin.display()
    ));
    Ok(())
}

/// Writes the scratch module for Kubernetes from `k8s.io/kubernetes`'s own
/// go.mod (downloaded from the module proxy), and checks the etcd pin.
fn write_kubernetes_module(go: &Go<'_>, module: &Path, version: &str) -> Result<()> {
    let out = go.output(
        "go mod download k8s.io/kubernetes",
        &[
            "mod".to_owned(),
            "download".to_owned(),
            "-json".to_owned(),
            format!("k8s.io/kubernetes@{version}"),
        ],
    )?;
    let info: serde_json::Value = serde_json::from_str(&out).map_err(|e| {
        step(
            "go mod download k8s.io/kubernetes",
            format!("unreadable JSON ({e}): {out}"),
        )
    })?;
    let gomod_path = info.get("GoMod").and_then(|v| v.as_str()).ok_or_else(|| {
        step(
            "go mod download k8s.io/kubernetes",
            format!("no GoMod in {out}"),
        )
    })?;
    let upstream = fs::read_to_string(gomod_path).map_err(io(gomod_path))?;
    let parsed = GoMod::parse(&upstream);

    let etcd = parsed
        .requires
        .iter()
        .find(|(m, _)| m == "go.etcd.io/etcd/server/v3")
        .map(|(_, v)| v.as_str());
    if etcd != Some(ETCD_VERSION) {
        return Err(step(
            "check the etcd pin",
            format!(
                "k8s.io/kubernetes {version} requires go.etcd.io/etcd/server/v3 {}, but \
                 ETCD_VERSION is {ETCD_VERSION}: update crates/spiffile-testinfra/src/deploy/components.rs",
                etcd.unwrap_or("(none)")
            ),
        ));
    }

    let staging_version = staging_version(version).ok_or_else(|| {
        step(
            "generate the Kubernetes wrapper module",
            format!("cannot derive the staging modules' version from {version}"),
        )
    })?;
    let text = parsed.wrapper(version, &staging_version);
    let path = module.join("go.mod");
    fs::write(&path, text).map_err(io(&path))?;
    go.progress.step(format!(
        "wrote {} ({} staging modules replaced by {staging_version})",
        path.display(),
        parsed.staging_required().len()
    ));
    Ok(())
}

/// `v1.37.2` → `v0.37.2`: the tag the staging modules are published under.
fn staging_version(kubernetes: &str) -> Option<String> {
    kubernetes
        .strip_prefix("v1.")
        .map(|rest| format!("v0.{rest}"))
}

/// The parts of a go.mod the wrapper needs.
#[derive(Debug, Default, PartialEq)]
struct GoMod {
    go: Option<String>,
    godebug: Vec<String>,
    requires: Vec<(String, String)>,
    /// Modules replaced by a local `./staging/...` directory.
    staging: Vec<String>,
}

impl GoMod {
    fn parse(text: &str) -> Self {
        let mut out = GoMod::default();
        let mut block: Option<&str> = None;
        for raw in text.lines() {
            let line = raw.split("//").next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if block.is_some() && line == ")" {
                block = None;
                continue;
            }
            let (kind, rest) = match block {
                Some(kind) => (kind, line),
                None => {
                    let (kw, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                    let rest = rest.trim();
                    if rest == "(" {
                        block = Some(match kw {
                            "require" => "require",
                            "replace" => "replace",
                            "godebug" => "godebug",
                            _ => "other",
                        });
                        continue;
                    }
                    (kw, rest)
                }
            };
            match kind {
                "go" => out.go = Some(rest.to_owned()),
                "godebug" => out.godebug.push(rest.to_owned()),
                "require" => {
                    let mut parts = rest.split_whitespace();
                    if let (Some(m), Some(v)) = (parts.next(), parts.next()) {
                        out.requires.push((m.to_owned(), v.to_owned()));
                    }
                }
                "replace" => {
                    if let Some((left, right)) = rest.split_once("=>") {
                        let module = left.split_whitespace().next().unwrap_or("");
                        if right.trim().starts_with("./staging/") && !module.is_empty() {
                            out.staging.push(module.to_owned());
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Staging modules that k8s.io/kubernetes requires (at `v0.0.0`).
    fn staging_required(&self) -> Vec<&str> {
        self.staging
            .iter()
            .filter(|m| self.requires.iter().any(|(r, _)| r == *m))
            .map(String::as_str)
            .collect()
    }

    fn wrapper(&self, version: &str, staging_version: &str) -> String {
        let mut s = format!(
            "// Generated by spiffile-testinfra (crates/spiffile-testinfra/src/deploy/build.rs)\n\
             // from k8s.io/kubernetes {version}'s go.mod: build kube-apiserver and\n\
             // kube-controller-manager with each staging module replaced by its\n\
             // published {staging_version} release.\n\
             module spiffile-rs.invalid/build/kubernetes\n\n"
        );
        if let Some(go) = &self.go {
            s.push_str(&format!("go {go}\n\n"));
        }
        for d in &self.godebug {
            s.push_str(&format!("godebug {d}\n"));
        }
        if !self.godebug.is_empty() {
            s.push('\n');
        }
        s.push_str(&format!(
            "require k8s.io/kubernetes {version}\n\nreplace (\n"
        ));
        for m in self.staging_required() {
            s.push_str(&format!("\t{m} => {m} {staging_version}\n"));
        }
        s.push_str(")\n");
        s
    }
}

/// Runs `go` in a scratch module with its output appended to a log.
struct Go<'a> {
    module: &'a Path,
    log: &'a Path,
    progress: &'a Progress,
    label: String,
    version: String,
}

impl<'a> Go<'a> {
    fn new(
        component: Component,
        module: &'a Path,
        log: &'a Path,
        progress: &'a Progress,
    ) -> Result<Self> {
        let label = format!("build {} {}", component.name(), component.version());
        let go = go_binary();
        let out = Command::new(&go)
            .arg("version")
            .env("GOTOOLCHAIN", "local")
            .output()
            .map_err(|e| {
                step(
                    &label,
                    format!(
                        "cannot run `{}` ({e}): Go >= 1.25.3 is needed (set SPIFFILE_GO to its path)",
                        go.display()
                    ),
                )
            })?;
        let version = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(2)
            .unwrap_or("go?")
            .to_owned();
        Ok(Self {
            module,
            log,
            progress,
            label,
            version,
        })
    }

    fn init_module(&self, name: &str) -> Result<()> {
        self.run(
            "go mod init",
            &[
                "mod".to_owned(),
                "init".to_owned(),
                format!("spiffile-rs.invalid/build/{name}"),
            ],
            &[],
        )
    }

    fn command(&self, args: &[String], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(go_binary());
        cmd.args(args)
            .current_dir(self.module)
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "-buildvcs=false")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a step, its output going to the log, with a heartbeat.
    fn run(&self, name: &str, args: &[String], env: &[(&str, &str)]) -> Result<()> {
        let step_name = format!("{}: {name}", self.label);
        let started = Instant::now();
        self.progress.step(format!("{name} ..."));
        let log = fs::OpenOptions::new()
            .append(true)
            .open(self.log)
            .map_err(io(self.log))?;
        let log2 = log.try_clone().map_err(io(self.log))?;
        use std::io::Write;
        let mut header = log.try_clone().map_err(io(self.log))?;
        let _ = writeln!(header, "\n$ go {}", args.join(" "));
        let mut child = self
            .command(args, env)
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| step(&step_name, format!("cannot start go: {e}")))?;
        let mut next_beat = Duration::from_secs(60);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => return Err(step(&step_name, format!("waiting for go: {e}"))),
            }
            if started.elapsed() >= next_beat {
                self.progress.step(format!(
                    "{name}: still running ({})",
                    fmt_duration(started.elapsed())
                ));
                next_beat += Duration::from_secs(60);
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        if !status.success() {
            return Err(step(
                step_name,
                format!(
                    "exit {status} after {}{}",
                    fmt_duration(started.elapsed()),
                    log_tail(self.log, 40)
                ),
            ));
        }
        self.progress.step(format!(
            "{name}: done in {}",
            fmt_duration(started.elapsed())
        ));
        Ok(())
    }

    /// Runs a step and returns its stdout (stderr goes to the log).
    fn output(&self, name: &str, args: &[String]) -> Result<String> {
        let step_name = format!("{}: {name}", self.label);
        let started = Instant::now();
        self.progress.step(format!("{name} ..."));
        let out = self
            .command(args, &[])
            .output()
            .map_err(|e| step(&step_name, format!("cannot start go: {e}")))?;
        if let Ok(mut f) = fs::OpenOptions::new().append(true).open(self.log) {
            use std::io::Write;
            let _ = writeln!(f, "\n$ go {}", args.join(" "));
            let _ = f.write_all(&out.stderr);
        }
        if !out.status.success() {
            return Err(step(
                step_name,
                format!("exit {}{}", out.status, log_tail(self.log, 40)),
            ));
        }
        self.progress.step(format!(
            "{name}: done in {}",
            fmt_duration(started.elapsed())
        ));
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn go_binary() -> PathBuf {
    super::paths::non_empty_env("SPIFFILE_GO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("go"))
}

pub(crate) fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// `3m07s`, `41.2s`.
pub fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "module k8s.io/kubernetes\n\ngo 1.26.0\n\ngodebug default=go1.26\n\n\
        require (\n\tgithub.com/a/b v1.2.3\n\tk8s.io/api v0.0.0\n\tk8s.io/client-go v0.0.0 // indirect\n\
        \tgo.etcd.io/etcd/server/v3 v3.7.0 // indirect\n)\n\n\
        replace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/client-go => ./staging/src/k8s.io/client-go\n\
        \tk8s.io/sample-controller => ./staging/src/k8s.io/sample-controller\n)\n";

    #[test]
    fn parses_the_parts_the_wrapper_needs() {
        let m = GoMod::parse(SAMPLE);
        assert_eq!(m.go.as_deref(), Some("1.26.0"));
        assert_eq!(m.godebug, vec!["default=go1.26"]);
        assert_eq!(m.requires.len(), 4);
        assert_eq!(m.staging_required(), vec!["k8s.io/api", "k8s.io/client-go"]);
    }

    #[test]
    fn wrapper_replaces_required_staging_modules_only() {
        let text = GoMod::parse(SAMPLE).wrapper("v1.37.2", "v0.37.2");
        assert!(text.contains("require k8s.io/kubernetes v1.37.2\n"));
        assert!(text.contains("\tk8s.io/api => k8s.io/api v0.37.2\n"));
        assert!(text.contains("\tk8s.io/client-go => k8s.io/client-go v0.37.2\n"));
        assert!(!text.contains("sample-controller"));
        assert!(text.contains("go 1.26.0\n") && text.contains("godebug default=go1.26\n"));
    }

    #[test]
    fn staging_version_follows_the_tag() {
        assert_eq!(staging_version("v1.37.2").as_deref(), Some("v0.37.2"));
        assert_eq!(staging_version("v2.0.0"), None);
    }
}
