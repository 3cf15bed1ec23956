//! `spiffile list`: the services of a root and whether key and bundle agree.

use std::path::PathBuf;

use spiffile::provision;

use crate::output::{Failure, out, warn};

/// List the services of a root and whether key and bundle agree.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  spiffile list ./idroot")]
pub struct ListArgs {
    /// The root.
    root: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl ListArgs {
    /// Runs `spiffile list`.
    pub fn run(self) -> Result<(), Failure> {
        let ListArgs { root, json } = self;
        let services = provision::list_services(&root).map_err(Failure::failed)?;
        if json {
            let items: Vec<serde_json::Value> = services
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "name": s.name,
                        "id": s.id.as_str(),
                        "status": s.status.to_string(),
                        "kids": s.kids,
                        "key_kid": s.key_kid,
                    })
                })
                .collect();
            out(&serde_json::Value::Array(items).to_string());
            return Ok(());
        }
        if services.is_empty() {
            out("no services (add one with `spiffile add ROOT NAME`)");
            return Ok(());
        }
        let width = services
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        out(&format!(
            "{:width$}  {:<16}  {:>4}  CURRENT KID",
            "NAME", "STATUS", "KEYS"
        ));
        for s in &services {
            let status = s.status.to_string();
            let status: String = status.chars().take(60).collect();
            out(&format!(
                "{:width$}  {:<16}  {:>4}  {}",
                s.name,
                status,
                s.kids.len(),
                s.key_kid.as_deref().unwrap_or("-")
            ));
        }
        let problems = services
            .iter()
            .filter(|s| s.status != provision::ServiceStatus::Ok)
            .count();
        if problems > 0 {
            warn(format!(
                "{problems} service(s) need attention: `unsafe` means someone else can change the service's files (fix the mode, owner or link it names); `key missing` means the bundle binds keys nobody here holds (remove the service, or rotate it with --revoke-old); `not in bundle`/`key not bound` mean key.pem holds a key spiffile did not bind (rotate to issue a new one, or `spiffile add ROOT NAME --adopt-existing-key` if it is the service's own); a pending rotation is finished by the next provisioning command"
            ));
        }
        Ok(())
    }
}
