//! Whether the terminal gets colour, decided once per process from
//! `--color`, `NO_COLOR` (<https://no-color.org>), `CLICOLOR_FORCE` and
//! whether the stream is a terminal, and the few colours the host uses.
//! Every coloured word is also a plain word: colour only repeats what the
//! text says, so nothing is lost without it.

use std::io::IsTerminal;
use std::sync::OnceLock;

/// `--color`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set (or TERM is dumb).
    #[default]
    Auto,
    /// Colour even when writing to a file or a pipe.
    Always,
    /// Never colour.
    Never,
}

/// The two streams the host writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decided {
    stdout: bool,
    stderr: bool,
}

static DECIDED: OnceLock<Decided> = OnceLock::new();

/// What the environment says, apart from the flag: `Some(false)` for
/// NO_COLOR or TERM=dumb, `Some(true)` for CLICOLOR_FORCE, else `None`.
fn environment(var: impl Fn(&str) -> Option<String>) -> Option<bool> {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    if set("NO_COLOR") || var("TERM").as_deref() == Some("dumb") {
        Some(false)
    } else if var("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") {
        Some(true)
    } else {
        None
    }
}

/// The flag wins over the environment, the environment over the terminal.
fn decide(choice: ColorChoice, env: Option<bool>, terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => env.unwrap_or(terminal),
    }
}

/// Decides once, at start-up; later calls keep the first decision.
pub fn init(choice: ColorChoice) {
    let env = environment(|name| std::env::var(name).ok());
    let _ = DECIDED.set(Decided {
        stdout: decide(choice, env, std::io::stdout().is_terminal()),
        stderr: decide(choice, env, std::io::stderr().is_terminal()),
    });
}

/// Whether `stream` gets colour (no colour before `init`: library callers
/// and tests see plain text).
pub fn enabled(stream: Stream) -> bool {
    DECIDED.get().is_some_and(|d| match stream {
        Stream::Stdout => d.stdout,
        Stream::Stderr => d.stderr,
    })
}

/// The colours the host uses, each for one meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paint {
    /// Failed, refused, an error.
    Bad,
    /// Succeeded.
    Good,
    /// Retried, skipped, a warning: worth a look, not a failure.
    Notice,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Bad => "1;31",
            Paint::Good => "32",
            Paint::Notice => "33",
        }
    }
}

/// `text` in `paint` when `stream` gets colour, else `text` as it is.
pub fn paint(text: &str, paint: Paint, stream: Stream) -> String {
    if enabled(stream) {
        format!("\x1b[{}m{text}\x1b[0m", paint.code())
    } else {
        text.to_string()
    }
}

/// A message for stderr (diagnostics, a command's failure): what it quotes
/// of the user's input or a plugin's output made printable, so the terminal
/// shows it and never obeys it; then the `error:` and `warning:` that begin
/// its lines coloured.
pub fn stderr_message(text: &str) -> String {
    let text = host_vocab::printable_lines(text);
    if !enabled(Stream::Stderr) {
        return text.into_owned();
    }
    text.split_inclusive('\n')
        .map(|line| {
            for (word, p) in [("error:", Paint::Bad), ("warning:", Paint::Notice)] {
                if let Some(rest) = line.strip_prefix(word) {
                    return format!("{}{rest}", paint(word, p, Stream::Stderr));
                }
            }
            line.to_string()
        })
        .collect()
}

/// Prints a message on stderr, its `error:` and `warning:` coloured.
pub fn eprint(message: impl std::fmt::Display) {
    eprintln!("{}", stderr_message(&message.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> Option<bool> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        environment(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn no_color_turns_colour_off_unless_the_flag_asks_for_it() {
        let env = env_of(&[("NO_COLOR", "1")]);
        assert!(!decide(ColorChoice::Auto, env, true));
        assert!(decide(ColorChoice::Always, env, true));
        // An empty NO_COLOR is unset, as the convention says.
        assert_eq!(env_of(&[("NO_COLOR", "")]), None);
    }

    #[test]
    fn auto_follows_the_terminal_and_force_and_dumb_terminals() {
        assert!(decide(ColorChoice::Auto, None, true));
        assert!(!decide(ColorChoice::Auto, None, false));
        assert!(!decide(ColorChoice::Never, None, true));
        assert_eq!(env_of(&[("CLICOLOR_FORCE", "1")]), Some(true));
        assert_eq!(env_of(&[("CLICOLOR_FORCE", "0")]), None);
        assert_eq!(
            env_of(&[("TERM", "dumb"), ("CLICOLOR_FORCE", "1")]),
            Some(false)
        );
    }

    #[test]
    fn uncoloured_text_is_left_as_it_is() {
        // Nothing decided in unit tests: plain text.
        assert_eq!(paint("ok", Paint::Good, Stream::Stdout), "ok");
        assert_eq!(stderr_message("error: x\n  y"), "error: x\n  y");
        assert_eq!(
            stderr_message("error: --set 'a.b=\u{1b}[2J'"),
            "error: --set 'a.b=\\x1b[2J'"
        );
    }
}
