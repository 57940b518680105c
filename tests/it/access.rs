//! Gateway keys on the embedded store, over real sockets: every refusal the access issue
//! lists (401 `invalid_api_key`, 403 naming the model, 429 `rate_limit_exceeded` with
//! `retry-after` and `x-ratelimit-*`, 429 `insufficient_quota`), LiteLLM's `/key/*` API round
//! trip, the admin routes, spend kept across a restart, the spend report, the record naming
//! the key and never holding it, and the refusal to listen beyond loopback unprotected.

use serde_json::{json, Value};

use std::time::Duration;

use crate::support::client::{assert_error, send, wait_until, Reply};
use crate::support::gateway::{temp_dir, Gateway};
use crate::support::logs::interaction_lines;

pub const ADMIN: &str = "sk-gw-test-fake-admin-0000000000000000";

/// A call with the admin key.
pub fn admin(gw: &Gateway, method: &str, path: &str, body: &Value) -> Reply {
    call_with(gw, ADMIN, method, path, body)
}

/// A call with `key` as a bearer token and `body` as JSON (none when null).
pub fn call_with(gw: &Gateway, key: &str, method: &str, path: &str, body: &Value) -> Reply {
    let auth = format!("Bearer {key}");
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    send(
        gw.addr,
        method,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        text.as_bytes(),
    )
}

/// A new key from `/key/generate` with these settings.
pub fn generate(gw: &Gateway, settings: Value) -> String {
    let reply = admin(gw, "POST", "/key/generate", &settings);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["key"].as_str().unwrap().to_string()
}

/// A chat call to `model` with `key` as a bearer token.
pub fn chat(addr: std::net::SocketAddr, key: &str, model: &str) -> Reply {
    let auth = format!("Bearer {key}");
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]});
    send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

/// A price table making `mock/echo` cost one cent per token, so budgets are spent.
pub fn priced_mock() -> std::path::PathBuf {
    let dir = temp_dir("prices");
    let path = dir.join("prices.json");
    let prices = json!({"mock/echo": {"input": 10000.0, "output": 10000.0}});
    std::fs::write(&path, prices.to_string()).unwrap();
    path
}

fn start() -> Gateway {
    Gateway::start(&[("ADMIN_API_KEY", ADMIN)])
}

#[test]
fn a_missing_or_unknown_key_gets_401_invalid_api_key_and_each_sdk_header_is_read() {
    let gw = Gateway::start(&[(
        "GATEWAY_API_KEYS",
        "ci=sk-gw-test-fake-env-key-000000000000",
    )]);
    let body = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]});
    let body = body.to_string();
    let call = |headers: &[(&str, &str)]| {
        send(
            gw.addr,
            "POST",
            "/v1/chat/completions",
            headers,
            body.as_bytes(),
        )
    };
    let e = assert_error(&call(&[]), 401);
    assert_eq!(e["code"], "invalid_api_key");
    let e = assert_error(
        &call(&[("authorization", "Bearer sk-gw-test-fake-unknown-00000000")]),
        401,
    );
    assert_eq!(e["code"], "invalid_api_key");
    assert!(!e["message"].as_str().unwrap().contains("unknown-00000000"));
    for header in ["x-api-key", "api-key"] {
        let reply = call(&[(header, "sk-gw-test-fake-env-key-000000000000")]);
        assert_eq!(reply.status, 200, "{header}: {}", reply.text());
    }
    let reply = call(&[(
        "authorization",
        "Bearer sk-gw-test-fake-env-key-000000000000",
    )]);
    assert_eq!(reply.status, 200);
    // Every /v1 route is behind the key, with or without the prefix; /health is not.
    assert_eq!(send(gw.addr, "GET", "/v1/models", &[], b"").status, 401);
    assert_eq!(send(gw.addr, "GET", "/models", &[], b"").status, 401);
    let messages = send(gw.addr, "POST", "/v1/messages", &[], body.as_bytes());
    assert_eq!(messages.status, 401);
    assert_eq!(messages.json()["error"]["type"], "authentication_error");
    assert_eq!(send(gw.addr, "GET", "/health", &[], b"").status, 200);
}

#[test]
fn a_blocked_or_expired_key_gets_401() {
    let gw = start();
    let key = generate(&gw, json!({"key_alias": "soon", "duration": "1s"}));
    assert_eq!(chat(gw.addr, &key, "mock/echo").status, 200);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let e = assert_error(&chat(gw.addr, &key, "mock/echo"), 401);
    assert!(e["message"].as_str().unwrap().contains("expired"), "{e:?}");

    let key = generate(&gw, json!({"key_alias": "stopped"}));
    let reply = admin(&gw, "POST", "/key/block", &json!({"key": key}));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let e = assert_error(&chat(gw.addr, &key, "mock/echo"), 401);
    assert!(e["message"].as_str().unwrap().contains("blocked"), "{e:?}");
    assert_eq!(
        admin(&gw, "POST", "/key/unblock", &json!({"key": key})).status,
        200
    );
    assert_eq!(chat(gw.addr, &key, "mock/echo").status, 200);
}

#[test]
fn a_model_outside_the_keys_list_gets_403_naming_it_on_every_route() {
    let gw = start();
    let key = generate(&gw, json!({"models": ["mock/ec*"]}));
    assert_eq!(chat(gw.addr, &key, "mock/echo").status, 200);
    let listed = send(
        gw.addr,
        "GET",
        "/v1/models",
        &[("authorization", &format!("Bearer {key}"))],
        b"",
    );
    assert_eq!(listed.json()["data"], json!([listed.json()["data"][0]]));
    assert_eq!(listed.json()["data"][0]["id"], "mock/echo");
    let e = assert_error(&chat(gw.addr, &key, "mock/lorem"), 403);
    assert!(
        e["message"].as_str().unwrap().contains("`mock/lorem`"),
        "{e:?}"
    );
    assert_eq!(e["code"], "model_not_allowed");
    let auth = format!("Bearer {key}");
    let embed = json!({"model": "mock/embed", "input": "x"}).to_string();
    let reply = send(
        gw.addr,
        "POST",
        "/v1/embeddings",
        &[("authorization", &auth)],
        embed.as_bytes(),
    );
    assert_error(&reply, 403);
    let messages = json!({"model": "mock/lorem", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    let reply = send(
        gw.addr,
        "POST",
        "/v1/messages",
        &[("x-api-key", &key)],
        messages.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(reply.json()["type"], "error", "Anthropic's error shape");
}

#[test]
fn over_the_rpm_limit_a_key_gets_429_with_retry_after_and_ratelimit_headers() {
    let gw = start();
    let key = generate(&gw, json!({"rpm_limit": 3, "key_alias": "three-a-minute"}));
    for n in 0..3 {
        let reply = chat(gw.addr, &key, "mock/echo");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-ratelimit-limit-requests"), Some("3"));
        let left = (2 - n).to_string();
        assert_eq!(
            reply.header("x-ratelimit-remaining-requests"),
            Some(left.as_str())
        );
        assert!(reply
            .header("x-ratelimit-reset-requests")
            .unwrap()
            .ends_with('s'));
    }
    let reply = chat(gw.addr, &key, "mock/echo");
    let e = assert_error(&reply, 429);
    assert_eq!(e["code"], "rate_limit_exceeded");
    assert_eq!(e["type"], "requests");
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(reply.header("x-ratelimit-remaining-requests"), Some("0"));
    // The record of the refusal names the key.
    let logs = gw.stop_keeping_logs();
    let lines = interaction_lines(&logs);
    let refused = lines.iter().find(|l| l["http_status"] == 429).unwrap();
    assert_eq!(refused["key_name"], "three-a-minute");
    let _ = std::fs::remove_dir_all(logs);
}

#[test]
fn the_tpm_window_is_charged_with_the_real_usage() {
    let gw = start();
    let key = generate(&gw, json!({"tpm_limit": 40}));
    let auth = format!("Bearer {key}");
    // mock/lorem writes as many words as the prompt asks: 30 completion tokens.
    let body = json!({"model": "mock/lorem", "messages": [{"role": "user", "content": "30"}]});
    let call = || {
        send(
            gw.addr,
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            body.to_string().as_bytes(),
        )
    };
    let first = call();
    assert_eq!(first.status, 200, "{}", first.text());
    // The call is settled once its answer is out: the spend report counts it then.
    let settled = wait_until(Duration::from_secs(5), || {
        admin(&gw, "GET", "/admin/spend", &Value::Null).json()["data"][0]["requests"] == 1
    });
    assert!(settled);
    // The estimate was small; the usage (about 31 tokens) is what the window now holds.
    let second = call();
    let e = assert_error(&second, 429);
    assert_eq!(e["type"], "tokens");
    assert!(second.header("retry-after").is_some());
}

#[test]
fn a_spent_budget_gets_429_insufficient_quota_and_key_info_reports_the_spend() {
    let prices = priced_mock();
    let gw = Gateway::start(&[
        ("ADMIN_API_KEY", ADMIN),
        ("PRICES_FILE", prices.to_str().unwrap()),
    ]);
    let key = generate(
        &gw,
        json!({"max_budget": 0.05, "budget_duration": "1d", "team_id": "research"}),
    );
    let mut served = 0;
    let refused = loop {
        let reply = chat(gw.addr, &key, "mock/echo");
        if reply.status != 200 {
            break reply;
        }
        served += 1;
        assert!(served < 20, "the budget stops the key");
    };
    let e = assert_error(&refused, 429);
    assert_eq!(e["type"], "insufficient_quota");
    assert_eq!(e["code"], "insufficient_quota");
    // The calls served are settled once their answers are out.
    let info = || admin(&gw, "GET", &format!("/key/info?key={key}"), &Value::Null).json();
    let spent = wait_until(Duration::from_secs(5), || {
        info()["info"]["spend"].as_f64().unwrap() >= 0.05
    });
    assert!(spent, "{}", info());
    let info = info();
    assert_eq!(info["info"]["budget_duration"], "1d");
    assert!(info["info"]["budget_reset_at"]
        .as_str()
        .unwrap()
        .ends_with("T00:00:00Z"));
    // A key reads its own info (its spend), not another's.
    let own = send(
        gw.addr,
        "GET",
        "/key/info",
        &[("authorization", &format!("Bearer {key}"))],
        b"",
    );
    assert_eq!(own.status, 200);
    assert_eq!(own.json()["info"]["spend"], info["info"]["spend"]);
    let _ = std::fs::remove_dir_all(prices.parent().unwrap());
}

#[test]
fn the_litellm_key_api_round_trips() {
    let gw = start();
    let reply = admin(
        &gw,
        "POST",
        "/key/generate",
        &json!({"key_alias": "ci-bot", "models": ["mock/*"], "rpm_limit": 100, "tpm_limit": 5000,
                "max_budget": 10, "budget_duration": "1mo", "team_id": "platform", "user_id": "ann",
                "metadata": {"ticket": "OPS-1"}, "duration": "30d"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let made = reply.json();
    let key = made["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk-gw-") && key.len() == 49, "{key}");
    let token = made["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    assert_eq!(made["key_alias"], "ci-bot");
    assert_eq!(made["budget_duration"], "1mo");
    assert!(made["expires"].is_string());

    // Shown once: info and list give the hash, never the key.
    let info = admin(&gw, "GET", &format!("/key/info?key={token}"), &Value::Null);
    assert_eq!(info.status, 200);
    assert!(!info.text().contains(&key));
    assert_eq!(info.json()["info"]["metadata"]["ticket"], "OPS-1");
    assert_eq!(info.json()["info"]["team_id"], "platform");
    let list = admin(&gw, "GET", "/key/list", &Value::Null).json();
    assert_eq!(list["keys"], json!([token]));
    assert_eq!(list["total_count"], 1);
    let full = admin(
        &gw,
        "GET",
        "/key/list?return_full_object=true&team_id=platform",
        &Value::Null,
    );
    assert_eq!(full.json()["keys"][0]["key_alias"], "ci-bot");
    assert!(!full.text().contains(&key));

    // Update: the fields given change, the rest stays.
    let updated = admin(
        &gw,
        "POST",
        "/key/update",
        &json!({"key": key, "rpm_limit": 1, "models": ["mock/echo"]}),
    );
    assert_eq!(updated.status, 200, "{}", updated.text());
    let updated = updated.json();
    assert_eq!(updated["rpm_limit"], 1);
    assert_eq!(updated["tpm_limit"], 5000);
    assert_eq!(updated["key_alias"], "ci-bot");
    assert_eq!(chat(gw.addr, &key, "mock/echo").status, 200);
    assert_eq!(chat(gw.addr, &key, "mock/echo").status, 429);

    // Fields LiteLLM has and the gateway lacks are refused, not ignored; typos too.
    let e = assert_error(
        &admin(
            &gw,
            "POST",
            "/key/generate",
            &json!({"max_parallel_requests": 2}),
        ),
        400,
    );
    assert_eq!(e["param"], "max_parallel_requests");
    assert_error(
        &admin(&gw, "POST", "/key/generate", &json!({"rpm_limt": 2})),
        400,
    );
    assert_error(
        &admin(
            &gw,
            "POST",
            "/key/generate",
            &json!({"key_alias": "ci-bot"}),
        ),
        400,
    );
    assert_error(
        &admin(
            &gw,
            "POST",
            "/key/generate",
            &json!({"budget_duration": "1y", "max_budget": 1}),
        ),
        400,
    );

    // Delete by alias; then the key is unknown.
    let deleted = admin(
        &gw,
        "POST",
        "/key/delete",
        &json!({"key_aliases": ["ci-bot"]}),
    );
    assert_eq!(deleted.json()["deleted_keys"], json!([token]));
    assert_error(&chat(gw.addr, &key, "mock/echo"), 401);
    assert_error(
        &admin(&gw, "POST", "/key/delete", &json!({"keys": [key]})),
        404,
    );
    assert_error(&admin(&gw, "GET", "/key/info?key=nope", &Value::Null), 404);
}

#[test]
fn admin_routes_take_the_admin_key_and_health_stays_open() {
    let gw = start();
    let key = generate(&gw, json!({}));
    let bearer = format!("Bearer {key}");
    for path in [
        "/metrics",
        "/metrics/prometheus",
        "/dashboard",
        "/docs",
        "/openapi.json",
        "/admin/spend",
        "/key/list",
    ] {
        let none = send(gw.addr, "GET", path, &[], b"");
        assert_eq!(none.status, 401, "{path}");
        assert!(none
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic"));
        let with_key = send(gw.addr, "GET", path, &[("authorization", &bearer)], b"");
        assert_eq!(with_key.status, 401, "{path} with a gateway key");
        assert_eq!(admin(&gw, "GET", path, &Value::Null).status, 200, "{path}");
    }
    // A browser sends the admin key as Basic auth's password.
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("admin:{ADMIN}")
        )
    );
    let page = send(
        gw.addr,
        "GET",
        "/dashboard",
        &[("authorization", &basic)],
        b"",
    );
    assert_eq!(page.status, 200);
    assert_eq!(send(gw.addr, "GET", "/health", &[], b"").status, 200);
    // The admin key calls any model, as LiteLLM's master key does.
    assert_eq!(chat(gw.addr, ADMIN, "mock/echo").status, 200);
}

#[test]
fn without_any_key_configured_the_gateway_stays_open() {
    let gw = Gateway::start(&[]);
    let reply = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        json!({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(reply.status, 200);
    assert!(reply.header("x-ratelimit-limit-requests").is_none());
    assert_eq!(send(gw.addr, "GET", "/metrics", &[], b"").status, 200);
    let logs = gw.stop_keeping_logs();
    let line = &interaction_lines(&logs)[0];
    assert!(line.as_object().unwrap().contains_key("key_name"));
    assert!(line["key_name"].is_null() && line["team"].is_null());
    let _ = std::fs::remove_dir_all(logs);
}

#[test]
fn a_restart_keeps_keys_and_spend_and_the_report_groups_it() {
    let prices = priced_mock();
    let data = temp_dir("restart-data");
    let vars = [
        ("ADMIN_API_KEY", ADMIN),
        ("PRICES_FILE", prices.to_str().unwrap()),
        ("DATA_DIR", data.to_str().unwrap()),
    ];
    let gw = Gateway::start(&vars);
    let key = generate(
        &gw,
        json!({"key_alias": "kept", "team_id": "blue", "max_budget": 100}),
    );
    let mut cost = 0.0;
    for _ in 0..3 {
        let reply = chat(gw.addr, &key, "mock/echo");
        assert_eq!(reply.status, 200);
        cost += reply
            .header("x-gateway-cost-usd")
            .unwrap()
            .parse::<f64>()
            .unwrap();
    }
    let info = || admin(&gw, "GET", &format!("/key/info?key={key}"), &Value::Null).json();
    let spend = || info()["info"]["spend"].as_f64().unwrap();
    // Each call is settled once its answer is out.
    let settled = wait_until(Duration::from_secs(5), || (spend() - cost).abs() < 1e-9);
    assert!(settled, "{} vs {cost}", spend());
    let spent = spend();
    assert!(gw.shutdown());

    let gw = Gateway::start(&vars);
    let after = admin(&gw, "GET", &format!("/key/info?key={key}"), &Value::Null).json();
    assert_eq!(after["info"]["spend"].as_f64(), Some(spent));
    assert_eq!(chat(gw.addr, &key, "mock/echo").status, 200);

    // A call is settled once its answer is out: the report has it a moment later.
    let by_team = || admin(&gw, "GET", "/admin/spend?group_by=team", &Value::Null).json();
    let settled = wait_until(Duration::from_secs(5), || {
        by_team()["data"][0]["requests"] == 4
    });
    assert!(settled, "{}", by_team());
    assert_eq!(by_team()["data"][0]["team"], "blue");
    let by_key = admin(&gw, "GET", "/admin/spend?group_by=key", &Value::Null).json();
    assert_eq!(by_key["data"][0]["key"], "kept");
    let by_model = admin(&gw, "GET", "/admin/spend?group_by=model", &Value::Null).json();
    assert_eq!(by_model["data"][0]["model"], "mock/echo");
    let by_day = admin(
        &gw,
        "GET",
        "/admin/spend?group_by=day&from=2020-01-01",
        &Value::Null,
    );
    assert_eq!(by_day.json()["data"].as_array().unwrap().len(), 1);
    let none = admin(
        &gw,
        "GET",
        "/admin/spend?from=2020-01-01&to=2020-01-02",
        &Value::Null,
    );
    assert_eq!(none.json()["data"], json!([]));
    assert_error(
        &admin(&gw, "GET", "/admin/spend?group_by=colour", &Value::Null),
        400,
    );
    assert_error(
        &admin(&gw, "GET", "/admin/spend?from=yesterday", &Value::Null),
        400,
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(data);
    let _ = std::fs::remove_dir_all(prices.parent().unwrap());
}

#[test]
fn listening_beyond_loopback_with_a_provider_key_and_no_gateway_key_is_refused() {
    let vars = [
        ("HOST", "0.0.0.0"),
        ("PORT", "0"),
        ("LITELLM_API_KEY", "sk-test-fake-provider-key-0000"),
    ];
    let data = temp_dir("refuse-data");
    let logs = temp_dir("refuse-logs");
    let mut all: Vec<(&str, &str)> = vars.to_vec();
    all.push(("DATA_DIR", data.to_str().unwrap()));
    all.push(("LOG_DIR", logs.to_str().unwrap()));
    let config = llmcallgateway::Config::from_lookup(|name| {
        all.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    let err = llmcallgateway::start(config).err().expect("refused");
    let why = err.to_string();
    assert!(
        why.contains("GATEWAY_API_KEYS") && why.contains("ALLOW_UNAUTHENTICATED"),
        "{why}"
    );
    assert!(!why.contains("sk-test-fake-provider-key"));
    let _ = std::fs::remove_dir_all(data);
    let _ = std::fs::remove_dir_all(logs);
}

/// Every file under `dir` (recursively), read as bytes.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

#[test]
fn keys_never_reach_a_log_the_store_or_the_output() {
    use std::process::Command;
    let (logs, data, out) = (
        temp_dir("secret-logs"),
        temp_dir("secret-data"),
        temp_dir("secret-out"),
    );
    let env_key = "sk-gw-test-fake-env-secret-7f3a9c1e5b";
    let stdout = std::fs::File::create(out.join("stdout")).unwrap();
    let stderr = std::fs::File::create(out.join("stderr")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmcallgateway"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs([
            ("PORT", "0"),
            ("ADMIN_API_KEY", ADMIN),
            ("GATEWAY_API_KEYS", &format!("ci={env_key}")),
            ("LOG_DIR", logs.to_str().unwrap()),
            ("DATA_DIR", data.to_str().unwrap()),
            ("LOG_BODIES", "full"),
            ("LOG_LEVEL", "trace"),
            ("DEBUG", "true"),
        ])
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let listening = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(out.join("stdout")).is_ok_and(|s| s.contains("listening on"))
    });
    assert!(listening);
    let text = std::fs::read_to_string(out.join("stdout")).unwrap();
    let addr: std::net::SocketAddr = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("listening on http://"))
        .unwrap()
        .parse()
        .unwrap();
    let bearer = format!("Bearer {ADMIN}");
    let call_admin = |method: &str, path: &str, body: Value| {
        send(
            addr,
            method,
            path,
            &[("authorization", &bearer)],
            body.to_string().as_bytes(),
        )
    };
    let made = call_admin(
        "POST",
        "/key/generate",
        json!({"models": ["mock/echo"], "rpm_limit": 2}),
    );
    let api_key = made.json()["key"].as_str().unwrap().to_string();
    // Every way a key travels: each header, the query, bodies, refusals of every kind.
    for key in [env_key, api_key.as_str()] {
        assert_eq!(chat(addr, key, "mock/echo").status, 200);
        chat(addr, key, "mock/lorem");
        chat(addr, key, "mock/echo");
        let stream = json!({"model": "mock/echo", "stream": true,
                            "messages": [{"role": "user", "content": key}]});
        send(
            addr,
            "POST",
            "/v1/chat/completions",
            &[("x-api-key", key)],
            stream.to_string().as_bytes(),
        );
        send(addr, "GET", "/v1/models", &[("api-key", key)], b"");
        call_admin("GET", &format!("/key/info?key={key}"), Value::Null);
    }
    chat(addr, "sk-gw-test-fake-wrong-key-0123456789", "mock/echo");
    call_admin(
        "POST",
        "/key/update",
        json!({"key": api_key, "max_parallel_requests": 3}),
    );
    call_admin(
        "POST",
        "/key/update",
        json!({"key": api_key, "rpm_limit": 5}),
    );
    call_admin("POST", "/key/delete", json!({"keys": [api_key]}));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());

    let mut scanned = 0;
    for dir in [&logs, &data, &out] {
        for (path, bytes) in files_under(dir) {
            scanned += 1;
            let text = String::from_utf8_lossy(&bytes);
            for secret in [env_key, api_key.as_str(), ADMIN] {
                assert!(!text.contains(secret), "{} holds a key", path.display());
            }
        }
    }
    assert!(
        scanned >= 5,
        "logs, the store and the output were there to scan"
    );
    let lines = crate::support::logs::interaction_lines(&logs);
    assert!(lines.iter().any(|l| l["key_name"] == "ci"));
    for dir in [logs, data, out] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn metrics_count_each_keys_calls_under_its_name_and_team() {
    let prices = priced_mock();
    let gw = Gateway::start(&[
        ("ADMIN_API_KEY", ADMIN),
        ("PRICES_FILE", prices.to_str().unwrap()),
    ]);
    let key = generate(&gw, json!({"key_alias": "ci-bot", "team_id": "platform"}));
    let mut cost = 0.0;
    for _ in 0..2 {
        let reply = chat(gw.addr, &key, "mock/echo");
        cost += reply
            .header("x-gateway-cost-usd")
            .unwrap()
            .parse::<f64>()
            .unwrap();
    }
    let text = || admin(&gw, "GET", "/metrics/prometheus", &Value::Null).text();
    let counted = wait_until(Duration::from_secs(5), || {
        text().contains("llmcallgateway_key_requests_total{key=\"ci-bot\",team=\"platform\"} 2")
    });
    assert!(counted, "{}", text());
    assert!(!text().contains(&key));
    let json = admin(&gw, "GET", "/metrics", &Value::Null).json();
    let row = &json["keys"][0];
    assert_eq!(row["key"], "ci-bot");
    assert_eq!(row["team"], "platform");
    assert!(
        (row["spend_usd"].as_f64().unwrap() - cost).abs() < 1e-9,
        "{row}"
    );
    let _ = std::fs::remove_dir_all(prices.parent().unwrap());
}

#[test]
fn the_deploy_files_set_only_variables_the_gateway_reads() {
    let known: Vec<&str> = llmcallgateway::config::VARIABLES
        .iter()
        .map(|(name, _, _)| *name)
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let compose = std::fs::read_to_string(root.join("scaled/compose.yml")).unwrap();
    let kube = std::fs::read_to_string(root.join("kubernetes.yaml")).unwrap();
    let mut set: Vec<String> = compose
        .lines()
        .filter_map(|l| l.trim().split_once(": ").map(|(k, _)| k.to_string()))
        .filter(|k| k.len() > 3 && k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect();
    set.extend(kube.split("{name: ").skip(1).filter_map(|rest| {
        let name = rest.split([',', '}']).next()?.trim();
        name.chars()
            .all(|c| c.is_ascii_uppercase() || c == '_')
            .then(|| name.to_string())
    }));
    assert!(set.contains(&"REDIS_URL".to_string()), "{set:?}");
    for name in &set {
        assert!(
            known.contains(&name.as_str()),
            "{name} is not a variable the gateway reads"
        );
    }
    let nginx = std::fs::read_to_string(root.join("scaled/nginx.conf")).unwrap();
    assert!(
        nginx.contains("proxy_buffering off"),
        "streams pass event by event"
    );
}

#[test]
fn keys_and_the_master_key_come_from_a_litellm_config_file_without_a_secret_in_it() {
    let dir = temp_dir("keys-config");
    let token = llmcallgateway::access::keys::KeyHash::of("sk-gw-test-fake-from-file-000000").hex();
    let file = dir.join("config.yaml");
    std::fs::write(
        &file,
        format!(
            "general_settings:\n  master_key: {ADMIN}\ngateway_keys:\n  - key_alias: from-file\n    \
             token: {token}\n    models: [mock/echo]\n    rpm_limit: 2\n    team_id: ops\n"
        ),
    )
    .unwrap();
    let gw = Gateway::start(&[("CONFIG_FILE", file.to_str().unwrap())]);
    let key = "sk-gw-test-fake-from-file-000000";
    let reply = chat(gw.addr, key, "mock/echo");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-ratelimit-limit-requests"), Some("2"));
    assert_error(&chat(gw.addr, key, "mock/lorem"), 403);
    assert_error(&chat(gw.addr, key, "mock/echo"), 429);
    // The master key is the admin key; the file's keys are changed in the file only.
    let e = assert_error(
        &admin(
            &gw,
            "POST",
            "/key/update",
            &json!({"key": token, "rpm_limit": 9}),
        ),
        400,
    );
    assert!(
        e["message"].as_str().unwrap().contains("gateway_keys"),
        "{e:?}"
    );
    drop(gw);

    // A key written in the file is refused, naming the file and the line.
    std::fs::write(
        &file,
        "gateway_keys:\n  - key_alias: leaked\n    key: sk-gw-test-fake-in-the-file-0000\n",
    )
    .unwrap();
    let logs = temp_dir("keys-config-logs");
    let vars = [
        ("CONFIG_FILE", file.to_str().unwrap()),
        ("DATA_DIR", dir.to_str().unwrap()),
        ("LOG_DIR", logs.to_str().unwrap()),
        ("PORT", "0"),
    ];
    let config = llmcallgateway::Config::from_lookup(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    let why = llmcallgateway::start(config)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        why.contains("config.yaml:3") && why.contains("os.environ"),
        "{why}"
    );
    assert!(!why.contains("sk-gw-test-fake-in-the-file"), "{why}");
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(logs);
}

#[test]
fn without_an_admin_key_nobody_manages_keys_and_gateway_keys_open_the_monitoring_routes() {
    // An open gateway: making the first key would lock its owner out, so it is refused.
    let open = Gateway::start(&[]);
    let e = assert_error(&send(open.addr, "POST", "/key/generate", &[], b"{}"), 403);
    assert_eq!(e["code"], "admin_key_not_configured");
    assert_error(&send(open.addr, "GET", "/admin/spend", &[], b""), 403);
    drop(open);
    // Keys from the environment only: they open /metrics and the dashboard, not /key/*.
    let key = "sk-gw-test-fake-env-only-00000000";
    let gw = Gateway::start(&[("GATEWAY_API_KEYS", key)]);
    let bearer = format!("Bearer {key}");
    assert_eq!(send(gw.addr, "GET", "/metrics", &[], b"").status, 401);
    assert_eq!(
        send(
            gw.addr,
            "GET",
            "/metrics",
            &[("authorization", &bearer)],
            b""
        )
        .status,
        200
    );
    let e = assert_error(
        &send(
            gw.addr,
            "GET",
            "/key/list",
            &[("authorization", &bearer)],
            b"",
        ),
        403,
    );
    assert_eq!(e["code"], "admin_key_not_configured");
}
