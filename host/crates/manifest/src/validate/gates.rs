//! `[gates.NAME]`: the command, its directory, limits and pass rule.

use super::*;

pub(super) fn check_gate(
    c: &mut Checker,
    name: String,
    span: Range<usize>,
    g: GateSection,
    has_workspace: bool,
) -> Option<GateSpec> {
    if !is_valid_name(&name) {
        c.error(Some(span.clone()), format!("invalid gate name '{name}'"));
    }
    if !has_workspace {
        c.error(
            Some(span),
            format!(
                "[gates.{name}] gates run in the workspace: set [pipeline] workspace = \"DIR\""
            ),
        );
    }
    if g.command.get_ref().is_empty() || g.command.get_ref()[0].is_empty() {
        c.error(
            Some(g.command.span()),
            format!("[gates.{name}] command is empty: give the program and its arguments"),
        );
    }
    let timeout = match &g.timeout {
        None => DEFAULT_GATE_TIMEOUT,
        Some(t) => HumanDuration::parse(t.get_ref())
            .map(|d| d.0)
            .unwrap_or_else(|e| {
                c.error(Some(t.span()), format!("[gates.{name}] timeout: {e}"));
                DEFAULT_GATE_TIMEOUT
            }),
    };
    let dir = match &g.dir {
        None => PathBuf::from("."),
        Some(d) if is_contained(Path::new(d.get_ref())) => PathBuf::from(d.get_ref()),
        Some(d) => {
            c.error(
                Some(d.span()),
                format!(
                    "[gates.{name}] dir '{}' must be a relative path inside the workspace (no '..', not absolute)",
                    d.get_ref()
                ),
            );
            PathBuf::from(".")
        }
    };
    let max_output = match &g.max_output {
        None => DEFAULT_GATE_OUTPUT,
        Some(m) => match parse_size(m.get_ref()).filter(|&b| (1 << 10..=16 << 20).contains(&b)) {
            Some(b) => b as usize,
            None => {
                c.error(
                    Some(m.span()),
                    format!(
                        "[gates.{name}] max_output '{}' must be like \"64KiB\" (1KiB to 16MiB)",
                        m.get_ref()
                    ),
                );
                DEFAULT_GATE_OUTPUT
            }
        },
    };
    let pass_exit_codes = match g.pass_exit_codes {
        Some(codes) if codes.get_ref().is_empty() => {
            c.error(
                Some(codes.span()),
                format!("[gates.{name}] pass_exit_codes is empty: the gate could never pass"),
            );
            vec![0]
        }
        Some(codes) => codes.into_inner(),
        None => vec![0],
    };
    let env = match g.env {
        None => vec!["PATH".into()],
        Some(names) => names
            .into_iter()
            .filter_map(|n| {
                if is_env_name(n.get_ref()) {
                    return Some(n.into_inner());
                }
                c.error(
                    Some(n.span()),
                    format!(
                        "[gates.{name}] env lists the names of variables passed through from the host's environment; '{}' is not a name (letters, digits and '_', not starting with a digit; to set a value, run the command through env: [\"env\", \"A=B\", ...])",
                        host_vocab::printable(n.get_ref())
                    ),
                );
                None
            })
            .collect(),
    };
    Some(GateSpec {
        name,
        command: g.command.into_inner(),
        timeout,
        dir,
        env,
        pass_exit_codes,
        max_output,
    })
}

/// A variable name a shell would accept: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
