//! Issue 16 over real sockets: a LiteLLM config file's alias in front of fault-injecting mock
//! upstreams — retries (500, 429 with retry-after), no retry for a refusal, fallbacks,
//! cooldowns, the router's counters and deployment health in `/metrics`, each call in the
//! interaction line's `attempts`, the alias in `/v1/models`, and the OpenAI Python SDK calling
//! an alias (`tests/sdk/test_router_alias.py`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::sdk::{pytest, python_or_skip};
use crate::support::client::{get, post_json};
use crate::support::gateway::{temp_dir, Gateway};
use crate::support::logs::interaction_lines;
use crate::support::upstream::{MockUpstream, Script};

const OK: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

/// A mock that answers its scripted statuses in turn, then 200.
fn scripted(first: Vec<Script>) -> (MockUpstream, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let upstream = MockUpstream::start(move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        first
            .get(n)
            .cloned()
            .unwrap_or_else(|| Script::json(200, OK))
    });
    (upstream, calls)
}

/// A gateway whose config file has `chat` on `upstream` (twice) and `backup` on mock/echo.
fn gateway(upstream: &MockUpstream, fallbacks: bool) -> Gateway {
    let dir = temp_dir("routing");
    let path = dir.join("config.yaml");
    let base = upstream.base_url();
    let mut yaml = format!(
        "model_list:\n  - model_name: chat\n    litellm_params: {{model: openai/m, api_base: \"{base}\", api_key: sk-test-fake}}\n  - model_name: chat\n    litellm_params: {{model: openai/m, api_base: \"{base}\", api_key: sk-test-fake}}\n  - model_name: backup\n    litellm_params: {{model: mock/echo}}\nrouter_settings:\n  num_retries: 1\n"
    );
    if fallbacks {
        yaml.push_str("  fallbacks: [{chat: [backup]}]\n");
    }
    std::fs::write(&path, yaml).unwrap();
    Gateway::start(&[("CONFIG_FILE", path.to_str().unwrap())])
}

fn ask(gw: &Gateway) -> crate::support::client::Reply {
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]});
    post_json(gw.addr, "/v1/chat/completions", &body)
}

#[test]
fn a_500_is_retried_once_and_the_answer_says_so() {
    let (upstream, calls) = scripted(vec![Script::json(500, r#"{"error":{"message":"boom"}}"#)]);
    let gw = gateway(&upstream, false);
    let reply = ask(&gw);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-gateway-attempts"), Some("2"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let dir = gw.stop_keeping_logs();
    let lines = interaction_lines(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let attempts = lines[0]["attempts"].as_array().unwrap();
    let summary: Vec<(&str, &str, u64, Option<&str>)> = attempts
        .iter()
        .map(|a| {
            (
                a["alias"].as_str().unwrap(),
                a["deployment"].as_str().unwrap(),
                a["status"].as_u64().unwrap(),
                a["error"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            // The status the gateway gives a provider's 500: 502.
            ("chat", "openai/m", 502, Some("boom")),
            ("chat", "openai/m", 200, None)
        ]
    );
    assert!(attempts
        .iter()
        .all(|a| a["latency_ms"].as_f64().unwrap() >= 0.0));
}

#[test]
fn a_line_without_a_provider_call_has_no_attempts() {
    let gw = Gateway::start(&[]);
    let reply = get(gw.addr, "/v1/chat/completions");
    assert!(reply.status >= 400);
    let dir = gw.stop_keeping_logs();
    let lines = interaction_lines(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!lines.is_empty());
    assert!(
        lines.iter().all(|l| l["attempts"] == json!([])),
        "{lines:?}"
    );
}

#[test]
fn a_429_retry_after_is_honoured() {
    let limited =
        Script::json(429, r#"{"error":{"message":"slow down"}}"#).with_header("retry-after", "1");
    let (upstream, calls) = scripted(vec![limited]);
    let gw = gateway(&upstream, false);
    let started = Instant::now();
    let reply = ask(&gw);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn a_refusal_is_not_retried() {
    let (upstream, calls) = scripted(vec![Script::json(
        401,
        r#"{"error":{"message":"bad key"}}"#,
    )]);
    let gw = gateway(&upstream, true);
    let reply = ask(&gw);
    assert_eq!(reply.status, 401);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn when_every_deployment_fails_the_fallback_answers() {
    let down = Script::json(503, r#"{"error":{"message":"down"}}"#);
    let (upstream, calls) = scripted(vec![down.clone(), down.clone(), down]);
    let gw = gateway(&upstream, true);
    let reply = ask(&gw);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-gateway-attempts"), Some("3"));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "both deployments, then mock/echo"
    );
    let routing = get(gw.addr, "/metrics").json()["routing"].clone();
    assert_eq!(
        (&routing["retries_total"], &routing["fallbacks_total"]),
        (&json!(1), &json!(1)),
        "{routing}"
    );
    let text = get(gw.addr, "/metrics/prometheus").text();
    assert!(
        text.contains("\nllmcallgateway_retries_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("\nllmcallgateway_fallbacks_total 1\n"),
        "{text}"
    );
}

#[test]
fn cooldown_skips_a_failing_deployment_and_returns_to_it_after_the_window() {
    let (flaky, flaky_calls) = scripted(vec![Script::json(500, r#"{"error":{"message":"boom"}}"#)]);
    let steady = MockUpstream::always(Script::json(200, OK));
    let dir = temp_dir("routing-cooldown");
    let path = dir.join("config.yaml");
    // least-busy with nothing in flight keeps file order: the flaky one is tried first.
    let deployment = |base: String| {
        format!("  - model_name: chat\n    litellm_params: {{model: openai/m, api_base: \"{base}\", api_key: sk-test-fake}}\n")
    };
    let yaml = format!(
        "model_list:\n{}{}router_settings:\n  routing_strategy: least-busy\n  num_retries: 1\n  allowed_fails: 1\n  cooldown_time: 1\n",
        deployment(flaky.base_url()),
        deployment(steady.base_url())
    );
    std::fs::write(&path, yaml).unwrap();
    let gw = Gateway::start(&[("CONFIG_FILE", path.to_str().unwrap())]);

    let first = ask(&gw);
    assert_eq!(
        (first.status, first.header("x-gateway-attempts")),
        (200, Some("2"))
    );
    let cooling: Vec<bool> = get(gw.addr, "/metrics").json()["routing"]["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["cooling"].as_bool().unwrap())
        .collect();
    assert_eq!(cooling, [true, false]);
    let text = get(gw.addr, "/metrics").text();
    assert!(text.contains("\"consecutive_failures\":1"), "{text}");
    let prometheus = get(gw.addr, "/metrics/prometheus").text();
    let flaky_line =
        "llmcallgateway_deployment_cooling{alias=\"chat\",provider=\"openai\",model=\"m\"} 1";
    assert!(prometheus.contains(flaky_line), "{prometheus}");

    let during = ask(&gw);
    assert_eq!(
        (during.status, during.header("x-gateway-attempts")),
        (200, Some("1"))
    );
    assert_eq!(
        flaky_calls.load(Ordering::SeqCst),
        1,
        "skipped while cooling"
    );

    std::thread::sleep(Duration::from_millis(1100));
    let after = ask(&gw);
    assert_eq!(
        (after.status, after.header("x-gateway-attempts")),
        (200, Some("1"))
    );
    assert_eq!(
        flaky_calls.load(Ordering::SeqCst),
        2,
        "probed after the window"
    );
    let cooling = get(gw.addr, "/metrics").json()["routing"]["deployments"][0]["cooling"].clone();
    assert_eq!(cooling, json!(false));
}

#[test]
fn models_lists_the_aliases() {
    let upstream = MockUpstream::always(Script::json(200, r#"{"object":"list","data":[]}"#));
    let gw = gateway(&upstream, false);
    let ids: Vec<String> = get(gw.addr, "/v1/models").json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(&ids[..2], ["backup", "chat"], "{ids:?}");
}

#[test]
fn the_openai_python_sdk_calls_an_alias_streamed_and_not() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let down = MockUpstream::always(Script::json(503, r#"{"error":{"message":"down"}}"#));
    let path = temp_dir("routing-sdk").join("config.yaml");
    // least-busy with nothing in flight keeps file order: the failing one first, every time
    // (allowed_fails high enough that it never cools down).
    let yaml = format!(
        "model_list:\n  - model_name: chat\n    litellm_params: {{model: openai/m, api_base: \"{}\", api_key: sk-test-fake}}\n  - model_name: chat\n    litellm_params: {{model: mock/echo}}\nrouter_settings:\n  routing_strategy: least-busy\n  num_retries: 1\n  allowed_fails: 1000\n",
        down.base_url()
    );
    std::fs::write(&path, yaml).unwrap();
    let gw = Gateway::start(&[("CONFIG_FILE", path.to_str().unwrap())]);
    pytest(python, gw.addr, &["tests/sdk/test_router_alias.py"]);
    assert_eq!(down.requests().len(), 2, "one failed call per SDK call");
}

/// A deployment's own `max_retries` (LiteLLM gives it to that deployment's client): a failed
/// call is tried again on the same deployment before the router counts it as failed, even with
/// the router's `num_retries` at 0.
#[test]
fn a_deployments_max_retries_tries_the_same_deployment_again() {
    let (upstream, calls) = scripted(vec![
        Script::json(503, r#"{"error":{"message":"busy"}}"#),
        Script::json(503, r#"{"error":{"message":"busy"}}"#),
    ]);
    let dir = temp_dir("routing-own-retries");
    let path = dir.join("config.yaml");
    let base = upstream.base_url();
    let yaml = format!(
        "model_list:\n  - model_name: solo\n    litellm_params: {{model: openai/m, api_base: \"{base}\", api_key: sk-test-fake, max_retries: 2}}\nrouter_settings:\n  num_retries: 0\n"
    );
    std::fs::write(&path, yaml).unwrap();
    let gw = Gateway::start(&[("CONFIG_FILE", path.to_str().unwrap())]);
    let body = json!({"model": "solo", "messages": [{"role": "user", "content": "hi"}]});
    let reply = post_json(gw.addr, "/v1/chat/completions", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "two failures, then the answer"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(dir);
}
