//! Rebuilds the `chat.completion` a stream amounts to from the `chat.completion.chunk`s the
//! client received: content, refusal and reasoning text per choice, tool calls by index with
//! their arguments joined, finish reasons, usage and the envelope fields. The interactions log
//! records this, so a streamed answer reads like the non-stream one. Text kept per stream is
//! capped (`limit`) so a runaway stream cannot grow the worker's memory without bound.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::tokens;

/// What the relay needs to know about a chunk it folded in.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    /// The chunk carries an error object (the provider failed mid-stream).
    pub error: bool,
    /// `choices: []` with `usage`: the usage-only chunk, which the gateway always asks for and
    /// passes on only to clients that asked for it themselves.
    pub usage_only: bool,
    /// Tool-call deltas came without an `index` (some servers leave it out): the chunk as the
    /// client should get it, with the indices the log gives them, is [`Assembler::reindexed`].
    pub unindexed: bool,
}

/// The parts of a `chat.completion.chunk` the assembler reads, borrowed from its text.
#[derive(Deserialize)]
struct ChunkView<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    /// Raw: converted only while the envelope lacks it (once, not per event).
    #[serde(borrow)]
    created: Option<&'a RawValue>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    system_fingerprint: Option<Cow<'a, str>>,
    #[serde(borrow)]
    service_tier: Option<Cow<'a, str>>,
    #[serde(borrow)]
    choices: Option<Vec<ChoiceView<'a>>>,
    usage: Option<Value>,
    /// Only whether there is one matters here (`null` reads as none).
    #[serde(borrow)]
    error: Option<&'a RawValue>,
    /// Azure's content-filter results of the prompt, kept for the record.
    #[serde(borrow)]
    prompt_filter_results: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    delta: Option<DeltaView<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Default, Deserialize)]
struct DeltaView<'a> {
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolCallView<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallView<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: Option<FunctionView<'a>>,
}

#[derive(Default, Deserialize)]
struct FunctionView<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

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

/// The index of a tool-call delta that has none (some servers leave it out): a delta with an id
/// not seen yet starts the next call, anything else continues the last one.
fn unindexed_call(calls: &BTreeMap<u64, ToolCall>, id: Option<&str>) -> u64 {
    let last = calls.iter().next_back();
    match (last, id) {
        (None, _) => 0,
        (Some((&n, call)), Some(id)) if call.id.as_deref() != Some(id) => n + 1,
        (Some((&n, _)), _) => n,
    }
}

/// The envelope fields the assembler keeps, in the order of the bits of `Assembler::known`.
const ENVELOPE: [&str; 6] = [
    "id",
    "created",
    "model",
    "system_fingerprint",
    "service_tier",
    "prompt_filter_results",
];

/// Sets envelope field `ENVELOPE[field]` to `value` unless it is known already or the value is
/// blank (Azure's filter chunk comes first with an empty id and model and `created: 0`: the
/// answer's own come later). What is known is a bit in `known`, not a search of the map: this
/// runs six times per streamed event, and the map's string keys are cold by the next event.
fn keep(
    envelope: &mut Map<String, Value>,
    known: &mut u8,
    field: usize,
    value: impl FnOnce() -> Option<Value>,
) {
    if *known & (1 << field) != 0 {
        return;
    }
    let blank = |v: &Value| v.is_null() || *v == "" || *v == 0;
    if let Some(v) = value().filter(|v| !blank(v)) {
        envelope.insert(ENVELOPE[field].to_string(), v);
        *known |= 1 << field;
    }
}

pub struct Assembler {
    envelope: Map<String, Value>,
    /// Which fields of [`ENVELOPE`] `envelope` has, a bit each.
    known: u8,
    choices: BTreeMap<u64, Choice>,
    usage: Option<Value>,
    chunks: u64,
    kept: usize,
    /// Bytes of text not kept (over `limit`): still counted in the estimated usage.
    dropped: usize,
    limit: usize,
    truncated: bool,
    /// In the chunk last added: (choice position, tool-call position, index given) of each
    /// tool-call delta that came without an index.
    assigned: Vec<(usize, usize, u64)>,
}

impl Assembler {
    /// `limit`: the most bytes of text kept over the whole stream.
    pub fn new(limit: usize) -> Self {
        Assembler {
            envelope: Map::new(),
            known: 0,
            choices: BTreeMap::new(),
            usage: None,
            chunks: 0,
            kept: 0,
            dropped: 0,
            limit,
            truncated: false,
            assigned: Vec::new(),
        }
    }

    /// Folds one chunk in, given as the JSON text that is relayed. It is read into borrowed
    /// views rather than a tree (this runs for every streamed event). A chunk of an unexpected
    /// shape is relayed but not folded in; text that is not JSON is an error.
    pub fn add(&mut self, data: &str) -> Result<Seen, serde_json::Error> {
        let chunk: ChunkView<'_> = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(_) => {
                let value: Value = serde_json::from_str(data)?;
                return Ok(Seen {
                    error: value.get("error").is_some_and(|e| !e.is_null()),
                    usage_only: false,
                    unindexed: false,
                });
            }
        };
        if chunk.error.is_some() {
            return Ok(Seen {
                error: true,
                usage_only: false,
                unindexed: false,
            });
        }
        self.chunks += 1;
        // The envelope keeps the first non-blank value of each field: once a field is known,
        // later chunks' values are not converted (this runs for every streamed event).
        let owned = |v: Cow<'_, str>| Value::String(v.into_owned());
        let (envelope, known) = (&mut self.envelope, &mut self.known);
        keep(envelope, known, 0, || chunk.id.map(owned));
        let raw = |v: &RawValue| serde_json::from_str(v.get()).ok();
        keep(envelope, known, 1, || chunk.created.and_then(raw));
        keep(envelope, known, 2, || chunk.model.map(owned));
        keep(envelope, known, 3, || chunk.system_fingerprint.map(owned));
        keep(envelope, known, 4, || chunk.service_tier.map(owned));
        keep(envelope, known, 5, || {
            chunk.prompt_filter_results.and_then(raw)
        });
        let choices = chunk.choices.unwrap_or_default();
        let usage_only = choices.is_empty() && chunk.usage.as_ref().is_some_and(|u| !u.is_null());
        if let Some(usage) = chunk.usage.filter(|u| !u.is_null()) {
            self.usage = Some(usage);
        }
        self.assigned.clear();
        for (position, c) in choices.into_iter().enumerate() {
            let index = c.index.unwrap_or(0);
            let delta = c.delta.unwrap_or_default();
            let choice = self.choices.entry(index).or_default();
            if let Some(role) = delta.role {
                choice.role = Some(role.into_owned());
            }
            for (text, target) in [
                (delta.content, &mut choice.content),
                (delta.refusal, &mut choice.refusal),
                (delta.reasoning_content, &mut choice.reasoning),
            ] {
                if let Some(text) = text {
                    let room = self.limit.saturating_sub(self.kept);
                    let kept = push_capped(target, &text, room, &mut self.truncated);
                    self.kept += kept;
                    self.dropped += text.len() - kept;
                }
            }
            for (k, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                let index = call.index.unwrap_or_else(|| {
                    let n = unindexed_call(&choice.tool_calls, call.id.as_deref());
                    self.assigned.push((position, k, n));
                    n
                });
                let entry = choice.tool_calls.entry(index).or_default();
                if let Some(id) = call.id {
                    entry.id = Some(id.into_owned());
                }
                if let Some(kind) = call.kind {
                    entry.kind = Some(kind.into_owned());
                }
                let function = call.function.unwrap_or_default();
                // Some servers repeat the whole name in every delta of a call; others (as
                // OpenAI's spec allows) send it in pieces.
                if let Some(name) = function.name.filter(|n| *n != entry.name) {
                    entry.name.push_str(&name);
                }
                if let Some(args) = function.arguments {
                    let room = self.limit.saturating_sub(self.kept);
                    let mut arguments = Some(std::mem::take(&mut entry.arguments));
                    let kept = push_capped(&mut arguments, &args, room, &mut self.truncated);
                    self.kept += kept;
                    self.dropped += args.len() - kept;
                    entry.arguments = arguments.unwrap_or_default();
                }
            }
            if let Some(reason) = c.finish_reason {
                choice.finish_reason = Some(reason.into_owned());
            }
        }
        Ok(Seen {
            error: false,
            usage_only,
            unindexed: !self.assigned.is_empty(),
        })
    }

    /// The chunk last added, with an `index` on each tool-call delta that came without one
    /// (the one its call has in the log), so that what a client reassembles is what the log
    /// shows. Only for a chunk whose [`Seen::unindexed`] is set: it is parsed again.
    pub fn reindexed(&self, data: &str) -> String {
        let Ok(mut chunk) = serde_json::from_str::<Value>(data) else {
            return data.to_string();
        };
        for &(choice, k, index) in &self.assigned {
            if let Some(call) = chunk
                .pointer_mut(&format!("/choices/{choice}/delta/tool_calls/{k}"))
                .and_then(Value::as_object_mut)
            {
                call.insert("index".into(), Value::from(index));
            }
        }
        chunk.to_string()
    }

    pub fn usage(&self) -> Option<&Value> {
        self.usage.as_ref()
    }

    /// The usage-only chunk of the gateway's estimate, for a stream whose provider reported no
    /// usage: the request's tokens, and the completion's (text not kept for the log counted at
    /// 4 bytes a token, the encoding's average for English).
    pub fn estimated_usage_chunk(&self, request: &[u8]) -> String {
        let completion = self.to_value();
        let mut chunk = json!({"object": "chat.completion.chunk", "choices": [],
            "usage": self.estimate(request, &completion)});
        for key in ["id", "created", "model"] {
            chunk[key] = completion[key].clone();
        }
        chunk.to_string()
    }

    /// The estimated usage of the stream so far, as that chunk carries it.
    pub fn estimated_usage(&self, request: &[u8]) -> Value {
        self.estimate(request, &self.to_value())
    }

    fn estimate(&self, request: &[u8], completion: &Value) -> Value {
        let generated = tokens::completion(completion) + self.dropped.div_ceil(4) as u64;
        tokens::usage(tokens::prompt(request), generated)
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

    fn tool_calls_of(chunks: &[Value]) -> Value {
        let mut a = Assembler::new(1 << 20);
        for chunk in chunks {
            a.add(&chunk.to_string()).unwrap();
        }
        a.to_value()["choices"][0]["message"]["tool_calls"].clone()
    }

    #[test]
    fn a_tool_name_repeated_in_every_delta_is_kept_once() {
        let calls = tool_calls_of(&[
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"get_weather","arguments":"\"Paris\"}"}}]}}]}),
        ]);
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
        let pieces = tool_calls_of(&[
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"get_"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"weather"}}]}}]}),
        ]);
        assert_eq!(
            pieces[0]["function"]["name"], "get_weather",
            "a name sent in pieces"
        );
    }

    #[test]
    fn tool_call_deltas_without_an_index_follow_their_ids() {
        let calls = tool_calls_of(&[
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_a","type":"function","function":{"name":"one","arguments":"{\"x\""}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":":1}"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_b","type":"function","function":{"name":"two","arguments":"{}"}}]}}]}),
        ]);
        let calls = calls.as_array().unwrap();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(calls[0]["id"], "call_a");
        assert_eq!(calls[0]["function"]["arguments"], "{\"x\":1}");
        assert_eq!(calls[1]["id"], "call_b");
        assert_eq!(calls[1]["function"]["name"], "two");
        // What the client gets carries the same indices.
        let mut a = Assembler::new(1 << 20);
        let first = json!({"choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_a","function":{"name":"one"}}]}}]}).to_string();
        assert!(a.add(&first).unwrap().unindexed);
        let second = json!({"choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_b","function":{"name":"two"}}]}}]}).to_string();
        assert!(a.add(&second).unwrap().unindexed);
        let sent: Value = serde_json::from_str(&a.reindexed(&second)).unwrap();
        assert_eq!(sent["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
        let indexed = json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}}]});
        assert!(!a.add(&indexed.to_string()).unwrap().unindexed);
    }

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
            a.add(&chunk.to_string()).unwrap();
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
        a.add(&json!({"choices":[{"index":0,"delta":{"content":"abcdef"}}]}).to_string())
            .unwrap();
        let v = a.to_value();
        assert_eq!(v["choices"][0]["message"]["content"], "abcd");
        assert_eq!(v["truncated_for_log"], true);
    }

    #[test]
    fn the_usage_only_chunk_and_error_chunks_are_recognised() {
        let mut a = Assembler::new(1024);
        let seen = |a: &mut Assembler, v: Value| a.add(&v.to_string()).unwrap();
        let usage_only = seen(&mut a, json!({"choices": [], "usage": {"total_tokens": 5}}));
        assert_eq!(
            usage_only,
            Seen {
                error: false,
                usage_only: true,
                unindexed: false,
            }
        );
        assert!(!seen(&mut a, json!({"choices": [], "usage": null})).usage_only);
        let both = json!({"choices": [{"index": 0, "delta": {}}], "usage": {"total_tokens": 5}});
        assert!(!seen(&mut a, both).usage_only);
        assert!(seen(&mut a, json!({"error": {"message": "boom"}})).error);
        // Unexpected shapes are relayed, not folded in; text that is not JSON is an error.
        let odd = seen(&mut a, json!({"choices": "odd"}));
        assert_eq!(
            odd,
            Seen {
                error: false,
                usage_only: false,
                unindexed: false,
            }
        );
        assert!(a.add("{not json").is_err());
    }
}
