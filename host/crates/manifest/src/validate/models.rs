//! `[models.ALIAS]`: provider, URL, prices, limits.

use super::*;

pub(super) fn check_model(
    c: &mut Checker,
    alias: String,
    span: Range<usize>,
    m: ModelSection,
) -> Option<ModelSpec> {
    if !is_valid_name(&alias) {
        c.error(Some(span), format!("invalid model alias '{alias}'"));
    }
    let provider = ProviderKind::parse(m.provider.get_ref());
    if provider.is_none() {
        c.error(
            Some(m.provider.span()),
            format!(
                "[models.{alias}] unknown provider '{}' (supported: {})",
                m.provider.get_ref(),
                ProviderKind::NAMES.join(", ")
            ),
        );
    }
    let url = match (&m.base_url, provider) {
        (Some(u), _) => u.get_ref().clone(),
        (None, Some(p)) => p.default_base_url().to_string(),
        (None, None) => String::new(),
    };
    if let Some(u) = &m.base_url
        && let Err(why) = check_base_url(&url)
    {
        c.error(
            Some(u.span()),
            format!(
                "[models.{alias}] base_url '{}' {why}",
                host_vocab::printable(&url)
            ),
        );
    }
    for price in [&m.price_in_per_1k, &m.price_out_per_1k]
        .into_iter()
        .flatten()
    {
        if !(price.get_ref().is_finite() && *price.get_ref() >= 0.0) {
            c.error(
                Some(price.span()),
                format!("[models.{alias}] prices must be zero or positive"),
            );
        }
    }
    if let Some(n) = &m.max_concurrent
        && *n.get_ref() == 0
    {
        c.error(
            Some(n.span()),
            format!("[models.{alias}] max_concurrent must be at least 1"),
        );
    }
    Some(ModelSpec {
        alias,
        provider: provider?,
        base_url: url.trim_end_matches('/').to_string(),
        model: m.model,
        api_key_env: m.api_key_env,
        timeout: m.timeout.map_or(DEFAULT_MODEL_TIMEOUT, |d| d.0),
        max_retries: m.max_retries.unwrap_or(DEFAULT_MODEL_RETRIES),
        price_in_per_1k: m.price_in_per_1k.map_or(0.0, Spanned::into_inner),
        price_out_per_1k: m.price_out_per_1k.map_or(0.0, Spanned::into_inner),
        cache: m.cache,
        max_concurrent: m.max_concurrent.map(Spanned::into_inner),
        stream: m.stream,
    })
}

/// Why `url` cannot be a model endpoint's base: it must be an http(s) URL
/// with a host, e.g. http://127.0.0.1:8088/v1.
pub(crate) fn check_base_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("must start with http:// or https://".into());
    }
    match url::Url::parse(url) {
        Err(e) => Err(format!("is not a URL ({e}), e.g. http://127.0.0.1:8088/v1")),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            Err("names no host, e.g. http://127.0.0.1:8088/v1".into())
        }
        Ok(_) => Ok(()),
    }
}
