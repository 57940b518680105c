//! Which provider serves a model name, and under which name. `mock/…` models are built in;
//! `openai/<model>` and every other name go to the configured OpenAI-compatible upstream
//! (`LITELLM_BASE_URL`), name unchanged, so a LiteLLM-style upstream can route
//! `provider/model` names itself. Native dialects add variants here; every dispatch site
//! matches on [`Provider`] exhaustively, so a new one breaks each site at compile time.

pub mod mock;
pub mod openai;

use crate::config::Config;
use crate::error::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Mock,
    OpenAI,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Mock => "mock",
            Provider::OpenAI => "openai",
        }
    }
}

/// A resolved model: who serves it and the name to send them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub provider: Provider,
    pub model: String,
}

/// Resolves a requested model name.
pub fn resolve(config: &Config, requested: &str) -> Result<Target, ApiError> {
    if let Some(name) = requested.strip_prefix("mock/") {
        if mock::MODELS.contains(&name) {
            return Ok(Target {
                provider: Provider::Mock,
                model: name.to_string(),
            });
        }
        return Err(ApiError::model_not_found(
            requested,
            "The built-in models are mock/echo, mock/lorem and mock/embed.",
        ));
    }
    if config.upstream.is_none() {
        return Err(ApiError::model_not_found(
            requested,
            "No provider is configured: set LITELLM_BASE_URL and LITELLM_API_KEY (or OPENAI_API_KEY), or use a built-in model such as mock/echo.",
        ));
    }
    let model = requested.strip_prefix("openai/").unwrap_or(requested);
    Ok(Target {
        provider: Provider::OpenAI,
        model: model.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(upstream: bool) -> Config {
        Config::from_lookup(|k| match (k, upstream) {
            ("LITELLM_BASE_URL", true) => Some("http://127.0.0.1:9/v1".into()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn mock_models_resolve_without_a_provider() {
        let t = resolve(&config(false), "mock/echo").unwrap();
        assert_eq!((t.provider, t.model.as_str()), (Provider::Mock, "echo"));
        assert_eq!(
            resolve(&config(false), "mock/nope").unwrap_err().status,
            404
        );
    }

    #[test]
    fn other_models_need_the_upstream() {
        assert_eq!(resolve(&config(false), "gpt-4o").unwrap_err().status, 404);
        let t = resolve(&config(true), "openai/gpt-4o").unwrap();
        assert_eq!((t.provider, t.model.as_str()), (Provider::OpenAI, "gpt-4o"));
        let t = resolve(&config(true), "anthropic/claude-x").unwrap();
        assert_eq!(t.model, "anthropic/claude-x");
    }
}
