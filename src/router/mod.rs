//! Model name → plan: the ordered candidates a request may be sent to. Today each name has one
//! candidate; the routing issue adds aliases, deployments, retries and fallbacks here, and the
//! handlers that walk a plan stay as they are.
//!
//! Resolution: `provider/model` names a registry row (`mock/…`, `anthropic/…`, `groq/…`,
//! `azure/<deployment>`, `bedrock/<model-id>`, …), and a bare name of a provider's family
//! (`claude-…`, `gemini-…`, `command-…`) names it too. A provider that lacks its key (or
//! base) leaves the name, unchanged, to the OpenAI-compatible upstream when one is configured,
//! else the request gets 401 (400 for a base) naming the variable to set. `openai/<model>` and
//! every other name go to the upstream (`LITELLM_BASE_URL`), so a LiteLLM-style upstream can
//! route `provider/model` names itself.

use serde_json::{Map, Value};

use crate::config::Config;
use crate::error::ApiError;
use crate::providers::registry::{self, UPSTREAM};
use crate::providers::{Missing, Target};

/// The candidates for one request, in the order they are tried.
#[derive(Debug)]
pub struct Plan {
    pub candidates: Vec<Target>,
}

impl Plan {
    /// Tries each candidate in turn with its own copy of the request body until one answers.
    /// The next candidate is tried only when `attempt` failed before answering the client and
    /// the failure is the provider's (unreachable, overloaded, a 5xx or 429), never the
    /// request's; the last failure is the answer.
    pub fn walk(
        &self,
        body: Map<String, Value>,
        mut attempt: impl FnMut(&Target, Map<String, Value>) -> Result<(), Failure>,
    ) -> Result<(), ApiError> {
        let mut body = Some(body);
        for (i, target) in self.candidates.iter().enumerate() {
            let last = i + 1 == self.candidates.len();
            let this = if last { body.take() } else { body.clone() };
            match attempt(target, this.unwrap_or_default()) {
                Ok(()) => return Ok(()),
                Err(Failure::Retryable(e)) if !last => {
                    log::info!(
                        "{target:?} failed ({}); trying the next candidate",
                        e.message
                    );
                }
                Err(Failure::Retryable(e) | Failure::Final(e)) => return Err(e),
            }
        }
        Err(ApiError::new(
            500,
            "server_error",
            None,
            "The plan has no candidate.",
        ))
    }
}

/// Why an attempt failed: whether another candidate may serve the request.
pub enum Failure {
    Retryable(ApiError),
    Final(ApiError),
}

impl From<ApiError> for Failure {
    /// A failure of the provider may be retried elsewhere; a refusal of the request may not.
    fn from(e: ApiError) -> Failure {
        if e.status >= 500 || e.status == 429 {
            Failure::Retryable(e)
        } else {
            Failure::Final(e)
        }
    }
}

/// The plan for a requested model name.
pub fn plan(config: &Config, requested: &str) -> Result<Plan, ApiError> {
    Ok(Plan {
        candidates: vec![resolve(config, requested)?],
    })
}

/// The one target a name resolves to.
fn resolve(config: &Config, requested: &str) -> Result<Target, ApiError> {
    let upstream = config.provider(UPSTREAM);
    let named = requested
        .split_once('/')
        .and_then(|(name, model)| Some((registry::find(name)?, model)))
        .filter(|(provider, _)| provider.name != UPSTREAM);
    let bare = || registry::by_bare_name(requested).map(|p| (p, requested));
    if let Some((provider, model)) = named.or_else(bare) {
        let settings = &config.providers[provider.name];
        match provider.dialect.missing(provider, settings) {
            None => {
                provider.dialect.check_model(requested, model)?;
                return Ok(Target {
                    provider,
                    model: model.to_string(),
                    settings: settings.clone(),
                });
            }
            // Not configured, but an OpenAI-compatible upstream: it gets the name as is.
            Some(_) if upstream.explicit => {}
            Some(Missing::Key(vars)) => {
                return Err(ApiError::new(
                    401,
                    "authentication_error",
                    Some("missing_api_key"),
                    format!(
                    "`{requested}` is served by {}, and no key is configured for it: set {vars}.",
                    provider.name
                ),
                ))
            }
            Some(Missing::Base(var)) => {
                return Err(ApiError::new(
                    400,
                    "invalid_request_error",
                    Some("provider_not_configured"),
                    format!(
                    "`{requested}` is served by {}, whose address is not configured: set {var}.",
                    provider.name
                ),
                ))
            }
        }
    }
    if !upstream.explicit {
        return Err(ApiError::model_not_found(
            requested,
            "No provider is configured: set LITELLM_BASE_URL and LITELLM_API_KEY (or OPENAI_API_KEY), or use a built-in model such as mock/echo.",
        ));
    }
    let provider = registry::find(UPSTREAM).expect("the upstream has a registry row");
    Ok(Target {
        provider,
        model: requested
            .strip_prefix("openai/")
            .unwrap_or(requested)
            .to_string(),
        settings: config.providers[UPSTREAM].clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    fn target(config: &Config, name: &str) -> Result<(&'static str, String), ApiError> {
        let plan = plan(config, name)?;
        assert_eq!(plan.candidates.len(), 1);
        let t = &plan.candidates[0];
        Ok((t.provider.name, t.model.clone()))
    }

    const UPSTREAM_BASE: (&str, &str) = ("LITELLM_BASE_URL", "http://127.0.0.1:9/v1");

    #[test]
    fn mock_models_resolve_without_a_provider() {
        let c = config(&[]);
        assert_eq!(target(&c, "mock/echo").unwrap(), ("mock", "echo".into()));
        assert_eq!(target(&c, "mock/nope").unwrap_err().status, 404);
    }

    #[test]
    fn other_models_need_the_upstream_and_keep_their_name() {
        assert_eq!(target(&config(&[]), "gpt-4o").unwrap_err().status, 404);
        let c = config(&[UPSTREAM_BASE]);
        assert_eq!(
            target(&c, "openai/gpt-4o").unwrap(),
            ("openai", "gpt-4o".into())
        );
        let t = target(&c, "anthropic/claude-x").unwrap();
        assert_eq!(t, ("openai", "anthropic/claude-x".into()));
    }

    #[test]
    fn claude_names_route_to_anthropic_and_need_its_key() {
        let with_key = config(&[("ANTHROPIC_API_KEY", "sk-ant-x")]);
        for (name, model) in [
            ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
            ("claude-3-5-haiku-latest", "claude-3-5-haiku-latest"),
        ] {
            let plan = plan(&with_key, name).unwrap();
            let t = &plan.candidates[0];
            assert_eq!((t.provider.name, t.model.as_str()), ("anthropic", model));
            assert_eq!(t.base_url(), "https://api.anthropic.com");
        }
        let e = plan(&config(&[]), "claude-sonnet-4-5").unwrap_err();
        assert_eq!(e.status, 401);
        assert!(e.message.contains("ANTHROPIC_API_KEY"), "{}", e.message);
    }

    #[test]
    fn a_provider_without_its_base_or_key_is_named_in_the_error() {
        let e = plan(&config(&[]), "vllm/llama").unwrap_err();
        assert_eq!(
            (e.status, e.code.as_deref()),
            (400, Some("provider_not_configured"))
        );
        assert!(e.message.contains("VLLM_API_BASE"));
        let e = plan(&config(&[]), "bedrock/amazon.titan").unwrap_err();
        assert!(e.message.contains("AWS_ACCESS_KEY_ID"), "{}", e.message);
        let azure = config(&[
            ("AZURE_API_KEY", "k"),
            ("AZURE_API_BASE", "https://r.example"),
        ]);
        assert_eq!(plan(&azure, "azure/../x").unwrap_err().status, 400);
    }
}
