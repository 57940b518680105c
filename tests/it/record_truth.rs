//! Truth in every record (issue 12): which requests are interaction lines (API calls and
//! refusals; monitoring polls are access lines only), every line with the same keys and the
//! client's own body when nothing reached a provider, and a provider's error inside a stream
//! recorded and counted as an error.

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::binary::Binary;
use crate::support::client::{get, post_json, send, wait_until};
use crate::support::gateway::{temp_dir, Gateway};
use crate::support::logs::{interaction_lines, log_files};
use crate::support::raw::Client;
use crate::support::upstream::{fixture_events, MockUpstream, Script, Step};

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn post_raw(addr: SocketAddr, body: &[u8]) -> u16 {
    send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        body,
    )
    .status
}

/// The keys of a line, sorted.
fn keys(line: &Value) -> BTreeSet<String> {
    line.as_object().unwrap().keys().cloned().collect()
}

/// Every access line of the system log under `dir`.
fn access_lines(dir: &std::path::Path) -> Vec<String> {
    log_files(dir, "llmcallgateway_system_")
        .iter()
        .flat_map(|p| {
            fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.contains("GET /") || l.contains("POST /"))
        .collect()
}

#[test]
fn monitoring_polls_are_access_lines_only() {
    let dir = temp_dir("access");
    let gw = Binary::start(&[("LOG_DIR", dir.to_str().unwrap())]);
    for path in [
        "/health",
        "/metrics",
        "/metrics/models",
        "/metrics/prometheus",
        "/metrics/trends",
        "/dashboard",
        "/openapi.json",
        "/docs",
        "/v1/models",
        "/v1/models/mock/echo",
    ] {
        assert_eq!(get(gw.addr, path).status, 200, "{path}");
    }
    assert_eq!(
        post_json(gw.addr, "/v1/chat/completions", &chat("mock/echo", false)).status,
        200
    );
    gw.stop();
    let routes: Vec<_> = interaction_lines(&dir)
        .iter()
        .map(|l| l["route"].clone())
        .collect();
    assert_eq!(routes, vec![json!("/v1/chat/completions")]);
    let access = access_lines(&dir);
    assert!(
        access.iter().any(|l| l.contains("GET /health 200")),
        "{access:?}"
    );
    assert_eq!(access.len(), 11, "{access:?}");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn access_log_false_turns_the_access_lines_off() {
    let dir = temp_dir("no-access");
    let gw = Binary::start(&[("LOG_DIR", dir.to_str().unwrap()), ("ACCESS_LOG", "false")]);
    assert_eq!(get(gw.addr, "/health").status, 200);
    assert_eq!(
        post_json(gw.addr, "/v1/chat/completions", &chat("mock/echo", false)).status,
        200
    );
    gw.stop();
    assert_eq!(access_lines(&dir), Vec::<String>::new());
    assert_eq!(interaction_lines(&dir).len(), 1);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn every_line_has_the_same_keys_and_refusals_carry_the_clients_body() {
    let gw = Gateway::start(&[("MAX_REQUEST_BYTES", "1024")]);
    assert_eq!(post_raw(gw.addr, b"{\"model\": \"mock/echo\", oops"), 400);
    let invalid = json!({"model": "mock/echo", "messages": "hi"});
    assert_eq!(
        post_json(gw.addr, "/v1/chat/completions", &invalid).status,
        400
    );
    let unknown = chat("mock/no-such-model", false);
    assert_eq!(
        post_json(gw.addr, "/v1/chat/completions", &unknown).status,
        404
    );
    assert_eq!(get(gw.addr, "/v1/no-such-route").status, 404);
    assert_eq!(
        post_json(gw.addr, "/v1/chat/completions", &chat("mock/echo", false)).status,
        200
    );
    // 413 from the HTTP layer: one line with the refusal's reason.
    let mut c = Client::connect(gw.addr);
    c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\ncontent-length: 999999\r\n\r\n");
    assert_eq!(c.read_reply().unwrap().status, 413);
    // A metrics poll answered with an error is a refusal: on the record.
    assert_eq!(get(gw.addr, "/metrics/trends?bucket=7m").status, 400);
    let dir = gw.stop_keeping_logs();
    let lines = interaction_lines(&dir);
    assert_eq!(lines.len(), 7, "{lines:#?}");
    let first = keys(&lines[0]);
    for line in &lines {
        assert_eq!(keys(line), first, "{line}");
        assert!(line.get("downstream_request").is_some());
        assert!(line.get("downstream_response").is_some());
        assert!(line.get("client_request").is_some());
    }
    let by_status = |status: u16| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["http_status"] == status)
            .collect()
    };
    let malformed = by_status(400)
        .into_iter()
        .find(|l| l["client_request"].is_string())
        .expect("the malformed body, as a string");
    assert_eq!(
        malformed["client_request"],
        "{\"model\": \"mock/echo\", oops"
    );
    assert_eq!(malformed["downstream_request"], Value::Null);
    assert!(lines.iter().any(|l| l["client_request"] == invalid));
    assert!(lines.iter().any(|l| l["client_request"] == unknown));
    let ok = &by_status(200)[0];
    assert_eq!(ok["client_request"], Value::Null);
    assert!(ok["downstream_request"].is_object());
    let too_big = &by_status(413)[0];
    assert_eq!(too_big["client_request"], Value::Null);
    assert!(too_big["error"]["message"].is_string());
    let _ = fs::remove_dir_all(dir);
}

/// A stream of two chunks of the OpenAI fixture, then `last`.
fn failing_stream(last: Step) -> MockUpstream {
    let mut steps: Vec<Step> = fixture_events("openai/chat_completion_stream.sse")
        .into_iter()
        .take(2)
        .map(Step::Event)
        .collect();
    steps.push(last);
    MockUpstream::always(Script::sse(steps))
}

/// The metrics' totals once the one call is recorded (its record is handed over after the
/// client has the answer). The wait is long because a stream without the provider's usage is
/// recorded with an estimate, and a process's first estimate builds the `o200k_base` table:
/// about 0.2 s in a debug build, several times that on a loaded machine (with `tiktoken-rs`'s
/// encoder, before 0671885, 0.6 s, and a cut stream was seen recorded 5-8 s after its client
/// had the whole answer). It ends as soon as the call is there.
fn recorded_totals(gw: &Gateway) -> Value {
    let mut totals = Value::Null;
    wait_until(Duration::from_secs(30), || {
        totals = get(gw.addr, "/metrics").json()["totals"].clone();
        totals["requests"] == 1
    });
    totals
}

#[test]
fn an_error_event_inside_an_openai_stream_is_recorded_and_counted_as_an_error() {
    let provider_error = json!({"message": "The server is overloaded.", "type": "server_error",
        "param": null, "code": "overloaded"});
    let upstream = failing_stream(Step::Event(json!({"error": provider_error}).to_string()));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat("gpt-4o-mini", true));
    assert_eq!(reply.status, 200);
    assert!(
        reply.text().contains("overloaded"),
        "the client gets the error event"
    );
    let totals = &recorded_totals(&gw);
    assert_eq!(totals["errors"], 1, "{totals}");
    assert_eq!(totals["successes"], 0, "{totals}");
    assert_eq!(totals["errors_by_kind"]["server_error"], 1, "{totals}");
    let dir = gw.stop_keeping_logs();
    let line = &interaction_lines(&dir)[0];
    assert_eq!(line["status"], "error", "{line}");
    assert_eq!(line["error"], provider_error);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_cut_upstream_stream_is_recorded_as_an_error() {
    let upstream = failing_stream(Step::Cut);
    let gw = Gateway::in_front_of(&upstream, &[("STREAM_IDLE_TIMEOUT", "2")]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat("gpt-4o-mini", true));
    assert_eq!(reply.status, 200);
    let totals = recorded_totals(&gw);
    let dir = gw.stop_keeping_logs();
    let lines = interaction_lines(&dir);
    assert_eq!(totals["errors"], 1, "{totals} {lines:?} {}", reply.text());
    let line = &lines[0];
    assert_eq!(line["status"], "error", "{line}");
    assert!(line["error"]["type"].is_string(), "{line}");
    let _ = fs::remove_dir_all(dir);
}

/// A stream that failed after its 200 (the gateway's one call): recorded as `error` with the
/// error object the client got, and counted as an error of its kind.
pub fn assert_recorded_stream_error(gw: Gateway, sent: &Value) {
    let totals = recorded_totals(&gw);
    assert_eq!(totals["errors"], 1, "{totals}");
    let kind = sent["type"].as_str().expect("an error type");
    assert_eq!(totals["errors_by_kind"][kind], 1, "{totals}");
    let dir = gw.stop_keeping_logs();
    let line = &interaction_lines(&dir)[0];
    assert_eq!(line["status"], "error", "{line}");
    assert_eq!(line["http_status"], 200, "{line}");
    assert_eq!(&line["error"], sent, "{line}");
    let _ = fs::remove_dir_all(dir);
}
