//! The built-in models that need no provider and no key: `mock/echo` answers with the last
//! user message, `mock/lorem` writes N words (N from the prompt when it is a number, else 32,
//! cut by `max_tokens`), and `mock/embed` returns deterministic unit vectors. They count
//! usage like a real model (one token per word), and answer `n` choices (the same text each,
//! streamed interleaved), so demos, the SDKs and tests work offline.
//!
//! They are a provider like the others, behind the same [`Dialect`]: their calls are answered
//! in-process ([`Dialect::send`]) with the bodies an OpenAI server would send (JSON, or an SSE
//! stream with the usage chunk), which then take the same path as any provider's answer.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::request::{self, EmbeddingInput};
use super::{
    errors, openai, shape, ChatStream, Dialect, Listed, Missing, Prepared, Provider, Reply,
    RequestContext, Settings, Target,
};
use crate::error::ApiError;
use crate::upstream::{Answer, Call, Received};

/// The mock models, in the order `/v1/models` lists them.
const MODELS: &[&str] = &["echo", "lorem", "embed"];

/// A fixed creation time for the mock models (the project's first release day).
const CREATED: u64 = 1_764_115_200;

/// Where a mock call goes: `mock://<model>/<endpoint>`, never over the network.
const SCHEME: &str = "mock://";

/// Default embedding size of `mock/embed` (OpenAI's small model's default is 1536; ours is
/// smaller to keep demo payloads light; `dimensions` picks any size up to 4096).
const DEFAULT_DIMENSIONS: usize = 256;
const MAX_DIMENSIONS: usize = 4096;
const LOREM: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
];

fn is_chat_model(name: &str) -> bool {
    matches!(name, "echo" | "lorem")
}

/// A mock chat answer: the words of the reply and why it stopped.
struct Completion {
    words: Vec<String>,
    finish_reason: &'static str,
    prompt_tokens: u64,
}

impl Completion {
    fn content(&self) -> String {
        self.words.concat()
    }
}

/// Produces the answer of a mock chat model to a validated request body.
fn chat(model: &str, body: &Value) -> Result<Completion, ApiError> {
    let messages = body["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let prompt_tokens = messages
        .iter()
        .map(|m| count_words(&message_text(m)) + 3)
        .sum::<u64>()
        .max(1);
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(message_text)
        .unwrap_or_default();
    let limit = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64));
    let mut words: Vec<String> = if model == "echo" {
        split_keeping_spaces(&last_user)
    } else {
        let n = last_user.trim().parse::<usize>().unwrap_or(32).min(100_000);
        (0..n)
            .map(|i| {
                let w = LOREM[i % LOREM.len()];
                if i + 1 < n {
                    format!("{w} ")
                } else {
                    format!("{w}.")
                }
            })
            .collect()
    };
    let mut finish_reason = "stop";
    if let Some(limit) = limit {
        if words.len() as u64 > limit {
            words.truncate(limit as usize);
            finish_reason = "length";
        }
    }
    Ok(Completion {
        words,
        finish_reason,
        prompt_tokens,
    })
}

/// The text of a message: a string, or the text parts of a content array.
fn message_text(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn count_words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Splits text into words that keep their trailing whitespace, so the words concatenate back
/// to the original text exactly (and each one is a token for usage and streaming).
fn split_keeping_spaces(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_space = false;
    for c in text.chars() {
        if !c.is_whitespace() && in_space {
            words.push(std::mem::take(&mut current));
            in_space = false;
        }
        in_space |= c.is_whitespace();
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Embeds validated inputs: each text (or token array) gets a deterministic unit vector.
fn embed(inputs: &[EmbeddingInput], body: &Value) -> Result<(Vec<Value>, u64), ApiError> {
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n as usize <= MAX_DIMENSIONS => n as usize,
            _ => {
                return Err(ApiError::invalid(
                    Some("dimensions"),
                    format!("dimensions must be an integer from 1 to {MAX_DIMENSIONS}"),
                ))
            }
        },
    };
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                Some("encoding_format"),
                format!("encoding_format must be float or base64, not {other:?}"),
            ))
        }
    };
    let mut tokens = 0;
    let data = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let (seed, count) = match input {
                EmbeddingInput::Text(t) => (fnv1a(t.as_bytes()), count_words(t).max(1)),
                EmbeddingInput::Tokens(ids) => {
                    let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
                    (fnv1a(&bytes), ids.len() as u64)
                }
            };
            tokens += count;
            let vector = unit_vector(seed, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok((data, tokens))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

/// A deterministic vector of unit length from a seed (splitmix64).
fn unit_vector(seed: u64, dimensions: usize) -> Vec<f32> {
    let mut state = seed;
    let mut v: Vec<f32> = (0..dimensions)
        .map(|_| {
            state = state.wrapping_add(0x9e3779b97f4a7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
            z ^= z >> 31;
            (z >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
        })
        .collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

pub struct Mock;

impl Dialect for Mock {
    fn check_model(&self, requested: &str, model: &str) -> Result<(), ApiError> {
        if MODELS.contains(&model) {
            return Ok(());
        }
        Err(ApiError::model_not_found(
            requested,
            "The built-in models are mock/echo, mock/lorem and mock/embed.",
        ))
    }

    /// Built in: nothing to configure.
    fn missing(&self, _provider: &Provider, _settings: &Settings) -> Option<Missing> {
        None
    }

    /// The client's body as it came, to `mock://<model>/chat/completions`.
    fn chat_request(
        &self,
        target: &Target,
        body: Map<String, Value>,
        _stream: bool,
        _context: &RequestContext<'_>,
    ) -> Result<Prepared, ApiError> {
        if !is_chat_model(&target.model) {
            return Err(ApiError::invalid(
                Some("model"),
                format!(
                    "`mock/{}` is an embedding model; use it with /v1/embeddings.",
                    target.model
                ),
            ));
        }
        let body = Value::Object(body);
        chat(&target.model, &body)?;
        Ok(Prepared {
            call: mock_call(target, "chat/completions", &body),
            dropped: Vec::new(),
        })
    }

    fn chat_response(&self, target: &Target, answer: Received) -> Result<Reply, ApiError> {
        openai::STANDARD.chat_response(target, answer)
    }

    fn chat_stream(&self, target: &Target) -> Box<dyn ChatStream> {
        openai::STANDARD.chat_stream(target)
    }

    fn embeddings_request(
        &self,
        target: &Target,
        body: Map<String, Value>,
    ) -> Result<Vec<Call>, ApiError> {
        if target.model != "embed" {
            return Err(ApiError::invalid(
                Some("model"),
                format!(
                    "`mock/{}` is a chat model; use mock/embed for embeddings.",
                    target.model
                ),
            ));
        }
        let inputs = request::embedding_inputs(&body)?;
        let body = Value::Object(body);
        embed(&inputs, &body)?;
        Ok(vec![mock_call(target, "embeddings", &body)])
    }

    fn embeddings_response(
        &self,
        target: &Target,
        answers: Vec<Received>,
        base64: bool,
    ) -> Result<Reply, ApiError> {
        openai::STANDARD.embeddings_response(target, answers, base64)
    }

    fn parse_error(&self, status: u16, body: &[u8]) -> ApiError {
        errors::openai_error(status, body)
    }

    fn local_models(&self) -> Vec<Listed> {
        MODELS
            .iter()
            .map(|m| Listed {
                id: m.to_string(),
                created: CREATED,
                owned_by: Some("llmcallgateway".into()),
            })
            .collect()
    }

    /// Answers in-process what an OpenAI server would send.
    fn send(&self, _agent: &ureq::Agent, call: &Call) -> Result<Answer, ApiError> {
        let rest = call.url.strip_prefix(SCHEME).unwrap_or_default();
        let (model, endpoint) = rest.split_once('/').unwrap_or((rest, ""));
        let body: Value = serde_json::from_slice(&call.body).unwrap_or(Value::Null);
        let json = [("content-type", "application/json")];
        if endpoint == "embeddings" {
            let inputs = request::embedding_inputs(body.as_object().unwrap_or(&Map::new()))?;
            let (data, tokens) = embed(&inputs, &body)?;
            let usage = json!({"prompt_tokens": tokens, "total_tokens": tokens});
            let answer =
                json!({"object": "list", "data": data, "model": body["model"], "usage": usage});
            return Ok(Answer::local(200, &json, answer.to_string().into_bytes()));
        }
        let completion = chat(model, &body)?;
        // `n` was checked (1 to 128) before any call.
        let n = body["n"].as_u64().unwrap_or(1).max(1);
        let completion_tokens = completion.words.len() as u64 * n;
        let usage = json!({
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": completion.prompt_tokens + completion_tokens,
        });
        if body["stream"] != Value::Bool(true) {
            let message = shape::assistant_message(Some(completion.content()), None, Vec::new());
            let choices = (0..n)
                .map(|i| shape::choice(i, message.clone(), completion.finish_reason))
                .collect();
            let reply = shape::completion(
                json!(shape::completion_id()),
                body["model"].clone(),
                choices,
                Some(usage),
            );
            return Ok(Answer::local(200, &json, reply.body));
        }
        let chunks = shape::Chunks::new(
            shape::completion_id(),
            body["model"].as_str().unwrap_or(model).to_string(),
        );
        let mut sse = Vec::new();
        let mut event = |chunk: Value| {
            sse.extend_from_slice(b"data: ");
            sse.extend_from_slice(chunk.to_string().as_bytes());
            sse.extend_from_slice(b"\n\n");
        };
        for i in 0..n {
            event(chunks.delta(i, json!({"role": "assistant", "content": ""}), None));
        }
        for word in &completion.words {
            for i in 0..n {
                event(chunks.delta(i, json!({"content": word}), None));
            }
        }
        for i in 0..n {
            event(chunks.delta(i, json!({}), Some(completion.finish_reason)));
        }
        event(chunks.usage(&usage));
        sse.extend_from_slice(b"data: [DONE]\n\n");
        Ok(Answer::local(
            200,
            &[("content-type", "text/event-stream")],
            sse,
        ))
    }
}

/// A call to a built-in model.
fn mock_call(target: &Target, endpoint: &str, body: &Value) -> Call {
    Call::post(
        format!("{SCHEME}{}/{endpoint}", target.model),
        Vec::new(),
        serde_json::to_vec(body).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_repeats_the_last_user_message_word_by_word() {
        let body = json!({"messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "你好, world  again"}]}
        ]});
        let c = chat("echo", &body).unwrap();
        assert_eq!(c.content(), "你好, world  again");
        assert_eq!(c.words.len(), 3);
        assert_eq!(c.finish_reason, "stop");
    }

    #[test]
    fn lorem_honours_the_word_count_and_max_tokens() {
        let body = json!({"messages": [{"role": "user", "content": "5"}]});
        assert_eq!(chat("lorem", &body).unwrap().words.len(), 5);
        let body = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 7});
        let c = chat("lorem", &body).unwrap();
        assert_eq!((c.words.len(), c.finish_reason), (7, "length"));
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let inputs = [
            EmbeddingInput::Text("a".into()),
            EmbeddingInput::Text("a".into()),
        ];
        let (data, tokens) = embed(&inputs, &json!({"dimensions": 8})).unwrap();
        assert_eq!(tokens, 2);
        assert_eq!(data[0]["embedding"], data[1]["embedding"]);
        let v: Vec<f64> = serde_json::from_value(data[0]["embedding"].clone()).unwrap();
        assert_eq!(v.len(), 8);
        let norm: f64 = v.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        assert!(embed(&inputs, &json!({"dimensions": 0})).is_err());
    }
}
