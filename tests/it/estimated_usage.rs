//! Usage where the provider reports none (issue 12): the answer still carries the spec's
//! `usage`, estimated with `o200k_base`; the header `x-gateway-usage: estimated`, the record's
//! `usage_source` and the metrics' estimated tokens say so. Over real sockets.

use std::fs;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::client::{get, post_json, wait_until};
use crate::support::gateway::Gateway;
use crate::support::logs::interaction_lines;
use crate::support::upstream::{MockUpstream, Script, Step};

/// "Hello, world!" is 4 tokens in o200k_base, "user" 1; 3 per message, 3 for the reply.
const PROMPT: u64 = 4 + 1 + 3 + 3;

fn chat(stream: bool, include_usage: bool) -> Value {
    let mut body = json!({"model": "gpt-4o-mini", "stream": stream,
        "messages": [{"role": "user", "content": "Hello, world!"}]});
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// A chat completion without `usage` (a vendor that reports none); its text is 4 tokens.
fn no_usage_completion() -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello, world!"},
        "finish_reason": "stop"}]})
    .to_string()
}

fn chunk(delta: Value, finish: Value) -> Step {
    Step::Event(
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string(),
    )
}

/// A stream without a usage chunk: "Hello, world!" in two pieces.
fn no_usage_stream() -> Script {
    Script::sse(vec![
        chunk(
            json!({"role": "assistant", "content": "Hello,"}),
            Value::Null,
        ),
        chunk(json!({"content": " world!"}), json!("stop")),
        Step::Event("[DONE]".into()),
    ])
}

/// The one line's usage and source, and the metrics' estimated tokens, once recorded.
fn recorded(gw: Gateway) -> (Value, Value) {
    let mut totals = Value::Null;
    wait_until(Duration::from_secs(5), || {
        totals = get(gw.addr, "/metrics").json()["totals"].clone();
        totals["requests"] == 1
    });
    let prometheus = get(gw.addr, "/metrics/prometheus").text();
    let dir = gw.stop_keeping_logs();
    let line = interaction_lines(&dir)[0].clone();
    let _ = fs::remove_dir_all(dir);
    let estimated = totals["tokens"]["estimated"].clone();
    let exported = prometheus
        .lines()
        .find(|l| l.starts_with("llmcallgateway_estimated_tokens_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_string);
    assert_eq!(exported, Some(estimated.to_string()), "{prometheus}");
    (line, estimated)
}

#[test]
fn a_completion_without_usage_gets_an_estimate_flagged_as_such() {
    let upstream = MockUpstream::always(Script::json(200, &no_usage_completion()));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat(false, false));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-gateway-usage"), Some("estimated"));
    let usage = &reply.json()["usage"];
    assert_eq!(
        usage,
        &json!({"prompt_tokens": PROMPT, "completion_tokens": 4, "total_tokens": PROMPT + 4})
    );
    let (line, estimated) = recorded(gw);
    assert_eq!(line["usage_source"], "estimated", "{line}");
    assert_eq!(line["usage"]["total_tokens"], PROMPT + 4);
    assert_eq!(estimated, PROMPT + 4);
}

#[test]
fn a_providers_usage_is_recorded_as_the_providers() {
    let upstream = MockUpstream::always(Script::fixture(200, "openai/chat_completion.json"));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat(false, false));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-gateway-usage"), None);
    assert_eq!(reply.json()["usage"]["prompt_tokens"], 1117);
    let (line, estimated) = recorded(gw);
    assert_eq!(line["usage_source"], "provider", "{line}");
    assert_eq!(estimated, 0);
}

#[test]
fn a_stream_without_usage_ends_with_an_estimated_usage_chunk_when_asked() {
    let upstream = MockUpstream::always(no_usage_stream());
    let gw = Gateway::in_front_of(&upstream, &[]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat(true, true));
    assert_eq!(reply.status, 200);
    let events = reply.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(last["object"], "chat.completion.chunk");
    assert_eq!(last["id"], "chatcmpl-1");
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], PROMPT);
    assert_eq!(last["usage"]["completion_tokens"], 4, "{last}");
    let (line, estimated) = recorded(gw);
    assert_eq!(line["usage_source"], "estimated", "{line}");
    assert_eq!(estimated, PROMPT + 4);
}

#[test]
fn a_client_that_did_not_ask_gets_no_usage_chunk_but_the_record_has_the_estimate() {
    let upstream = MockUpstream::always(no_usage_stream());
    let gw = Gateway::in_front_of(&upstream, &[("LOG_BODIES", "metadata")]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat(true, false));
    assert!(!reply.text().contains("\"usage\":{"), "{}", reply.text());
    let (line, _) = recorded(gw);
    assert_eq!(line["usage_source"], "estimated", "{line}");
    // Without bodies kept, the completion is counted at 4 bytes a token: 13 bytes → 4.
    assert_eq!(line["usage"]["completion_tokens"], 4, "{line}");
}

#[test]
fn gemini_embeddings_get_an_estimated_usage() {
    let upstream = MockUpstream::always(Script::fixture(200, "gemini/embeddings.response.json"));
    let base = upstream.base_url();
    let root = base.strip_suffix("/v1").unwrap_or(&base).to_string();
    let gw = Gateway::start(&[
        ("GEMINI_API_BASE", root.as_str()),
        ("GEMINI_API_KEY", "fake-gemini-key"),
    ]);
    let body = json!({"model": "gemini/gemini-embedding-001", "input": ["first", "second", "third"],
                      "dimensions": 3});
    let reply = post_json(gw.addr, "/v1/embeddings", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-gateway-usage"), Some("estimated"));
    assert_eq!(
        reply.json()["usage"],
        json!({"prompt_tokens": 3, "total_tokens": 3})
    );
    let (line, estimated) = recorded(gw);
    assert_eq!(line["usage_source"], "estimated", "{line}");
    assert_eq!(estimated, 3);
}

/// Every leaf string of a message or content block but its role, type and ids: the text a
/// tokenizer sees, tool inputs and results included.
fn texts(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push(' ');
        }
        Value::Array(items) => items.iter().for_each(|v| texts(v, out)),
        Value::Object(map) => {
            for (key, v) in map {
                if !matches!(
                    key.as_str(),
                    "role" | "type" | "id" | "toolUseId" | "tool_use_id"
                ) {
                    texts(v, out);
                }
            }
        }
        Value::Number(n) => out.push_str(&n.to_string()),
        _ => {}
    }
}

/// A provider's request fixture as the OpenAI-shaped body the gateway would estimate.
fn as_openai(request: &Value) -> Value {
    let mut messages = Vec::new();
    let system = [&request["system"], &request["systemInstruction"]];
    for s in system.into_iter().filter(|s| !s.is_null()) {
        let mut text = String::new();
        texts(s, &mut text);
        messages.push(json!({"role": "system", "content": text}));
    }
    let turns = request["messages"]
        .as_array()
        .or(request["contents"].as_array());
    for m in turns.into_iter().flatten() {
        let mut text = String::new();
        texts(m, &mut text);
        messages.push(json!({"role": m["role"].as_str().unwrap_or("user"), "content": text}));
    }
    json!({"messages": messages, "tools": request.get("tools").cloned().unwrap_or(Value::Null)})
}

/// The tokens of every text of an answer's content.
fn answer_tokens(content: &Value) -> u64 {
    let mut text = String::new();
    texts(content, &mut text);
    llmcallgateway::tokens::count(text.trim_end())
}

/// Measures the estimate against the providers' own counts in the fixtures (prompt: the
/// request fixtures with their answers; completion: the answers' text). Printed with
/// `--nocapture`; the README quotes the totals. The bounds only catch a broken estimate.
#[test]
fn the_estimate_against_the_providers_counts_in_the_fixtures() {
    use crate::support::client::fixture_json;
    // (provider, request fixture, answer fixture, prompt pointer, completion pointer, content)
    let cases: &[(&str, &str, &str, &str, &str, &str)] = &[
        (
            "anthropic",
            "anthropic/request_plain_chat.json",
            "anthropic/response_plain_chat.json",
            "/usage/input_tokens",
            "/usage/output_tokens",
            "/content",
        ),
        (
            "anthropic",
            "anthropic/request_json_output.json",
            "anthropic/response_json_output.json",
            "/usage/input_tokens",
            "/usage/output_tokens",
            "/content",
        ),
        (
            "anthropic",
            "anthropic/request_stop_sequence.json",
            "anthropic/response_stop_sequence.json",
            "/usage/input_tokens",
            "/usage/output_tokens",
            "/content",
        ),
        (
            "anthropic",
            "anthropic/request_tool_call.json",
            "anthropic/response_tool_call.json",
            "/usage/input_tokens",
            "/usage/output_tokens",
            "/content",
        ),
        (
            "anthropic",
            "anthropic/request_tool_result.json",
            "anthropic/response_tool_result.json",
            "/usage/input_tokens",
            "/usage/output_tokens",
            "/content",
        ),
        (
            "gemini",
            "gemini/plain_chat.request.json",
            "gemini/plain_chat.response.json",
            "/usageMetadata/promptTokenCount",
            "/usageMetadata/candidatesTokenCount",
            "/candidates/0/content/parts",
        ),
        (
            "gemini",
            "gemini/json_output.request.json",
            "gemini/json_output.response.json",
            "/usageMetadata/promptTokenCount",
            "/usageMetadata/candidatesTokenCount",
            "/candidates/0/content/parts",
        ),
        (
            "gemini",
            "gemini/stop_sequence.request.json",
            "gemini/stop_sequence.response.json",
            "/usageMetadata/promptTokenCount",
            "/usageMetadata/candidatesTokenCount",
            "/candidates/0/content/parts",
        ),
        (
            "gemini",
            "gemini/tool_call.request.json",
            "gemini/tool_call.response.json",
            "/usageMetadata/promptTokenCount",
            "/usageMetadata/candidatesTokenCount",
            "/candidates/0/content/parts",
        ),
        (
            "cohere",
            "cohere/request_plain_chat.json",
            "cohere/response_plain_chat.json",
            "/usage/billed_units/input_tokens",
            "/usage/billed_units/output_tokens",
            "/message/content",
        ),
        (
            "cohere",
            "cohere/request_json_output.json",
            "cohere/response_json_output.json",
            "/usage/billed_units/input_tokens",
            "/usage/billed_units/output_tokens",
            "/message/content",
        ),
        (
            "cohere",
            "cohere/request_stop_sequence.json",
            "cohere/response_stop_sequence.json",
            "/usage/billed_units/input_tokens",
            "/usage/billed_units/output_tokens",
            "/message/content",
        ),
        (
            "cohere",
            "cohere/request_tool_call.json",
            "cohere/response_tool_call.json",
            "/usage/billed_units/input_tokens",
            "/usage/billed_units/output_tokens",
            "/message",
        ),
        (
            "bedrock",
            "bedrock/request_plain_chat.json",
            "bedrock/response_plain_chat.json",
            "/usage/inputTokens",
            "/usage/outputTokens",
            "/output/message/content",
        ),
        (
            "bedrock",
            "bedrock/request_system_prompt.json",
            "bedrock/response_plain_chat.json",
            "",
            "",
            "",
        ),
        (
            "bedrock",
            "bedrock/request_tool_call.json",
            "bedrock/response_tool_call.json",
            "/usage/inputTokens",
            "/usage/outputTokens",
            "/output/message/content",
        ),
        (
            "bedrock",
            "bedrock/request_tool_result.json",
            "bedrock/response_tool_result.json",
            "/usage/inputTokens",
            "/usage/outputTokens",
            "/output/message/content",
        ),
        (
            "openai",
            "",
            "openai/chat_completion.json",
            "",
            "/usage/completion_tokens",
            "/choices/0/message/content",
        ),
        (
            "openai",
            "",
            "openai/chat_completion_tool_call.json",
            "",
            "/usage/completion_tokens",
            "/choices/0/message/tool_calls",
        ),
    ];
    // [all, plain text only]: (prompt error, prompt count, completion error, completion count)
    let mut sums = [[0u64; 4]; 2];
    for &(provider, request, answer, prompt_at, completion_at, content_at) in cases {
        if completion_at.is_empty() {
            continue;
        }
        let answer = fixture_json(answer);
        let real = answer
            .pointer(completion_at)
            .and_then(Value::as_u64)
            .unwrap();
        let estimate = answer_tokens(answer.pointer(content_at).unwrap());
        // Tools and JSON output add the provider's own hidden prompt (and wrapping), which
        // no client-side count can see; plain text is what the estimate can get right.
        let plain = request.contains("plain_chat") || request.contains("stop_sequence");
        let slots: &[usize] = if plain { &[0, 1] } else { &[0] };
        for &k in slots {
            sums[k][2] += estimate.abs_diff(real);
            sums[k][3] += real;
        }
        let mut line = format!("{provider:9} completion {estimate:4} vs {real:4}");
        if !request.is_empty() {
            let real = answer.pointer(prompt_at).and_then(Value::as_u64).unwrap();
            let body = as_openai(&fixture_json(request));
            let estimate = llmcallgateway::tokens::estimate(body.as_object().unwrap());
            for &k in slots {
                sums[k][0] += estimate.abs_diff(real);
                sums[k][1] += real;
            }
            line += &format!("   prompt {estimate:4} vs {real:4}   ({request})");
        }
        println!("{line}");
    }
    let ratio = |s: [u64; 4]| (s[0] as f64 / s[1] as f64, s[2] as f64 / s[3] as f64);
    for (label, s) in [("all", sums[0]), ("plain text", sums[1])] {
        let (prompt, completion) = ratio(s);
        println!(
            "{label}: summed |estimate − count| / summed count: prompt {:.0}% of {}, completion {:.0}% of {}",
            prompt * 100.0, s[1], completion * 100.0, s[3]
        );
    }
    let (prompt, completion) = ratio(sums[1]);
    assert!(prompt < 1.0 && completion < 0.25, "{prompt} {completion}");
}

/// A client that leaves mid-stream, before any usage came: billed for what was relayed, by the
/// estimate, and recorded as `client_closed`.
#[test]
fn a_client_that_leaves_mid_stream_is_billed_by_the_estimate() {
    use crate::support::client::Conn;
    let mut steps = vec![chunk(
        json!({"role": "assistant", "content": "Hello, world!"}),
        Value::Null,
    )];
    for _ in 0..50 {
        steps.push(Step::Pause(Duration::from_millis(100)));
        steps.push(chunk(json!({"content": " more"}), Value::Null));
    }
    let upstream = MockUpstream::always(Script::sse(steps));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let mut conn = Conn::open(gw.addr);
    conn.post_json("/v1/chat/completions", &chat(true, true));
    let head = conn.read_head();
    assert_eq!(head.status, 200);
    let mut sse = conn.sse();
    assert!(sse.next_event().is_some());
    sse.into_conn().close();
    let mut totals = Value::Null;
    wait_until(Duration::from_secs(10), || {
        totals = get(gw.addr, "/metrics").json()["totals"].clone();
        totals["requests"] == 1
    });
    assert_eq!(totals["client_closed"], 1, "{totals}");
    let dir = gw.stop_keeping_logs();
    let line = interaction_lines(&dir)[0].clone();
    let _ = fs::remove_dir_all(dir);
    assert_eq!(line["status"], "client_closed", "{line}");
    assert_eq!(line["usage_source"], "estimated", "{line}");
    assert_eq!(line["usage"]["prompt_tokens"], PROMPT, "{line}");
    assert!(
        line["usage"]["completion_tokens"].as_u64() >= Some(4),
        "{line}"
    );
}
