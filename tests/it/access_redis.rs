//! Gateway keys shared through a real `redis-server` by several gateway instances: a key made
//! on one works on the other and a block reaches it, a 60 rpm key gets exactly 60 successes
//! across two gateway processes under concurrent load, a budget is overspent by at most one
//! call per instance, and with Redis down a key with limits gets 503 (or passes unchecked with
//! `REDIS_FAIL_OPEN=true`) until Redis returns; a keyed stream counted in Redis stays on its
//! worker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use crate::access::{admin, chat, generate, priced_mock, ADMIN};
use crate::support::binary::Binary;
use crate::support::client::{assert_error, send, wait_until, Conn};
use crate::support::gateway::{temp_dir, Gateway};
use crate::support::redis::RedisServer;
use crate::support::upstream::{fixture_events, Gate, MockUpstream, Script, Step};

fn instance(redis: &RedisServer, extra: &[(&str, &str)]) -> Gateway {
    let url = redis.url();
    let mut vars = vec![
        ("ADMIN_API_KEY", ADMIN),
        ("REDIS_URL", url.as_str()),
        ("WORKERS", "32"),
    ];
    vars.extend_from_slice(extra);
    Gateway::start(&vars)
}

#[test]
fn a_key_made_on_one_instance_works_on_another_and_a_block_reaches_it() {
    let redis = RedisServer::start();
    let (a, b) = (instance(&redis, &[]), instance(&redis, &[]));
    let key = generate(&a, json!({"key_alias": "shared"}));
    assert_eq!(chat(b.addr, &key, "mock/echo").status, 200);
    let listed = admin(&b, "GET", "/key/list", &Value::Null).json();
    assert_eq!(listed["total_count"], 1);
    assert_eq!(
        admin(&a, "POST", "/key/block", &json!({"key": key})).status,
        200
    );
    let refused = wait_until(Duration::from_secs(8), || {
        chat(b.addr, &key, "mock/echo").status == 401
    });
    assert!(
        refused,
        "the block reaches the other instance within the key cache's time"
    );
}

#[test]
fn a_60_rpm_key_gets_exactly_60_successes_across_two_gateway_processes() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (logs_a, logs_b) = (temp_dir("rpm-logs-a"), temp_dir("rpm-logs-b"));
    let vars = |logs: &std::path::Path| {
        vec![
            ("ADMIN_API_KEY", ADMIN.to_string()),
            ("REDIS_URL", url.clone()),
            ("LOG_DIR", logs.display().to_string()),
            ("WORKERS", "32".to_string()),
        ]
    };
    let start = |logs: &std::path::Path| {
        let vars = vars(logs);
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Binary::start(&refs)
    };
    let (a, b) = (start(&logs_a), start(&logs_b));
    let auth = format!("Bearer {ADMIN}");
    let made = send(
        a.addr,
        "POST",
        "/key/generate",
        &[("authorization", &auth)],
        json!({"rpm_limit": 60}).to_string().as_bytes(),
    );
    let key = made.json()["key"].as_str().unwrap().to_string();
    let (ok, limited, other) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    // 16 clients, 10 calls each, alternating between the two processes: 160 calls within a
    // few seconds, far inside one minute.
    std::thread::scope(|s| {
        for t in 0..16 {
            let (key, ok, limited, other) = (&key, &ok, &limited, &other);
            let addrs = [a.addr, b.addr];
            s.spawn(move || {
                for n in 0..10 {
                    let status = chat(addrs[(t + n) % 2], key, "mock/echo").status;
                    match status {
                        200 => ok.fetch_add(1, Ordering::Relaxed),
                        429 => limited.fetch_add(1, Ordering::Relaxed),
                        _ => other.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
    });
    assert_eq!(ok.load(Ordering::Relaxed), 60);
    assert_eq!(limited.load(Ordering::Relaxed), 100);
    assert_eq!(other.load(Ordering::Relaxed), 0);
    a.stop();
    b.stop();
    let _ = std::fs::remove_dir_all(logs_a);
    let _ = std::fs::remove_dir_all(logs_b);
}

#[test]
fn a_shared_budget_is_overspent_by_at_most_one_call_per_instance() {
    let redis = RedisServer::start();
    let prices = priced_mock();
    let prices_path = prices.to_str().unwrap();
    let (a, b) = (
        instance(&redis, &[("PRICES_FILE", prices_path)]),
        instance(&redis, &[("PRICES_FILE", prices_path)]),
    );
    let key = generate(&a, json!({"max_budget": 0.5, "budget_duration": "1d"}));
    let served = AtomicUsize::new(0);
    let cost = std::sync::Mutex::new(0.0f64);
    std::thread::scope(|s| {
        for t in 0..12 {
            let (key, served, cost) = (&key, &served, &cost);
            let addrs = [a.addr, b.addr];
            s.spawn(move || {
                for n in 0..15 {
                    let reply = chat(addrs[(t + n) % 2], key, "mock/echo");
                    if reply.status == 200 {
                        served.fetch_add(1, Ordering::Relaxed);
                        let c: f64 = reply.header("x-gateway-cost-usd").unwrap().parse().unwrap();
                        let mut max = cost.lock().unwrap();
                        *max = max.max(c);
                    } else {
                        assert_error(&reply, 429);
                    }
                }
            });
        }
    });
    let one_call = *cost.lock().unwrap();
    assert!(one_call > 0.0);
    let info = || admin(&a, "GET", &format!("/key/info?key={key}"), &Value::Null).json();
    let spend = |i: &Value| i["info"]["spend"].as_f64().unwrap();
    // The last calls are settled just after their answers.
    std::thread::sleep(Duration::from_millis(300));
    let spent = spend(&info());
    assert!(spent >= 0.5, "the budget was used up: {spent}");
    assert!(
        spent <= 0.5 + 2.0 * one_call + 1e-9,
        "spent {spent} of 0.5 with calls of {one_call} on two instances"
    );
    let charged = served.load(Ordering::Relaxed) as f64 * one_call;
    assert!(
        (charged - spent).abs() < 1e-9,
        "every call served was charged once: {charged} vs {spent}"
    );
    let _ = std::fs::remove_dir_all(prices.parent().unwrap());
}

#[test]
fn with_redis_down_a_limited_key_gets_503_until_redis_returns() {
    let mut redis = RedisServer::start();
    let gw = instance(&redis, &[]);
    let limited = generate(&gw, json!({"rpm_limit": 100, "key_alias": "limited"}));
    let free = generate(&gw, json!({"key_alias": "free"}));
    assert_eq!(chat(gw.addr, &limited, "mock/echo").status, 200);
    redis.pause();
    let reply = chat(gw.addr, &limited, "mock/echo");
    let e = assert_error(&reply, 503);
    assert_eq!(e["code"], "store_unavailable");
    assert!(reply.header("retry-after").is_some());
    // A key without limits needs nothing from Redis to be admitted.
    assert_eq!(chat(gw.addr, &free, "mock/echo").status, 200);
    redis.resume();
    // The test's Redis keeps nothing across a restart: the admin stores the key again.
    let again = admin(
        &gw,
        "POST",
        "/key/update",
        &json!({"key": limited, "rpm_limit": 100}),
    );
    assert_eq!(again.status, 200, "{}", again.text());
    let back = wait_until(Duration::from_secs(5), || {
        chat(gw.addr, &limited, "mock/echo").status == 200
    });
    assert!(back, "calls pass again once Redis is back");
}

#[test]
fn with_redis_fail_open_a_limited_key_passes_unchecked_while_redis_is_down() {
    let mut redis = RedisServer::start();
    let gw = instance(&redis, &[("REDIS_FAIL_OPEN", "true")]);
    let limited = generate(&gw, json!({"rpm_limit": 1}));
    assert_eq!(chat(gw.addr, &limited, "mock/echo").status, 200);
    assert_eq!(chat(gw.addr, &limited, "mock/echo").status, 429);
    redis.pause();
    for _ in 0..3 {
        assert_eq!(chat(gw.addr, &limited, "mock/echo").status, 200);
    }
}

/// With Redis, a keyed stream stays on its worker (its settlement at the end is a Redis round
/// trip, which would stall a relay thread's other streams), arrives whole, and is charged to
/// its key.
#[test]
fn a_keyed_stream_counted_in_redis_stays_on_its_worker_and_is_charged() {
    let redis = RedisServer::start();
    let url = redis.url();
    let events = fixture_events("openai/chat_completion_stream.sse");
    let gate = Gate::new();
    let mut steps = vec![Step::Event(events[0].clone()), gate.step()];
    steps.extend(events[1..].iter().cloned().map(Step::Event));
    let upstream = MockUpstream::always(Script::sse(steps));
    let gw = Gateway::in_front_of(
        &upstream,
        &[
            ("ADMIN_API_KEY", ADMIN),
            ("REDIS_URL", url.as_str()),
            ("WORKERS", "32"),
        ],
    );
    let key = generate(&gw, json!({"key_alias": "streamer"}));
    let mut conn = Conn::open(gw.addr);
    let body = json!({
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": true,
    })
    .to_string();
    let auth = format!("Bearer {key}");
    conn.write_request(
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
        ],
        body.as_bytes(),
    );
    assert_eq!(conn.read_head().status, 200);
    let mut sse = conn.sse();
    assert!(sse.next_event().is_some(), "the first event");
    // A worker that answered may count as busy until it runs again: the count settles.
    let mut server = Value::Null;
    let settled = wait_until(Duration::from_secs(5), || {
        server = admin(&gw, "GET", "/metrics", &Value::Null).json()["server"].clone();
        server["connections"]["relayed"] == 0 && server["workers"]["busy"] == 2
    });
    assert!(
        settled,
        "no stream relayed; the stream's worker and the metrics request's busy: {server}"
    );
    gate.open();
    assert_eq!(sse.rest().last().map(String::as_str), Some("[DONE]"));
    let info = || admin(&gw, "GET", &format!("/key/info?key={key}"), &Value::Null).json();
    let charged = wait_until(Duration::from_secs(5), || {
        info()["info"]["spend"].as_f64().is_some_and(|s| s > 0.0)
    });
    assert!(charged, "{}", info());
}
