//! `POST /v1/responses` and the stored responses, over real sockets: translated for the mock
//! models and for Anthropic (from its fixtures), relayed as it came to an OpenAI upstream that
//! serves the Responses API, continued with `previous_response_id` on another gateway that
//! shares a real Redis, and refused in OpenAI's error shape where a model cannot honour it.

use serde_json::{json, Value};

use crate::support::client::{self, assert_error, fixture, get, post_json, send};
use crate::support::gateway::Gateway;
use crate::support::logs::interaction_lines;
use crate::support::redis::RedisServer;
use crate::support::upstream::{MockUpstream, Script, Step};

/// The data of each event, parsed.
fn events(reply: &client::Reply) -> Vec<Value> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply
        .events()
        .iter()
        .map(|e| serde_json::from_str(e).unwrap_or_else(|_| panic!("not JSON: {e}")))
        .collect()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[test]
fn a_mock_model_answers_a_response_object_recorded_once_with_its_usage() {
    let gw = Gateway::start(&[]);
    let request = json!({"model": "mock/echo", "input": "hello responses", "instructions": "x"});
    let reply = post_json(gw.addr, "/v1/responses", &request);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert!(body["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["instructions"], "x");
    assert_eq!(body["output"][0]["content"][0]["text"], "hello responses");
    assert_eq!(body["usage"]["output_tokens"], 2);
    let dir = gw.stop_keeping_logs();
    let lines = interaction_lines(&dir);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["route"], "/v1/responses");
    assert_eq!(lines[0]["usage"]["completion_tokens"], 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_anthropic_stream_becomes_numbered_responses_events_with_reasoning_and_usage() {
    let text = fixture("anthropic/stream_text.sse");
    let upstream = MockUpstream::always(Script::sse(
        text.split("\n\n")
            .filter(|b| !b.trim().is_empty())
            .map(|b| Step::Raw(format!("{b}\n\n")))
            .collect(),
    ));
    let base = upstream.base_url();
    let root = base.strip_suffix("/v1").unwrap();
    let gw = Gateway::start(&[
        ("ANTHROPIC_API_BASE", root),
        ("ANTHROPIC_API_KEY", "sk-ant-test-fake-key"),
    ]);
    let request = json!({"model": "anthropic/claude-sonnet-4-5", "input": "hi", "stream": true});
    let events = events(&post_json(gw.addr, "/v1/responses", &request));
    let kinds = kinds(&events);
    assert_eq!(kinds[..2], ["response.created", "response.in_progress"]);
    assert!(
        kinds.contains(&"response.reasoning_summary_text.delta"),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"response.output_text.delta"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"response.completed"));
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i, "{e}");
    }
    let done = &events.last().unwrap()["response"];
    assert_eq!(done["output"][0]["type"], "reasoning");
    assert_eq!(done["output"][1]["type"], "message");
    assert!(done["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let sent = upstream.only_request();
    assert_eq!(sent.path, "/v1/messages");
}

#[test]
fn an_openai_upstream_that_serves_responses_gets_the_body_and_is_relayed_as_it_came() {
    let upstream = MockUpstream::start(|r| {
        if r.json()["stream"] == true {
            Script::sse(
                fixture("openai/responses_stream.sse")
                    .split("\n\n")
                    .filter(|b| !b.trim().is_empty())
                    .map(|b| Step::Raw(format!("{b}\n\n")))
                    .collect(),
            )
        } else {
            Script::fixture(200, "openai/responses_create.json")
        }
    });
    let gw = Gateway::in_front_of(&upstream, &[("OPENAI_RESPONSES_API", "true")]);
    let request =
        json!({"model": "openai/gpt-4o", "input": "hi", "tools": [{"type": "web_search"}]});
    let reply = post_json(gw.addr, "/v1/responses", &request);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), fixture("openai/responses_create.json"));
    let sent = &upstream.requests()[0];
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(sent.json()["model"], "gpt-4o");
    assert_eq!(sent.json()["tools"][0]["type"], "web_search");
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer sk-test-fake-key")
    );
    // Stored by the gateway too: retrievable through it.
    let id = reply.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        get(gw.addr, &format!("/v1/responses/{id}")).json()["id"],
        id.as_str()
    );

    // A response the gateway never saw is OpenAI's business.
    let theirs = json!({"model": "openai/gpt-4o", "input": "hi", "previous_response_id": "resp_made_elsewhere"});
    assert_eq!(post_json(gw.addr, "/v1/responses", &theirs).status, 200);
    assert_eq!(
        upstream.requests()[1].json()["previous_response_id"],
        "resp_made_elsewhere"
    );

    let stream = json!({"model": "openai/gpt-4o", "input": "hi", "stream": true});
    let reply = post_json(gw.addr, "/v1/responses", &stream);
    assert!(reply.text().contains("event: response.output_text.delta\n"));
    assert_eq!(kinds(&events(&reply)).last(), Some(&"response.completed"));
    let dir = gw.stop_keeping_logs();
    let lines = interaction_lines(&dir);
    assert_eq!(lines.len(), 4, "{lines:?}");
    let created = |stream: bool| {
        lines
            .iter()
            .find(|l| l["route"] == "/v1/responses" && l["stream"] == stream)
            .unwrap_or_else(|| panic!("{lines:?}"))
    };
    let cached = &created(false)["usage"]["cached_tokens"];
    assert_eq!(cached, 128, "{}", created(false));
    assert_eq!(created(true)["usage"]["completion_tokens"], 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn previous_response_id_continues_on_another_gateway_sharing_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    let first = Gateway::start(&[("REDIS_URL", &url)]);
    let second = Gateway::start(&[("REDIS_URL", &url)]);
    let request = json!({"model": "mock/echo", "input": "remember the word ostrich"});
    let created = post_json(first.addr, "/v1/responses", &request).json();
    let id = created["id"].as_str().unwrap();
    let next = json!({"model": "mock/lorem", "input": "2", "previous_response_id": id});
    let continued = post_json(second.addr, "/v1/responses", &next);
    assert_eq!(continued.status, 200, "{}", continued.text());
    let continued = continued.json();
    assert_eq!(continued["previous_response_id"], id);
    // The earlier turn and its answer were part of the prompt.
    assert!(
        continued["usage"]["input_tokens"].as_u64().unwrap()
            > created["usage"]["input_tokens"].as_u64().unwrap()
    );
    let items = get(second.addr, &format!("/v1/responses/{id}/input_items")).json();
    assert_eq!(items["object"], "list");
    assert_eq!(
        items["data"][0]["content"][0]["text"],
        "remember the word ostrich"
    );
    let deleted = send(
        second.addr,
        "DELETE",
        &format!("/v1/responses/{id}"),
        &[],
        b"",
    );
    assert_eq!(deleted.json()["deleted"], true);
    assert_error(&get(first.addr, &format!("/v1/responses/{id}")), 404);
}

#[test]
fn what_a_translated_model_cannot_do_is_a_400_naming_it_and_unknown_ids_are_404() {
    let gw = Gateway::start(&[]);
    let cases = [
        (
            json!({"model": "mock/echo", "input": "x", "tools": [{"type": "file_search"}]}),
            "tools[0].type",
        ),
        (json!({"model": "mock/echo"}), "input"),
        (
            json!({"model": "mock/echo", "input": "x", "bogus": true}),
            "bogus",
        ),
        (
            json!({"model": "mock/echo", "input": [{"type": "item_reference", "id": "x"}]}),
            "input[0].type",
        ),
    ];
    for (request, param) in cases {
        let error = assert_error(&post_json(gw.addr, "/v1/responses", &request), 400);
        assert_eq!(error["param"], param, "{request}");
    }
    // The internal request's names are not the client's.
    let request = json!({"model": "mock/echo", "input": "x", "max_output_tokens": -1});
    let error = assert_error(&post_json(gw.addr, "/v1/responses", &request), 400);
    assert_eq!(error["param"], "max_output_tokens");
    let missing = json!({"model": "mock/echo", "input": "x", "previous_response_id": "resp_nope"});
    let error = assert_error(&post_json(gw.addr, "/v1/responses", &missing), 404);
    assert_eq!(error["param"], "previous_response_id");
    let reply = send(gw.addr, "DELETE", "/v1/responses/resp_nope", &[], b"");
    assert_error(&reply, 404);
}

#[test]
fn store_false_keeps_nothing() {
    let gw = Gateway::start(&[]);
    let request = json!({"model": "mock/echo", "input": "x", "store": false});
    let body = post_json(gw.addr, "/v1/responses", &request).json();
    assert_eq!(body["store"], false);
    let id = body["id"].as_str().unwrap();
    assert_error(&get(gw.addr, &format!("/v1/responses/{id}")), 404);
}

#[test]
fn stored_responses_are_redacted_like_logs_and_kept_for_the_retention_days() {
    let secret = "sk-live-0123456789abcdefghijklmnopqrstuv";
    let expires = |days: &str| {
        let gw = Gateway::start(&[("RESPONSES_RETENTION_DAYS", days)]);
        let request = json!({"model": "mock/echo", "input": format!("my key is {secret}")});
        let made = post_json(gw.addr, "/v1/responses", &request);
        assert_eq!(made.status, 200, "{}", made.text());
        let id = made.json()["id"].as_str().unwrap().to_string();
        let stored = get(gw.addr, &format!("/v1/responses/{id}"));
        assert!(!stored.text().contains(secret), "{}", stored.text());
        let db = rusqlite::Connection::open(gw.data_dir.join("llmcallgateway.db")).unwrap();
        let (value, expires_at): (Vec<u8>, Option<i64>) = db
            .query_row(
                "SELECT value, expires_at FROM documents WHERE space = 'responses' AND id = ?1",
                [&id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        let value = String::from_utf8(value).unwrap();
        assert!(value.contains("my key is"), "{value}");
        assert!(
            !value.contains(secret),
            "the stored body is redacted: {value}"
        );
        expires_at
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let week = expires("7").expect("an expiry with RESPONSES_RETENTION_DAYS=7");
    let seven_days_ms = 7 * 86_400_000;
    assert!(
        (week - now_ms - seven_days_ms).abs() < 60_000,
        "expires in seven days: {}",
        week - now_ms
    );
    assert_eq!(expires("0"), None, "0 keeps it until deleted");
}

/// Runs `tests/sdk/openai_schema.py` on `(schema, value)` pairs: each must pass OpenAI's
/// schema as `/openapi.json` carries it. Needs the project's Python (as the SDK tests do).
fn assert_openai_schemas(pairs: &[(&str, Value)]) {
    let Some(python) = crate::sdk::python_or_skip() else {
        return;
    };
    let mut child = std::process::Command::new(python)
        .arg("tests/sdk/openai_schema.py")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    let mut input = String::new();
    for (schema, value) in pairs {
        input.push_str(&format!("{schema}\t{value}\n"));
    }
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
}

/// An Anthropic SSE fixture played event by event.
fn anthropic_stream(name: &str) -> Script {
    Script::sse(
        fixture(&format!("anthropic/{name}"))
            .split("\n\n")
            .filter(|b| !b.trim().is_empty())
            .map(|b| Step::Raw(format!("{b}\n\n")))
            .collect(),
    )
}

#[test]
fn translated_answers_and_every_event_pass_the_openai_schemas() {
    let upstream = MockUpstream::start(|r| {
        let body = r.json();
        let text = body["messages"][0]["content"].to_string();
        match (
            body["stream"] == true,
            text.contains("tool"),
            text.contains("fail"),
        ) {
            (true, _, true) => anthropic_stream("stream_error.sse"),
            (true, true, _) => anthropic_stream("stream_tool_call.sse"),
            (true, false, _) => anthropic_stream("stream_text.sse"),
            (false, true, _) => Script::fixture(200, "anthropic/response_tool_call.json"),
            (false, false, _) => Script::fixture(200, "anthropic/response_plain_chat.json"),
        }
    });
    let base = upstream.base_url();
    let gw = Gateway::start(&[
        ("ANTHROPIC_API_BASE", base.strip_suffix("/v1").unwrap()),
        ("ANTHROPIC_API_KEY", "sk-ant-test-fake-key"),
    ]);
    let model = "anthropic/claude-sonnet-4-5";
    let tools = json!([{"type": "function", "name": "get_weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let mut pairs = Vec::new();
    for input in ["say hi", "use the tool"] {
        let request = json!({"model": model, "input": input, "tools": tools});
        let reply = post_json(gw.addr, "/v1/responses", &request);
        assert_eq!(reply.status, 200, "{}", reply.text());
        pairs.push(("Response", reply.json()));
        let completion = json!({"model": model, "prompt": input});
        let reply = post_json(gw.addr, "/v1/completions", &completion);
        pairs.push(("CreateCompletionResponse", reply.json()));
    }
    let mut seen = Vec::new();
    for input in ["say hi", "use the tool", "fail now"] {
        let request = json!({"model": model, "input": input, "tools": tools, "stream": true});
        for event in events(&post_json(gw.addr, "/v1/responses", &request)) {
            seen.push(event["type"].as_str().unwrap().to_string());
            pairs.push(("ResponseStreamEvent", event));
        }
        let completion = json!({"model": model, "prompt": input, "stream": true});
        let reply = post_json(gw.addr, "/v1/completions", &completion);
        for chunk in reply.events().iter().filter(|e| *e != "[DONE]") {
            let chunk: Value = serde_json::from_str(chunk).unwrap();
            if chunk.get("error").is_none() {
                pairs.push(("CreateCompletionChunk", chunk));
            }
        }
    }
    for kind in [
        "response.reasoning_summary_text.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.failed",
    ] {
        assert!(seen.iter().any(|s| s == kind), "no {kind} in {seen:?}");
    }
    assert_openai_schemas(&pairs);
}

#[test]
fn a_relayed_responses_stream_cut_short_ends_with_an_error_event_numbered_after_the_last() {
    let upstream = MockUpstream::always(Script::sse(
        fixture("openai/responses_stream.sse")
            .split("\n\n")
            .filter(|b| !b.trim().is_empty())
            .take(5)
            .map(|b| Step::Raw(format!("{b}\n\n")))
            .collect(),
    ));
    let gw = Gateway::in_front_of(&upstream, &[("OPENAI_RESPONSES_API", "true")]);
    let request = json!({"model": "openai/gpt-4o", "input": "hi", "stream": true});
    let reply = post_json(gw.addr, "/v1/responses", &request);
    assert!(reply.text().contains("event: error\n"), "{}", reply.text());
    let events = events(&reply);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "error");
    assert_eq!(last["sequence_number"], 5);
    assert_eq!(last["code"], "upstream_stream_truncated");
    let dir = gw.stop_keeping_logs();
    let lines = interaction_lines(&dir);
    let line = &lines[0];
    assert_eq!(line["error"]["code"], "upstream_stream_truncated", "{line}");
    // The provider reported no usage before it stopped: the record has the estimate.
    assert_eq!(line["usage_source"], "estimated", "{line}");
    assert_eq!(line["usage"]["completion_tokens"], 1, "{line}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_stored_response_is_seen_continued_and_deleted_only_with_the_key_that_made_it() {
    use crate::access::{call_with, generate, ADMIN};
    let gw = Gateway::start(&[("ADMIN_API_KEY", ADMIN)]);
    let mine = generate(&gw, json!({"key_alias": "mine"}));
    let theirs = generate(&gw, json!({"key_alias": "theirs"}));
    let call =
        |key: &str, method: &str, path: &str, body: &Value| call_with(&gw, key, method, path, body);
    let made = call(
        &mine,
        "POST",
        "/v1/responses",
        &json!({"model": "mock/echo", "input": "secret plans"}),
    );
    assert_eq!(made.status, 200, "{}", made.text());
    let id = made.json()["id"].as_str().unwrap().to_string();
    let path = format!("/v1/responses/{id}");

    for path in [path.clone(), format!("{path}/input_items")] {
        let e = assert_error(&call(&theirs, "GET", &path, &Value::Null), 404);
        assert_eq!(e["code"], "response_not_found", "{path}");
    }
    let next = json!({"model": "mock/echo", "input": "and then?", "previous_response_id": id});
    let e = assert_error(&call(&theirs, "POST", "/v1/responses", &next), 404);
    assert_eq!(e["param"], "previous_response_id");
    assert_error(&call(&theirs, "DELETE", &path, &Value::Null), 404);

    assert_eq!(call(&mine, "GET", &path, &Value::Null).status, 200);
    assert_eq!(
        call(ADMIN, "GET", &path, &Value::Null).status,
        200,
        "the admin sees all"
    );
    assert_eq!(call(&mine, "POST", "/v1/responses", &next).status, 200);
    assert_eq!(call(&mine, "DELETE", &path, &Value::Null).status, 200);
}

#[test]
fn a_keys_model_list_and_rate_limit_cover_responses_and_completions() {
    use crate::access::{call_with, generate, ADMIN};
    let gw = Gateway::start(&[("ADMIN_API_KEY", ADMIN)]);
    let key = generate(&gw, json!({"models": ["mock/ec*"], "rpm_limit": 3}));
    let call = |path: &str, body: Value| call_with(&gw, &key, "POST", path, &body);
    let e = assert_error(
        &call(
            "/v1/responses",
            json!({"model": "mock/lorem", "input": "x"}),
        ),
        403,
    );
    assert_eq!(e["code"], "model_not_allowed");
    let e = assert_error(
        &call(
            "/v1/completions",
            json!({"model": "mock/lorem", "prompt": "x"}),
        ),
        403,
    );
    assert_eq!(e["code"], "model_not_allowed");
    let ok = call("/v1/responses", json!({"model": "mock/echo", "input": "x"}));
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(
        ok.header("x-ratelimit-remaining-requests").is_some(),
        "limit headers"
    );
    // Three a minute: whether refusals count or not, a fourth call at the latest is refused.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            call(
                "/v1/completions",
                json!({"model": "mock/echo", "prompt": "x"}),
            )
            .status,
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
}
