//! The SPIRE test handle: workload entries, fetching as a workload, the
//! files spiffe-helper writes, and the server's local JWT authority.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::deploy::{AGENT_ID, TRUST_DOMAIN, cli, run_with_timeout};
use crate::deploy::state::State;
use crate::deploy::{self, Deployment, write_file};
use crate::error::{Error, Result, io, step};

/// How long a freshly registered workload may take to get its identity
/// (the agent syncs entries every second here).
const IDENTITY_TIMEOUT: Duration = Duration::from_secs(60);
/// Per call of a SPIRE command line.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// A running SPIRE deployment (server + agent), trust domain `spire.test`.
///
/// Obtain it with [`crate::spire()`] in tests, or [`Spire::attach`] for a
/// given run directory. Every method talks to the real server and agent
/// through their own command lines (`spire-server`, `spire-agent api`) and
/// spiffe-helper.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let Some(spire) = spiffile_testinfra::spire() else { return Ok(()) };
/// let orders = spire.register(&spiffile_testinfra::unique_name("orders"))?;
/// let dir = tempfile::tempdir()?;
/// // spiffe-helper (daemon_mode = false) writes its files once, as orders.
/// let files = orders.write_helper_files(
///     dir.path(),
///     &spiffile_testinfra::HelperFiles::standard("spiffe://spire.test/billing"),
/// )?;
/// let token = std::fs::read_to_string(&files.jwt_svids[0].1)?; // bare JWT, no newline
/// # let _ = token; Ok(()) }
/// ```
#[derive(Debug)]
pub struct Spire {
    run_dir: PathBuf,
    state: State,
    server_bin: PathBuf,
    agent_bin: PathBuf,
    helper_bin: PathBuf,
    server_socket: PathBuf,
    agent_socket: PathBuf,
    workloads: PathBuf,
}

impl Spire {
    /// Attaches to the deployment in `run_dir` (e.g.
    /// `Deployment::Spire.default_run_dir()`), checking it is up and ready.
    pub fn attach(run_dir: impl Into<PathBuf>) -> Result<Self> {
        let run_dir = run_dir.into();
        let state = State::read(&run_dir)?.ok_or_else(|| Error::NotRunning {
            component: "spire",
            detail: format!("no state in {}", run_dir.display()),
        })?;
        deploy::check(Deployment::Spire, &state).map_err(|detail| Error::NotRunning {
            component: "spire",
            detail,
        })?;
        Self::from_state(run_dir, state)
    }

    pub(crate) fn from_state(run_dir: PathBuf, state: State) -> Result<Self> {
        let p = |role: &str| state.path(role).map(Path::to_path_buf);
        Ok(Self {
            server_bin: p("spire-server")?,
            agent_bin: p("spire-agent")?,
            helper_bin: p("spiffe-helper")?,
            server_socket: p("server-socket")?,
            agent_socket: p("agent-socket")?,
            workloads: p("workloads")?,
            run_dir,
            state,
        })
    }

    /// `spire.test`.
    pub fn trust_domain(&self) -> &str {
        TRUST_DOMAIN
    }

    /// `spiffe://spire.test/<path>`.
    pub fn id(&self, path: &str) -> String {
        format!("spiffe://{TRUST_DOMAIN}/{}", path.trim_start_matches('/'))
    }

    /// The agent's Workload API socket (`SPIFFE_ENDPOINT_SOCKET` is
    /// `unix://` followed by this path).
    pub fn agent_socket(&self) -> &Path {
        &self.agent_socket
    }

    /// The server's API socket (`spire-server … -socketPath`).
    pub fn server_socket(&self) -> &Path {
        &self.server_socket
    }

    /// The `spire-server` binary.
    pub fn spire_server_bin(&self) -> &Path {
        &self.server_bin
    }

    /// The `spire-agent` binary.
    pub fn spire_agent_bin(&self) -> &Path {
        &self.agent_bin
    }

    /// The `spiffe-helper` binary.
    pub fn spiffe_helper_bin(&self) -> &Path {
        &self.helper_bin
    }

    /// The run directory (logs in `logs/`).
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The recorded state (PIDs, ports, paths, TTLs).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Runs `spire-server <command…> -socketPath <server socket> <args…>`
    /// and returns its stdout.
    pub fn server_cli(&self, command: &[&str], args: &[&str]) -> Result<String> {
        let socket = self.server_socket.display().to_string();
        let mut all: Vec<&str> = command.to_vec();
        all.extend(["-socketPath", &socket]);
        all.extend(args);
        cli(&self.server_bin, &all, CLI_TIMEOUT)
            .map_err(|e| step(format!("spire-server {}", command.join(" ")), e))
    }

    /// Registers workload `name` as `spiffe://spire.test/<name>` with the
    /// deployment's default TTLs. See [`Spire::registration`].
    pub fn register(&self, name: &str) -> Result<Workload> {
        self.registration(name).register()
    }

    /// A registration to configure: SPIFFE ID path, SVID lifetimes.
    pub fn registration<'a>(&'a self, name: &str) -> Registration<'a> {
        Registration {
            spire: self,
            name: name.to_owned(),
            path: None,
            x509_ttl: None,
            jwt_ttl: None,
        }
    }

    fn server_json(&self, command: &[&str], args: &[&str]) -> Result<serde_json::Value> {
        let mut all = args.to_vec();
        all.extend(["-output", "json"]);
        let out = self.server_cli(command, &all)?;
        serde_json::from_str(&out).map_err(|e| {
            step(
                format!("spire-server {}", command.join(" ")),
                format!("unreadable JSON ({e}): {out}"),
            )
        })
    }

    /// `spire-server localauthority jwt prepare`: a new JWT signing key,
    /// published in the bundle but not yet signing.
    pub fn prepare_jwt_authority(&self) -> Result<JwtAuthority> {
        let v = self.server_json(&["localauthority", "jwt", "prepare"], &[])?;
        JwtAuthority::from_json(v.get("prepared_authority"))
            .ok_or_else(|| step("spire-server localauthority jwt prepare", v.to_string()))
    }

    /// `… jwt activate -authorityID ID`: the prepared key signs from now on;
    /// the previous one stays in the bundle as `old`.
    pub fn activate_jwt_authority(&self, authority_id: &str) -> Result<JwtAuthority> {
        let v = self.server_json(
            &["localauthority", "jwt", "activate"],
            &["-authorityID", authority_id],
        )?;
        JwtAuthority::from_json(v.get("activated_authority"))
            .ok_or_else(|| step("spire-server localauthority jwt activate", v.to_string()))
    }

    /// `… jwt taint -authorityID ID`: marks the old key as not to be trusted
    /// (agents and workloads are told to rotate away from it).
    pub fn taint_jwt_authority(&self, authority_id: &str) -> Result<()> {
        self.server_json(
            &["localauthority", "jwt", "taint"],
            &["-authorityID", authority_id],
        )
        .map(|_| ())
    }

    /// `… jwt revoke -authorityID ID`: removes a tainted key from the bundle.
    pub fn revoke_jwt_authority(&self, authority_id: &str) -> Result<()> {
        self.server_json(
            &["localauthority", "jwt", "revoke"],
            &["-authorityID", authority_id],
        )
        .map(|_| ())
    }

    /// `… jwt show`: the active, prepared and old JWT authorities.
    pub fn jwt_authorities(&self) -> Result<BTreeMap<String, JwtAuthority>> {
        let v = self.server_json(&["localauthority", "jwt", "show"], &[])?;
        let mut out = BTreeMap::new();
        for slot in ["active", "prepared", "old"] {
            if let Some(a) = JwtAuthority::from_json(v.get(slot)) {
                out.insert(slot.to_owned(), a);
            }
        }
        Ok(out)
    }

    /// Rotates the JWT signing key now: prepare, then activate. Returns
    /// `(previous active, new active)`. Tokens minted from now on carry the
    /// new `kid`; the previous key stays in the bundle until it is tainted
    /// and revoked.
    pub fn rotate_jwt_authority(&self) -> Result<(Option<JwtAuthority>, JwtAuthority)> {
        let before = self.jwt_authorities()?.remove("active");
        let prepared = self.prepare_jwt_authority()?;
        let active = self.activate_jwt_authority(&prepared.authority_id)?;
        Ok((before, active))
    }
}

/// A JWT authority of the server (`spire-server localauthority jwt …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtAuthority {
    /// Its ID (the JWKS `kid` of its key).
    pub authority_id: String,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
}

impl JwtAuthority {
    fn from_json(v: Option<&serde_json::Value>) -> Option<Self> {
        let v = v?;
        let authority_id = v.get("authority_id")?.as_str()?.to_owned();
        if authority_id.is_empty() {
            return None;
        }
        let expires_at = match v.get("expires_at") {
            Some(serde_json::Value::String(s)) => s.parse().ok()?,
            Some(n) => n.as_i64()?,
            None => 0,
        };
        Some(Self {
            authority_id,
            expires_at,
        })
    }
}

/// A workload registration being configured ([`Spire::registration`]).
#[derive(Debug)]
#[must_use = "call .register()"]
pub struct Registration<'a> {
    spire: &'a Spire,
    name: String,
    path: Option<String>,
    x509_ttl: Option<Duration>,
    jwt_ttl: Option<Duration>,
}

impl Registration<'_> {
    /// The SPIFFE ID path (default: the workload's name).
    pub fn spiffe_id_path(mut self, path: &str) -> Self {
        self.path = Some(path.trim_start_matches('/').to_owned());
        self
    }

    /// X.509-SVID lifetime for this entry (whole seconds).
    pub fn x509_svid_ttl(mut self, ttl: Duration) -> Self {
        self.x509_ttl = Some(ttl);
        self
    }

    /// JWT-SVID lifetime for this entry (whole seconds).
    pub fn jwt_svid_ttl(mut self, ttl: Duration) -> Self {
        self.jwt_ttl = Some(ttl);
        self
    }

    /// Creates the workload's directory with its own hard links of
    /// `spire-agent` and `spiffe-helper` (copies if the cache is on another
    /// file system), registers one entry per link (`unix:path:<link>`,
    /// parent [`AGENT_ID`]) and waits until the agent issues the identity.
    /// Registering the same name again reuses its entries, updating TTLs
    /// that differ.
    pub fn register(self) -> Result<Workload> {
        let spire = self.spire;
        let dir = workload_dir(&spire.workloads, &self.name)?;
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let agent = link_binary(&spire.agent_bin, &dir.join("spire-agent"))?;
        let helper = link_binary(&spire.helper_bin, &dir.join("spiffe-helper"))?;
        let spiffe_id = spire.id(self.path.as_deref().unwrap_or(&self.name));
        let mut entry_ids = Vec::new();
        for link in [&agent, &helper] {
            entry_ids.push(self.create_entry(&spiffe_id, link)?);
        }
        let workload = Workload {
            name: self.name,
            spiffe_id,
            dir,
            agent,
            helper,
            agent_socket: spire.agent_socket.clone(),
            entry_ids,
        };
        workload.wait_for_identity()?;
        Ok(workload)
    }

    fn create_entry(&self, spiffe_id: &str, link: &Path) -> Result<String> {
        let selector = format!("unix:path:{}", link.display());
        let x509 = self.x509_ttl.map(|d| d.as_secs().to_string());
        let jwt = self.jwt_ttl.map(|d| d.as_secs().to_string());
        let mut args = vec![
            "-parentID",
            AGENT_ID,
            "-spiffeID",
            spiffe_id,
            "-selector",
            &selector,
        ];
        if let Some(t) = &x509 {
            args.extend(["-x509SVIDTTL", t]);
        }
        if let Some(t) = &jwt {
            args.extend(["-jwtSVIDTTL", t]);
        }
        args.extend(["-output", "json"]);
        // `entry create` exits 1 when the entry exists; its JSON says so.
        let socket = self.spire.server_socket.display().to_string();
        let mut all = vec!["entry", "create", "-socketPath", &socket];
        all.extend(args.iter().copied());
        let out = run_with_timeout(Command::new(&self.spire.server_bin).args(&all), CLI_TIMEOUT);
        let text = match &out {
            Ok(s) => s.clone(),
            Err(e) => e.clone(),
        };
        let json_start = text.find('{').unwrap_or(text.len());
        let json_end = text.rfind('}').map_or(json_start, |i| i + 1);
        let v: serde_json::Value =
            serde_json::from_str(&text[json_start..json_end.max(json_start)])
                .map_err(|_| step(format!("register {spiffe_id}"), text.clone()))?;
        let result = v
            .get("results")
            .and_then(|r| r.get(0))
            .ok_or_else(|| step(format!("register {spiffe_id}"), text.clone()))?;
        let code = result
            .pointer("/status/code")
            .and_then(|c| c.as_i64())
            .unwrap_or(0);
        let id = result
            .pointer("/entry/id")
            .and_then(|i| i.as_str())
            .unwrap_or("")
            .to_owned();
        match code {
            0 => Ok(id),
            // ALREADY_EXISTS: the same parent, SPIFFE ID and selectors (the
            // reply echoes the request, without the existing entry's ID).
            6 => {
                let shown = self.spire.server_json(
                    &["entry", "show"],
                    &[
                        "-parentID",
                        AGENT_ID,
                        "-spiffeID",
                        spiffe_id,
                        "-selector",
                        &selector,
                    ],
                )?;
                let existing = shown
                    .get("entries")
                    .and_then(|e| e.as_array())
                    .and_then(|e| e.first())
                    .cloned()
                    .ok_or_else(|| step(format!("register {spiffe_id}"), shown.to_string()))?;
                let id = existing
                    .get("id")
                    .and_then(|i| i.as_str())
                    .unwrap_or("")
                    .to_owned();
                let ttl = |field: &str| existing.get(field).and_then(|t| t.as_i64());
                let differs = |field: &str, want: Option<Duration>| {
                    want.is_some_and(|w| ttl(field) != Some(w.as_secs() as i64))
                };
                if differs("x509_svid_ttl", self.x509_ttl) || differs("jwt_svid_ttl", self.jwt_ttl)
                {
                    let mut up = vec![
                        "-entryID",
                        &id,
                        "-parentID",
                        AGENT_ID,
                        "-spiffeID",
                        spiffe_id,
                        "-selector",
                        &selector,
                    ];
                    if let Some(t) = &x509 {
                        up.extend(["-x509SVIDTTL", t]);
                    }
                    if let Some(t) = &jwt {
                        up.extend(["-jwtSVIDTTL", t]);
                    }
                    self.spire.server_cli(&["entry", "update"], &up)?;
                }
                Ok(id)
            }
            _ => Err(step(format!("register {spiffe_id}"), text)),
        }
    }
}

/// A path under `dir` for workload `name` (validated: `[a-z0-9._-]`, not
/// starting with a dot, so it cannot leave the directory).
pub(crate) fn workload_dir(dir: &Path, name: &str) -> Result<PathBuf> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !ok {
        return Err(step(
            format!("register workload {name:?}"),
            "a workload name is 1-64 characters of [a-z0-9._-], not starting with a dot",
        ));
    }
    Ok(dir.join(name))
}

/// Hard-links `bin` at `link` (or copies it when a hard link is impossible);
/// an existing link is kept.
fn link_binary(bin: &Path, link: &Path) -> Result<PathBuf> {
    if !link.exists() && fs::hard_link(bin, link).is_err() {
        let tmp = link.with_extension("partial");
        fs::copy(bin, &tmp).map_err(io(&tmp))?;
        fs::rename(&tmp, link).map_err(io(link))?;
    }
    Ok(link.to_path_buf())
}

/// A registered workload: fetches as this workload run its own hard link of
/// `spire-agent` / `spiffe-helper`, which the agent's unix attestor tells
/// apart from every other workload by path.
#[derive(Debug, Clone)]
pub struct Workload {
    name: String,
    spiffe_id: String,
    dir: PathBuf,
    agent: PathBuf,
    helper: PathBuf,
    agent_socket: PathBuf,
    entry_ids: Vec<String>,
}

/// One JWT-SVID fetch: the token and the JWT bundles that came with it.
#[derive(Debug, Clone)]
pub struct JwtFetch {
    /// The compact JWT.
    pub token: String,
    /// Trust domain ID (`spiffe://spire.test`) → JWKS JSON document.
    pub bundles: BTreeMap<String, String>,
}

impl Workload {
    /// The name it was registered under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its SPIFFE ID.
    pub fn spiffe_id(&self) -> &str {
        &self.spiffe_id
    }

    /// Its directory (holding its binaries' hard links).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its hard link of `spire-agent` (run it to act as this workload).
    pub fn agent_binary(&self) -> &Path {
        &self.agent
    }

    /// Its hard link of `spiffe-helper`.
    pub fn helper_binary(&self) -> &Path {
        &self.helper
    }

    /// Its registration entry IDs (one per binary).
    pub fn entry_ids(&self) -> &[String] {
        &self.entry_ids
    }

    fn api(&self, args: &[&str]) -> std::result::Result<String, String> {
        let socket = self.agent_socket.display().to_string();
        let mut all = vec!["api"];
        all.extend(args);
        all.extend(["-socketPath", &socket, "-timeout", "5s"]);
        cli(&self.agent, &all, CLI_TIMEOUT)
    }

    /// Retries `f` while the agent has no identity for us yet.
    fn retry<T>(
        &self,
        what: &str,
        mut f: impl FnMut() -> std::result::Result<T, String>,
    ) -> Result<T> {
        let started = Instant::now();
        loop {
            match f() {
                Ok(v) => return Ok(v),
                Err(e) if started.elapsed() < IDENTITY_TIMEOUT && is_transient(&e) => {
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) if is_transient(&e) => {
                    return Err(Error::Timeout {
                        what: format!("{what} as {}", self.spiffe_id),
                        after: IDENTITY_TIMEOUT,
                        detail: format!("; last error: {e}"),
                    });
                }
                Err(e) => return Err(step(format!("{what} as {}", self.spiffe_id), e)),
            }
        }
    }

    fn wait_for_identity(&self) -> Result<()> {
        self.retry("wait for the identity", || {
            let out = self.api(&["fetch", "x509", "-output", "json"])?;
            if out.contains(&format!("\"{}\"", self.spiffe_id)) {
                Ok(())
            } else {
                Err(format!("no identity issued yet (got {})", out.trim()))
            }
        })
    }

    /// A JWT-SVID for `audience` from the Workload API, with the bundles.
    pub fn fetch_jwt(&self, audience: &str) -> Result<JwtFetch> {
        self.retry("fetch a JWT-SVID", || {
            let out = self.api(&["fetch", "jwt", "-audience", audience, "-output", "json"])?;
            parse_jwt_fetch(&out, &self.spiffe_id)
        })
    }

    /// The compact JWT-SVID for `audience`.
    pub fn fetch_jwt_svid(&self, audience: &str) -> Result<String> {
        self.fetch_jwt(audience).map(|f| f.token)
    }

    /// The JWKS of `spire.test` from the Workload API.
    pub fn fetch_jwt_bundle(&self) -> Result<String> {
        let fetch = self.fetch_jwt(&format!("spiffe://{TRUST_DOMAIN}/bundle-probe"))?;
        fetch
            .bundles
            .get(&format!("spiffe://{TRUST_DOMAIN}"))
            .cloned()
            .ok_or_else(|| step("fetch the JWT bundle", "no bundle for spire.test"))
    }

    /// `spire-agent api fetch x509 -write DIR`: `svid.0.pem`, `svid.0.key`,
    /// `bundle.0.pem` (SPIRE's own names). Returns the files written.
    pub fn fetch_x509_into(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let d = dir.display().to_string();
        self.retry("fetch an X.509-SVID", || {
            self.api(&["fetch", "x509", "-write", &d]).map(|_| ())
        })?;
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(io(dir))?
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        Ok(files)
    }

    /// Runs spiffe-helper once (`daemon_mode = false`) as this workload: it
    /// writes the files `files` names into `dir`, in its own formats (bare
    /// JWT, `{"<td>":"<base64 JWKS>"}`, PEM files), and exits.
    pub fn write_helper_files(&self, dir: &Path, files: &HelperFiles) -> Result<HelperOutput> {
        let config = self.helper_config(dir, files, false)?;
        self.retry("run spiffe-helper", || {
            run_with_timeout(
                Command::new(&self.helper).args(["-config", &config.display().to_string()]),
                CLI_TIMEOUT,
            )
            .map(|_| ())
            .map_err(|e| format!("spiffe-helper: {e}"))
        })?;
        Ok(files.output(dir))
    }

    /// Starts spiffe-helper in daemon mode as this workload: it keeps the
    /// files fresh (JWT-SVIDs re-fetched at half their life, bundles and
    /// X.509 files on every update) until stopped. It is guarded: it stops
    /// when the [`HelperProcess`] is dropped and when this process exits.
    pub fn spawn_helper(&self, dir: &Path, files: &HelperFiles) -> Result<HelperProcess> {
        let config = self.helper_config(dir, files, true)?;
        let guardian = crate::attach::guardian().map_err(|e| step("start spiffe-helper", e))?;
        let log = dir.join("spiffe-helper.log");
        let (child, record) = crate::deploy::process::spawn(
            "spiffe-helper",
            &self.helper,
            &["-config".into(), config.display().to_string()],
            &log,
            guardian.group(),
            &[],
        )?;
        Ok(HelperProcess {
            child,
            record,
            output: files.output(dir),
        })
    }

    fn helper_config(&self, dir: &Path, files: &HelperFiles, daemon: bool) -> Result<PathBuf> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let q = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
        let mut c = format!(
            "agent_address = {}\ncert_dir = {}\ndaemon_mode = {daemon}\n",
            q(&self.agent_socket.display().to_string()),
            q(&dir.display().to_string()),
        );
        if let Some((svid, key, bundle)) = &files.x509 {
            c.push_str(&format!(
                "svid_file_name = {}\nsvid_key_file_name = {}\nsvid_bundle_file_name = {}\n",
                q(svid),
                q(key),
                q(bundle)
            ));
        }
        if let Some(b) = &files.jwt_bundle {
            c.push_str(&format!("jwt_bundle_file_name = {}\n", q(b)));
        }
        if !files.jwt_svids.is_empty() {
            c.push_str("jwt_svids = [\n");
            for (aud, name) in &files.jwt_svids {
                c.push_str(&format!(
                    "  {{ jwt_audience = {}, jwt_svid_file_name = {} }},\n",
                    q(aud),
                    q(name)
                ));
            }
            c.push_str("]\n");
        }
        let path = self.dir.join(if daemon {
            "helper-daemon.conf"
        } else {
            "helper-once.conf"
        });
        write_file(&path, c.as_bytes(), 0o644)?;
        Ok(path)
    }
}

fn is_transient(e: &str) -> bool {
    [
        "no identity issued",
        "PermissionDenied",
        "permission denied",
        "no identity yet",
        "no identity issued yet",
        "Unavailable",
        "connection refused",
    ]
    .iter()
    .any(|m| e.contains(m))
}

fn parse_jwt_fetch(out: &str, spiffe_id: &str) -> std::result::Result<JwtFetch, String> {
    let v: serde_json::Value =
        serde_json::from_str(out).map_err(|e| format!("unreadable JSON ({e}): {out}"))?;
    let parts = v
        .as_array()
        .ok_or_else(|| format!("expected an array: {out}"))?;
    let token = parts
        .iter()
        .filter_map(|p| p.get("svids").and_then(|s| s.as_array()))
        .flatten()
        .find(|s| s.get("spiffe_id").and_then(|i| i.as_str()) == Some(spiffe_id))
        .and_then(|s| s.get("svid").and_then(|t| t.as_str()))
        .ok_or_else(|| format!("no identity issued yet for {spiffe_id}: {out}"))?
        .to_owned();
    let mut bundles = BTreeMap::new();
    for map in parts
        .iter()
        .filter_map(|p| p.get("bundles").and_then(|b| b.as_object()))
    {
        for (td, b64) in map {
            let bytes = b64
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .ok_or_else(|| format!("bundle of {td} is not base64"))?;
            let text =
                String::from_utf8(bytes).map_err(|_| format!("bundle of {td} is not UTF-8"))?;
            bundles.insert(td.clone(), text);
        }
    }
    Ok(JwtFetch { token, bundles })
}

/// Which files spiffe-helper writes, by file name inside the target
/// directory (its `svid_file_name`, `jwt_svids`, … settings).
#[derive(Debug, Clone, Default)]
pub struct HelperFiles {
    /// `(jwt_audience, jwt_svid_file_name)` pairs.
    pub jwt_svids: Vec<(String, String)>,
    /// `jwt_bundle_file_name`.
    pub jwt_bundle: Option<String>,
    /// `(svid_file_name, svid_key_file_name, svid_bundle_file_name)`.
    pub x509: Option<(String, String, String)>,
}

impl HelperFiles {
    /// Nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything with the usual names: `jwt_svid.token` for `audience`,
    /// `jwt_bundle.json`, `svid.pem`, `svid_key.pem`, `svid_bundle.pem`.
    pub fn standard(audience: &str) -> Self {
        Self::new()
            .jwt_svid(audience, "jwt_svid.token")
            .jwt_bundle("jwt_bundle.json")
            .x509("svid.pem", "svid_key.pem", "svid_bundle.pem")
    }

    /// Adds a JWT-SVID for `audience` written to `file_name`.
    pub fn jwt_svid(mut self, audience: &str, file_name: &str) -> Self {
        self.jwt_svids
            .push((audience.to_owned(), file_name.to_owned()));
        self
    }

    /// Writes the JWT bundles to `file_name`.
    pub fn jwt_bundle(mut self, file_name: &str) -> Self {
        self.jwt_bundle = Some(file_name.to_owned());
        self
    }

    /// Writes the X.509-SVID, its key and the CA bundle.
    pub fn x509(mut self, svid: &str, key: &str, bundle: &str) -> Self {
        self.x509 = Some((svid.to_owned(), key.to_owned(), bundle.to_owned()));
        self
    }

    fn output(&self, dir: &Path) -> HelperOutput {
        HelperOutput {
            jwt_svids: self
                .jwt_svids
                .iter()
                .map(|(a, f)| (a.clone(), dir.join(f)))
                .collect(),
            jwt_bundle: self.jwt_bundle.as_ref().map(|f| dir.join(f)),
            x509: self.x509.as_ref().map(|(s, k, b)| X509Files {
                svid: dir.join(s),
                key: dir.join(k),
                bundle: dir.join(b),
            }),
        }
    }
}

/// The paths spiffe-helper wrote (or keeps writing).
#[derive(Debug, Clone)]
pub struct HelperOutput {
    /// `(audience, path)` per JWT-SVID.
    pub jwt_svids: Vec<(String, PathBuf)>,
    /// The JWT bundle file.
    pub jwt_bundle: Option<PathBuf>,
    /// The X.509 files.
    pub x509: Option<X509Files>,
}

/// spiffe-helper's X.509 files.
#[derive(Debug, Clone)]
pub struct X509Files {
    /// Leaf then intermediates (PEM, 0644).
    pub svid: PathBuf,
    /// PKCS#8 private key (PEM, 0600).
    pub key: PathBuf,
    /// CA roots (PEM, 0644).
    pub bundle: PathBuf,
}

/// A daemon-mode spiffe-helper ([`Workload::spawn_helper`]); stopped on drop.
#[derive(Debug)]
pub struct HelperProcess {
    child: std::process::Child,
    record: crate::deploy::process::ProcessRecord,
    output: HelperOutput,
}

impl HelperProcess {
    /// The files it maintains.
    pub fn output(&self) -> &HelperOutput {
        &self.output
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.record.pid
    }

    /// Waits until every file it maintains exists and is non-empty.
    pub fn wait_for_files(&self, timeout: Duration) -> Result<()> {
        let mut all: Vec<&Path> = self
            .output
            .jwt_svids
            .iter()
            .map(|(_, p)| p.as_path())
            .collect();
        all.extend(self.output.jwt_bundle.as_deref());
        if let Some(x) = &self.output.x509 {
            all.extend([x.svid.as_path(), x.key.as_path(), x.bundle.as_path()]);
        }
        let started = Instant::now();
        loop {
            let missing = all
                .iter()
                .find(|p| fs::metadata(p).map(|m| m.len() == 0).unwrap_or(true));
            match missing {
                None => return Ok(()),
                Some(p) if started.elapsed() >= timeout => {
                    return Err(Error::Timeout {
                        what: format!("spiffe-helper to write {}", p.display()),
                        after: timeout,
                        detail: crate::deploy::progress::log_tail(&self.record.log, 20),
                    });
                }
                Some(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Stops it (SIGTERM, then SIGKILL) and reaps it.
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        let r = self.record.stop(Duration::from_secs(5));
        let _ = self.child.wait();
        r.map(|_| ())
    }
}

impl Drop for HelperProcess {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spire_agent_fetch_jwt_json() {
        let jwks = r#"{"keys":[]}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(jwks);
        let out = format!(
            r#"[{{"svids":[{{"spiffe_id":"spiffe://spire.test/orders","svid":"a.b.c","hint":""}}]}},{{"bundles":{{"spiffe://spire.test":"{b64}"}}}}]"#
        );
        let f = parse_jwt_fetch(&out, "spiffe://spire.test/orders").expect("parse");
        assert_eq!(f.token, "a.b.c");
        assert_eq!(f.bundles["spiffe://spire.test"], jwks);
        assert!(parse_jwt_fetch(&out, "spiffe://spire.test/billing").is_err());
    }
}
