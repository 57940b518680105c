//! Anthropic's Messages API on the gateway (issue 14), over real sockets: the built-in models
//! and an OpenAI-compatible provider through the translation, Anthropic itself through the
//! byte-for-byte passthrough, `count_tokens`, Anthropic-shaped model lists, and one
//! interaction line per call. Every answer and stream event is checked against the shapes of
//! Anthropic's API reference ([`assert_message`], [`assert_event_sequence`]).

use std::fs;

use serde_json::{json, Value};

use crate::support::client::{fixture, fixture_json, get, send, wait_until, Reply};
use crate::support::gateway::Gateway;
use crate::support::logs::interaction_lines;
use crate::support::upstream::{MockUpstream, Recorded, Script, Step};

const VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");
const CLIENT_KEY: &str = "sk-ant-client-fake-key";

/// A Messages call as the Anthropic SDKs make it (the client's own key in `x-api-key`).
fn messages(addr: std::net::SocketAddr, path: &str, body: &Value) -> Reply {
    let headers = [
        ("content-type", "application/json"),
        VERSION,
        ("x-api-key", CLIENT_KEY),
    ];
    send(addr, "POST", path, &headers, body.to_string().as_bytes())
}

/// A Messages answer as Anthropic documents it.
fn assert_message(m: &Value) {
    assert_eq!(m["type"], "message", "{m}");
    assert_eq!(m["role"], "assistant");
    assert!(
        m["id"].as_str().is_some_and(|id| id.starts_with("msg_")),
        "{m}"
    );
    assert!(m["model"].is_string());
    let stop = m["stop_reason"].as_str().unwrap_or_default();
    let stops = [
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
    ];
    assert!(stops.contains(&stop), "stop_reason {stop}");
    assert!(m.get("stop_sequence").is_some());
    assert!(m["usage"]["input_tokens"].is_u64() && m["usage"]["output_tokens"].is_u64());
    for block in m["content"].as_array().expect("content is a list") {
        match block["type"].as_str() {
            Some("text") => assert!(block["text"].is_string()),
            Some("thinking") => {
                assert!(block["thinking"].is_string() && block["signature"].is_string())
            }
            Some("tool_use") => {
                assert!(block["id"].is_string() && block["name"].is_string());
                assert!(block["input"].is_object(), "{block}");
            }
            other => panic!("unexpected block {other:?}"),
        }
    }
}

/// The named events of an Anthropic stream: (event name, data), the name equal to the type.
fn named_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = None;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(d).unwrap());
                }
            }
            let (name, data) = (name.expect("a named event"), data.expect("with data"));
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

/// A complete stream in the documented order: `message_start`; blocks started, given deltas
/// of their own kind and stopped, one at a time; `message_delta` with the stop reason and
/// output usage; `message_stop`. `ping` anywhere.
fn assert_event_sequence(events: &[(String, Value)]) {
    let names: Vec<&str> = events
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n != "ping")
        .collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
    assert_eq!(names[names.len() - 2], "message_delta");
    let mut open: Option<(u64, String)> = None;
    for (name, data) in events {
        match name.as_str() {
            "message_start" => {
                let m = &data["message"];
                assert_eq!(
                    (m["type"].as_str(), m["role"].as_str()),
                    (Some("message"), Some("assistant"))
                );
                assert_eq!(m["content"], json!([]));
                assert!(m["usage"]["input_tokens"].is_u64());
            }
            "content_block_start" => {
                assert!(open.is_none(), "a block starts while another is open");
                let kind = data["content_block"]["type"].as_str().unwrap().to_string();
                open = Some((data["index"].as_u64().unwrap(), kind));
            }
            "content_block_delta" => {
                let (index, kind) = open.as_ref().expect("a delta inside a block");
                assert_eq!(data["index"].as_u64(), Some(*index));
                let expected = match kind.as_str() {
                    "text" => "text_delta",
                    "tool_use" => "input_json_delta",
                    "thinking" => "thinking_delta",
                    other => panic!("block {other}"),
                };
                assert_eq!(data["delta"]["type"], expected);
            }
            "content_block_stop" => {
                let (index, _) = open.take().expect("a stop closes a block");
                assert_eq!(data["index"].as_u64(), Some(index));
            }
            "message_delta" => {
                assert!(data["delta"]["stop_reason"].is_string());
                assert!(data["usage"]["output_tokens"].is_u64());
            }
            "message_stop" | "ping" => {}
            other => panic!("unexpected event {other}"),
        }
    }
}

/// The text a stream's `text_delta`s add up to, and its `input_json_delta`s.
fn streamed(events: &[(String, Value)], delta: &str, field: &str) -> String {
    events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == delta)
        .map(|(_, d)| d["delta"][field].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_mock_model_answers_in_the_messages_shape_streamed_or_not() {
    let gw = Gateway::start(&[]);
    let body = json!({"model": "mock/echo", "max_tokens": 64,
        "system": "Be brief.", "messages": [{"role": "user", "content": "hello there"}]});
    let reply = messages(gw.addr, "/v1/messages", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let m = reply.json();
    assert_message(&m);
    assert_eq!(
        m["content"],
        json!([{"type": "text", "text": "hello there"}])
    );
    assert_eq!(m["stop_reason"], "end_turn");

    let mut body = body;
    body["stream"] = json!(true);
    let reply = messages(gw.addr, "/messages", &body);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let events = named_events(&reply.text());
    assert_event_sequence(&events);
    assert_eq!(streamed(&events, "text_delta", "text"), "hello there");
    let delta = &events.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn requests_anthropic_rejects_are_refused_in_its_error_shape() {
    let gw = Gateway::start(&[]);
    let no_max = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]});
    let reply = messages(gw.addr, "/v1/messages", &no_max);
    assert_eq!(reply.status, 400);
    let e = reply.json();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_tokens"));
    let unknown =
        json!({"model": "nope/x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    let reply = messages(gw.addr, "/v1/messages", &unknown);
    assert_eq!(
        (reply.status, reply.json()["error"]["type"].clone()),
        (404, json!("not_found_error"))
    );
    let server_tool = json!({"model": "mock/echo", "max_tokens": 5,
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "messages": [{"role": "user", "content": "x"}]});
    let reply = messages(gw.addr, "/v1/messages", &server_tool);
    assert_eq!(reply.status, 400);
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("web_search_20250305"));
}

/// An OpenAI-compatible provider answering with a streamed tool call, or a plain completion.
fn openai_provider() -> MockUpstream {
    MockUpstream::start(|r: &Recorded| {
        if r.json()["stream"] == true {
            Script::sse_fixture("openai/chat_completion_tool_call_stream.sse")
        } else {
            Script::fixture(200, "openai/chat_completion_tool_call.json")
        }
    })
}

#[test]
fn another_provider_is_reached_through_the_internal_request_and_answers_in_messages_shape() {
    let provider = openai_provider();
    let gw = Gateway::in_front_of(&provider, &[]);
    let body = json!({
        "model": "gpt-4o-mini", "max_tokens": 200, "stream": true,
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "get_current_weather", "description": "Weather",
                   "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}],
        "tool_choice": {"type": "any"},
        "messages": [
            {"role": "user", "content": "Weather in Boston?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_current_weather", "input": {"location": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "failed", "is_error": true},
                                          {"type": "text", "text": "And Boston?"}]},
        ],
    });
    let reply = messages(gw.addr, "/v1/messages", &body);
    let events = named_events(&reply.text());
    assert_event_sequence(&events);
    let start = events
        .iter()
        .find(|(n, _)| n == "content_block_start")
        .unwrap();
    assert_eq!(start.1["content_block"]["type"], "tool_use");
    let input = streamed(&events, "input_json_delta", "partial_json");
    assert!(
        serde_json::from_str::<Value>(&input).unwrap().is_object(),
        "{input}"
    );
    let delta = &events.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");

    let sent = provider.only_request();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer sk-test-fake-key")
    );
    assert!(
        sent.headers.iter().all(|(_, v)| !v.contains(CLIENT_KEY)),
        "the client's key stays home"
    );
    let sent = sent.json();
    assert_eq!(sent["tool_choice"], "required");
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": [{"type": "text", "text": "You are terse."}]})
    );
    assert_eq!(
        sent["messages"][2]["tool_calls"][0]["function"]["name"],
        "get_current_weather"
    );
    assert_eq!(
        sent["messages"][3],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "Error: failed"})
    );

    let mut body = body;
    body["stream"] = json!(false);
    let m = messages(gw.addr, "/v1/messages", &body).json();
    assert_message(&m);
    assert_eq!(
        m["content"][0]["input"],
        json!({"location": "Boston, MA", "unit": "celsius"})
    );
}

/// Anthropic itself, answering with its documented bodies and streams.
fn anthropic_provider() -> MockUpstream {
    MockUpstream::start(|r: &Recorded| {
        let body = r.json();
        if r.path.ends_with("/count_tokens") {
            return Script::fixture(200, "anthropic_ingress/count_tokens_response.json");
        }
        if body["max_tokens"] == 1 {
            return Script::fixture(429, "anthropic/error_429.json")
                .with_header("retry-after", "7");
        }
        if body["stream"] == true {
            let steps = fixture("anthropic/stream_tool_call.sse")
                .split_inclusive("\n\n")
                .map(|e| Step::Raw(e.to_string()))
                .collect();
            return Script::sse(steps).with_header("request-id", "req_fake_1");
        }
        Script::fixture(200, "anthropic/response_plain_chat.json")
    })
}

#[test]
fn anthropic_gets_the_clients_body_and_its_answers_come_back_byte_for_byte() {
    let provider = anthropic_provider();
    let gw = Gateway::start(&[
        (
            "ANTHROPIC_API_BASE",
            &format!(
                "http://{}",
                provider
                    .base_url()
                    .trim_start_matches("http://")
                    .trim_end_matches("/v1")
            ),
        ),
        ("ANTHROPIC_API_KEY", "sk-ant-gateway-fake"),
    ]);
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "Weather?"}], "container": "kept-as-is"});
    let raw = body.to_string();
    let headers = [
        ("content-type", "application/json"),
        VERSION,
        ("anthropic-beta", "fine-grained-tool-streaming-2025-05-14"),
        ("authorization", "Bearer sk-ant-client-fake-key"),
    ];
    let reply = send(gw.addr, "POST", "/v1/messages", &headers, raw.as_bytes());
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.text(),
        fixture("anthropic/stream_tool_call.sse"),
        "relayed byte for byte"
    );
    assert_eq!(reply.header("request-id"), Some("req_fake_1"));
    assert_event_sequence(&named_events(&reply.text()));

    let sent = provider.only_request();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.body, raw.as_bytes(), "the body went untouched");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-gateway-fake"));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        sent.header("anthropic-beta"),
        Some("fine-grained-tool-streaming-2025-05-14")
    );

    let plain = json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hello"}]});
    let reply = messages(gw.addr, "/v1/messages", &plain);
    assert_eq!(
        reply.body,
        fixture("anthropic/response_plain_chat.json").as_bytes()
    );
    assert_eq!(provider.requests()[1].json()["model"], "claude-sonnet-4-5");

    let mut limited = plain.clone();
    limited["max_tokens"] = json!(1);
    let reply = messages(gw.addr, "/v1/messages", &limited);
    assert_eq!(
        (reply.status, reply.header("retry-after")),
        (429, Some("7"))
    );
    assert_eq!(reply.body, fixture("anthropic/error_429.json").as_bytes());

    let count = messages(gw.addr, "/v1/messages/count_tokens", &plain);
    assert_eq!(
        count.json(),
        fixture_json("anthropic_ingress/count_tokens_response.json")
    );
    assert_eq!(
        count.header("x-gateway-usage"),
        None,
        "Anthropic's own count"
    );
    assert!(provider.requests()[3]
        .path
        .ends_with("/v1/messages/count_tokens"));

    let log_dir = gw.stop_keeping_logs();
    let lines = interaction_lines(&log_dir);
    let _ = fs::remove_dir_all(&log_dir);
    assert_eq!(lines.len(), 4, "one line per call");
    assert!(lines
        .iter()
        .all(|l| l["route"].as_str().unwrap().starts_with("/v1/messages")));
    let stream = &lines[0];
    assert_eq!(stream["provider"], "anthropic");
    assert_eq!(stream["usage"]["completion_tokens"], 58, "{stream}");
    assert!(stream["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(lines[1]["usage"]["prompt_tokens"], 12);
    assert_eq!(lines[2]["http_status"], 429);
    let text = lines.iter().map(Value::to_string).collect::<String>();
    assert!(
        !text.contains(CLIENT_KEY) && !text.contains("sk-ant-gateway-fake"),
        "no key is logged"
    );
}

#[test]
fn count_tokens_for_other_models_is_an_estimate_flagged_as_such() {
    let gw = Gateway::start(&[]);
    let body =
        json!({"model": "mock/echo", "messages": [{"role": "user", "content": "Hello, world!"}]});
    let reply = messages(gw.addr, "/v1/messages/count_tokens", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-gateway-usage"), Some("estimated"));
    assert_eq!(reply.json(), json!({"input_tokens": 11}));
}

/// A message of a million spaces overflowed the token counter's pattern matcher, which
/// `tiktoken-rs` turned into a panic: a 500 where the client asked for a count.
#[test]
fn count_tokens_of_a_million_spaces_is_a_count_not_a_500() {
    let gw = Gateway::start(&[]);
    let content = format!("{}x", " ".repeat(1_000_000));
    let body = json!({"model": "mock/echo", "messages": [{"role": "user", "content": content}]});
    let reply = messages(gw.addr, "/v1/messages/count_tokens", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    // 7,814 for the text (as tiktoken counts a million spaces and a line break), 1 for the
    // role, 3 for the message, 3 for the reply.
    assert_eq!(reply.json(), json!({"input_tokens": 7_814 + 1 + 3 + 3}));
}

#[test]
fn model_lists_take_anthropics_shape_when_the_client_speaks_anthropic() {
    let gw = Gateway::start(&[]);
    let reply = send(gw.addr, "GET", "/v1/models", &[VERSION], b"");
    let list = reply.json();
    assert_eq!(list["has_more"], false);
    let data = list["data"].as_array().unwrap();
    assert_eq!(list["first_id"], data[0]["id"]);
    assert_eq!(list["last_id"], data[data.len() - 1]["id"]);
    for m in data {
        assert_eq!(m["type"], "model");
        assert!(m["display_name"].is_string());
        assert!(m["created_at"].as_str().unwrap().ends_with('Z'), "{m}");
    }
    let one = send(gw.addr, "GET", "/v1/models/mock%2Fecho", &[VERSION], b"").json();
    assert_eq!(
        (one["type"].clone(), one["id"].clone()),
        (json!("model"), json!("mock/echo"))
    );
    assert_eq!(
        get(gw.addr, "/v1/models").json()["object"],
        "list",
        "OpenAI clients keep theirs"
    );
}

#[test]
fn messages_calls_are_counted_in_the_metrics() {
    let gw = Gateway::start(&[]);
    let body = json!({"model": "mock/echo", "max_tokens": 8, "messages": [{"role": "user", "content": "a b c"}]});
    for _ in 0..3 {
        assert_eq!(messages(gw.addr, "/v1/messages", &body).status, 200);
    }
    let counted = wait_until(std::time::Duration::from_secs(5), || {
        get(gw.addr, "/metrics").json()["totals"]["requests"] == 3
    });
    assert!(counted, "{}", get(gw.addr, "/metrics").text());
    assert_eq!(
        get(gw.addr, "/metrics").json()["providers"]["mock"]["requests"],
        3
    );
}
