//! `spiffile man`: the manual page, generated from the command definitions.

use clap::CommandFactory as _;

use crate::cli::Cli;
use crate::output::Failure;

/// Print the manual page (roff) of spiffile or of one of its commands.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  spiffile man > ~/.local/share/man/man1/spiffile.1 && man spiffile\n  spiffile man verify | man -l -"
)]
pub struct ManArgs {
    /// The command whose page to print (default: spiffile itself).
    command: Option<String>,
}

impl ManArgs {
    /// Runs `spiffile man`.
    pub fn run(self) -> Result<(), Failure> {
        let mut cli = Cli::command();
        cli.build();
        let (page, title) = match &self.command {
            None => (cli, "spiffile".to_owned()),
            Some(name) => {
                let names: Vec<String> = cli
                    .get_subcommands()
                    .map(|c| c.get_name().to_owned())
                    .collect();
                let Some(sub) = cli.find_subcommand(name).cloned() else {
                    let hint = crate::exit::closest(name, names.iter().map(String::as_str))
                        .map(|c| format!("; did you mean `{c}`?"))
                        .unwrap_or_default();
                    return Err(Failure::usage(format!(
                        "no command `{name}`{hint} (commands: {})",
                        names.join(", ")
                    )));
                };
                (
                    sub.version(env!("CARGO_PKG_VERSION")),
                    format!("spiffile-{name}"),
                )
            }
        };
        let mut buf = Vec::new();
        clap_mangen::Man::new(page)
            .title(title)
            .render(&mut buf)
            .map_err(|e| Failure::failed(format!("cannot render the manual page: {e}")))?;
        let mut stdout = std::io::stdout().lock();
        let _ = std::io::Write::write_all(&mut stdout, &buf);
        Ok(())
    }
}
