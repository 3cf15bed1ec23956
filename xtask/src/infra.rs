//! `cargo xtask infra <build|up|down|status|env> [k8s|spire|all]`: the
//! command line over `spiffile_testinfra::deploy`. See docs/testing.md.

use std::process::ExitCode;

use spiffile_testinfra::deploy::components::Component;
use spiffile_testinfra::deploy::progress::Progress;
use spiffile_testinfra::deploy::state::{Owner, State};
use spiffile_testinfra::deploy::{self, Deployment, UpOptions, paths};

const USAGE: &str = "usage: cargo xtask infra <build|up|down|status|env> [k8s|spire|all]

  build   build the binaries into the cache if missing (Go module proxy)
  up      build if needed, start, wait until ready (reuses a running one)
  down    stop exactly what `up` started
  status  what is built, what is running, where (exit 1 if not all up)
  env     print `export …` lines for a shell: eval \"$(cargo xtask infra env)\"

  cache:   ${XDG_CACHE_HOME:-~/.cache}/spiffile-rs/<component>/<version>/bin
  run dir: $SPIFFILE_INFRA_DIR, default <workspace>/target/infra/<k8s|spire>";

pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let Some(command) = args.first() else {
        return Err(USAGE.to_owned());
    };
    let targets = match args.get(1).map(String::as_str) {
        None | Some("all") => Deployment::ALL.to_vec(),
        Some(name) => vec![Deployment::parse(name).ok_or_else(|| {
            format!("unknown deployment `{name}` (k8s, spire or all)\n\n{USAGE}")
        })?],
    };
    if args.len() > 2 {
        return Err(format!("unexpected argument `{}`\n\n{USAGE}", args[2]));
    }
    match command.as_str() {
        "build" => {
            for d in &targets {
                deploy::build(*d, &Progress::new(format!("build {}", d.name())))
                    .map_err(|e| e.to_string())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        "up" => {
            for d in &targets {
                let running = deploy::up(*d, &UpOptions::new(*d)).map_err(|e| e.to_string())?;
                print_summary(*d, &running.state);
            }
            Ok(ExitCode::SUCCESS)
        }
        "down" => {
            for d in targets.iter().rev() {
                let progress = Progress::new(d.name());
                let report =
                    deploy::down(&d.default_run_dir(), &progress).map_err(|e| e.to_string())?;
                if !report.had_state {
                    progress.step("not running (no state file)");
                } else if report.stopped.is_empty() {
                    progress.step("down (its processes had already exited)");
                } else {
                    progress.step(format!("down: stopped {}", report.stopped.join(", ")));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        "status" => status(&targets),
        "env" => {
            for d in &targets {
                let state = State::read(&d.default_run_dir())
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| {
                        format!(
                            "{} is not up: run `cargo xtask infra up {}`",
                            d.name(),
                            d.name()
                        )
                    })?;
                for line in env_lines(*d, &state) {
                    println!("{line}");
                }
            }
            println!(
                "export SPIFFILE_INFRA_DIR={}",
                shell_quote(&paths::infra_dir().display().to_string())
            );
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown infra command `{other}`\n\n{USAGE}")),
    }
}

fn status(targets: &[Deployment]) -> Result<ExitCode, String> {
    let mut all_up = true;
    println!("binary cache: {}", paths::cache_root().display());
    for c in Component::ALL {
        match c.build_record() {
            Some(record) if c.is_cached() => {
                let secs = serde_json::from_str::<serde_json::Value>(&record)
                    .ok()
                    .and_then(|v| v.get("build_seconds").and_then(|s| s.as_u64()));
                println!(
                    "  {:<14} {:<8} built{}",
                    c.name(),
                    c.version(),
                    secs.map(|s| format!(" (took {}m{:02}s)", s / 60, s % 60))
                        .unwrap_or_default()
                );
            }
            _ => println!("  {:<14} {:<8} not built", c.name(), c.version()),
        }
    }
    for d in targets {
        let dir = d.default_run_dir();
        let state = State::read(&dir).map_err(|e| e.to_string())?;
        match state {
            None => {
                all_up = false;
                println!("{}: down ({})", d.name(), dir.display());
            }
            Some(state) => {
                let health = deploy::check(*d, &state);
                if health.is_err() {
                    all_up = false;
                }
                println!(
                    "{}: {} ({}, {})",
                    d.name(),
                    match &health {
                        Ok(()) => "up and ready".to_owned(),
                        Err(why) => format!("NOT HEALTHY: {why}"),
                    },
                    dir.display(),
                    match &state.owner {
                        Owner::Persistent => "persistent".to_owned(),
                        Owner::Guarded { owner_pid, .. } =>
                            format!("stops when pid {owner_pid} exits"),
                    }
                );
                for p in &state.processes {
                    println!(
                        "  {:<24} pid {:<8} {}",
                        p.name,
                        p.pid,
                        if p.is_running() { "running" } else { "exited" }
                    );
                }
                for (k, v) in &state.ports {
                    println!("  port {k:<19} 127.0.0.1:{v}");
                }
                for (k, v) in &state.paths {
                    println!("  {k:<24} {}", v.display());
                }
                println!("  started in {:.1}s", state.startup_seconds);
            }
        }
    }
    Ok(if all_up {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_summary(d: Deployment, state: &State) {
    match d {
        Deployment::K8s => {
            if let (Ok(kubeconfig), Ok(url)) = (state.path("kubeconfig"), state.value("server-url"))
            {
                eprintln!("k8s: apiserver {url}");
                eprintln!("k8s: kubeconfig {}", kubeconfig.display());
                eprintln!(
                    "k8s: try `kubectl --kubeconfig {} get --raw /readyz`",
                    kubeconfig.display()
                );
            }
        }
        Deployment::Spire => {
            if let (Ok(agent), Ok(server)) =
                (state.path("agent-socket"), state.path("server-socket"))
            {
                eprintln!("spire: trust domain spiffe://spire.test");
                eprintln!("spire: Workload API unix://{}", agent.display());
                eprintln!("spire: server API {}", server.display());
            }
        }
    }
    for line in env_lines(d, state) {
        println!("{line}");
    }
}

fn env_lines(d: Deployment, state: &State) -> Vec<String> {
    let mut lines = Vec::new();
    match d {
        Deployment::K8s => {
            if let Ok(k) = state.path("kubeconfig") {
                lines.push(format!(
                    "export KUBECONFIG={}",
                    shell_quote(&k.display().to_string())
                ));
            }
        }
        Deployment::Spire => {
            if let Ok(a) = state.path("agent-socket") {
                lines.push(format!(
                    "export SPIFFE_ENDPOINT_SOCKET={}",
                    shell_quote(&format!("unix://{}", a.display()))
                ));
            }
            if let Ok(s) = state.path("server-socket") {
                lines.push(format!(
                    "export SPIRE_SERVER_SOCKET={}",
                    shell_quote(&s.display().to_string())
                ));
            }
            if let Some(dir) = state.path("spire-server").ok().and_then(|b| b.parent()) {
                lines.push(format!(
                    "export PATH={}:\"$PATH\"",
                    shell_quote(&dir.display().to_string())
                ));
            }
        }
    }
    lines
}

fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-:+=@%,".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
