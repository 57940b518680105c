//! Every provider's stream translator, fed arbitrary event sequences (the recorded fixture
//! streams, mutated, reordered and cut, mixed with events made of the dialects' own field
//! names): `on_event` and `finish` never panic, and every chunk a translator builds is an
//! OpenAI `chat.completion.chunk` by the required keys of `CreateChatCompletionStreamResponse`
//! in OpenAI's API description (`id`, `object`, `created`, `model`, `choices`; each choice's
//! `index`, `delta`, `finish_reason` from its enum; each tool-call delta's `index`; a usage's
//! three token counts).

use std::io;
use std::path::Path;
use std::sync::Arc;

use llmcallgateway::providers::{registry, Emit, Settings, Target};
use llmcallgateway::upstream::eventstream;
use llmcallgateway::upstream::sse::EventReader;
use llmcallgateway::upstream::SseEvent;
use proptest::prelude::*;
use serde_json::Value;

use super::{bounded, json_from};

/// The field names and values the dialects read, so random events reach past the first check.
const WORDS: &[&str] = &[
    "type",
    "index",
    "id",
    "model",
    "role",
    "content",
    "text",
    "delta",
    "usage",
    "message",
    "name",
    "input",
    "arguments",
    "function",
    "tool_calls",
    "finish_reason",
    "choices",
    "object",
    "created",
    "error",
    "content_block",
    "partial_json",
    "stop_reason",
    "thinking",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "text_delta",
    "input_json_delta",
    "thinking_delta",
    "tool_use",
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "candidates",
    "parts",
    "functionCall",
    "args",
    "thought",
    "finishReason",
    "usageMetadata",
    "promptTokenCount",
    "candidatesTokenCount",
    "totalTokenCount",
    "thoughtsTokenCount",
    "cachedContentTokenCount",
    "modelVersion",
    "STOP",
    "MAX_TOKENS",
    "SAFETY",
    "message-start",
    "content-delta",
    "tool-plan-delta",
    "tool-call-start",
    "tool-call-delta",
    "tool-call-end",
    "message-end",
    "tool_plan",
    "COMPLETE",
    "TOOL_CALL",
    "ERROR",
    "tokens",
    "contentBlockIndex",
    "contentBlockDelta",
    "contentBlockStart",
    "start",
    "toolUse",
    "toolUseId",
    "reasoningContent",
    "stopReason",
    "inputTokens",
    "outputTokens",
    "totalTokens",
    "cacheReadInputTokens",
    "metadata",
    "messageStart",
    "messageStop",
    "assistant",
    "chat.completion.chunk",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "stop",
    "length",
    "tool_calls",
    "call_1",
    "",
];

/// Event names the dialects tell apart (Anthropic's and Bedrock's are named).
const EVENT_NAMES: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "messageStart",
    "contentBlockStart",
    "contentBlockDelta",
    "contentBlockStop",
    "messageStop",
    "metadata",
    "throttlingException",
    "internalServerException",
    "message",
    "",
];

/// The recorded stream events of the fixtures a provider's dialect answers with.
fn fixture_events(provider: &str) -> Vec<SseEvent> {
    let dir = match provider {
        "anthropic" | "gemini" | "cohere" | "bedrock" => provider,
        _ => "openai",
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut names: Vec<_> = std::fs::read_dir(&root)
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.contains("stream") && (name.ends_with(".sse") || dir == "bedrock")
        })
        .collect();
    names.sort();
    let mut events = Vec::new();
    for path in names {
        let bytes = std::fs::read(&path).unwrap();
        let mut reader = if dir == "bedrock" {
            let list: Value = serde_json::from_slice(&bytes).unwrap();
            EventReader::event_stream(io::Cursor::new(eventstream::encode_stream(&list)))
        } else {
            EventReader::new(io::Cursor::new(bytes))
        };
        while let Ok(Some(e)) = reader.next_event() {
            events.push(e);
        }
    }
    assert!(!events.is_empty(), "no stream fixtures for {provider}");
    events
}

/// One step of a generated stream.
#[derive(Debug, Clone)]
enum Step {
    /// A recorded event as it is.
    Fixture(prop::sample::Index),
    /// A recorded event with its `node`-th JSON node (pre-order) replaced.
    Mutated(prop::sample::Index, prop::sample::Index, Value),
    /// An event made of the dialects' words.
    Made(Option<&'static str>, Value),
    /// Data that is not JSON at all.
    Garbage(Option<&'static str>, String),
}

fn step() -> impl Strategy<Value = Step> {
    let name = prop::option::of(prop::sample::select(EVENT_NAMES));
    prop_oneof![
        4 => any::<prop::sample::Index>().prop_map(Step::Fixture),
        4 => (any::<prop::sample::Index>(), any::<prop::sample::Index>(), json_from(WORDS))
            .prop_map(|(e, n, v)| Step::Mutated(e, n, v)),
        2 => (name.clone(), json_from(WORDS)).prop_map(|(n, v)| Step::Made(n, v)),
        1 => (name, prop_oneof![Just("[DONE]".to_string()), ".{0,20}"])
            .prop_map(|(n, s)| Step::Garbage(n, s)),
    ]
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Replaces the `n`-th node in pre-order; true once done.
fn replace_nth(v: &mut Value, n: &mut usize, with: &Value) -> bool {
    if *n == 0 {
        *v = with.clone();
        return true;
    }
    *n -= 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|c| replace_nth(c, n, with)),
        Value::Object(o) => o.values_mut().any(|c| replace_nth(c, n, with)),
        _ => false,
    }
}

fn realise(step: &Step, pool: &[SseEvent]) -> SseEvent {
    match step {
        Step::Fixture(i) => i.get(pool).clone(),
        Step::Mutated(i, node, with) => {
            let mut event = i.get(pool).clone();
            if let Ok(mut value) = serde_json::from_str::<Value>(&event.data) {
                let mut n = node.index(count_nodes(&value));
                replace_nth(&mut value, &mut n, with);
                event.data = value.to_string();
            }
            event
        }
        Step::Made(name, value) => SseEvent {
            event: name.map(str::to_string),
            data: value.to_string(),
        },
        Step::Garbage(name, data) => SseEvent {
            event: name.map(str::to_string),
            data: data.clone(),
        },
    }
}

/// Why `chunk` is not a valid `chat.completion.chunk`, if it is not.
pub fn chunk_problem(chunk: &Value) -> Option<String> {
    let Some(o) = chunk.as_object() else {
        return Some("not an object".into());
    };
    if !o.get("id").is_some_and(Value::is_string) {
        return Some("id is not a string".into());
    }
    if o.get("object").and_then(Value::as_str) != Some("chat.completion.chunk") {
        return Some("object is not chat.completion.chunk".into());
    }
    if !o.get("created").is_some_and(|c| c.is_i64() || c.is_u64()) {
        return Some("created is not an integer".into());
    }
    if !o.get("model").is_some_and(Value::is_string) {
        return Some("model is not a string".into());
    }
    let Some(choices) = o.get("choices").and_then(Value::as_array) else {
        return Some("choices is not an array".into());
    };
    for c in choices {
        if !c.get("index").is_some_and(Value::is_u64) {
            return Some("a choice's index is not an integer".into());
        }
        let Some(delta) = c.get("delta").and_then(Value::as_object) else {
            return Some("a choice's delta is not an object".into());
        };
        match c.get("finish_reason") {
            Some(Value::Null) => {}
            Some(Value::String(r))
                if [
                    "stop",
                    "length",
                    "tool_calls",
                    "content_filter",
                    "function_call",
                ]
                .contains(&r.as_str()) => {}
            other => return Some(format!("finish_reason {other:?}")),
        }
        if let Some(role) = delta.get("role") {
            if !role
                .as_str()
                .is_some_and(|r| ["developer", "system", "user", "assistant", "tool"].contains(&r))
            {
                return Some(format!("role {role}"));
            }
        }
        for key in ["content", "refusal", "reasoning_content"] {
            if delta
                .get(key)
                .is_some_and(|v| !v.is_string() && !v.is_null())
            {
                return Some(format!("delta.{key} is neither a string nor null"));
            }
        }
        if let Some(calls) = delta.get("tool_calls") {
            let Some(calls) = calls.as_array() else {
                return Some("tool_calls is not an array".into());
            };
            for call in calls {
                if !call.get("index").is_some_and(Value::is_u64) {
                    return Some("a tool call delta has no integer index".into());
                }
                if call.get("id").is_some_and(|v| !v.is_string())
                    || call
                        .pointer("/function/name")
                        .is_some_and(|v| !v.is_string())
                {
                    return Some("a tool call's id or name is not a string".into());
                }
                if let Some(f) = call.get("function") {
                    for key in ["name", "arguments"] {
                        if f.get(key).is_some_and(|v| !v.is_string()) {
                            return Some(format!("function.{key} is not a string"));
                        }
                    }
                }
            }
        }
    }
    if let Some(usage) = o.get("usage").filter(|u| !u.is_null()) {
        for key in ["prompt_tokens", "completion_tokens", "total_tokens"] {
            if !usage.get(key).is_some_and(Value::is_u64) {
                return Some(format!("usage.{key} is not a non-negative integer"));
            }
        }
    }
    None
}

/// A target of a registry row (every provider's dialect; a fake base and key, never called).
fn target(provider: &str) -> Target {
    Target {
        provider: registry::find(provider).expect("a registry row"),
        model: "some-model".into(),
        settings: Arc::new(Settings {
            base_url: Some("http://127.0.0.1:9".into()),
            api_key: Some("fake-key-for-property-tests".into()),
            ..Default::default()
        }),
    }
}

/// Feeds `events` to a fresh translator of `provider` as the relay does (stopping at an
/// error or `Done`, then `finish` when the body ends without one) and checks every chunk.
fn translate(provider: &str, events: &[SseEvent]) -> Result<(), String> {
    let target = target(provider);
    let mut stream = target.dialect().chat_stream(&target);
    let check = |emits: Vec<Emit>| -> Result<bool, String> {
        let mut done = false;
        for emit in emits {
            match emit {
                Emit::Chunk(chunk) => {
                    if let Some(problem) = chunk_problem(&chunk) {
                        return Err(format!("{problem}: {chunk}"));
                    }
                }
                Emit::Raw(_) => {}
                Emit::Done => done = true,
            }
        }
        Ok(done)
    };
    for event in events {
        match stream.on_event(event.clone()) {
            Ok(emits) => {
                if check(emits)? {
                    return Ok(());
                }
            }
            Err(_) => return Ok(()),
        }
    }
    if let Ok(emits) = stream.finish() {
        check(emits)?;
    }
    Ok(())
}

/// One row of each dialect (and one OpenAI vendor that is sent no usage request), so each
/// translator gets its share of the cases; the fixture test above covers every row.
const DIALECTS: &[&str] = &[
    "openai",
    "anthropic",
    "gemini",
    "cohere",
    "bedrock",
    "azure",
    "mock",
    "mistral",
];

fn every_provider() -> Vec<&'static str> {
    registry::PROVIDERS.iter().map(|p| p.name).collect()
}

#[test]
fn the_recorded_fixture_streams_translate_to_valid_chunks() {
    for provider in every_provider() {
        let events = fixture_events(provider);
        translate(provider, &events).unwrap_or_else(|e| panic!("{provider}: {e}"));
    }
}

proptest! {
    #![proptest_config(bounded(256))]

    #[test]
    fn every_translator_takes_any_event_sequence_and_builds_only_valid_chunks(
        provider in prop::sample::select(DIALECTS),
        steps in prop::collection::vec(step(), 0..24),
    ) {
        let pool = fixture_events(provider);
        let events: Vec<SseEvent> = steps.iter().map(|s| realise(s, &pool)).collect();
        if let Err(problem) = translate(provider, &events) {
            return Err(TestCaseError::fail(format!("{provider}: {problem}\nevents: {events:?}")));
        }
    }
}

/// The minimal inputs the property found: a tool-call start whose provider event has no string
/// id or name (Anthropic `"name": null`, Cohere `null` data or `"name": false`, Bedrock
/// `"toolUse": null` or `"name": false`) is a 502, not a chunk with a `null` name, which the
/// schema forbids.
#[test]
fn a_tool_call_start_without_a_name_is_not_relayed_with_a_null_name() {
    let cases = [
        (
            "anthropic",
            Some("content_block_start"),
            r#"{"content_block":{"id":"toolu_01","input":{},"name":null,"type":"tool_use"},"index":0,"type":"content_block_start"}"#,
        ),
        ("cohere", Some("tool-call-start"), "null"),
        (
            "cohere",
            Some("tool-call-start"),
            r#"{"delta":{"message":{"tool_calls":{"function":{"arguments":"","name":false},"id":"x_1","type":"function"}}},"index":0,"type":"tool-call-start"}"#,
        ),
        (
            "bedrock",
            Some("contentBlockStart"),
            r#"{"contentBlockIndex":1,"start":{"toolUse":{"name":false,"toolUseId":"tooluse_1"}}}"#,
        ),
        (
            "bedrock",
            Some("contentBlockStart"),
            r#"{"contentBlockIndex":1,"start":{"toolUse":null}}"#,
        ),
    ];
    for (provider, name, data) in cases {
        let event = SseEvent {
            event: name.map(str::to_string),
            data: data.to_string(),
        };
        translate(provider, &[event]).unwrap_or_else(|e| panic!("{provider}: {e}"));
    }
}
