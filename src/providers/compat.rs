//! The OpenAI-compatible vendors as one table: each speaks the OpenAI dialect (the `openai`
//! adapter does the work) at its own base URL with its own key, and differs only in the data
//! here — whether it accepts `stream_options.include_usage`, and a few request quirks.
//!
//! Every vendor reads `<NAME>_API_KEY` and `<NAME>_API_BASE` (the name upper-cased); the
//! configuration reads them from this table, so adding a vendor is adding a row.
//!
//! Default bases were checked against the vendors' documentation (or their OpenAI-SDK
//! examples) where the search tool found it: groq, mistral, fireworks_ai, cerebras, dashscope
//! (international, Singapore), zhipu (open.bigmodel.cn), volcengine (ark, cn-beijing), minimax
//! (international, api.minimax.io). Not verified here, taken from the vendors' compatibility
//! pages as remembered: deepseek, together_ai, openrouter, perplexity, xai, deepinfra, moonshot
//! (international, .ai), siliconflow (.cn), ollama, lm_studio.
//!
//! `stream_usage` was verified as false for mistral (422 `extra_forbidden`), zhipu and minimax
//! (clients strip it for them); true as remembered for groq, deepseek, xai, deepinfra, dashscope,
//! volcengine, ollama and vLLM. The others (together_ai, fireworks_ai, openrouter, perplexity,
//! cerebras, moonshot, siliconflow, lm_studio) could not be verified and are marked false: an
//! unknown usage is honest, a rejected request is not.
//!
//! `stream_usage` is true only where the vendor is known to accept `stream_options`
//! (`include_usage`); elsewhere it is not sent (Mistral answers 422 `extra_forbidden` to it),
//! and a stream's usage is whatever the vendor reports on its own — unknown (null) when it
//! reports none, never 0.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// Whether a vendor needs a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A cloud API: without a key its models are not routed to it.
    Required,
    /// A local or self-hosted server: a key is sent when set, and it is routed to whenever
    /// its base is known (a default, or the base variable).
    Optional,
}

/// A request parameter a vendor treats differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quirk {
    /// Takes `max_tokens`, not `max_completion_tokens`: renamed.
    MaxTokensOnly,
    /// Has no `n`: `n: 1` is dropped silently, more is refused (or dropped with
    /// `DROP_UNSUPPORTED_PARAMS`).
    NoN,
}

/// One OpenAI-compatible vendor.
#[derive(Debug)]
pub struct Vendor {
    /// The prefix in `name/model`.
    pub name: &'static str,
    /// `<NAME>_API_KEY`.
    pub key_var: &'static str,
    /// `<NAME>_API_BASE`.
    pub base_var: &'static str,
    /// Base URL including the version path; `None`: the base variable must be set.
    pub default_base: Option<&'static str>,
    pub key: Key,
    /// Accepts `stream_options.include_usage`.
    pub stream_usage: bool,
    pub quirks: &'static [Quirk],
    /// Shown in the README's provider table.
    pub label: &'static str,
}

const fn cloud(
    name: &'static str,
    key_var: &'static str,
    base_var: &'static str,
    base: &'static str,
    stream_usage: bool,
    label: &'static str,
) -> Vendor {
    Vendor {
        name,
        key_var,
        base_var,
        default_base: Some(base),
        key: Key::Required,
        stream_usage,
        quirks: &[],
        label,
    }
}

const fn local(
    name: &'static str,
    key_var: &'static str,
    base_var: &'static str,
    base: Option<&'static str>,
    stream_usage: bool,
    label: &'static str,
) -> Vendor {
    Vendor {
        name,
        key_var,
        base_var,
        default_base: base,
        key: Key::Optional,
        stream_usage,
        quirks: &[],
        label,
    }
}

/// The OpenAI-compatible vendors.
pub const VENDORS: &[Vendor] = &[
    cloud(
        "groq",
        "GROQ_API_KEY",
        "GROQ_API_BASE",
        "https://api.groq.com/openai/v1",
        true,
        "Groq",
    ),
    cloud(
        "deepseek",
        "DEEPSEEK_API_KEY",
        "DEEPSEEK_API_BASE",
        "https://api.deepseek.com/v1",
        true,
        "DeepSeek",
    ),
    Vendor {
        quirks: &[Quirk::MaxTokensOnly, Quirk::NoN],
        ..cloud(
            "mistral",
            "MISTRAL_API_KEY",
            "MISTRAL_API_BASE",
            "https://api.mistral.ai/v1",
            false,
            "Mistral",
        )
    },
    cloud(
        "together_ai",
        "TOGETHER_AI_API_KEY",
        "TOGETHER_AI_API_BASE",
        "https://api.together.xyz/v1",
        false,
        "Together AI",
    ),
    cloud(
        "fireworks_ai",
        "FIREWORKS_AI_API_KEY",
        "FIREWORKS_AI_API_BASE",
        "https://api.fireworks.ai/inference/v1",
        false,
        "Fireworks AI",
    ),
    cloud(
        "openrouter",
        "OPENROUTER_API_KEY",
        "OPENROUTER_API_BASE",
        "https://openrouter.ai/api/v1",
        false,
        "OpenRouter",
    ),
    cloud(
        "perplexity",
        "PERPLEXITY_API_KEY",
        "PERPLEXITY_API_BASE",
        "https://api.perplexity.ai",
        false,
        "Perplexity",
    ),
    cloud(
        "xai",
        "XAI_API_KEY",
        "XAI_API_BASE",
        "https://api.x.ai/v1",
        true,
        "xAI (Grok)",
    ),
    cloud(
        "deepinfra",
        "DEEPINFRA_API_KEY",
        "DEEPINFRA_API_BASE",
        "https://api.deepinfra.com/v1/openai",
        true,
        "DeepInfra",
    ),
    cloud(
        "cerebras",
        "CEREBRAS_API_KEY",
        "CEREBRAS_API_BASE",
        "https://api.cerebras.ai/v1",
        false,
        "Cerebras",
    ),
    cloud(
        "dashscope",
        "DASHSCOPE_API_KEY",
        "DASHSCOPE_API_BASE",
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        true,
        "Alibaba DashScope (Qwen), international",
    ),
    cloud(
        "moonshot",
        "MOONSHOT_API_KEY",
        "MOONSHOT_API_BASE",
        "https://api.moonshot.ai/v1",
        false,
        "Moonshot (Kimi)",
    ),
    Vendor {
        quirks: &[Quirk::MaxTokensOnly],
        ..cloud(
            "zhipu",
            "ZHIPU_API_KEY",
            "ZHIPU_API_BASE",
            "https://open.bigmodel.cn/api/paas/v4",
            false,
            "Zhipu (GLM)",
        )
    },
    cloud(
        "siliconflow",
        "SILICONFLOW_API_KEY",
        "SILICONFLOW_API_BASE",
        "https://api.siliconflow.cn/v1",
        false,
        "SiliconFlow",
    ),
    cloud(
        "volcengine",
        "VOLCENGINE_API_KEY",
        "VOLCENGINE_API_BASE",
        "https://ark.cn-beijing.volces.com/api/v3",
        true,
        "Volcengine Ark (Doubao)",
    ),
    cloud(
        "minimax",
        "MINIMAX_API_KEY",
        "MINIMAX_API_BASE",
        "https://api.minimax.io/v1",
        false,
        "MiniMax",
    ),
    local(
        "ollama",
        "OLLAMA_API_KEY",
        "OLLAMA_API_BASE",
        Some("http://127.0.0.1:11434/v1"),
        true,
        "Ollama (local)",
    ),
    local(
        "lm_studio",
        "LM_STUDIO_API_KEY",
        "LM_STUDIO_API_BASE",
        Some("http://127.0.0.1:1234/v1"),
        false,
        "LM Studio (local)",
    ),
    local(
        "vllm",
        "VLLM_API_KEY",
        "VLLM_API_BASE",
        None,
        true,
        "vLLM (self-hosted)",
    ),
    local(
        "hosted_vllm",
        "HOSTED_VLLM_API_KEY",
        "HOSTED_VLLM_API_BASE",
        None,
        true,
        "vLLM (hosted)",
    ),
    local(
        "openai_compatible",
        "OPENAI_COMPATIBLE_API_KEY",
        "OPENAI_COMPATIBLE_API_BASE",
        None,
        true,
        "any OpenAI-compatible server",
    ),
];

/// The vendor named `name`, if it is one.
pub fn vendor(name: &str) -> Option<&'static Vendor> {
    VENDORS.iter().find(|v| v.name == name)
}

/// Applies the vendor's quirks to an OpenAI chat body; returns the parameters dropped.
pub fn adapt(
    vendor: &Vendor,
    body: &mut Map<String, Value>,
    drop_unsupported: bool,
) -> Result<Vec<String>, ApiError> {
    let mut dropped = Vec::new();
    if !vendor.stream_usage {
        // Not accepted; `include_usage` is its only member the relay relies on.
        body.remove("stream_options");
    }
    for quirk in vendor.quirks {
        match quirk {
            Quirk::MaxTokensOnly => {
                if let Some(limit) = body.remove("max_completion_tokens") {
                    body.entry("max_tokens").or_insert(limit);
                }
            }
            Quirk::NoN => match body.get("n") {
                None | Some(Value::Null) => {}
                Some(n) if n.as_u64() == Some(1) => {
                    body.remove("n");
                }
                Some(_) if drop_unsupported => {
                    body.remove("n");
                    dropped.push("n".to_string());
                }
                Some(_) => {
                    return Err(ApiError::invalid(
                        Some("n"),
                        format!(
                            "{} returns one choice per request: `n` above 1 is not supported (DROP_UNSUPPORTED_PARAMS=true drops it).",
                            vendor.label
                        ),
                    ))
                }
            },
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_vendor_reads_its_upper_case_variables() {
        for v in VENDORS {
            let upper = v.name.to_ascii_uppercase();
            assert_eq!(v.key_var, format!("{upper}_API_KEY"));
            assert_eq!(v.base_var, format!("{upper}_API_BASE"));
            if let Some(base) = v.default_base {
                assert!(base.starts_with("http") && !base.ends_with('/'), "{base}");
            }
        }
    }

    #[test]
    fn mistral_takes_max_tokens_and_one_choice_without_stream_options() {
        let mistral = vendor("mistral").unwrap();
        let mut body =
            json!({"max_completion_tokens": 50, "n": 1, "stream_options": {"include_usage": true}})
                .as_object()
                .unwrap()
                .clone();
        assert!(adapt(mistral, &mut body, false).unwrap().is_empty());
        assert_eq!(Value::Object(body), json!({"max_tokens": 50}));

        let mut body = json!({"n": 3}).as_object().unwrap().clone();
        let e = adapt(mistral, &mut body, false).unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("n")));
        assert_eq!(adapt(mistral, &mut body, true).unwrap(), vec!["n"]);
        assert!(body.is_empty());
    }

    #[test]
    fn vendors_accepting_stream_options_keep_them() {
        let mut body = json!({"stream_options": {"include_usage": true}, "n": 2})
            .as_object()
            .unwrap()
            .clone();
        adapt(vendor("groq").unwrap(), &mut body, false).unwrap();
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["n"], 2);
    }
}
