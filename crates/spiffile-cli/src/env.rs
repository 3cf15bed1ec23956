//! `spiffile env`: a service's `SPIFFILE_*` variables, for a shell, a
//! `.env` file or a program.

use clap::ValueEnum;
use spiffile::provision;

use crate::exit::provision_failure;
use crate::output::{Failure, out};
use crate::root_arg::root_and_names;

/// Print the SPIFFILE_* variables of a service.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "spiffile env [ROOT] <NAME> [--format FORMAT]",
    after_help = "ROOT defaults to $SPIFFILE_ROOT. To run a program with these variables, without
eval, use `spiffile exec ROOT NAME -- PROGRAM`.

Examples:
  eval \"$(spiffile env ./idroot orders)\"\n  spiffile env ./idroot orders --format dotenv > orders.env"
)]
pub struct EnvArgs {
    /// The root (omit it when SPIFFILE_ROOT is set), then the service.
    #[arg(required = true, num_args = 1..=2, value_name = "ROOT|NAME")]
    args: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = EnvFormat::Shell)]
    format: EnvFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EnvFormat {
    /// `export NAME='value'` lines, for `eval`.
    Shell,
    /// `NAME=value` lines, for .env files and systemd EnvironmentFile.
    Dotenv,
    /// A JSON object.
    Json,
}

impl EnvArgs {
    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.format == EnvFormat::Json
    }
}

impl EnvArgs {
    /// Runs `spiffile env`.
    pub fn run(self) -> Result<(), Failure> {
        let EnvArgs { args, format } = self;
        let (root, names) = root_and_names("env", args, Some(1))?;
        let env = provision::service_env(&root, &names[0]).map_err(provision_failure)?;
        let mut vars = Vec::new();
        for (k, v) in env.vars() {
            let v = v.to_str().ok_or_else(|| {
                Failure::failed(format!("{} is not valid UTF-8; move the root", v.display()))
            })?;
            vars.push((k, v.to_owned()));
        }
        match format {
            EnvFormat::Shell => {
                for (k, v) in vars {
                    out(&format!("export {k}={}", shell_quote(&v)));
                }
            }
            EnvFormat::Dotenv => {
                for (k, v) in vars {
                    if v.chars()
                        .any(|c| c.is_whitespace() || "\"'#$\\`".contains(c))
                    {
                        out(&format!("{k}={}", serde_json::Value::from(v)));
                    } else {
                        out(&format!("{k}={v}"));
                    }
                }
            }
            EnvFormat::Json => {
                let map: serde_json::Map<String, serde_json::Value> = vars
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.into()))
                    .collect();
                out(&serde_json::Value::Object(map).to_string());
            }
        }
        Ok(())
    }
}

/// Quotes a value for POSIX shells: single quotes, with `'` written `'\''`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
