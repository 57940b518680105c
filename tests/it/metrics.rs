//! Metrics, cost and trends (issue 5): after a scripted mix of calls every counter in
//! `/metrics`, `/metrics/models` and the Prometheus text equals the known figure; percentiles
//! fall within one bucket of the truth; cost is usage × price, and unknown for unpriced
//! models; trends survive a restart; bad trend parameters are 400s.

use std::fs;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::client::{assert_error, get, post_json, send, wait_until};
use crate::support::gateway::{temp_dir, Gateway};
use crate::support::raw::Client;
use crate::support::upstream::{MockUpstream, Script};

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn upstream() -> MockUpstream {
    MockUpstream::start(
        |request| match request.json()["model"].as_str().unwrap_or_default() {
            "gpt-4o" => Script::fixture(200, "openai/chat_completion.json"),
            "gpt-4o-mini" => Script::sse_fixture("openai/chat_completion_stream.sse"),
            "my-finetune" => Script::fixture(200, "openai/chat_completion_tool_call.json"),
            _ => Script::fixture(429, "openai/error_429_rate_limit.json"),
        },
    )
}

/// Sends the scripted mix; returns the cost headers seen for gpt-4o and my-finetune.
fn scripted_mix(gw: &Gateway) -> (Vec<Option<String>>, Option<String>) {
    let mut gpt4o_costs = Vec::new();
    for _ in 0..2 {
        let reply = post_json(gw.addr, "/v1/chat/completions", &chat("gpt-4o", false));
        assert_eq!(reply.status, 200);
        gpt4o_costs.push(reply.header("x-gateway-cost-usd").map(str::to_string));
    }
    for _ in 0..3 {
        let reply = post_json(gw.addr, "/v1/chat/completions", &chat("gpt-4o-mini", true));
        assert_eq!(reply.events().last().map(String::as_str), Some("[DONE]"));
    }
    let finetune = post_json(gw.addr, "/v1/chat/completions", &chat("my-finetune", false));
    assert_eq!(finetune.status, 200);
    for _ in 0..2 {
        assert_eq!(
            post_json(gw.addr, "/v1/chat/completions", &chat("limited", false)).status,
            429
        );
    }
    let malformed = send(gw.addr, "POST", "/v1/chat/completions", &[], b"{nope");
    assert_eq!(malformed.status, 400);
    for _ in 0..2 {
        assert_eq!(
            post_json(gw.addr, "/v1/chat/completions", &chat("mock/echo", false)).status,
            200
        );
    }
    // Not API calls: never counted.
    get(gw.addr, "/health");
    get(gw.addr, "/v1/models");
    let finetune_cost = finetune.header("x-gateway-cost-usd").map(str::to_string);
    (gpt4o_costs, finetune_cost)
}

const CALLS: u64 = 11;
/// gpt-4o: 1117 prompt × $2.50 + 46 completion × $10, per million; twice.
const GPT4O_COST: f64 = (1117.0 * 2.5 + 46.0 * 10.0) / 1e6;
/// gpt-4o-mini: 9 × $0.15 + 3 × $0.60, per million; three times.
const MINI_COST: f64 = (9.0 * 0.15 + 3.0 * 0.6) / 1e6;

fn metrics(gw: &Gateway) -> Value {
    let mut last = Value::Null;
    let settled = wait_until(Duration::from_secs(5), || {
        last = get(gw.addr, "/metrics").json();
        last["totals"]["requests"] == CALLS
    });
    assert!(settled, "the recorder counted every call: {last}");
    last
}

#[test]
fn counters_equal_the_scripted_traffic_exactly() {
    let upstream = upstream();
    let gw = Gateway::in_front_of(&upstream, &[]);
    let (gpt4o_costs, finetune_cost) = scripted_mix(&gw);
    let m = metrics(&gw);
    let t = &m["totals"];
    assert_eq!(t["successes"], 8);
    assert_eq!(t["errors"], 3);
    assert_eq!(t["client_closed"], 0);
    assert_eq!(t["errors_by_status"], json!({"400": 1, "429": 2}));
    assert_eq!(
        t["errors_by_kind"],
        json!({"invalid_request_error": 1, "tokens": 2})
    );
    // Prompt: 2 × 1117 + 3 × 9 + 82 + 2 × (1 word + 3 per message) for mock/echo.
    assert_eq!(t["tokens"]["prompt"], 2 * 1117 + 3 * 9 + 82 + 2 * 4);
    assert_eq!(t["tokens"]["completion"], 2 * 46 + 3 * 3 + 17 + 2);
    assert_eq!(t["tokens"]["cached"], 64);
    let cost = t["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - (2.0 * GPT4O_COST + 3.0 * MINI_COST)).abs() < 1e-12,
        "{cost}"
    );
    assert_eq!(
        t["unpriced_requests"], 1,
        "my-finetune has no price: unknown, not $0"
    );
    assert_eq!(m["providers"]["openai"]["requests"], 8);
    assert_eq!(m["providers"]["mock"]["requests"], 2);
    assert_eq!(m["in_flight"], 0);

    assert_eq!(gpt4o_costs, vec![Some(format!("{GPT4O_COST:.8}")); 2]);
    assert_eq!(finetune_cost, None, "no cost header for an unpriced model");

    let models = get(gw.addr, "/metrics/models").json();
    let row = |model: &str| {
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["model"] == model)
            .cloned()
            .unwrap()
    };
    let mini = row("gpt-4o-mini");
    assert_eq!(
        (mini["provider"].as_str(), mini["requests"].as_u64()),
        (Some("openai"), Some(3))
    );
    assert_eq!(mini["tokens"]["total"], 36);
    assert_eq!(mini["success_rate"], 1.0);
    assert!(mini["latency_seconds"]["time_to_first_token"]["count"] == 3);
    assert!(mini["last_used"].as_i64().is_some());
    assert_eq!(row("limited")["success_rate"], 0.0);
    assert!(row("my-finetune")["cost_usd"] == 0.0 && row("my-finetune")["unpriced_requests"] == 1);
    assert_eq!(row("(unresolved)")["requests"], 1);

    let text = get(gw.addr, "/metrics/prometheus").text();
    for line in [
        r#"llmcallgateway_requests_total{provider="openai",model="gpt-4o",status_class="2xx"} 2"#,
        r#"llmcallgateway_requests_total{provider="openai",model="limited",status_class="4xx"} 2"#,
        r#"llmcallgateway_errors_total{provider="openai",model="limited",error_kind="tokens"} 2"#,
        r#"llmcallgateway_prompt_tokens_total{provider="openai",model="gpt-4o-mini"} 27"#,
        r#"llmcallgateway_cached_tokens_total{provider="openai",model="my-finetune"} 64"#,
        r#"llmcallgateway_unpriced_requests_total{provider="openai",model="my-finetune"} 1"#,
        r#"llmcallgateway_request_duration_seconds_count{provider="openai",model="gpt-4o-mini"} 3"#,
        r#"llmcallgateway_request_duration_seconds_bucket{provider="mock",model="mock/echo",le="+Inf"} 2"#,
        "llmcallgateway_in_flight_requests 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
    let cost_line = text
        .lines()
        .find(|l| {
            l.starts_with(r#"llmcallgateway_cost_usd_total{provider="openai",model="gpt-4o"}"#)
        })
        .unwrap();
    let value: f64 = cost_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((value - 2.0 * GPT4O_COST).abs() < 1e-12);
}

#[test]
fn percentiles_fall_within_one_bucket_of_the_logged_truth() {
    let upstream = upstream();
    let gw = Gateway::in_front_of(&upstream, &[]);
    scripted_mix(&gw);
    let m = metrics(&gw);
    let dir = gw.stop_keeping_logs();
    let mut times: Vec<f64> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("llm_interactions"))
        .flat_map(|e| {
            fs::read_to_string(e.path())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .map(|l| serde_json::from_str::<Value>(&l).unwrap())
        .filter(|l| l["route"].as_str().unwrap().ends_with("/chat/completions"))
        .map(|l| l["processing_time"].as_f64().unwrap())
        .collect();
    times.sort_by(f64::total_cmp);
    assert_eq!(times.len() as u64, CALLS);
    let bucket = |v: f64| {
        llmcallgateway::metrics::LATENCY_BOUNDS
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(llmcallgateway::metrics::LATENCY_BOUNDS.len()) as i64
    };
    for (q, key) in [(0.5, "p50"), (0.99, "p99")] {
        let truth = times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
        let reported = m["totals"]["latency_seconds"]["processing"][key]
            .as_f64()
            .unwrap();
        assert!(
            (bucket(truth) - bucket(reported)).abs() <= 1,
            "{key}: reported {reported} vs true {truth}"
        );
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn trends_survive_a_restart() {
    let dir = temp_dir("trends");
    let dir_text = dir.display().to_string();
    let first = Gateway::start(&[("LOG_DIR", dir_text.as_str())]);
    for _ in 0..3 {
        post_json(
            first.addr,
            "/v1/chat/completions",
            &chat("mock/echo", false),
        );
    }
    post_json(
        first.addr,
        "/v1/embeddings",
        &json!({"model": "mock/embed", "input": "x"}),
    );
    first.stop_keeping_logs();

    let second = Gateway::start(&[("LOG_DIR", dir_text.as_str())]);
    let total = |query: &str| -> u64 {
        let reply = get(second.addr, &format!("/metrics/trends?{query}"));
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["requests"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(total("hours=1&bucket=1m"), 4);
    assert_eq!(total("hours=2&bucket=5m&model=mock%2Fecho"), 3);
    assert_eq!(total("hours=24&bucket=1h&model=mock/embed"), 1);
    assert_eq!(total("hours=48&bucket=1d&model=nobody"), 0);
    let day = get(second.addr, "/metrics/trends?hours=24").json();
    assert_eq!(
        day["bucket_seconds"], 300,
        "24 hours default to 5-minute buckets"
    );
    let tokens: u64 = day["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["tokens"]["prompt"].as_u64().unwrap())
        .sum();
    assert_eq!(tokens, 3 * 4 + 1);
    second.stop_keeping_logs();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_trend_parameters_are_400s_naming_the_parameter() {
    let gw = Gateway::start(&[]);
    for (query, param) in [
        ("hours=-1", "hours"),
        ("hours=abc", "hours"),
        ("hours=100000", "hours"),
        ("bucket=7m", "bucket"),
        ("hours=100&bucket=1m", "bucket"),
    ] {
        let reply = get(gw.addr, &format!("/metrics/trends?{query}"));
        let error = assert_error(&reply, 400);
        assert_eq!(error["param"], param, "{query}");
    }
}

/// Issue 18: an operator sees how close the gateway is to its two 503s (every worker busy,
/// the connection cap): connections open, parked between requests, queued; workers busy,
/// started and the configured maxima, in the JSON and the Prometheus text.
#[test]
fn metrics_show_connections_parked_and_workers_busy_against_their_limits() {
    let gw = Gateway::start(&[("WORKERS", "8"), ("MAX_CONNECTIONS", "50")]);
    // Five keep-alive clients, each answered once and then idle: parked, holding no worker.
    let mut idle: Vec<Client> = (0..5).map(|_| Client::connect(gw.addr)).collect();
    for client in &mut idle {
        client.get("/health", "");
        assert_eq!(client.read_reply().unwrap().status, 200);
    }
    // Each look is a new connection, and the one before may not be counted out yet, nor its
    // worker back: the counts settle within a few looks.
    let mut server = Value::Null;
    let settled = wait_until(Duration::from_secs(5), || {
        server = get(gw.addr, "/metrics").json()["server"].clone();
        let connections = &server["connections"];
        // The five, and the one asking; the metrics request itself is the one in a worker.
        connections["parked"] == 5 && connections["open"] == 6 && server["workers"]["busy"] == 1
    });
    assert!(
        settled,
        "five idle connections parked, one request in a worker: {server}"
    );
    assert_eq!(server["connections"]["queued"], 0, "{server}");
    assert_eq!(server["connections"]["relayed"], 0, "{server}");
    assert_eq!(server["connections"]["max"], 50);
    let started = server["workers"]["started"].as_u64().unwrap();
    assert!((1..=8).contains(&started), "{server}");
    assert_eq!(server["workers"]["max"], 8);

    let text = send(gw.addr, "GET", "/metrics/prometheus", &[], b"").text();
    for line in [
        "llmcallgateway_connections_parked 5",
        "llmcallgateway_connections_max 50",
        "llmcallgateway_workers_max 8",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
    for gauge in [
        "connections_open",
        "connections_queued",
        "connections_relayed",
        "workers_busy",
        "workers_started",
    ] {
        assert!(
            text.contains(&format!("# TYPE llmcallgateway_{gauge} gauge")),
            "{gauge} in:\n{text}"
        );
    }
    drop(idle);
    assert!(
        wait_until(Duration::from_secs(5), || get(gw.addr, "/metrics").json()
            ["server"]["connections"]["open"]
            == 1),
        "closed clients are counted out"
    );
}

#[test]
fn metrics_can_be_turned_off() {
    let gw = Gateway::start(&[("METRICS", "false")]);
    post_json(gw.addr, "/v1/chat/completions", &chat("mock/echo", false));
    for path in [
        "/metrics",
        "/metrics/models",
        "/metrics/trends",
        "/metrics/prometheus",
    ] {
        let error = assert_error(&get(gw.addr, path), 404);
        assert_eq!(error["code"], "metrics_disabled");
    }
}

/// Model names are the client's: past `MAX_MODELS` distinct names they fold into one `(other)`
/// row per provider, in `/metrics/models`, the Prometheus labels and the trends, so a client
/// inventing names cannot grow the gateway's memory without bound.
#[test]
fn distinct_model_names_past_the_cap_fold_into_one_other_row() {
    let cap = llmcallgateway::metrics::MAX_MODELS;
    let upstream = MockUpstream::always(Script::fixture(200, "openai/chat_completion.json"));
    let gw = Gateway::in_front_of(&upstream, &[]);
    let extra = 40;
    for n in 0..cap + extra {
        let reply = post_json(
            gw.addr,
            "/v1/chat/completions",
            &chat(&format!("invented-{n}"), false),
        );
        assert_eq!(reply.status, 200);
    }
    let counted = wait_until(Duration::from_secs(20), || {
        get(gw.addr, "/metrics").json()["totals"]["requests"] == (cap + extra) as u64
    });
    assert!(counted, "the recorder caught up");
    let models = get(gw.addr, "/metrics/models").json();
    let rows = models["data"].as_array().unwrap();
    assert_eq!(rows.len(), cap + 1, "{cap} names and one (other) row");
    let other = rows
        .iter()
        .find(|r| r["model"] == "(other)")
        .expect("an (other) row");
    assert_eq!(other["requests"], extra as u64);
    let text = send(gw.addr, "GET", "/metrics/prometheus", &[], b"").text();
    let labels: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.split("model=\"").nth(1)?.split('"').next())
        .collect();
    assert!(labels.len() <= cap + 1, "{} model labels", labels.len());
    let trends = get(gw.addr, "/metrics/trends?hours=1&model=(other)").json();
    let folded: u64 = trends["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["requests"].as_u64())
        .sum();
    assert_eq!(
        folded, extra as u64,
        "the trends count them under (other) too"
    );
}

/// Trends are keyed like `/metrics/models`: by provider and model (issue 12).
#[test]
fn trends_are_keyed_by_provider_and_model() {
    let gw = Gateway::start(&[]);
    let body = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        post_json(gw.addr, "/v1/chat/completions", &body).status,
        200
    );
    let provider = "mock";
    let requests = |query: &str| -> (u64, Value) {
        let reply = get(gw.addr, &format!("/metrics/trends?hours=1&{query}")).json();
        let n = reply["buckets"].as_array().unwrap().iter();
        (n.map(|b| b["requests"].as_u64().unwrap()).sum(), reply)
    };
    let mut seen = (0, Value::Null);
    wait_until(Duration::from_secs(5), || {
        seen = requests(&format!("provider={provider}&model=mock/echo"));
        seen.0 == 1
    });
    assert_eq!(seen.0, 1, "{}", seen.1);
    assert_eq!(seen.1["provider"], provider);
    assert_eq!(requests(&format!("provider={provider}")).0, 1);
    assert_eq!(requests("provider=openai&model=mock/echo").0, 0);
    assert_eq!(requests("model=mock/echo").0, 1);
}
