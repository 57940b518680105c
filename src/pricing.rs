//! What tokens cost: a built-in price table (USD per million input, cached-input and output
//! tokens), extended or overridden by a JSON file (`PRICES_FILE`). Cost comes from the
//! provider's reported usage: cache reads at the cached price, cache writes at 1.25× the input
//! price (5-minute TTL) or 2× (1 hour), as Anthropic (and Bedrock for its models) bill them,
//! and, where the provider bills units other than the tokens it counts (Cohere's
//! `billed_units`), from those units. A model with no known price has no cost (`None`), never
//! $0: it is counted as unpriced.
//!
//! The table was compiled from the providers' public price pages; prices change, so
//! `PRICES_FILE` exists. Lookup is by the model name as sent to the provider, then with its
//! provider prefix removed, then with a date or version suffix (`-2024-08-06`, `-20241022`,
//! `-latest`, `-001`) removed.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// When the built-in prices were taken.
pub const PRICES_DATE: &str = "2025-11-15";

/// USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
pub struct Price {
    pub input: f64,
    /// Cached input; when a provider has no cache discount, the input price.
    #[serde(default)]
    pub cached_input: Option<f64>,
    #[serde(default)]
    pub output: f64,
}

impl Price {
    /// The cost in USD of these tokens: billed units when the provider reports them (Cohere);
    /// else fresh input, cache reads at the cached price, cache writes at 1.25× (5-minute TTL)
    /// or 2× (1 hour) the input price, and output.
    pub fn cost(&self, tokens: Tokens) -> f64 {
        if let Some((input, output)) = tokens.billed {
            return (input as f64 * self.input + output as f64 * self.output) / 1e6;
        }
        let cached = tokens.cached.min(tokens.prompt);
        let written = (tokens.cache_write + tokens.cache_write_1h).min(tokens.prompt - cached);
        let fresh = tokens.prompt - cached - written;
        let micro = fresh as f64 * self.input
            + cached as f64 * self.cached_input.unwrap_or(self.input)
            + tokens.cache_write as f64 * self.input * 1.25
            + tokens.cache_write_1h as f64 * self.input * 2.0
            + tokens.completion as f64 * self.output;
        micro / 1e6
    }
}

/// (model, input, cached input, output); cached input `-1.0` means "no discount".
const BUILT_IN: &[(&str, f64, f64, f64)] = &[
    // The built-in mock models are free, and that is a known price.
    ("mock/echo", 0.0, 0.0, 0.0),
    ("mock/lorem", 0.0, 0.0, 0.0),
    ("mock/embed", 0.0, 0.0, 0.0),
    // OpenAI
    ("gpt-5", 1.25, 0.125, 10.0),
    ("gpt-5-mini", 0.25, 0.025, 2.0),
    ("gpt-5-nano", 0.05, 0.005, 0.40),
    ("gpt-4.1", 2.0, 0.50, 8.0),
    ("gpt-4.1-mini", 0.40, 0.10, 1.60),
    ("gpt-4.1-nano", 0.10, 0.025, 0.40),
    ("gpt-4o", 2.50, 1.25, 10.0),
    ("gpt-4o-mini", 0.15, 0.075, 0.60),
    ("gpt-4-turbo", 10.0, -1.0, 30.0),
    ("gpt-4", 30.0, -1.0, 60.0),
    ("gpt-3.5-turbo", 0.50, -1.0, 1.50),
    ("o1", 15.0, 7.50, 60.0),
    ("o1-mini", 1.10, 0.55, 4.40),
    ("o3", 2.0, 0.50, 8.0),
    ("o3-mini", 1.10, 0.55, 4.40),
    ("o4-mini", 1.10, 0.275, 4.40),
    ("text-embedding-3-small", 0.02, -1.0, 0.0),
    ("text-embedding-3-large", 0.13, -1.0, 0.0),
    ("text-embedding-ada-002", 0.10, -1.0, 0.0),
    // Anthropic (cache reads at a tenth of the input price; cache writes at 1.25× or 2× input,
    // applied by `Prices::cost`)
    ("claude-opus-4-5", 5.0, 0.50, 25.0),
    ("claude-opus-4-1", 15.0, 1.50, 75.0),
    ("claude-opus-4", 15.0, 1.50, 75.0),
    ("claude-sonnet-4-5", 3.0, 0.30, 15.0),
    ("claude-sonnet-4", 3.0, 0.30, 15.0),
    ("claude-haiku-4-5", 1.0, 0.10, 5.0),
    ("claude-3-7-sonnet", 3.0, 0.30, 15.0),
    ("claude-3-5-sonnet", 3.0, 0.30, 15.0),
    ("claude-3-5-haiku", 0.80, 0.08, 4.0),
    ("claude-3-opus", 15.0, 1.50, 75.0),
    ("claude-3-haiku", 0.25, 0.03, 1.25),
    // Google Gemini (prices for prompts up to 200k tokens)
    ("gemini-2.5-pro", 1.25, 0.31, 10.0),
    ("gemini-2.5-flash", 0.30, 0.075, 2.50),
    ("gemini-2.5-flash-lite", 0.10, 0.025, 0.40),
    ("gemini-2.0-flash", 0.10, 0.025, 0.40),
    ("gemini-2.0-flash-lite", 0.075, -1.0, 0.30),
    ("gemini-1.5-pro", 1.25, 0.3125, 5.0),
    ("gemini-1.5-flash", 0.075, 0.01875, 0.30),
    ("gemini-embedding-001", 0.15, -1.0, 0.0),
    ("text-embedding-004", 0.0, -1.0, 0.0),
    // Mistral
    ("mistral-large", 2.0, -1.0, 6.0),
    ("mistral-medium", 0.40, -1.0, 2.0),
    ("mistral-small", 0.10, -1.0, 0.30),
    ("codestral", 0.30, -1.0, 0.90),
    ("open-mistral-nemo", 0.15, -1.0, 0.15),
    ("mistral-embed", 0.10, -1.0, 0.0),
    // Cohere
    ("command-a-03-2025", 2.50, -1.0, 10.0),
    ("command-r-plus", 2.50, -1.0, 10.0),
    ("command-r", 0.15, -1.0, 0.60),
    ("command-r7b-12-2024", 0.0375, -1.0, 0.15),
    ("embed-v4.0", 0.12, -1.0, 0.0),
    ("embed-english-v3.0", 0.10, -1.0, 0.0),
    ("embed-multilingual-v3.0", 0.10, -1.0, 0.0),
    // DeepSeek (V3.2 prices; cache hits priced as cached input)
    ("deepseek-chat", 0.28, 0.028, 0.42),
    ("deepseek-reasoner", 0.28, 0.028, 0.42),
    // Groq
    ("llama-3.3-70b-versatile", 0.59, -1.0, 0.79),
    ("llama-3.1-8b-instant", 0.05, -1.0, 0.08),
    // xAI
    ("grok-4", 3.0, 0.75, 15.0),
    ("grok-3", 3.0, 0.75, 15.0),
    ("grok-3-mini", 0.30, 0.075, 0.50),
];

/// Token counts a cost is computed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
    /// Part of `prompt` served from the provider's cache.
    pub cached: u64,
    /// Part of `prompt` written to the provider's cache with a 5-minute TTL (1.25× input).
    pub cache_write: u64,
    /// Part of `prompt` written to the provider's cache with a 1-hour TTL (2× input).
    pub cache_write_1h: u64,
    /// The (input, output) units the provider bills, when they are not the tokens counted.
    pub billed: Option<(u64, u64)>,
}

impl Tokens {
    /// From an OpenAI-shaped usage object, with the extensions the dialects add (see
    /// `providers::shape::cached_usage`) and DeepSeek's `prompt_cache_hit_tokens`.
    pub fn from_usage(usage: &Value) -> Option<Tokens> {
        let prompt = usage.get("prompt_tokens")?.as_u64()?;
        let details = &usage["prompt_tokens_details"];
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let cached = details["cached_tokens"]
            .as_u64()
            .or_else(|| usage["prompt_cache_hit_tokens"].as_u64())
            .unwrap_or(0)
            .min(prompt);
        let writes = n(&details["cache_write_tokens"]).min(prompt - cached);
        let billed = &usage["billed_units"];
        Some(Tokens {
            prompt,
            completion: n(&usage["completion_tokens"]),
            cached,
            cache_write_1h: n(&details["cache_write_1h_tokens"]).min(writes),
            cache_write: writes - n(&details["cache_write_1h_tokens"]).min(writes),
            billed: billed
                .is_object()
                .then(|| (n(&billed["input_tokens"]), n(&billed["output_tokens"]))),
        })
    }
}

/// The price table in force.
#[derive(Clone, Debug)]
pub struct Prices {
    table: HashMap<String, Price>,
}

impl Default for Prices {
    fn default() -> Self {
        let table = BUILT_IN
            .iter()
            .map(|&(model, input, cached, output)| {
                let cached_input = (cached >= 0.0).then_some(cached);
                (
                    model.to_string(),
                    Price {
                        input,
                        cached_input,
                        output,
                    },
                )
            })
            .collect();
        Prices { table }
    }
}

impl Prices {
    /// The built-in table with the entries of a JSON file laid over it:
    /// `{"model-name": {"input": 1.0, "cached_input": 0.1, "output": 2.0}, …}` (USD per
    /// million tokens; `cached_input` optional).
    pub fn with_file(path: &Path) -> Result<Prices, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
        let extra: HashMap<String, Price> =
            serde_json::from_str(&text).map_err(|e| format!("not a price table: {e}"))?;
        for (model, p) in &extra {
            let values = [Some(p.input), p.cached_input, Some(p.output)];
            if values.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
                return Err(format!(
                    "the price of {model:?} must be non-negative numbers"
                ));
            }
        }
        let mut prices = Prices::default();
        prices.table.extend(extra);
        Ok(prices)
    }

    /// The price of a model, by the lookup order in the module docs.
    pub fn lookup(&self, model: &str) -> Option<Price> {
        let bare = model.rsplit_once('/').map(|(_, m)| m);
        [Some(model), bare].into_iter().flatten().find_map(|name| {
            self.table
                .get(name)
                .or_else(|| self.table.get(strip_version_suffix(name)?))
                .copied()
        })
    }

    /// The cost in USD, or `None` when the model has no known price.
    pub fn cost(&self, model: &str, tokens: Tokens) -> Option<f64> {
        Some(self.lookup(model)?.cost(tokens))
    }
}

/// `gpt-4o-2024-08-06` → `gpt-4o`; `claude-3-5-haiku-20241022` → `claude-3-5-haiku`;
/// `mistral-large-latest` → `mistral-large`; `gemini-1.5-flash-002` → `gemini-1.5-flash`.
fn strip_version_suffix(name: &str) -> Option<&str> {
    let (head, tail) = name.rsplit_once('-')?;
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if tail == "latest" || digits(tail, 8) || digits(tail, 3) {
        return Some(head);
    }
    // A dated suffix -YYYY-MM-DD.
    let mut parts = name.rsplitn(4, '-');
    let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
    let head = parts.next()?;
    (digits(y, 4) && digits(m, 2) && digits(d, 2)).then_some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_usage_times_known_price_gives_the_exact_cost() {
        let prices = Prices::default();
        let tokens = Tokens {
            prompt: 1_000_000,
            completion: 500_000,
            cached: 400_000,
            ..Tokens::default()
        };
        // gpt-4o: 600k fresh × $2.50 + 400k cached × $1.25 + 500k × $10 per million.
        let cost = prices.cost("gpt-4o", tokens).unwrap();
        assert!((cost - (1.5 + 0.5 + 5.0)).abs() < 1e-9, "{cost}");
        assert_eq!(prices.cost("mock/echo", tokens), Some(0.0));
    }

    #[test]
    fn unknown_models_have_no_cost() {
        let prices = Prices::default();
        assert_eq!(prices.cost("my-own-finetune", Tokens::default()), None);
        assert_eq!(prices.lookup("gpt-4o-audio-preview"), None);
    }

    #[test]
    fn lookup_strips_provider_prefixes_and_version_suffixes() {
        let prices = Prices::default();
        let haiku = prices.lookup("claude-3-5-haiku").unwrap();
        assert_eq!(
            prices.lookup("anthropic/claude-3-5-haiku-20241022"),
            Some(haiku)
        );
        assert_eq!(prices.lookup("gpt-4o-2024-08-06"), prices.lookup("gpt-4o"));
        assert_eq!(
            prices.lookup("mistral/mistral-large-latest"),
            prices.lookup("mistral-large")
        );
        assert_eq!(
            prices.lookup("gemini-1.5-flash-002"),
            prices.lookup("gemini-1.5-flash")
        );
        assert_ne!(prices.lookup("gpt-4o-mini"), prices.lookup("gpt-4o"));
    }

    #[test]
    fn a_prices_file_overrides_and_extends() {
        let dir = std::env::temp_dir().join(format!("llmcg-prices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("prices.json");
        std::fs::write(&path, r#"{"gpt-4o": {"input": 1, "output": 2}, "my-model": {"input": 3, "cached_input": 1, "output": 4}}"#).unwrap();
        let prices = Prices::with_file(&path).unwrap();
        assert_eq!(prices.lookup("gpt-4o").unwrap().input, 1.0);
        let t = Tokens {
            prompt: 2_000_000,
            completion: 1_000_000,
            cached: 1_000_000,
            ..Tokens::default()
        };
        assert_eq!(prices.cost("my-model", t), Some(3.0 + 1.0 + 4.0));
        std::fs::write(&path, r#"{"x": {"input": -1, "output": 2}}"#).unwrap();
        assert!(Prices::with_file(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
