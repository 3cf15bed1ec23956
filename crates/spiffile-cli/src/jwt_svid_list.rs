//! `spiffile inspect --jwt-svid-dir DIR`: the JWT-SVIDs spiffe-helper keeps
//! in a directory, read (not verified), and which one would be presented.

use std::path::Path;

use serde_json::{Value, json};
use spiffile::svid::{JwtSvid, JwtSvidSet, UnixTime};

use crate::inspect::describe_time;
use crate::output::{Failure, out};

/// Largest file read (tokens are small; spiffe-helper's other files are
/// skipped by content).
const MAX_FILE: u64 = 1024 * 1024;

/// One file that holds a token, or tried to.
struct Entry {
    name: String,
    token: Result<JwtSvid, String>,
}

fn read_dir(dir: &Path) -> Result<Vec<Entry>, Failure> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", dir.display())))?;
    let mut names: Vec<(String, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .filter(|(n, p)| !n.starts_with('.') && p.is_file())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for (name, path) in names {
        let token = match spiffile::watch::read_regular_file(&path, MAX_FILE) {
            Err(e) => Err(format!("cannot read: {e}")),
            Ok(bytes) => match JwtSvid::parse(&bytes) {
                Ok(None) => continue,
                Ok(Some(t)) => Ok(t),
                Err(e) => Err(format!("unusable: {e}")),
            },
        };
        out.push(Entry { name, token });
    }
    Ok(out)
}

/// Lists the tokens of `dir` (or, with `audience`, the one that would be
/// presented to it).
pub fn list(dir: &Path, audience: Option<&str>, as_json: bool) -> Result<(), Failure> {
    let entries = read_dir(dir)?;
    let now = UnixTime::now().map_or(0, UnixTime::as_secs);
    if let Some(aud) = audience {
        let set = JwtSvidSet::new(
            entries
                .iter()
                .filter_map(|e| e.token.as_ref().ok().map(|t| (e.name.as_str(), t.clone()))),
        );
        let chosen = set.freshest(aud, now);
        let file = chosen.as_ref().ok().and_then(|t| {
            set.tokens()
                .find(|(_, c)| c == t)
                .map(|(name, _)| name.to_owned())
        });
        if as_json {
            let doc = match &chosen {
                Ok(t) => json!({"audience": aud, "file": file, "token": token_json(t, now)}),
                Err(e) => json!({"audience": aud, "error": e.to_string()}),
            };
            out(&doc.to_string());
        }
        return match chosen {
            Ok(t) => {
                if !as_json {
                    out(&format!(
                        "{}: presented to {aud}: {} ({})",
                        dir.display(),
                        file.unwrap_or_default(),
                        describe_time("exp", t.exp() as f64, now)
                    ));
                }
                Ok(())
            }
            Err(e) => Err(Failure::failed(format!(
                "{}: no JWT-SVID to present to {aud}: {e}",
                dir.display()
            ))),
        };
    }
    let good = entries.iter().filter(|e| e.token.is_ok()).count();
    if as_json {
        let files: Vec<Value> = entries
            .iter()
            .map(|e| match &e.token {
                Ok(t) => json!({"file": e.name, "token": token_json(t, now)}),
                Err(err) => json!({"file": e.name, "error": err}),
            })
            .collect();
        out(
            &json!({"dir": dir.display().to_string(), "verified": false, "files": files})
                .to_string(),
        );
    } else {
        out(&format!(
            "{}: {} JWT-SVID{} (UNVERIFIED: read, not verified)",
            dir.display(),
            good,
            if good == 1 { "" } else { "s" }
        ));
        for e in &entries {
            match &e.token {
                Ok(t) => out(&format!(
                    "  {}: sub {}, aud {}, {}",
                    e.name,
                    t.sub(),
                    serde_json::to_string(&t.audiences().collect::<Vec<_>>()).unwrap_or_default(),
                    describe_time("exp", t.exp() as f64, now)
                )),
                Err(err) => out(&format!("  {}: {err}", e.name)),
            }
        }
    }
    if entries.iter().any(|e| e.token.is_err()) {
        return Err(Failure::failed(format!(
            "{}: some token files cannot be used (see above)",
            dir.display()
        )));
    }
    Ok(())
}

fn token_json(t: &JwtSvid, now: i64) -> Value {
    json!({
        "sub": t.sub().as_str(),
        "aud": t.audiences().collect::<Vec<_>>(),
        "exp": t.exp(),
        "iat": t.iat(),
        "expired": t.exp() <= now,
    })
}
