//! Relaying to an OpenAI-compatible provider: JSON answers and SSE streams arrive at the
//! client as the provider sent them; usage is always requested upstream and the usage-only
//! chunk reaches the client only when it asked; events are not held back; unknown request
//! fields ride along; embeddings are relayed for every input form.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::client::{self, fixture_json, post_json, Conn};
use crate::support::gateway::Gateway;
use crate::support::upstream::{fixture_events, Gate, MockUpstream, Script, Step};

fn chat_request(stream: bool) -> Value {
    json!({
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": stream,
    })
}

fn overhead_ms(value: Option<&str>) -> f64 {
    let v = value.expect("x-gateway-overhead-ms present");
    v.parse()
        .unwrap_or_else(|_| panic!("x-gateway-overhead-ms {v:?}"))
}

#[test]
fn chat_completion_is_relayed_byte_for_byte_with_every_field() {
    let upstream = MockUpstream::always(
        Script::fixture(200, "openai/chat_completion.json")
            .with_header("openai-processing-ms", "321")
            .with_header("x-ratelimit-remaining-requests", "499"),
    );
    let gw = Gateway::in_front_of(&upstream, &[]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat_request(false));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.text(),
        client::fixture("openai/chat_completion.json"),
        "the provider's JSON is relayed unchanged"
    );
    let body = reply.json();
    let expected = fixture_json("openai/chat_completion.json");
    for key in [
        "id",
        "model",
        "choices",
        "usage",
        "system_fingerprint",
        "service_tier",
    ] {
        assert_eq!(body[key], expected[key], "{key}");
    }
    assert!(overhead_ms(reply.header("x-gateway-overhead-ms")) >= 0.0);
    assert_eq!(reply.header("openai-processing-ms"), Some("321"));
    assert_eq!(reply.header("x-ratelimit-remaining-requests"), Some("499"));

    let sent = upstream.only_request();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer sk-test-fake-key")
    );
    let sent = sent.json();
    assert_eq!(
        sent["model"], "gpt-4o-mini",
        "the openai/ prefix is dropped"
    );
    assert_eq!(sent["messages"], chat_request(false)["messages"]);
    assert!(
        sent.get("stream_options").is_none(),
        "non-stream requests are not given stream_options: {sent}"
    );
}

#[test]
fn streamed_chunks_are_relayed_faithfully_and_the_unrequested_usage_chunk_is_dropped() {
    let upstream = MockUpstream::always(Script::sse_fixture("openai/chat_completion_stream.sse"));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat_request(true));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream")));
    assert!(overhead_ms(reply.header("x-gateway-overhead-ms")) >= 0.0);

    let upstream_events = fixture_events("openai/chat_completion_stream.sse");
    let expected: Vec<&String> = upstream_events
        .iter()
        .filter(|e| !e.contains("\"choices\":[]"))
        .collect();
    let got = reply.events();
    assert_eq!(got.iter().collect::<Vec<_>>(), expected);
    assert_eq!(got.last().map(String::as_str), Some("[DONE]"));
    let first: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(first["system_fingerprint"], "fp_44709d6fcb");
    assert_eq!(first["service_tier"], "default");
    assert_eq!(first["obfuscation"], "r4N7vQ2m");

    let sent = upstream.only_request().json();
    assert_eq!(sent["stream"], true);
    assert_eq!(
        sent["stream_options"]["include_usage"], true,
        "usage is always requested upstream"
    );
    assert_eq!(
        upstream.only_request().header("accept"),
        Some("text/event-stream")
    );
}

#[test]
fn usage_only_chunk_reaches_the_client_that_asked_for_it() {
    let upstream = MockUpstream::always(Script::sse_fixture("openai/chat_completion_stream.sse"));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let mut request = chat_request(true);
    request["stream_options"] = json!({"include_usage": true});
    let reply = post_json(gw.addr, "/chat/completions", &request);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.events(),
        fixture_events("openai/chat_completion_stream.sse")
    );
    let usage_chunk: Value = serde_json::from_str(&reply.events()[4]).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["total_tokens"], 12);
    assert_eq!(
        upstream.only_request().json()["stream_options"],
        json!({"include_usage": true})
    );
}

#[test]
fn client_reads_the_first_event_while_the_provider_still_holds_the_second() {
    let events = fixture_events("openai/chat_completion_stream.sse");
    let gate = Gate::new();
    let mut steps = vec![Step::Event(events[0].clone()), gate.step()];
    steps.extend(events[1..].iter().cloned().map(Step::Event));
    let upstream = MockUpstream::always(Script::sse(steps));
    // An idle timeout longer than the client's read timeout: a gateway that held event 1
    // back until event 2 came would fail the read below, not cut the stream first.
    let gw = Gateway::in_front_of(&upstream, &[("STREAM_IDLE_TIMEOUT", "30")]);

    let mut conn = Conn::open(gw.addr);
    conn.post_json("/v1/chat/completions", &chat_request(true));
    let head = conn.read_head();
    assert_eq!(head.status, 200);
    let mut sse = conn.sse();
    // The provider is still holding event 2 behind the gate: event 1 must already be here.
    let first = sse.next_event().expect("event 1 before the gate opens");
    assert_eq!(first, events[0]);
    assert_eq!(upstream.completed_streams(), 0, "the gate is still closed");
    gate.open();
    let rest = sse.rest();
    assert_eq!(rest.first(), Some(&events[1]));
    assert_eq!(rest.last().map(String::as_str), Some("[DONE]"));
}

#[test]
fn unknown_request_fields_reach_the_provider_untouched() {
    let upstream = MockUpstream::always(Script::sse_fixture("openai/chat_completion_stream.sse"));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let made_up = json!({"level": [1, 2.5, "three", null, {"deep": true}], "note": "ünïcødé"});
    let mut request = chat_request(true);
    request["x_made_up_field"] = made_up.clone();
    request["temperature"] = json!(0.25);
    request["stream_options"] = json!({"include_obfuscation": false});
    request["messages"] = json!([
        {"role": "system", "content": "Be brief.", "name": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}], "x_part_extra": 7}
    ]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &request);
    assert_eq!(reply.status, 200, "{}", reply.text());

    let sent = upstream.only_request().json();
    assert_eq!(sent["x_made_up_field"], made_up);
    assert_eq!(sent["temperature"], json!(0.25));
    assert_eq!(sent["messages"], request["messages"]);
    assert_eq!(
        sent["stream_options"],
        json!({"include_obfuscation": false, "include_usage": true}),
        "the client's other stream options are kept"
    );
    let mut expected = request.as_object().unwrap().clone();
    expected.insert("model".into(), json!("gpt-4o-mini"));
    expected.insert("stream_options".into(), sent["stream_options"].clone());
    assert_eq!(sent, Value::Object(expected), "nothing else was changed");
}

#[test]
fn stream_that_ends_without_done_after_a_finish_reason_is_completed_with_done() {
    let events: Vec<String> = fixture_events("openai/chat_completion_stream.sse")
        .into_iter()
        .filter(|e| e != "[DONE]")
        .collect();
    let upstream = MockUpstream::always(Script::sse(
        events.iter().cloned().map(Step::Event).collect(),
    ));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat_request(true));
    let got = reply.events();
    assert_eq!(got.last().map(String::as_str), Some("[DONE]"), "{got:?}");
    assert_eq!(got.len(), events.len(), "4 chunks (usage dropped) + [DONE]");
}

#[test]
fn events_split_across_reads_crlf_lines_and_comments_are_relayed_as_whole_events() {
    let events = fixture_events("openai/chat_completion_stream.sse");
    let (head, tail) = events[1].split_at(40);
    let upstream = MockUpstream::always(Script::sse(vec![
        Step::Raw(": keep-alive comment\n\n".into()),
        Step::Event(events[0].clone()),
        Step::Raw(format!("data: {head}")),
        Step::Pause(Duration::from_millis(100)),
        Step::Raw(format!("{tail}\r\n\r\n")),
        Step::Raw(format!("data: {}\r\n\r\ndata: [DONE]\r\n\r\n", events[3])),
    ]));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat_request(true));
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.events(),
        vec![
            events[0].clone(),
            events[1].clone(),
            events[3].clone(),
            "[DONE]".into()
        ]
    );
    assert!(!reply.text().contains("keep-alive comment"));
}

#[test]
fn embeddings_are_relayed_for_strings_arrays_and_token_arrays() {
    let upstream = MockUpstream::always(
        Script::fixture(200, "openai/embeddings.json")
            .with_header("x-ratelimit-remaining-tokens", "9990"),
    );
    let gw = Gateway::in_front_of(&upstream, &[]);
    let inputs = [
        json!("The food was delicious and the waiter..."),
        json!(["first text", "second text"]),
        json!([1212, 318, 257, 1332]),
        json!([[1212, 318], [257, 1332, 13]]),
    ];
    for (i, input) in inputs.iter().enumerate() {
        let request = json!({
            "model": "text-embedding-3-small",
            "input": input,
            "encoding_format": "float",
            "x_custom": i,
        });
        let path = if i % 2 == 0 {
            "/v1/embeddings"
        } else {
            "/embeddings"
        };
        let reply = post_json(gw.addr, path, &request);
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), client::fixture("openai/embeddings.json"));
        assert_eq!(reply.header("x-ratelimit-remaining-tokens"), Some("9990"));
        assert!(overhead_ms(reply.header("x-gateway-overhead-ms")) >= 0.0);
        let sent = upstream.requests()[i].clone();
        assert_eq!(sent.path, "/v1/embeddings");
        assert_eq!(sent.json(), request, "input form {i} relayed as received");
    }
}

#[test]
fn routes_answer_with_and_without_the_v1_prefix() {
    let upstream = MockUpstream::always(Script::fixture(200, "openai/chat_completion.json"));
    let gw = Gateway::in_front_of(&upstream, &[]);
    for path in ["/v1/chat/completions", "/chat/completions"] {
        let reply = post_json(gw.addr, path, &chat_request(false));
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    for path in ["/v1/models", "/models", "/v1/health", "/health"] {
        let reply = client::get(gw.addr, path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    for path in ["/v1/models/mock%2Fecho", "/models/mock%2Fecho"] {
        let reply = client::get(gw.addr, path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert_eq!(reply.json()["id"], "mock/echo");
    }
    // The model listing asks the upstream for its models too (GET).
    let posts = upstream
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 2);
}

#[test]
fn a_second_request_on_a_kept_alive_connection_is_answered_too() {
    let upstream = MockUpstream::always(Script::sse_fixture("openai/chat_completion_stream.sse"));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let mut conn = Conn::open(gw.addr);
    let body = chat_request(true).to_string();
    for round in 0..2 {
        // Keep-alive: no `connection: close`, so write the request by hand.
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        std::io::Write::write_all(&mut conn.stream(), head.as_bytes()).unwrap();
        let reply = conn.read_reply();
        assert_eq!(reply.status, 200, "round {round}");
        assert_eq!(reply.events().last().map(String::as_str), Some("[DONE]"));
    }
    assert!(client::wait_until(Duration::from_secs(5), || upstream
        .requests()
        .len()
        == 2));
}

#[test]
fn the_provider_gets_the_gateways_key_never_the_clients() {
    let upstream = MockUpstream::always(Script::fixture(200, "openai/chat_completion.json"));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let body = chat_request(false).to_string();
    let reply = client::send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer sk-client-own-key"),
        ],
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200);
    let sent = upstream.only_request();
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer sk-test-fake-key")
    );
    assert!(!format!("{sent:?}").contains("sk-client-own-key"));

    // No key configured: no authorization header at all.
    let upstream = MockUpstream::always(Script::fixture(200, "openai/chat_completion.json"));
    let base = upstream.base_url();
    let gw = Gateway::start(&[("LITELLM_BASE_URL", base.as_str())]);
    assert_eq!(
        post_json(gw.addr, "/v1/chat/completions", &chat_request(false)).status,
        200
    );
    assert_eq!(upstream.only_request().header("authorization"), None);
}

/// Some servers leave `index` out of tool-call deltas. The client gets each such delta with the
/// index the interactions log gives its call (a new id starts the next call), so what an SDK
/// reassembles is what the log shows.
#[test]
fn tool_call_deltas_without_an_index_reach_the_client_indexed_as_logged() {
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    let upstream = MockUpstream::always(Script::sse(vec![
        Step::Event(chunk(
            json!({"role": "assistant", "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "one", "arguments": "{\"x\""}}]}),
            None,
        )),
        Step::Event(chunk(
            json!({"tool_calls": [{"function": {"arguments": ":1}"}}]}),
            None,
        )),
        Step::Event(chunk(
            json!({"tool_calls": [{"id": "call_b", "type": "function", "function": {"name": "two", "arguments": "{}"}}]}),
            None,
        )),
        Step::Event(chunk(json!({}), Some("tool_calls"))),
        Step::Event("[DONE]".into()),
    ]));
    let dir = crate::support::gateway::temp_dir("unindexed");
    let dir_text = dir.display().to_string();
    let gw = Gateway::in_front_of(&upstream, &[("LOG_DIR", dir_text.as_str())]);
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let reply = post_json(gw.addr, "/v1/chat/completions", &body);
    assert_eq!(reply.status, 200);
    // Reassemble as an SDK does: by index.
    let mut calls: std::collections::BTreeMap<u64, (String, String, String)> = Default::default();
    for event in reply.events() {
        let Ok(v) = serde_json::from_str::<Value>(&event) else {
            continue;
        };
        for call in v["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = call["index"]
                .as_u64()
                .expect("every tool-call delta has an index");
            let entry = calls.entry(index).or_default();
            if let Some(id) = call["id"].as_str() {
                entry.0 = id.to_string();
            }
            entry
                .1
                .push_str(call["function"]["name"].as_str().unwrap_or_default());
            entry
                .2
                .push_str(call["function"]["arguments"].as_str().unwrap_or_default());
        }
    }
    let dir = gw.stop_keeping_logs();
    let line = crate::support::logs::interaction_lines(&dir)
        .into_iter()
        .find(|l| l["route"] == "/v1/chat/completions")
        .expect("the call's line");
    let logged = line["downstream_response"]["choices"][0]["message"]["tool_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(logged.len(), 2, "{logged:?}");
    for (index, (id, name, arguments)) in &calls {
        let log = &logged[*index as usize];
        assert_eq!(log["id"], id.as_str());
        assert_eq!(log["function"]["name"], name.as_str());
        assert_eq!(log["function"]["arguments"], arguments.as_str());
    }
    assert_eq!(calls[&0].2, "{\"x\":1}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A stream the relay loop carries (issue 18) is framed for its client: an HTTP/1.0 client
/// gets the raw events and the connection closed at the end; an HTTP/1.1 client's connection
/// serves its next request after the stream.
#[test]
fn relayed_streams_are_framed_for_http10_and_keep_an_http11_connection_alive() {
    use std::io::{Read, Write};
    let upstream = MockUpstream::always(Script::sse_fixture("openai/chat_completion_stream.sse"));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let post = |version: &str, stream: bool| {
        let body = chat_request(stream).to_string();
        format!(
            "POST /v1/chat/completions HTTP/{version}\r\nhost: gateway.test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut old = std::net::TcpStream::connect(gw.addr).unwrap();
    old.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    old.write_all(post("1.0", true).as_bytes()).unwrap();
    let mut raw = String::new();
    old.read_to_string(&mut raw)
        .expect("the whole answer, then the connection closed");
    let (head, events) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    let got = client::split_events(events);
    assert_eq!(got.last().map(String::as_str), Some("[DONE]"), "{events}");
    assert_eq!(
        got.len(),
        fixture_events("openai/chat_completion_stream.sse").len() - 1,
        "every event but the unrequested usage chunk"
    );

    let mut conn = crate::support::raw::Client::connect(gw.addr);
    conn.read_timeout(Duration::from_secs(5));
    conn.send(post("1.1", true));
    assert_eq!(conn.read_stream_head().unwrap().status, 200);
    let mut body = Vec::new();
    while let Some(chunk) = conn.read_chunk().expect("a chunk") {
        body.extend(chunk);
    }
    let events = client::split_events(&String::from_utf8(body).unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    // The same connection serves the next request (the provider answers every call with the
    // stream).
    conn.send(post("1.1", true));
    assert_eq!(conn.read_stream_head().unwrap().status, 200);
    while conn.read_chunk().expect("a chunk").is_some() {}
    assert_eq!(upstream.requests().len(), 3);
}
