//! Rebuilds the `chat.completion` a stream amounts to from the `chat.completion.chunk`s the
//! client received: content, refusal and reasoning text per choice, tool calls by index with
//! their arguments joined, finish reasons, usage and the envelope fields. The interactions log
//! records this, so a streamed answer reads like the non-stream one. Text kept per stream is
//! capped (`limit`) so a runaway stream cannot grow the worker's memory without bound.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

#[derive(Default)]
struct Choice {
    role: Option<String>,
    content: Option<String>,
    refusal: Option<String>,
    reasoning: Option<String>,
    tool_calls: BTreeMap<u64, ToolCall>,
    finish_reason: Option<String>,
}

#[derive(Default)]
struct ToolCall {
    id: Option<String>,
    kind: Option<String>,
    name: String,
    arguments: String,
}

pub struct Assembler {
    envelope: Map<String, Value>,
    choices: BTreeMap<u64, Choice>,
    usage: Option<Value>,
    chunks: u64,
    kept: usize,
    limit: usize,
    truncated: bool,
}

impl Assembler {
    /// `limit`: the most bytes of text kept over the whole stream.
    pub fn new(limit: usize) -> Self {
        Assembler {
            envelope: Map::new(),
            choices: BTreeMap::new(),
            usage: None,
            chunks: 0,
            kept: 0,
            limit,
            truncated: false,
        }
    }

    /// Folds one chunk in.
    pub fn add(&mut self, chunk: &Value) {
        self.chunks += 1;
        for key in [
            "id",
            "created",
            "model",
            "system_fingerprint",
            "service_tier",
        ] {
            if let Some(v) = chunk.get(key).filter(|v| !v.is_null()) {
                self.envelope.entry(key).or_insert_with(|| v.clone());
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(usage.clone());
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return;
        };
        for c in choices {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            let delta = c.get("delta").unwrap_or(&Value::Null);
            let mut choice = self.choices.remove(&index).unwrap_or_default();
            if let Some(role) = delta.get("role").and_then(Value::as_str) {
                choice.role = Some(role.to_string());
            }
            for (field, target) in [
                ("content", &mut choice.content),
                ("refusal", &mut choice.refusal),
                ("reasoning_content", &mut choice.reasoning),
            ] {
                if let Some(text) = delta.get(field).and_then(Value::as_str) {
                    self.kept += push_capped(
                        target,
                        text,
                        self.limit.saturating_sub(self.kept),
                        &mut self.truncated,
                    );
                }
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    let i = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                    let entry = choice.tool_calls.entry(i).or_default();
                    if let Some(id) = call.get("id").and_then(Value::as_str) {
                        entry.id = Some(id.to_string());
                    }
                    if let Some(kind) = call.get("type").and_then(Value::as_str) {
                        entry.kind = Some(kind.to_string());
                    }
                    let function = call.get("function").unwrap_or(&Value::Null);
                    if let Some(name) = function.get("name").and_then(Value::as_str) {
                        entry.name.push_str(name);
                    }
                    if let Some(args) = function.get("arguments").and_then(Value::as_str) {
                        let room = self.limit.saturating_sub(self.kept);
                        let mut arguments = Some(std::mem::take(&mut entry.arguments));
                        self.kept += push_capped(&mut arguments, args, room, &mut self.truncated);
                        entry.arguments = arguments.unwrap_or_default();
                    }
                }
            }
            if let Some(reason) = c.get("finish_reason").and_then(Value::as_str) {
                choice.finish_reason = Some(reason.to_string());
            }
            self.choices.insert(index, choice);
        }
    }

    pub fn usage(&self) -> Option<&Value> {
        self.usage.as_ref()
    }

    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Whether any choice has a finish reason (the stream reached its end).
    pub fn finished(&self) -> bool {
        self.choices.values().any(|c| c.finish_reason.is_some())
    }

    /// The `chat.completion` object the stream amounts to.
    pub fn to_value(&self) -> Value {
        let choices: Vec<Value> = self
            .choices
            .iter()
            .map(|(index, c)| {
                let mut message = json!({
                    "role": c.role.as_deref().unwrap_or("assistant"),
                    "content": c.content,
                    "refusal": c.refusal,
                });
                if let Some(reasoning) = &c.reasoning {
                    message["reasoning_content"] = json!(reasoning);
                }
                if !c.tool_calls.is_empty() {
                    message["tool_calls"] = c
                        .tool_calls
                        .values()
                        .map(|t| {
                            json!({
                                "id": t.id,
                                "type": t.kind.as_deref().unwrap_or("function"),
                                "function": {"name": t.name, "arguments": t.arguments},
                            })
                        })
                        .collect();
                }
                json!({
                    "index": index,
                    "message": message,
                    "logprobs": null,
                    "finish_reason": c.finish_reason,
                })
            })
            .collect();
        let mut out = self.envelope.clone();
        out.insert("object".into(), json!("chat.completion"));
        out.insert("choices".into(), Value::Array(choices));
        out.insert("usage".into(), self.usage.clone().unwrap_or(Value::Null));
        if self.truncated {
            out.insert("truncated_for_log".into(), json!(true));
        }
        Value::Object(out)
    }
}

/// Appends `text` to `target` within `room` bytes (on a character boundary); returns the
/// bytes kept and flags `truncated` when some were not.
fn push_capped(
    target: &mut Option<String>,
    text: &str,
    room: usize,
    truncated: &mut bool,
) -> usize {
    let mut take = text.len().min(room);
    while !text.is_char_boundary(take) {
        take -= 1;
    }
    if take < text.len() {
        *truncated = true;
    }
    target
        .get_or_insert_with(String::new)
        .push_str(&text[..take]);
    take
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_reassemble_into_a_completion_with_tool_calls_and_usage() {
        let mut a = Assembler::new(1 << 20);
        for chunk in [
            json!({"id":"c1","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}),
            json!({"id":"c1","choices":[{"index":0,"delta":{"content":"你好"}}]}),
            json!({"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"ci"}}]}}]}),
            json!({"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}]}),
            json!({"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}),
        ] {
            a.add(&chunk);
        }
        let v = a.to_value();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["id"], "c1");
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], "你好");
        assert_eq!(
            m["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(m["tool_calls"][0]["id"], "call_1");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["usage"]["total_tokens"], 12);
        assert!(a.finished());
        assert_eq!(a.chunks(), 5);
    }

    #[test]
    fn kept_text_is_capped() {
        let mut a = Assembler::new(4);
        a.add(&json!({"choices":[{"index":0,"delta":{"content":"abcdef"}}]}));
        let v = a.to_value();
        assert_eq!(v["choices"][0]["message"]["content"], "abcd");
        assert_eq!(v["truncated_for_log"], true);
    }
}
