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
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        c.error(
            Some(u.span()),
            format!("[models.{alias}] base_url '{url}' must start with http:// or https://"),
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
    })
}
