//! Issue 16's faults over real sockets, each behind a config file's alias: a connection reset
//! (retried), a deployment's `timeout` and `stream_timeout` (a 504 and a cut stream at that
//! time, not the environment's), a malformed answer (502), a deployment's `model_info` prices
//! (the record's cost), a context-length error (the larger-context alias), weights over 1,000
//! calls, and hot reload by `SIGHUP` to the binary (atomic under load; a stream in flight
//! finishes on the old table; an invalid file is refused and the old table stays) and by the
//! file watch of `ENABLE_RELOAD=true`.

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::binary::Binary;
use crate::support::client::{assert_error, assert_error_shape, get, post_json, wait_until};
use crate::support::gateway::{temp_dir, Gateway};
use crate::support::logs::log_files;
use crate::support::upstream::{fixture_events, Gate, MockUpstream, Script, Step};

const OK: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500}}"#;

/// One `model_list` entry of alias `chat` at `base`, with extra `litellm_params` and
/// `model_info` (flow mappings' contents, possibly empty).
fn entry(base: &str, params: &str, info: &str) -> String {
    format!(
        "  - model_name: chat\n    litellm_params: {{model: openai/m, api_base: \"{base}\", api_key: sk-test-fake{params}}}\n    model_info: {{{info}}}\n"
    )
}

/// A gateway whose config file lists `entries` and these `router_settings` lines.
fn gateway(entries: &[String], router: &str) -> Gateway {
    let path = temp_dir("routing-faults").join("config.yaml");
    let yaml = format!(
        "model_list:\n{}router_settings:\n{router}",
        entries.concat()
    );
    std::fs::write(&path, yaml).unwrap();
    Gateway::start(&[("CONFIG_FILE", path.to_str().unwrap())])
}

fn ask(gw: &Gateway, stream: bool) -> crate::support::client::Reply {
    let body =
        json!({"model": "chat", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    post_json(gw.addr, "/v1/chat/completions", &body)
}

/// A loopback listener that takes each connection, reads the request and closes it without
/// a word; returns its base URL and how many connections it took.
fn resetting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let taken = Arc::new(AtomicUsize::new(0));
    let counter = taken.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = conn.read(&mut [0u8; 4096]);
        }
    });
    (base, taken)
}

#[test]
fn a_connection_reset_is_retried_on_the_other_deployment() {
    let (reset, taken) = resetting_listener();
    let steady = MockUpstream::always(Script::json(200, OK));
    // least-busy with nothing in flight keeps file order: the resetting one is tried first.
    let entries = [entry(&reset, "", ""), entry(&steady.base_url(), "", "")];
    let gw = gateway(
        &entries,
        "  routing_strategy: least-busy\n  num_retries: 1\n",
    );
    let reply = ask(&gw, false);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-gateway-attempts"), Some("2"));
    assert_eq!(taken.load(Ordering::SeqCst), 1);
    assert_eq!(steady.requests().len(), 1);
}

#[test]
fn headers_later_than_the_deployment_timeout_are_a_504_at_that_time_not_later() {
    // The environment allows 5 s (the test default); the deployment 1 s.
    let slow = MockUpstream::always(Script::json(200, OK).hang(Duration::from_secs(4)));
    let gw = gateway(
        &[entry(&slow.base_url(), ", timeout: 1", "")],
        "  num_retries: 0\n",
    );
    let started = Instant::now();
    let reply = ask(&gw, false);
    let took = started.elapsed();
    assert_error(&reply, 504);
    assert!(
        (Duration::from_millis(900)..Duration::from_millis(2500)).contains(&took),
        "answered after {took:?}"
    );
}

#[test]
fn a_stream_stalled_past_the_stream_timeout_is_cut_with_an_sse_error_and_not_retried() {
    let events = fixture_events("openai/chat_completion_stream.sse");
    let stalling = MockUpstream::always(Script::sse(vec![
        Step::Event(events[0].clone()),
        Step::Pause(Duration::from_secs(4)),
        Step::Event(events[1].clone()),
    ]));
    let gw = gateway(
        &[entry(&stalling.base_url(), ", stream_timeout: 1", "")],
        "  num_retries: 2\n",
    );
    let started = Instant::now();
    let reply = ask(&gw, true);
    let took = started.elapsed();
    assert_eq!(reply.status, 200, "the stream's head was sent");
    let got = reply.events();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], events[0], "what came before is relayed");
    let error: Value = serde_json::from_str(&got[1]).unwrap();
    let error = assert_error_shape(&error);
    assert_eq!(error["code"], "upstream_timeout");
    assert!(
        error["message"].as_str().unwrap().contains("for 1 s"),
        "{error:?}"
    );
    assert!(took < Duration::from_millis(3000), "cut after {took:?}");
    assert_eq!(reply.header("x-gateway-attempts"), Some("1"));
    assert_eq!(
        stalling.requests().len(),
        1,
        "no retry after the first byte"
    );
}

#[test]
fn malformed_json_from_the_provider_is_a_502() {
    let broken = MockUpstream::always(Script::json(200, r#"{"id": "c", "choices": [{"#));
    let gw = gateway(&[entry(&broken.base_url(), "", "")], "  num_retries: 0\n");
    assert_error(&ask(&gw, false), 502);
}

#[test]
fn malformed_sse_from_the_provider_ends_the_stream_with_an_error_event() {
    let broken = MockUpstream::always(Script::sse(vec![Step::Raw(
        "data: {\"choices\": [{\n\n".into(),
    )]));
    let gw = gateway(&[entry(&broken.base_url(), "", "")], "  num_retries: 0\n");
    let reply = ask(&gw, true);
    // The stream's head went out before the first event could be read: the 502 is an event.
    assert_eq!(reply.status, 200);
    let got = reply.events();
    assert!(!got.iter().any(|e| e == "[DONE]"), "{got:?}");
    let last: Value = serde_json::from_str(got.last().expect("an error event")).unwrap();
    let error = assert_error_shape(&last);
    assert_eq!(error["type"], "upstream_error", "{error:?}");
}

#[test]
fn a_context_length_error_goes_to_the_larger_context_alias() {
    let short = MockUpstream::always(Script::json(
        400,
        r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
    ));
    let path = temp_dir("routing-context").join("config.yaml");
    let yaml = format!(
        "model_list:\n{}  - model_name: long\n    litellm_params: {{model: mock/echo}}\nrouter_settings:\n  context_window_fallbacks: [{{chat: [long]}}]\n",
        entry(&short.base_url(), "", "")
    );
    std::fs::write(&path, yaml).unwrap();
    let gw = Gateway::start(&[("CONFIG_FILE", path.to_str().unwrap())]);
    let reply = ask(&gw, false);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["choices"][0]["message"]["content"], "hi");
    assert_eq!(reply.header("x-gateway-attempts"), Some("2"));
    assert_eq!(
        short.requests().len(),
        1,
        "a refusal is not retried on its alias"
    );
}

#[test]
fn weights_hold_over_1000_calls() {
    let path = temp_dir("routing-weights").join("config.yaml");
    let yaml = "model_list:\n  - model_name: chat\n    litellm_params: {model: mock/echo, weight: 3}\n  - model_name: chat\n    litellm_params: {model: mock/lorem, weight: 1}\n";
    std::fs::write(&path, yaml).unwrap();
    let gw = Gateway::start(&[("CONFIG_FILE", path.to_str().unwrap())]);
    let echo = (0..1000)
        .filter(|_| answered_by(gw.addr) == (200, "echo"))
        .count();
    // Weight 3 of 4: p = 0.75, sd = sqrt(1000 p (1-p)) ≈ 13.7; five sd either way.
    assert!((681..=819).contains(&echo), "{echo} of 1000 to echo");
}

#[test]
fn model_info_prices_are_the_cost_of_the_deployments_calls() {
    let upstream = MockUpstream::always(Script::json(200, OK));
    let info = "input_cost_per_token: 0.000002, output_cost_per_token: 0.00001";
    let gw = gateway(&[entry(&upstream.base_url(), "", info)], "");
    let reply = ask(&gw, false);
    assert_eq!(reply.status, 200, "{}", reply.text());
    // 1000 × 0.000002 + 500 × 0.00001 = 0.007.
    assert_eq!(reply.header("x-gateway-cost-usd"), Some("0.00700000"));
}

#[test]
fn a_stream_in_flight_during_a_reload_finishes_on_the_old_table() {
    let events = fixture_events("openai/chat_completion_stream.sse");
    let gate = Gate::new();
    let mut steps = vec![Step::Event(events[0].clone()), gate.step()];
    steps.extend(events[1..].iter().cloned().map(Step::Event));
    let old = MockUpstream::always(Script::sse(steps));
    let dir = temp_dir("routing-in-flight");
    let path = dir.join("config.yaml");
    let yaml = format!("model_list:\n{}", entry(&old.base_url(), "", ""));
    std::fs::write(&path, yaml).unwrap();
    let bin = Binary::start(&[
        ("CONFIG_FILE", path.to_str().unwrap()),
        ("LOG_DIR", dir.join("logs").to_str().unwrap()),
    ]);
    let addr = bin.addr;
    let streaming = std::thread::spawn(move || {
        let body = json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        post_json(addr, "/v1/chat/completions", &body)
    });
    assert!(wait_until(Duration::from_secs(5), || old.requests().len() == 1));
    // The new table also names `reloaded`: its appearance in /v1/models says the reload took
    // effect without a call that the old, gated upstream would hold.
    let new_table = format!(
        "{}  - model_name: reloaded\n    litellm_params: {{model: mock/echo}}\n",
        chat_on("mock/echo")
    );
    std::fs::write(&path, new_table).unwrap();
    bin.signal("HUP");
    let listed = wait_until(Duration::from_secs(10), || {
        get(addr, "/v1/models").text().contains("\"reloaded\"")
    });
    let reloaded = listed && answered_by(addr) == (200, "echo");
    gate.open();
    let reply = streaming.join().unwrap();
    assert!(reloaded, "new calls go to the new table");
    let got = reply.events();
    assert_eq!(got.first(), events.first(), "{got:?}");
    assert_eq!(got.last().map(String::as_str), Some("[DONE]"), "{got:?}");
    assert_eq!(old.requests().len(), 1);
    bin.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn enable_reload_applies_a_changed_file_within_seconds() {
    let dir = temp_dir("routing-watch");
    let path = dir.join("config.yaml");
    std::fs::write(&path, chat_on("mock/echo")).unwrap();
    let bin = Binary::start(&[
        ("CONFIG_FILE", path.to_str().unwrap()),
        ("ENABLE_RELOAD", "true"),
        ("LOG_DIR", dir.join("logs").to_str().unwrap()),
    ]);
    assert_eq!(answered_by(bin.addr), (200, "echo"));
    // The watch compares modification times, which some file systems keep to the second.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&path, chat_on("mock/lorem")).unwrap();
    let applied = wait_until(Duration::from_secs(5), || {
        answered_by(bin.addr) == (200, "lorem")
    });
    assert!(applied, "the changed file is applied without a signal");
    bin.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The config file of the reload test: alias `chat` on one mock model.
fn chat_on(model: &str) -> String {
    format!("model_list:\n  - model_name: chat\n    litellm_params: {{model: {model}}}\n")
}

/// The status of a call to `chat`, and which mock answered it: echo repeats the prompt "3",
/// lorem writes three words.
fn answered_by(addr: std::net::SocketAddr) -> (u16, &'static str) {
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "3"}]});
    let reply = post_json(addr, "/v1/chat/completions", &body);
    let content = reply.json()["choices"][0]["message"]["content"].clone();
    let by = if content == "3" { "echo" } else { "lorem" };
    (reply.status, by)
}

#[test]
fn sighup_reloads_atomically_under_load_and_an_invalid_file_keeps_the_old_table() {
    let dir = temp_dir("routing-reload");
    let path = dir.join("config.yaml");
    std::fs::write(&path, chat_on("mock/echo")).unwrap();
    let logs = dir.join("logs");
    let bin = Binary::start(&[
        ("CONFIG_FILE", path.to_str().unwrap()),
        ("LOG_DIR", logs.to_str().unwrap()),
    ]);
    let addr = bin.addr;
    assert_eq!(answered_by(addr), (200, "echo"));

    // Clients keep calling while the file changes and the signal arrives.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    seen.push(answered_by(addr));
                }
                seen
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(&path, chat_on("mock/lorem")).unwrap();
    bin.signal("HUP");
    let after = wait_until(Duration::from_secs(5), || answered_by(addr).1 == "lorem");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let clients: Vec<Vec<(u16, &str)>> = load.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(after, "the new table is used after SIGHUP");
    for seen in &clients {
        assert!(seen.len() > 2, "{} calls under load", seen.len());
        assert!(seen.iter().all(|(status, _)| *status == 200), "{seen:?}");
        // Each client sees the old table, then the new one, never the old one again.
        let switched = seen
            .iter()
            .position(|c| c.1 == "lorem")
            .unwrap_or(seen.len());
        assert!(seen[switched..].iter().all(|c| c.1 == "lorem"), "{seen:?}");
    }

    // A typo is refused with an error line; the table stays.
    std::fs::write(&path, "model_lst: []\n").unwrap();
    bin.signal("HUP");
    let refused = wait_until(Duration::from_secs(5), || {
        log_files(&logs, "llmcallgateway_error_")
            .iter()
            .any(|f| std::fs::read_to_string(f).unwrap().contains("model_lst"))
    });
    assert!(refused, "the invalid file is named in the error log");
    assert_eq!(answered_by(addr), (200, "lorem"));
    bin.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
