//! The interactions log (issue 4): one complete, redacted JSON line per request, whatever way
//! the request ended; streams logged as the completion they amount to; rotation, retention and
//! the total cap; secrets never written; text in any language as UTF-8.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::process::Command;
use std::thread;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::support::binary::Binary;
use crate::support::client::{get, post_json, send, wait_until, Conn};
use crate::support::gateway::{temp_dir, Gateway};
use crate::support::logs::{interaction_lines, log_files};
use crate::support::upstream::{fixture_events, MockUpstream, Script, Step};

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// The provider for the mixed-traffic tests: the model name picks the answer.
fn scripted_upstream() -> MockUpstream {
    MockUpstream::start(|request| {
        let model = request.json()["model"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match model.as_str() {
            "json" => Script::fixture(200, "openai/chat_completion.json"),
            "stream" => Script::sse_fixture("openai/chat_completion_stream.sse"),
            "tools" => Script::fixture(200, "openai/chat_completion_tool_call.json"),
            "tools-stream" => Script::sse_fixture("openai/chat_completion_tool_call_stream.sse"),
            "limited" => Script::fixture(429, "openai/error_429_rate_limit.json")
                .with_header("retry-after", "7"),
            _ => {
                // A slow stream, for clients that leave early.
                let mut steps = Vec::new();
                for event in fixture_events("openai/chat_completion_stream.sse")
                    .into_iter()
                    .take(2)
                {
                    steps.push(Step::Event(event));
                }
                for _ in 0..60 {
                    steps.push(Step::Pause(Duration::from_millis(50)));
                    steps.push(Step::Event(
                        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"."},"finish_reason":null}]}"#.into(),
                    ));
                }
                Script::sse(steps)
            }
        }
    })
}

#[test]
fn every_request_gets_exactly_one_line_whatever_way_it_ended() {
    let upstream = scripted_upstream();
    let gw = Gateway::in_front_of(&upstream, &[("WORKERS", "32")]);
    let addr = gw.addr;
    // (kind, how many): each request carries its own x-request-id.
    let plan = [
        ("json", 5),
        ("stream", 5),
        ("limited", 4),
        ("leave", 4),
        ("malformed", 4),
    ];
    let mut handles = Vec::new();
    let mut expected: BTreeMap<String, &str> = BTreeMap::new();
    for (kind, count) in plan {
        for n in 0..count {
            let id = format!("req-{kind}-{n}");
            let status = match kind {
                "json" | "stream" => "success",
                "leave" => "client_closed",
                _ => "error",
            };
            expected.insert(id.clone(), status);
            handles.push(thread::spawn(move || {
                let headers = [
                    ("content-type", "application/json"),
                    ("x-request-id", id.as_str()),
                ];
                match kind {
                    "malformed" => {
                        let reply = send(addr, "POST", "/v1/chat/completions", &headers, b"{oops");
                        assert_eq!(reply.status, 400);
                        reply.header("x-request-id").map(str::to_string)
                    }
                    "leave" => {
                        let mut conn = Conn::open(addr);
                        let body = chat("slow", true).to_string();
                        conn.write_request(
                            "POST",
                            "/v1/chat/completions",
                            &headers,
                            body.as_bytes(),
                        );
                        let head = conn.read_head();
                        let seen = head.header("x-request-id").map(str::to_string);
                        let mut sse = conn.sse();
                        assert!(sse.next_event().is_some());
                        drop(sse); // the client leaves mid-stream
                        seen
                    }
                    _ => {
                        let body = chat(kind, kind == "stream").to_string();
                        let reply = send(
                            addr,
                            "POST",
                            "/v1/chat/completions",
                            &headers,
                            body.as_bytes(),
                        );
                        reply.header("x-request-id").map(str::to_string)
                    }
                }
            }));
        }
    }
    let seen: HashSet<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    let dir = gw.stop_keeping_logs();
    let lines = interaction_lines(&dir);
    assert_eq!(lines.len(), expected.len(), "one line per request");
    let logged: HashSet<String> = lines
        .iter()
        .map(|l| l["request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(logged.len(), expected.len(), "request ids are distinct");
    assert_eq!(logged, seen, "the ids logged are the ids the clients saw");
    for line in &lines {
        let id = line["request_id"].as_str().unwrap();
        assert_eq!(line["status"], expected[id], "{line}");
        for field in [
            "timestamp",
            "route",
            "client",
            "model_requested",
            "provider",
            "api_base",
            "stream",
            "http_status",
            "error",
            "processing_time",
            "upstream_latency",
            "usage",
            "gateway_overhead_ms",
            "queue_wait_ms",
            "time_to_first_token",
        ] {
            assert!(line.get(field).is_some(), "{field} missing in {line}");
        }
        let ts = line["timestamp"].as_str().unwrap();
        assert!(
            ts.len() == 32 && ts.ends_with("+00:00") && ts.as_bytes()[26] == b'+',
            "{ts}"
        );
        assert!(line["processing_time"].as_f64().unwrap() >= 0.0);
        assert_eq!(
            line["client"]["address"]
                .as_str()
                .unwrap()
                .split(':')
                .next(),
            Some("127.0.0.1")
        );
        assert!(!line["api_base"].as_str().unwrap_or("").contains("sk-"));
    }
    let by_id = |id: &str| lines.iter().find(|l| l["request_id"] == id).unwrap();
    let json_line = by_id("req-json-0");
    assert_eq!(json_line["http_status"], 200);
    assert_eq!(json_line["usage"]["prompt_tokens"], 1117);
    assert_eq!(json_line["downstream_request"]["model"], "json");
    assert_eq!(
        json_line["downstream_response"]["id"],
        "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    );
    assert!(json_line["upstream_latency"].as_f64().is_some());
    let stream_line = by_id("req-stream-0");
    assert_eq!(stream_line["stream"], true);
    assert_eq!(
        stream_line["downstream_request"]["stream_options"]["include_usage"],
        true
    );
    assert_eq!(
        stream_line["downstream_response"]["choices"][0]["message"]["content"],
        "Hello there!"
    );
    assert_eq!(stream_line["downstream_response"]["chunks"], 5);
    assert_eq!(stream_line["usage"]["total_tokens"], 12);
    assert!(stream_line["time_to_first_token"].as_f64().is_some());
    let limited = by_id("req-limited-0");
    assert_eq!(limited["http_status"], 429);
    assert_eq!(limited["error"]["code"], "rate_limit_exceeded");
    let malformed = by_id("req-malformed-0");
    assert_eq!(malformed["http_status"], 400);
    assert!(malformed["model_requested"].is_null());
    assert_eq!(by_id("req-leave-0")["status"], "client_closed");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_streamed_answer_is_logged_as_the_same_completion_as_the_non_stream_one() {
    let upstream = scripted_upstream();
    let gw = Gateway::in_front_of(&upstream, &[]);
    let plain = post_json(gw.addr, "/v1/chat/completions", &chat("tools", false));
    let streamed = post_json(gw.addr, "/v1/chat/completions", &chat("tools-stream", true));
    assert_eq!((plain.status, streamed.status), (200, 200));
    let dir = gw.stop_keeping_logs();
    let lines = interaction_lines(&dir);
    let logged = |stream: bool| {
        lines.iter().find(|l| l["stream"] == stream).unwrap()["downstream_response"].clone()
    };
    let (a, b) = (logged(false), logged(true));
    let (ma, mb) = (&a["choices"][0]["message"], &b["choices"][0]["message"]);
    assert_eq!(ma["content"], mb["content"]);
    assert_eq!(
        ma["tool_calls"], mb["tool_calls"],
        "tool calls reassembled from the stream"
    );
    assert_eq!(
        a["choices"][0]["finish_reason"],
        b["choices"][0]["finish_reason"]
    );
    assert_eq!(a["usage"], b["usage"], "usage, cached tokens included");
    assert_eq!(lines[0]["usage"]["cached_tokens"], 64);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn log_files_rotate_and_old_or_excess_files_are_deleted() {
    let dir = temp_dir("rotation");
    // An old file from an earlier run, past retention, and an unrelated file that stays.
    let old = dir.join("llmcallgateway_system_2026-01-01.log");
    fs::write(&old, "old\n").unwrap();
    let month_ago = SystemTime::now() - Duration::from_secs(30 * 86_400);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(month_ago)
        .unwrap();
    fs::write(dir.join("notes.txt"), "mine").unwrap();
    let dir_text = dir.display().to_string();
    let cap: u64 = 24 * 1024;
    let gw = Gateway::start(&[
        ("LOG_DIR", dir_text.as_str()),
        ("LOG_BODIES", "full"),
        ("LOG_ROTATE_MB", "0.002"),        // about 2 KB
        ("LOG_MAX_TOTAL_MB", "0.0234375"), // 24 KiB
        ("LOG_RETENTION_DAYS", "14"),
    ]);
    let text = "word ".repeat(100);
    for _ in 0..60 {
        let body = json!({"model": "mock/echo", "messages": [{"role": "user", "content": text}]});
        assert_eq!(
            post_json(gw.addr, "/v1/chat/completions", &body).status,
            200
        );
    }
    // The recorder has written every line once it has counted every call.
    let counted = wait_until(Duration::from_secs(10), || {
        get(gw.addr, "/metrics").json()["totals"]["requests"] == 60
    });
    assert!(counted, "the recorder caught up");
    let total = || -> u64 {
        log_files(&dir, "llmcallgateway_")
            .iter()
            // A file may be deleted between the listing and this look.
            .filter_map(|p| fs::metadata(p).ok().map(|m| m.len()))
            .sum()
    };
    assert!(
        wait_until(Duration::from_secs(5), || total() <= cap),
        "all log files together stay within LOG_MAX_TOTAL_MB: {} bytes",
        total()
    );
    let files = log_files(&dir, "llmcallgateway_llm_interactions_");
    assert!(files.len() >= 2, "the interactions file rotated: {files:?}");
    assert!(!old.exists(), "a file past retention is deleted");
    assert!(
        dir.join("notes.txt").exists(),
        "files that are not ours are left alone"
    );
    gw.shutdown();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn metadata_mode_logs_no_bodies_and_none_mode_writes_no_interactions_file() {
    let metadata = Gateway::start(&[("LOG_BODIES", "metadata")]);
    let body = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "private"}]});
    post_json(metadata.addr, "/v1/chat/completions", &body);
    let dir = metadata.stop_keeping_logs();
    let lines = interaction_lines(&dir);
    assert_eq!(lines.len(), 1);
    // Every line has every key: no bodies means null ones.
    for key in [
        "downstream_request",
        "downstream_response",
        "client_request",
    ] {
        assert_eq!(lines[0][key], Value::Null, "{key}");
        assert!(lines[0].get(key).is_some(), "{key}");
    }
    assert_eq!(
        lines[0]["usage"]["completion_tokens"], 1,
        "metadata keeps usage"
    );
    fs::remove_dir_all(&dir).unwrap();

    let none = Gateway::start(&[("LOG_BODIES", "none")]);
    post_json(none.addr, "/v1/chat/completions", &body);
    let dir = none.stop_keeping_logs();
    assert!(log_files(&dir, "llmcallgateway_llm_interactions_").is_empty());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_log_file_contains_a_key_from_anywhere_a_key_can_be() {
    const GATEWAY_KEY: &str = "sk-proj-FAKEgatewayKEY0123456789abcdefABCDEF";
    const CLIENT_KEY: &str = "sk-FAKEclientKEY0123456789abcdefghij";
    const QUERY_KEY: &str = "AIzaSyFAKEqueryKEY0123456789abcdefghi";
    const BODY_KEY: &str = "sk-ant-api03-FAKEbodyKEY0123456789abcdef";
    const ANTHROPIC_STYLE: &str = "FAKEheaderKEY-0123456789abcdefghijk";
    // The provider echoes the key it was given in its error, as OpenAI's 401 does.
    let echoed = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {GATEWAY_KEY}.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
    );
    let upstream = MockUpstream::always(Script::json(401, &echoed));
    let dir = temp_dir("secrets");
    let base = upstream.base_url();
    let gw = Binary::start(&[
        ("LOG_DIR", dir.to_str().unwrap()),
        ("LITELLM_BASE_URL", base.as_str()),
        ("LITELLM_API_KEY", GATEWAY_KEY),
        ("DEBUG", "true"),
        ("LOG_BODIES", "full"),
    ]);
    let body = json!({
        "model": "gpt-4o",
        "api_key": BODY_KEY,
        "messages": [{"role": "user", "content": format!("my key is {BODY_KEY}, keep it safe")}],
    })
    .to_string();
    let bearer = format!("Bearer {CLIENT_KEY}");
    let path = format!("/v1/chat/completions?key={QUERY_KEY}");
    let headers = [
        ("content-type", "application/json"),
        ("authorization", bearer.as_str()),
        ("x-api-key", ANTHROPIC_STYLE),
        ("api-key", ANTHROPIC_STYLE),
        ("x-goog-api-key", QUERY_KEY),
    ];
    let reply = send(gw.addr, "POST", &path, &headers, body.as_bytes());
    assert_eq!(reply.status, 401);
    let reply = send(
        gw.addr,
        "GET",
        &format!("/nowhere?key={QUERY_KEY}"),
        &headers,
        b"",
    );
    assert_eq!(reply.status, 404);
    gw.stop();
    let files = log_files(&dir, "llmcallgateway_");
    let kinds = ["system", "error", "llm_interactions"];
    for kind in kinds {
        assert!(
            files
                .iter()
                .any(|f| f.to_string_lossy().contains(&format!("_{kind}_"))),
            "a {kind} log was written: {files:?}"
        );
    }
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        for key in [
            GATEWAY_KEY,
            CLIENT_KEY,
            QUERY_KEY,
            BODY_KEY,
            ANTHROPIC_STYLE,
        ] {
            assert!(
                !text.contains(key),
                "{} contains {key}:\n{text}",
                file.display()
            );
        }
    }
    let interactions = interaction_lines(&dir);
    assert_eq!(interactions.len(), 2);
    assert!(interactions[0]["route"]
        .as_str()
        .unwrap()
        .contains("key=***"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn chinese_text_is_written_as_utf8_not_escapes() {
    let gw = Gateway::start(&[]);
    let text = "你好，世界！请用中文回答。";
    let body = json!({"model": "mock/echo", "messages": [{"role": "user", "content": text}]});
    assert_eq!(
        post_json(gw.addr, "/v1/chat/completions", &body).json()["choices"][0]["message"]
            ["content"],
        text
    );
    let dir = gw.stop_keeping_logs();
    let raw: String = log_files(&dir, "llmcallgateway_llm_interactions_")
        .iter()
        .map(|f| fs::read_to_string(f).unwrap())
        .collect();
    assert!(raw.contains(text), "{raw}");
    assert!(!raw.contains("\\u"), "no \\u escapes: {raw}");
    fs::remove_dir_all(&dir).unwrap();
}

/// `LOG_RETENTION_DAYS=0` keeps files whatever their age (it used to delete the live files
/// every second, since every file is older than zero days), and keeps the trend history.
#[test]
fn zero_retention_days_keeps_every_log_file_and_the_trends() {
    let dir = temp_dir("keep-forever");
    let old = dir.join("llmcallgateway_system_2020-01-01.log");
    fs::write(&old, "old\n").unwrap();
    let years_ago = SystemTime::now() - Duration::from_secs(5 * 365 * 86_400);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(years_ago)
        .unwrap();
    let dir_text = dir.display().to_string();
    let gw = Gateway::start(&[("LOG_DIR", dir_text.as_str()), ("LOG_RETENTION_DAYS", "0")]);
    let body = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "keep me"}]});
    assert_eq!(
        post_json(gw.addr, "/v1/chat/completions", &body).status,
        200
    );
    let counted = wait_until(Duration::from_secs(10), || {
        get(gw.addr, "/metrics").json()["totals"]["requests"] == 1
    });
    assert!(counted);
    // The disk guard runs every second: give it three turns.
    thread::sleep(Duration::from_millis(3_000));
    assert!(old.exists(), "a five-year-old file is kept");
    let interactions = log_files(&dir, "llmcallgateway_llm_interactions_");
    assert_eq!(interactions.len(), 1, "the live interactions file is kept");
    let trends = get(gw.addr, "/metrics/trends?hours=24&bucket=1h").json();
    let requests: u64 = trends["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["requests"].as_u64())
        .sum();
    assert_eq!(requests, 1, "the trend minute is kept: {trends}");
    let long = get(gw.addr, "/metrics/trends?hours=8760&bucket=1d");
    assert_eq!(long.status, 200, "a year of history may be asked for");
    let dir = gw.stop_keeping_logs();
    let calls = interaction_lines(&dir)
        .into_iter()
        .filter(|l| l["route"] == "/v1/chat/completions")
        .count();
    assert_eq!(calls, 1, "the call's line survived");
    fs::remove_dir_all(&dir).unwrap();
}

/// Every secret the configuration holds (each provider's key, a vendor's, Azure's, the AWS
/// credentials and Bedrock API key) is redacted from every log file, even when a provider
/// echoes it in an error body; `--check` shows them masked.
#[test]
fn every_configured_secret_is_redacted_even_when_a_provider_echoes_it() {
    let secrets = [
        ("ANTHROPIC_API_KEY", "FAKEanthropic-0123456789abcdefghij"),
        ("GROQ_API_KEY", "FAKEgroq-0123456789abcdefghijklmnop"),
        ("AZURE_API_KEY", "FAKEazure0123456789abcdefghijklmnop"),
        ("AWS_ACCESS_KEY_ID", "AKIAFAKEACCESSKEY0123"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "FAKEawsSecret/0123456789abcdefghijKLMN",
        ),
        ("AWS_SESSION_TOKEN", "FAKEsessionToken0123456789abcdefghij"),
    ];
    let echoed: Vec<&str> = secrets.iter().map(|(_, v)| *v).collect();
    let message = format!("Invalid credentials: {}", echoed.join(" "));
    let body =
        json!({"error": {"message": message, "type": "authentication_error"}, "message": message});
    let upstream = MockUpstream::always(Script::json(401, &body.to_string()));
    let root = upstream.base_url().trim_end_matches("/v1").to_string();
    let base = upstream.base_url();
    let dir = temp_dir("all-secrets");
    let mut vars: Vec<(&str, &str)> = secrets.to_vec();
    vars.extend([
        ("LOG_DIR", dir.to_str().unwrap()),
        ("LOG_BODIES", "full"),
        ("DEBUG", "true"),
        ("ANTHROPIC_API_BASE", root.as_str()),
        ("GROQ_API_BASE", base.as_str()),
        ("AZURE_API_BASE", root.as_str()),
        ("BEDROCK_API_BASE", root.as_str()),
    ]);
    let check = Command::new(env!("CARGO_BIN_EXE_llmcallgateway"))
        .arg("--check")
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    let check = String::from_utf8_lossy(&check.stdout).to_string();
    for (name, secret) in secrets {
        assert!(!check.contains(secret), "--check shows {name}:\n{check}");
        assert!(
            check.contains(&format!("{name}=***")),
            "--check names {name} masked:\n{check}"
        );
    }
    let gw = Binary::start(&vars);
    for model in [
        "anthropic/claude-x",
        "groq/llama-x",
        "azure/prod",
        "bedrock/amazon.titan-text",
    ] {
        let chat = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        let reply = post_json(gw.addr, "/v1/chat/completions", &chat);
        assert_eq!(reply.status, 401, "{model}: {}", reply.text());
    }
    gw.stop();
    for file in log_files(&dir, "llmcallgateway_") {
        let text = fs::read_to_string(&file).unwrap();
        for (name, secret) in secrets {
            assert!(
                !text.contains(secret),
                "{} contains {name}:\n{text}",
                file.display()
            );
        }
    }
    assert_eq!(upstream.requests().len(), 4, "each provider was called");
    fs::remove_dir_all(&dir).unwrap();
}
