//! `--model ALIAS=PROVIDER:MODEL[@BASE_URL]`: one pipeline, run against a
//! local model or a frontier one, without editing the file.

use super::pipeline::{Pipeline, ProviderKind};

/// Why an override cannot apply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OverrideError {
    #[error("--model '{0}': expected ALIAS=PROVIDER:MODEL[@BASE_URL], e.g. large=openai:gpt-4.1")]
    Syntax(String),
    #[error("--model '{spec}': the pipeline has no model alias '{alias}' (declared: {declared})")]
    UnknownAlias {
        spec: String,
        alias: String,
        declared: String,
    },
    #[error("--model '{spec}': unknown provider '{provider}' (supported: {})", ProviderKind::NAMES.join(", "))]
    UnknownProvider { spec: String, provider: String },
    #[error("--model '{spec}': base URL '{url}' {why}")]
    BadUrl {
        spec: String,
        url: String,
        why: String,
    },
}

/// Why a `--set` or `--workspace` cannot apply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SetError {
    #[error("--set '{0}': expected STAGE.KEY=VALUE, e.g. --set triage.risk=HIGH")]
    Syntax(String),
    #[error("--set '{spec}': the pipeline has no stage '{stage}'")]
    UnknownStage { spec: String, stage: String },
    #[error("--workspace {0}: not a directory")]
    Workspace(String),
    #[error("{flag}: {why}")]
    Task { flag: &'static str, why: String },
}

/// `--task-file F`: its text, read with the same bound as a manifest's
/// `task_file` (every stage is handed the task).
pub fn read_task_file(path: &std::path::Path) -> Result<String, SetError> {
    use std::io::Read;
    let fail = |why: String| SetError::Task {
        flag: "--task-file",
        why: format!("{}: {why}", path.display()),
    };
    let limit = host_vocab::limits::MAX_TASK_BYTES;
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(fail(format!(
            "larger than {} MiB; a task may be at most that",
            limit >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "not UTF-8 text: byte {} is not valid here",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// `--task TEXT` (or a task file's text): this run's task instead of the
/// manifest's.
pub fn apply_task_override(pipeline: &mut Pipeline, task: &str) -> Result<(), SetError> {
    let limit = host_vocab::limits::MAX_TASK_BYTES;
    let fail = |why: String| SetError::Task {
        flag: "--task",
        why,
    };
    if task.trim().is_empty() {
        return Err(fail(
            "the task is empty: say what the pipeline should do".into(),
        ));
    }
    if task.len() as u64 > limit {
        return Err(fail(format!(
            "the task is {} bytes; a task may be at most {} MiB",
            task.len(),
            limit >> 20
        )));
    }
    pipeline.task = task.to_string();
    Ok(())
}

/// `--set STAGE.KEY=VALUE`: sets one key of a stage's config. VALUE is read
/// as JSON when it parses (numbers, true, arrays...), else as text.
pub fn apply_config_override(pipeline: &mut Pipeline, spec: &str) -> Result<(), SetError> {
    let syntax = || SetError::Syntax(spec.to_string());
    let (path, value) = spec.split_once('=').ok_or_else(syntax)?;
    let (stage, key) = path.split_once('.').ok_or_else(syntax)?;
    if stage.is_empty() || key.is_empty() {
        return Err(syntax());
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::from(value));
    let target = match pipeline.stages.iter_mut().find(|s| s.id == stage) {
        Some(s) => s,
        None => pipeline
            .templates
            .get_mut(stage)
            .ok_or_else(|| SetError::UnknownStage {
                spec: spec.to_string(),
                stage: stage.to_string(),
            })?,
    };
    if !target.config.is_object() {
        target.config = serde_json::Value::Object(Default::default());
    }
    if let Some(config) = target.config.as_object_mut() {
        config.insert(key.to_string(), value);
    }
    Ok(())
}

/// `--workspace DIR`: the run works on DIR instead of the manifest's.
pub fn apply_workspace_override(
    pipeline: &mut Pipeline,
    dir: &std::path::Path,
) -> Result<(), SetError> {
    if !dir.is_dir() {
        return Err(SetError::Workspace(dir.display().to_string()));
    }
    pipeline.workspace = Some(std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()));
    Ok(())
}

/// Applies one override to the pipeline's models.
pub fn apply_model_override(pipeline: &mut Pipeline, spec: &str) -> Result<(), OverrideError> {
    let syntax = || OverrideError::Syntax(spec.to_string());
    let (alias, target) = spec.split_once('=').ok_or_else(syntax)?;
    let (provider_name, rest) = target.split_once(':').ok_or_else(syntax)?;
    // The URL itself contains ':' and may contain '@' only after "//", so
    // split the model from the URL at the first '@'.
    let (model, url) = match rest.split_once('@') {
        Some((m, u)) => (m, Some(u)),
        None => (rest, None),
    };
    if alias.is_empty() || model.is_empty() {
        return Err(syntax());
    }
    let provider =
        ProviderKind::parse(provider_name).ok_or_else(|| OverrideError::UnknownProvider {
            spec: spec.to_string(),
            provider: provider_name.to_string(),
        })?;
    if let Some(u) = url
        && let Err(why) = crate::validate::check_base_url(u)
    {
        return Err(OverrideError::BadUrl {
            spec: spec.to_string(),
            url: u.to_string(),
            why,
        });
    }
    let declared: Vec<String> = pipeline.models.keys().cloned().collect();
    let m = pipeline
        .models
        .get_mut(alias)
        .ok_or_else(|| OverrideError::UnknownAlias {
            spec: spec.to_string(),
            alias: alias.to_string(),
            declared: if declared.is_empty() {
                "none".into()
            } else {
                declared.join(", ")
            },
        })?;
    if provider != m.provider {
        // Another provider: the old key belongs to the old one. Its own API
        // takes its conventional key variable; a URL given with the
        // override (a local server, say) takes none.
        m.base_url = provider.default_base_url().to_string();
        m.api_key_env = url
            .is_none()
            .then(|| provider.default_key_env().to_string());
    }
    if let Some(u) = url {
        m.base_url = u.trim_end_matches('/').to_string();
    }
    m.provider = provider;
    m.model = model.to_string();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline() -> Pipeline {
        let dir = std::env::temp_dir();
        let text = r#"
[pipeline]
name = "p"
task = "t"

[models.large]
provider = "openai"
base_url = "http://127.0.0.1:8088/v1"
model = "smollm2"

[[stage]]
id = "s"
plugin = "x.wasm"
models = ["large"]
"#;
        let wasm = dir.join("x.wasm");
        std::fs::write(&wasm, b"\0asm").unwrap();
        super::super::parse(&dir.join("p.toml"), text.into()).unwrap()
    }

    #[test]
    fn switching_provider_uses_its_api_and_key_variable() {
        let mut p = pipeline();
        apply_model_override(&mut p, "large=anthropic:claude-sonnet-4-5").unwrap();
        let m = &p.models["large"];
        assert_eq!(m.provider, ProviderKind::Anthropic);
        assert_eq!(m.model, "claude-sonnet-4-5");
        assert_eq!(m.base_url, "https://api.anthropic.com/v1");
        assert_eq!(m.api_key_env.as_deref(), Some("ANTHROPIC_API_KEY"));
    }

    #[test]
    fn same_provider_keeps_the_url_unless_given() {
        let mut p = pipeline();
        apply_model_override(&mut p, "large=openai:qwen").unwrap();
        assert_eq!(p.models["large"].base_url, "http://127.0.0.1:8088/v1");
        apply_model_override(&mut p, "large=openai:qwen@http://10.0.0.2:8000/v1/").unwrap();
        assert_eq!(p.models["large"].base_url, "http://10.0.0.2:8000/v1");
    }

    #[test]
    fn mistakes_are_named() {
        let mut p = pipeline();
        assert!(matches!(
            apply_model_override(&mut p, "large"),
            Err(OverrideError::Syntax(_))
        ));
        assert!(matches!(
            apply_model_override(&mut p, "small=openai:x"),
            Err(OverrideError::UnknownAlias { .. })
        ));
        assert!(matches!(
            apply_model_override(&mut p, "large=cohere:x"),
            Err(OverrideError::UnknownProvider { .. })
        ));
        assert!(matches!(
            apply_model_override(&mut p, "large=openai:x@ftp://h"),
            Err(OverrideError::BadUrl { .. })
        ));
        assert!(matches!(
            apply_model_override(&mut p, "large=openai:x@http://"),
            Err(OverrideError::BadUrl { .. })
        ));
    }
}
