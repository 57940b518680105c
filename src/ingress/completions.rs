//! The legacy completions ingress (`POST /v1/completions`, LlamaIndex's `OpenAILike` default,
//! the AI SDK's `.completion()`, `litellm.text_completion`): a `prompt` becomes one user
//! message of the internal chat request, and the `chat.completion` comes back as a
//! `text_completion`, its chunks as `text_completion` chunks (`choices[].text`), with the
//! usage chunk only for clients that asked (`stream_options.include_usage`) and `data: [DONE]`
//! at the end. `echo` puts the prompt before the text. What a chat model cannot do (`suffix`,
//! `logprobs`, several prompts, token-id prompts, `best_of` above 1) is a 400 naming the
//! parameter, or left out with `DROP_UNSUPPORTED_PARAMS`.
//!
//! Providers that serve `/completions` themselves get the client's body as it came instead
//! (the handler's business, see `providers::Api::Completions`).

use serde_json::{json, Map, Value};

use super::{Egress, Ingress};
use crate::assembler::Seen;
use crate::error::ApiError;
use crate::exchange::sse_data;
use crate::providers::{bad_response, shape};

/// Fields that mean the same in a completions and a chat request, carried over as they are.
const SHARED_PARAMS: &[&str] = &[
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "seed",
    "user",
];

/// The completions ingress for one request.
#[derive(Clone)]
pub struct Completions {
    /// The name the client asked for (answers carry the provider's own when it gives one).
    pub model: String,
    /// `echo: true`: the prompt, written before each choice's text.
    pub echo: Option<String>,
}

/// A completions request translated: the internal chat body, and what was left out.
pub struct Internal {
    pub body: Map<String, Value>,
    pub dropped: Vec<String>,
}

/// The prompt of a request as one text, when it is one (a string, or an array of one string).
fn single_prompt(body: &Map<String, Value>) -> Result<String, ApiError> {
    let not_one = || {
        ApiError::invalid(
            Some("prompt"),
            "This model is served through a chat API, which takes one text prompt per request: send `prompt` as a string (token-id prompts and several prompts are relayed only to providers that serve /v1/completions).",
        )
    };
    match body.get("prompt") {
        None | Some(Value::Null) => Err(ApiError::invalid(
            Some("prompt"),
            "Missing required parameter: `prompt`.",
        )),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(items)) => match items.as_slice() {
            [Value::String(s)] => Ok(s.clone()),
            _ => Err(not_one()),
        },
        Some(_) => Err(not_one()),
    }
}

/// Checks what every completions request must have, whoever serves it: a `prompt` that is a
/// string, an array of strings, an array of token ids, or an array of such arrays.
pub fn validate(body: &Map<String, Value>) -> Result<(), ApiError> {
    let is_tokens = |v: &Value| {
        v.as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_u64))
    };
    let ok = match body.get("prompt") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                Some("prompt"),
                "Missing required parameter: `prompt`.",
            ))
        }
        Some(Value::String(_)) => true,
        Some(p @ Value::Array(items)) => {
            !items.is_empty()
                && (items.iter().all(Value::is_string)
                    || is_tokens(p)
                    || items.iter().all(is_tokens))
        }
        Some(_) => false,
    };
    if !ok {
        return Err(ApiError::invalid(
            Some("prompt"),
            "`prompt` must be a string, an array of strings, an array of token ids, or an array of token-id arrays.",
        ));
    }
    Ok(())
}

/// The internal chat request for a completions request: the prompt as one user message, the
/// shared sampling parameters as they are. `drop`: leave out what a chat model cannot honour
/// instead of answering 400.
pub fn internal(body: &Map<String, Value>, drop: bool) -> Result<Internal, ApiError> {
    let prompt = single_prompt(body)?;
    let mut dropped = Vec::new();
    let unsupported = [
        (
            "suffix",
            "a chat model has no text after the insertion point",
        ),
        (
            "logprobs",
            "log probabilities are relayed only from providers that serve /v1/completions",
        ),
        ("best_of", "a chat model returns the choices it generates"),
    ];
    for (name, why) in unsupported {
        let asks = match body.get(name) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(v) if name == "best_of" => v.as_u64() != Some(1),
            Some(_) => true,
        };
        if !asks {
            continue;
        }
        if !drop {
            return Err(ApiError::invalid(
                Some(name),
                format!("`{name}` is not supported for this model: {why} (DROP_UNSUPPORTED_PARAMS=true drops it)."),
            ));
        }
        dropped.push(name.to_string());
    }
    let mut chat: Map<String, Value> = SHARED_PARAMS
        .iter()
        .filter_map(|&k| body.get(k).map(|v| (k.to_string(), v.clone())))
        .collect();
    chat.insert(
        "messages".into(),
        json!([{"role": "user", "content": prompt}]),
    );
    Ok(Internal {
        body: chat,
        dropped,
    })
}

impl Completions {
    /// The ingress for a request; the prompt is kept only when it is to be echoed.
    pub fn new(model: String, body: &Map<String, Value>) -> Completions {
        let echo = body
            .get("echo")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .then(|| single_prompt(body).ok())
            .flatten();
        Completions { model, echo }
    }

    fn model_of<'a>(&'a self, answer: &'a Value) -> &'a str {
        answer["model"]
            .as_str()
            .filter(|m| !m.is_empty())
            .unwrap_or(&self.model)
    }

    /// A `chat.completion` → a `text_completion`.
    fn text_completion(&self, completion: &Value) -> Value {
        let choices: Vec<Value> = completion["choices"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|choice| {
                let message = &choice["message"];
                let mut text = self.echo.clone().unwrap_or_default();
                text.push_str(message["content"].as_str().unwrap_or_default());
                json!({
                    "text": text,
                    "index": choice["index"].as_u64().unwrap_or(0),
                    "logprobs": null,
                    "finish_reason": finish_reason(choice["finish_reason"].as_str()),
                })
            })
            .collect();
        let mut answer = json!({
            "id": completion_id(&completion["id"]),
            "object": "text_completion",
            "created": completion["created"].as_u64().unwrap_or_else(shape::unix_now),
            "model": self.model_of(completion),
            "choices": choices,
        });
        if let Some(usage) = completion.get("usage").filter(|u| !u.is_null()) {
            answer["usage"] = usage.clone();
        }
        if let Some(fp) = completion
            .get("system_fingerprint")
            .filter(|f| f.is_string())
        {
            answer["system_fingerprint"] = fp.clone();
        }
        answer
    }
}

/// A completions id for a chat completion's (`cmpl-` as OpenAI's are).
fn completion_id(id: &Value) -> String {
    match id.as_str() {
        Some(id) if id.starts_with("cmpl-") => id.to_string(),
        Some(id) if !id.is_empty() => format!("cmpl-{}", id.trim_start_matches("chatcmpl-")),
        _ => format!("cmpl-{}", uuid::Uuid::new_v4().simple()),
    }
}

/// A chat finish reason → one of the completions API's (`stop`, `length`, `content_filter`):
/// a tool call cannot happen here, so anything else is `stop`.
fn finish_reason(reason: Option<&str>) -> Option<&'static str> {
    match reason? {
        "length" => Some("length"),
        "content_filter" => Some("content_filter"),
        _ => Some("stop"),
    }
}

impl Ingress for Completions {
    fn reply(&self, completion: Vec<u8>) -> Result<Vec<u8>, ApiError> {
        let completion: Value = serde_json::from_slice(&completion)
            .map_err(|_| bad_response("the answer is not JSON"))?;
        Ok(self.text_completion(&completion).to_string().into_bytes())
    }

    fn error(&self, error: &ApiError) -> (u16, Vec<u8>) {
        (error.status, error.to_body())
    }

    fn stream(&self, wants_usage: bool) -> Box<dyn Egress> {
        Box::new(Chunks {
            wants_usage,
            ingress: self.clone(),
            echoed: Vec::new(),
        })
    }
}

/// `chat.completion.chunk`s → `text_completion` chunks.
struct Chunks {
    wants_usage: bool,
    /// The request's model and echo (and, for the record, its answer's shape).
    ingress: Completions,
    /// The choice indices whose prompt was echoed already.
    echoed: Vec<u64>,
}

impl Egress for Chunks {
    fn chunk(&mut self, data: &str, seen: &Seen, out: &mut Vec<u8>) {
        if seen.error {
            sse_data(out, data);
            return;
        }
        if seen.usage_only && !self.wants_usage {
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let mut choices = Vec::new();
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            let index = choice["index"].as_u64().unwrap_or(0);
            let mut text = String::new();
            if let Some(echo) = &self.ingress.echo {
                if !self.echoed.contains(&index) {
                    self.echoed.push(index);
                    text.push_str(echo);
                }
            }
            text.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
            let finish = finish_reason(choice["finish_reason"].as_str());
            if text.is_empty() && finish.is_none() {
                continue;
            }
            choices.push(json!({
                "text": text, "index": index, "logprobs": null, "finish_reason": finish,
            }));
        }
        let usage = chunk.get("usage").filter(|u| !u.is_null());
        if choices.is_empty() && usage.is_none() {
            return;
        }
        let model = chunk["model"]
            .as_str()
            .filter(|m| !m.is_empty())
            .unwrap_or(&self.ingress.model);
        let mut out_chunk = json!({
            "id": completion_id(&chunk["id"]),
            "object": "text_completion",
            "created": chunk["created"].as_u64().unwrap_or_else(shape::unix_now),
            "model": model,
            "choices": choices,
        });
        if let Some(usage) = usage {
            out_chunk["usage"] = usage.clone();
        }
        sse_data(out, &out_chunk.to_string());
    }

    fn done(&mut self, out: &mut Vec<u8>) {
        sse_data(out, "[DONE]");
    }

    fn fail(&mut self, error: &ApiError, out: &mut Vec<u8>) {
        sse_data(out, &error.to_value().to_string());
    }

    fn recorded(&self, completion: Value) -> Value {
        self.ingress.text_completion(&completion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_prompt_becomes_one_user_message_with_the_shared_parameters() {
        let request = body(json!({
            "model": "m", "prompt": ["Say hi"], "max_tokens": 5, "stop": "\n", "echo": true
        }));
        let internal = internal(&request, false).unwrap();
        assert_eq!(
            internal.body["messages"],
            json!([{"role": "user", "content": "Say hi"}])
        );
        assert_eq!(internal.body["max_tokens"], 5);
        assert_eq!(internal.body["stop"], "\n");
        assert!(!internal.body.contains_key("echo"));
    }

    #[test]
    fn what_a_chat_model_cannot_do_is_refused_or_dropped() {
        let request = body(json!({"model": "m", "prompt": "x", "suffix": "y", "logprobs": 2}));
        let e = internal(&request, false).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("suffix"));
        let dropped = internal(&request, true).unwrap().dropped;
        assert_eq!(dropped, ["suffix", "logprobs"]);
        let several = body(json!({"model": "m", "prompt": ["a", "b"]}));
        assert_eq!(
            internal(&several, true).err().unwrap().param.as_deref(),
            Some("prompt")
        );
    }

    #[test]
    fn prompts_of_every_documented_shape_are_valid_and_others_are_not() {
        for ok in [
            json!("a"),
            json!(["a", "b"]),
            json!([1, 2]),
            json!([[1], [2, 3]]),
        ] {
            assert!(validate(&body(json!({"prompt": ok}))).is_ok());
        }
        for bad in [json!(1), json!([]), json!([1, "a"]), json!({"a": 1})] {
            assert!(validate(&body(json!({"prompt": bad}))).is_err());
        }
    }

    #[test]
    fn a_chat_completion_becomes_a_text_completion_with_the_echo() {
        let request = body(json!({"model": "m", "prompt": "Q: ", "echo": true}));
        let ingress = Completions::new("m".into(), &request);
        let chat = json!({
            "id": "chatcmpl-1", "created": 7, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "A"},
                         "finish_reason": "length"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        });
        let reply: Value =
            serde_json::from_slice(&ingress.reply(chat.to_string().into_bytes()).unwrap()).unwrap();
        assert_eq!(reply["id"], "cmpl-1");
        assert_eq!(reply["object"], "text_completion");
        assert_eq!(reply["choices"][0]["text"], "Q: A");
        assert_eq!(reply["choices"][0]["finish_reason"], "length");
        assert_eq!(reply["usage"]["total_tokens"], 2);
    }
}
