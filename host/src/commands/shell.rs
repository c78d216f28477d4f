//! `host completions SHELL` and `host man`: the shell's completions and the
//! manual page, both generated from the CLI's own definition, so that they
//! list exactly the commands and flags this binary has.

use super::{Exit, Failure, Outcome};
use std::io::Write;

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete in; e.g. `host completions bash > ~/.local/share/bash-completion/completions/host`.
    shell: Shell,
}

/// The shells completions are generated for.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Shell {
    /// Bash: source it, or put it in ~/.local/share/bash-completion/completions/host.
    Bash,
    /// Zsh: put it in a directory of $fpath as _host.
    Zsh,
    /// Fish: put it in ~/.config/fish/completions/host.fish.
    Fish,
    /// Elvish: put it in a module and `use` it.
    Elvish,
    /// PowerShell: dot-source it from your profile.
    Powershell,
}

impl From<Shell> for clap_complete::Shell {
    fn from(shell: Shell) -> Self {
        match shell {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
            Shell::Elvish => clap_complete::Shell::Elvish,
            Shell::Powershell => clap_complete::Shell::PowerShell,
        }
    }
}

#[derive(clap::Args)]
pub struct ManArgs {
    /// Write host.1 and one page per command (host-run.1, ...) into DIR
    /// instead of printing host.1 on stdout.
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
}

pub fn completions(args: CompletionsArgs, mut cli: clap::Command) -> Outcome {
    let name = cli.get_name().to_string();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(
        clap_complete::Shell::from(args.shell),
        &mut cli,
        name,
        &mut out,
    );
    let _ = out.flush();
    Ok(Exit::Success)
}

pub fn man(args: ManArgs, cli: clap::Command) -> Outcome {
    let Some(dir) = args.dir else {
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(cli)
            .render(&mut out)
            .map_err(|e| Failure::host(format!("cannot write the manual page: {e}")))?;
        return Ok(Exit::Success);
    };
    if !dir.is_dir() {
        return Err(Failure::invalid(format!(
            "--dir {}: not a directory",
            dir.display()
        )));
    }
    clap_mangen::generate_to(cli, &dir).map_err(|e| {
        Failure::host(format!(
            "cannot write the manual pages into {}: {e}",
            dir.display()
        ))
    })?;
    Ok(Exit::Success)
}
