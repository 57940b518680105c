//! The provider registry: one row per provider, naming it (the prefix of `name/model` and its
//! name in logs and metrics), its bare model-name prefixes, the variables that configure it and
//! its dialect. The configuration reads every row's variables, the router resolves model names
//! against the rows, `/v1/models` lists the configured ones: adding a provider is one module
//! implementing [`Dialect`](super::Dialect) and one row here.
//!
//! The OpenAI-compatible vendors all use the OpenAI dialect and differ only in data: their base
//! URL, their key, whether they accept `stream_options.include_usage`, and a few request quirks
//! ([`openai::Quirk`]). Every vendor reads `<NAME>_API_KEY` and `<NAME>_API_BASE` (the name
//! upper-cased).
//!
//! Default bases were checked against the vendors' documentation (or their OpenAI-SDK
//! examples) where the search tool found it: groq, mistral, fireworks_ai, cerebras, dashscope
//! (international, Singapore), zhipu (open.bigmodel.cn), volcengine (ark, cn-beijing), minimax
//! (international, api.minimax.io). Not verified here, taken from the vendors' compatibility
//! pages as remembered: deepseek, together_ai, openrouter, perplexity, xai, deepinfra, moonshot
//! (international, .ai), siliconflow (.cn), ollama, lm_studio.
//!
//! Stream usage was verified as not accepted by mistral (422 `extra_forbidden`), zhipu and
//! minimax (clients strip it for them); accepted as remembered for groq, deepseek, xai,
//! deepinfra, dashscope, volcengine, ollama and vLLM. The others (together_ai, fireworks_ai,
//! openrouter, perplexity, cerebras, moonshot, siliconflow, lm_studio) could not be verified and
//! are marked as not accepting it: an unknown usage is honest, a rejected request is not. Where
//! it is not sent, a stream's usage is whatever the vendor reports on its own — unknown (null)
//! when it reports none, never 0.

use super::openai::{self, OpenAi, Quirk, STANDARD};
use super::{anthropic, azure, bedrock, cohere, gemini, mock, Extra, Key, Provider};

/// The name of the default OpenAI-compatible upstream (`LITELLM_BASE_URL`), which serves every
/// model name no other row claims.
pub const UPSTREAM: &str = "openai";

/// A vendor that speaks the OpenAI dialect at its own base with `<VARS>_API_KEY` and
/// `<VARS>_API_BASE`.
macro_rules! vendor {
    ($name:literal, $vars:literal, $base:expr, $key:expr, $dialect:expr, $label:literal) => {
        Provider {
            name: $name,
            label: $label,
            bare_prefixes: &[],
            key_vars: &[concat!($vars, "_API_KEY")],
            key: $key,
            base_vars: &[concat!($vars, "_API_BASE")],
            default_base: $base,
            extra_vars: &[],
            dialect: $dialect,
        }
    };
}

const USAGE: &OpenAi = &STANDARD;
const NO_USAGE: &OpenAi = &OpenAi::new(false, &[]);
/// Vendors without `/completions` (their documentation lists chat only; DeepSeek's is a beta
/// at another base): completions requests are translated to chat for them.
const CHAT_ONLY_USAGE: &OpenAi = &STANDARD.chat_only();
const CHAT_ONLY_NO_USAGE: &OpenAi = &OpenAi::new(false, &[]).chat_only();

/// Every provider the gateway knows.
pub const PROVIDERS: &[Provider] = &[
    Provider {
        name: "mock",
        label: "the built-in mock models",
        bare_prefixes: &[],
        key_vars: &[],
        key: Key::Optional,
        base_vars: &[],
        default_base: None,
        extra_vars: &[],
        dialect: &mock::Mock,
    },
    Provider {
        name: UPSTREAM,
        label: "OpenAI",
        bare_prefixes: &[],
        key_vars: &["LITELLM_API_KEY", "OPENAI_API_KEY"],
        key: Key::Optional,
        base_vars: &["LITELLM_BASE_URL", "OPENAI_BASE_URL"],
        default_base: Some("https://api.openai.com/v1"),
        extra_vars: &[Extra {
            var: openai::RESPONSES_API_VAR,
            aliases: &[],
            default: None,
            secret: false,
        }],
        dialect: USAGE,
    },
    Provider {
        name: "anthropic",
        label: "Anthropic",
        bare_prefixes: &["claude-"],
        key_vars: &["ANTHROPIC_API_KEY"],
        key: Key::Required,
        base_vars: &["ANTHROPIC_API_BASE"],
        default_base: Some("https://api.anthropic.com"),
        extra_vars: &[],
        dialect: &anthropic::Anthropic,
    },
    Provider {
        name: "gemini",
        label: "Google Gemini",
        bare_prefixes: &["gemini-"],
        key_vars: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        key: Key::Required,
        base_vars: &["GEMINI_API_BASE"],
        default_base: Some("https://generativelanguage.googleapis.com"),
        extra_vars: &[],
        dialect: &gemini::Gemini,
    },
    Provider {
        name: "cohere",
        label: "Cohere",
        // Every Cohere chat model (command-a-…, command-r-…), as LiteLLM routes them.
        bare_prefixes: &["command-"],
        key_vars: &["COHERE_API_KEY"],
        key: Key::Required,
        base_vars: &["COHERE_API_BASE"],
        default_base: Some("https://api.cohere.com"),
        extra_vars: &[],
        dialect: &cohere::Cohere,
    },
    Provider {
        name: "azure",
        label: "Azure OpenAI",
        bare_prefixes: &[],
        key_vars: &["AZURE_API_KEY"],
        key: Key::Required,
        base_vars: &["AZURE_API_BASE"],
        default_base: None,
        extra_vars: &[Extra {
            var: azure::API_VERSION_VAR,
            aliases: &[],
            default: Some("2024-10-21"),
            secret: false,
        }],
        dialect: &azure::Azure,
    },
    Provider {
        name: "bedrock",
        label: "AWS Bedrock",
        bare_prefixes: &[],
        // A Bedrock API key; the AWS access keys (below) sign requests instead.
        key_vars: &["AWS_BEARER_TOKEN_BEDROCK"],
        key: Key::Required,
        base_vars: &["BEDROCK_API_BASE"],
        default_base: Some("https://bedrock-runtime.{AWS_REGION}.amazonaws.com"),
        extra_vars: bedrock::VARIABLES,
        dialect: &bedrock::Bedrock,
    },
    vendor!(
        "groq",
        "GROQ",
        Some("https://api.groq.com/openai/v1"),
        Key::Required,
        CHAT_ONLY_USAGE,
        "Groq"
    ),
    vendor!(
        "deepseek",
        "DEEPSEEK",
        Some("https://api.deepseek.com/v1"),
        Key::Required,
        CHAT_ONLY_USAGE,
        "DeepSeek"
    ),
    vendor!(
        "mistral",
        "MISTRAL",
        Some("https://api.mistral.ai/v1"),
        Key::Required,
        &OpenAi::new(false, &[Quirk::MaxTokensOnly, Quirk::NoN]).chat_only(),
        "Mistral"
    ),
    vendor!(
        "together_ai",
        "TOGETHER_AI",
        Some("https://api.together.xyz/v1"),
        Key::Required,
        NO_USAGE,
        "Together AI"
    ),
    vendor!(
        "fireworks_ai",
        "FIREWORKS_AI",
        Some("https://api.fireworks.ai/inference/v1"),
        Key::Required,
        NO_USAGE,
        "Fireworks AI"
    ),
    vendor!(
        "openrouter",
        "OPENROUTER",
        Some("https://openrouter.ai/api/v1"),
        Key::Required,
        NO_USAGE,
        "OpenRouter"
    ),
    vendor!(
        "perplexity",
        "PERPLEXITY",
        Some("https://api.perplexity.ai"),
        Key::Required,
        CHAT_ONLY_NO_USAGE,
        "Perplexity"
    ),
    vendor!(
        "xai",
        "XAI",
        Some("https://api.x.ai/v1"),
        Key::Required,
        USAGE,
        "xAI (Grok)"
    ),
    vendor!(
        "deepinfra",
        "DEEPINFRA",
        Some("https://api.deepinfra.com/v1/openai"),
        Key::Required,
        USAGE,
        "DeepInfra"
    ),
    vendor!(
        "cerebras",
        "CEREBRAS",
        Some("https://api.cerebras.ai/v1"),
        Key::Required,
        NO_USAGE,
        "Cerebras"
    ),
    vendor!(
        "dashscope",
        "DASHSCOPE",
        Some("https://dashscope-intl.aliyuncs.com/compatible-mode/v1"),
        Key::Required,
        CHAT_ONLY_USAGE,
        "Alibaba DashScope (Qwen), international"
    ),
    vendor!(
        "moonshot",
        "MOONSHOT",
        Some("https://api.moonshot.ai/v1"),
        Key::Required,
        CHAT_ONLY_NO_USAGE,
        "Moonshot (Kimi)"
    ),
    vendor!(
        "zhipu",
        "ZHIPU",
        Some("https://open.bigmodel.cn/api/paas/v4"),
        Key::Required,
        &OpenAi::new(false, &[Quirk::MaxTokensOnly]).chat_only(),
        "Zhipu (GLM)"
    ),
    vendor!(
        "siliconflow",
        "SILICONFLOW",
        Some("https://api.siliconflow.cn/v1"),
        Key::Required,
        NO_USAGE,
        "SiliconFlow"
    ),
    vendor!(
        "volcengine",
        "VOLCENGINE",
        Some("https://ark.cn-beijing.volces.com/api/v3"),
        Key::Required,
        CHAT_ONLY_USAGE,
        "Volcengine Ark (Doubao)"
    ),
    vendor!(
        "minimax",
        "MINIMAX",
        Some("https://api.minimax.io/v1"),
        Key::Required,
        CHAT_ONLY_NO_USAGE,
        "MiniMax"
    ),
    vendor!(
        "ollama",
        "OLLAMA",
        Some("http://127.0.0.1:11434/v1"),
        Key::Optional,
        USAGE,
        "Ollama (local)"
    ),
    vendor!(
        "lm_studio",
        "LM_STUDIO",
        Some("http://127.0.0.1:1234/v1"),
        Key::Optional,
        NO_USAGE,
        "LM Studio (local)"
    ),
    vendor!(
        "vllm",
        "VLLM",
        None,
        Key::Optional,
        USAGE,
        "vLLM (self-hosted)"
    ),
    vendor!(
        "hosted_vllm",
        "HOSTED_VLLM",
        None,
        Key::Optional,
        USAGE,
        "vLLM (hosted)"
    ),
    vendor!(
        "openai_compatible",
        "OPENAI_COMPATIBLE",
        None,
        Key::Optional,
        USAGE,
        "any OpenAI-compatible server"
    ),
];

/// The provider named `name`.
pub fn find(name: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.name == name)
}

/// The provider whose bare model-name prefix starts `model` (`claude-…`).
pub fn by_bare_name(model: &str) -> Option<&'static Provider> {
    PROVIDERS
        .iter()
        .find(|p| p.bare_prefixes.iter().any(|b| model.starts_with(b)))
}

/// A target for unit tests: `name`'s row, with this base and key.
#[cfg(test)]
pub fn test_target(name: &str, model: &str, base: &str, key: Option<&str>) -> super::Target {
    super::Target {
        provider: find(name).expect("a registry row"),
        model: model.to_string(),
        settings: std::sync::Arc::new(super::Settings {
            base_url: Some(base.to_string()),
            api_key: key.map(str::to_string),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_vendors_read_their_upper_case_variables() {
        for (i, p) in PROVIDERS.iter().enumerate() {
            assert!(
                PROVIDERS[..i].iter().all(|q| q.name != p.name),
                "{}",
                p.name
            );
            if let Some(base) = p.default_base {
                assert!(base.starts_with("http") && !base.ends_with('/'), "{base}");
            }
            if p.extra_vars.is_empty() && p.name != UPSTREAM && !p.key_vars.is_empty() {
                let upper = p.name.to_ascii_uppercase();
                assert_eq!(p.key_vars[0], format!("{upper}_API_KEY"));
                assert_eq!(p.base_vars[0], format!("{upper}_API_BASE"));
            }
        }
    }

    #[test]
    fn bare_names_find_their_provider() {
        assert_eq!(by_bare_name("claude-haiku-4-5").unwrap().name, "anthropic");
        assert_eq!(by_bare_name("gemini-2.5-flash").unwrap().name, "gemini");
        assert_eq!(by_bare_name("command-a-03-2025").unwrap().name, "cohere");
        assert!(by_bare_name("gpt-4o").is_none());
    }
}
