//! What a new user meets first: `GET /` pointing the way (HTML for a browser, JSON for an API
//! client), the favicon a browser asks for, the dashboard reached with a trailing slash, the
//! start-up banner and `--check` compared with the configuration that produced them, host
//! names for `HOST`, warnings for misspelt variables, log levels that mean something, and log
//! file names a user can follow.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmcallgateway::Config;
use serde_json::{json, Value};

use crate::dashboard::{chromium, render_page};
use crate::support::client::{get, post_json, send, wait_until};
use crate::support::gateway::{temp_dir, Gateway};
use crate::support::logs::log_files;
use crate::support::upstream::{MockUpstream, Script};

#[test]
fn the_root_points_browsers_and_api_clients_to_the_docs_dashboard_models_and_health() {
    let gw = Gateway::start(&[]);
    let json = get(gw.addr, "/");
    assert_eq!(json.status, 200);
    assert_eq!(json.header("content-type"), Some("application/json"));
    let body: Value = json.json();
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    for (name, path) in [
        ("docs", "/docs"),
        ("redoc", "/redoc"),
        ("dashboard", "/dashboard"),
        ("models", "/v1/models"),
        ("health", "/health"),
    ] {
        assert_eq!(body["links"][name], path, "{body}");
        assert_eq!(get(gw.addr, path).status, 200, "{path} answers");
    }
    let html = send(gw.addr, "GET", "/", &[("accept", "text/html,*/*")], b"");
    assert_eq!(html.status, 200);
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    for link in [
        "href=\"docs\"",
        "href=\"redoc\"",
        "href=\"dashboard\"",
        "href=\"v1/models\"",
        "href=\"health\"",
    ] {
        assert!(html.text().contains(link), "{link}");
    }
    let icon = get(gw.addr, "/favicon.ico");
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));
    assert!(icon.text().starts_with("<svg"));
    // Neither is an interaction: a browser's favicon request writes no line.
    let metrics = get(gw.addr, "/metrics").json();
    assert_eq!(metrics["totals"]["requests"], 0);
}

#[test]
fn the_dashboard_with_a_trailing_slash_loads_its_metrics() {
    let Some(browser) = chromium("the_dashboard_with_a_trailing_slash_loads_its_metrics") else {
        return;
    };
    let gw = Gateway::start(&[]);
    let page = render_page(&browser, &gw, "/dashboard/");
    page.assert_no_script_errors();
    assert!(
        page.one("banner").attrs.contains("hidden"),
        "no 'Could not load the metrics'"
    );
    assert_eq!(page.text("total-requests"), "0");
}

/// The binary started in a directory of its own with only `vars` (and PATH) set, its
/// standard output and error collected until it stops.
struct Started {
    child: Child,
    addr: std::net::SocketAddr,
    dir: PathBuf,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect(
    pipe: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    })
}

impl Started {
    fn new(vars: &[(&str, &str)]) -> Started {
        let dir = temp_dir("first-start");
        let mut child = Command::new(env!("CARGO_BIN_EXE_llmcallgateway"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", "0")
            .envs(vars.iter().copied())
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            collect(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        let first = || stdout.lock().unwrap().first().cloned();
        assert!(
            wait_until(Duration::from_secs(10), || first().is_some()),
            "no banner"
        );
        let addr = first()
            .unwrap()
            .strip_prefix("listening on http://")
            .expect("the first line says where")
            .parse()
            .unwrap();
        Started {
            child,
            addr,
            dir,
            stdout,
            stderr,
            readers,
        }
    }

    /// SIGTERM, a clean exit, and everything it printed: (stdout, stderr).
    fn stop(mut self) -> (Vec<String>, Vec<String>) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let exited = wait_until(Duration::from_secs(10), || {
            self.child.try_wait().unwrap().is_some()
        });
        assert!(exited, "the gateway exits after SIGTERM");
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        let out = self.stdout.lock().unwrap().clone();
        let err = self.stderr.lock().unwrap().clone();
        (out, err)
    }

    /// The text of the log files of one kind (`system`, `error`).
    fn log(&self, kind: &str) -> String {
        log_files(&self.dir.join("logs"), &format!("llmcallgateway_{kind}_"))
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config_of(vars: &[(&str, &str)]) -> Config {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned()).unwrap()
}

#[test]
fn the_banner_shows_the_address_the_log_directory_the_links_and_every_configured_provider() {
    let vars = [
        ("GEMINI_API_KEY", "fake-gemini-key-0123456789"),
        ("COHERE_API_KEY", "fake-cohere-key"),
        (
            "AZURE_API_BASE",
            "https://example-resource.openai.azure.com",
        ),
        ("AZURE_API_KEY", "fake-azure-key"),
        ("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE"),
        ("AWS_SECRET_ACCESS_KEY", "fake-aws-secret-0123456789"),
        ("LITELLM_BASE_URL", "http://127.0.0.1:9/v1"),
        ("LOG_DIR", "logs"),
    ];
    let gw = Started::new(&vars);
    let logs = std::fs::canonicalize(gw.dir.join("logs")).unwrap();
    let addr = gw.addr;
    let (out, _) = gw.stop();
    let text = out.join("\n");
    assert_eq!(out[0], format!("listening on http://{addr}"));
    assert!(
        text.contains(&format!("logs        {}", logs.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("dashboard   http://{addr}/dashboard")),
        "{text}"
    );
    assert!(
        text.contains(&format!("API docs    http://{addr}/docs")),
        "{text}"
    );
    let config = config_of(&vars);
    let mut shown = 0;
    for provider in llmcallgateway::providers::registry::PROVIDERS {
        let settings = config.provider(provider.name);
        let line = out
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("{} ", provider.name)));
        if provider.name == "mock" {
            assert!(line.is_some_and(|l| l.contains("mock/echo")), "{text}");
        } else if settings.explicit {
            let line = line.unwrap_or_else(|| panic!("{} missing:\n{text}", provider.name));
            let base = settings.base_url.as_deref().unwrap();
            assert!(line.ends_with(&format!("→ {base}")), "{line}");
            assert!(
                line.contains(&format!("{}/<model>", provider.name)),
                "{line}"
            );
            for prefix in provider.bare_prefixes {
                assert!(line.contains(&format!("{prefix}*")), "{line}");
            }
            shown += 1;
        } else {
            assert!(
                line.is_none(),
                "{} is not configured:\n{text}",
                provider.name
            );
        }
    }
    assert_eq!(shown, 5, "openai, gemini, cohere, azure, bedrock:\n{text}");
    assert!(!text.contains("fake-"), "no key in the banner:\n{text}");
}

#[test]
fn check_prints_every_variable_in_effect_masked_as_the_readme_says() {
    let dir = temp_dir("check-all");
    let prices = dir.join("prices.json");
    std::fs::write(&prices, r#"{"my-model": {"input": 1, "output": 2}}"#).unwrap();
    let yaml = dir.join("config.yaml");
    std::fs::write(
        &yaml,
        "model_list:\n  - model_name: chat\n    litellm_params: {model: mock/echo}\n",
    )
    .unwrap();
    let (prices, yaml) = (prices.display().to_string(), yaml.display().to_string());
    // Every variable, each with a value other than its default.
    let vars: Vec<(&str, &str)> = vec![
        ("HOST", "127.0.0.2"),
        ("PORT", "9999"),
        ("LITELLM_API_KEY", "sk-test-fake-litellm-0123456789"),
        ("LITELLM_BASE_URL", "http://127.0.0.1:9/v1"),
        ("GEMINI_API_KEY", "fake-gemini-0123456789"),
        ("GEMINI_API_BASE", "http://127.0.0.1:9"),
        ("ANTHROPIC_API_KEY", "sk-ant-fake"),
        ("ANTHROPIC_API_BASE", "http://127.0.0.1:9"),
        ("COHERE_API_KEY", "fake-cohere-0123456789abc"),
        ("COHERE_API_BASE", "http://127.0.0.1:9"),
        ("AZURE_API_KEY", "fake-azure"),
        ("AZURE_API_BASE", "https://example.openai.azure.com"),
        ("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKEFAKE"),
        ("AWS_SECRET_ACCESS_KEY", "fake-aws-secret-0123456789"),
        ("AWS_SESSION_TOKEN", "fake-session-token-0123456789"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_BEARER_TOKEN_BEDROCK", "fake-bedrock-token-0123456789"),
        ("BEDROCK_API_BASE", "http://127.0.0.1:9"),
        ("AZURE_API_VERSION", "2025-01-01"),
        ("MODELS_CACHE_SECS", "60"),
        ("DROP_UNSUPPORTED_PARAMS", "true"),
        ("WORKERS", "16"),
        ("MAX_CONNECTIONS", "500"),
        ("LISTEN_BACKLOG", "256"),
        ("KEEPALIVE_IDLE_SECS", "2"),
        ("CLIENT_HEADER_TIMEOUT", "3"),
        ("CLIENT_BODY_TIMEOUT", "4"),
        ("CLIENT_SEND_TIMEOUT", "6"),
        ("MAX_REQUEST_BYTES", "4096"),
        ("SHUTDOWN_GRACE_SECS", "7"),
        ("UPSTREAM_CONNECT_TIMEOUT", "8"),
        ("UPSTREAM_TIMEOUT", "9"),
        ("STREAM_IDLE_TIMEOUT", "11"),
        ("CORS_ALLOW_ORIGINS", "http://a.example"),
        ("LOG_LEVEL", "warn"),
        ("DEBUG", "true"),
        ("LOG_DIR", "elsewhere"),
        ("LOG_BODIES", "full"),
        ("LOG_MAX_BODY_BYTES", "1000"),
        ("LOG_ROTATE_MB", "5"),
        ("LOG_RETENTION_DAYS", "3"),
        ("LOG_MAX_TOTAL_MB", "50"),
        ("ACCESS_LOG", "false"),
        ("EXPLORER_RECENT", "10"),
        ("METRICS", "false"),
        ("PRICES_FILE", &prices),
        ("CONFIG_FILE", &yaml),
        ("MAX_RETRIES", "4"),
        ("ENABLE_RELOAD", "true"),
        ("DATA_DIR", "store-dir"),
        ("REDIS_URL", "redis://127.0.0.1:6390/0"),
        ("OPENAI_RESPONSES_API", "true"),
        ("RESPONSES_RETENTION_DAYS", "7"),
        (
            "GATEWAY_API_KEYS",
            "ci=sk-gw-test-fake-check-0000000001,sk-gw-test-fake-check-0000000002",
        ),
        ("ADMIN_API_KEY", "sk-gw-test-fake-check-admin-0000"),
        ("ALLOW_UNAUTHENTICATED", "true"),
        ("REDIS_FAIL_OPEN", "true"),
    ];
    let named: Vec<&str> = llmcallgateway::config::VARIABLES
        .iter()
        .map(|(name, _, _)| *name)
        .filter(|name| !name.starts_with('<'))
        .collect();
    for name in &named {
        assert!(vars.iter().any(|(v, _)| v == name), "the test sets {name}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_llmcallgateway"))
        .arg("--check")
        .env_clear()
        .envs(vars.iter().copied())
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let config = config_of(&vars);
    assert!(text.starts_with(&config.describe()), "{text}");
    let secrets: Vec<&str> = llmcallgateway::providers::registry::PROVIDERS
        .iter()
        .flat_map(|p| {
            let extras = p.extra_vars.iter().filter(|e| e.secret).map(|e| e.var);
            p.key_vars.iter().copied().chain(extras)
        })
        .collect();
    for (name, value) in &vars {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("--check does not show {name}:\n{text}"));
        let shown = &line[name.len() + 1..];
        if *name == "GATEWAY_API_KEYS" {
            // Gateway keys are never shown, not even masked: only how many there are.
            assert_eq!(shown, "(2 keys)", "{name}");
        } else if secrets.contains(name) || *name == "ADMIN_API_KEY" {
            // The README: `***` and the last four characters from 16 characters up.
            let expected = if value.chars().count() >= 16 {
                format!("***{}", &value[value.len() - 4..])
            } else {
                "***".to_string()
            };
            assert_eq!(shown, expected, "{name}");
        } else if *name == "LOG_ROTATE_MB" || *name == "LOG_MAX_TOTAL_MB" || *name == "HOST" {
            assert!(shown.starts_with(value), "{line}");
        } else {
            assert_eq!(shown, *value, "{name}");
        }
    }
    let readme = include_str!("../../README.md");
    assert!(readme
        .contains("a secret of 16 characters or more shows as `***` and its last four characters"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn host_names_such_as_localhost_are_resolved_and_listened_on() {
    let gw = Started::new(&[("HOST", "localhost")]);
    assert!(gw.addr.ip().is_loopback(), "{}", gw.addr);
    assert_eq!(get(gw.addr, "/health").status, 200);
    gw.stop();
}

#[test]
fn a_misspelt_variable_gets_a_warning_naming_the_closest_one() {
    let vars = [
        ("LOG_LEVLE", "debug"),
        ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
    ];
    let dir = temp_dir("misspelt");
    let out = Command::new(env!("CARGO_BIN_EXE_llmcallgateway"))
        .arg("--check")
        .env_clear()
        .envs(vars)
        .current_dir(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "warning: LOG_LEVLE is not a variable the gateway reads; did you mean LOG_LEVEL?"
        ),
        "{err}"
    );
    assert!(
        err.contains("ANTHROPIC_BASE_URL") && err.contains("ANTHROPIC_API_BASE"),
        "{err}"
    );
    // At a start the warning goes to standard error and the system log.
    let gw = Started::new(&vars);
    let (_, err) = gw.stop();
    assert!(
        err.iter()
            .any(|l| l.contains("WARN") && l.contains("did you mean LOG_LEVEL?")),
        "{err:?}"
    );
}

#[test]
fn a_clients_4xx_stays_off_standard_error_but_a_providers_failure_is_an_error() {
    let upstream = MockUpstream::always(Script::json(500, r#"{"error":{"message":"boom"}}"#));
    let base = upstream.base_url();
    let gw = Started::new(&[
        ("LITELLM_BASE_URL", &base),
        ("LITELLM_API_KEY", "sk-test-fake-key-0123456789"),
        ("MAX_RETRIES", "0"),
        ("LOG_DIR", "logs"),
    ]);
    assert_eq!(get(gw.addr, "/nowhere").status, 404);
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let missing = post_json(gw.addr, "/v1/chat/completions", &chat("mock/nope"));
    assert_eq!(missing.status, 404);
    let bad = post_json(
        gw.addr,
        "/v1/chat/completions",
        &json!({"model": "mock/echo"}),
    );
    assert_eq!(bad.status, 400);
    let failed = post_json(gw.addr, "/v1/chat/completions", &chat("gpt-4o-mini"));
    assert_eq!(failed.status, 502);
    let failed_id = failed.header("x-request-id").unwrap().to_string();
    let system_after = |gw: &Started| gw.log("system");
    let (system, errors) = {
        // Records are written in the order workers get the writer, not the order requests
        // ended: wait for all three lines, not just the last request's.
        let flushed = || {
            let system = system_after(&gw);
            system.contains(&failed_id)
                && ["404", "400"]
                    .iter()
                    .all(|status| system.contains(&format!("failed: status={status}")))
        };
        assert!(wait_until(Duration::from_secs(5), flushed));
        (gw.log("system"), gw.log("error"))
    };
    let (_, err) = gw.stop();
    let loud: Vec<&String> = err
        .iter()
        .filter(|l| l.contains("failed: status="))
        .collect();
    assert_eq!(loud.len(), 1, "{err:?}");
    assert!(
        loud[0].contains("ERROR") && loud[0].contains(&failed_id),
        "{loud:?}"
    );
    assert!(
        errors.contains(&failed_id) && !errors.contains("status=404"),
        "{errors}"
    );
    for status in ["404", "400"] {
        let line = "INFO  [llmcallgateway::recorder] request ";
        assert!(
            system
                .lines()
                .any(|l| l.contains(line) && l.contains(&format!("failed: status={status}"))),
            "the system log keeps the {status} at INFO:\n{system}"
        );
    }
}

#[test]
fn debug_adds_a_line_per_request_with_the_routing_decision_and_the_attempts() {
    let upstream = MockUpstream::always(Script::fixture(200, "openai/chat_completion.json"));
    let base = upstream.base_url();
    let key = "sk-test-fake-key-0123456789";
    let gw = Started::new(&[
        ("LITELLM_BASE_URL", &base),
        ("LITELLM_API_KEY", key),
        ("DEBUG", "true"),
        ("LOG_DIR", "logs"),
    ]);
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat("gpt-4o-mini"));
    assert_eq!(reply.status, 200);
    let id = reply.header("x-request-id").unwrap().to_string();
    assert!(wait_until(Duration::from_secs(5), || gw
        .log("system")
        .contains(&id)));
    assert_eq!(get(gw.addr, "/health").status, 200);
    let system = {
        let flushed = || gw.log("system").contains("GET /health");
        assert!(wait_until(Duration::from_secs(5), flushed));
        gw.log("system")
    };
    gw.stop();
    let debug: Vec<&str> = system
        .lines()
        .filter(|l| l.contains(" DEBUG ") && l.contains("request "))
        .collect();
    assert_eq!(
        debug.len(),
        1,
        "one per API call, none for /health:\n{system}"
    );
    let line = debug[0];
    assert!(line.contains(&format!("request {id} POST /v1/chat/completions: model gpt-4o-mini -> openai/gpt-4o-mini at {base}")), "{line}");
    assert!(
        line.contains(&format!("attempts [openai/gpt-4o-mini at {base}: 200 in ")),
        "{line}"
    );
    assert!(line.contains("dropped params []"), "{line}");
    assert!(!system.contains(key), "no key in the system log");
}

#[test]
fn the_file_being_written_keeps_its_plain_name_and_rotated_ones_get_sequence_numbers() {
    let gw = Started::new(&[("LOG_DIR", "logs"), ("LOG_ROTATE_MB", "0.002")]); // about 2 KB
    let chat = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "word ".repeat(60)}]});
    let call = |id: &str| {
        let headers = [("content-type", "application/json"), ("x-request-id", id)];
        let body = chat.to_string();
        let reply = send(
            gw.addr,
            "POST",
            "/v1/chat/completions",
            &headers,
            body.as_bytes(),
        );
        assert_eq!(reply.status, 200);
    };
    for i in 0..25 {
        call(&format!("rotate-{i}"));
    }
    let logs = gw.dir.join("logs");
    let plain = |kind: &str| {
        let date = time::OffsetDateTime::now_utc().date();
        logs.join(format!("llmcallgateway_{kind}_{date}.log"))
    };
    let written = |n: usize| crate::support::logs::interaction_lines(&logs).len() == n;
    assert!(wait_until(Duration::from_secs(5), || written(25)));
    // Then the newest line goes to the plain-named file: what `tail -F` follows.
    call("rotate-last");
    let current = plain("llm_interactions");
    let followed =
        || std::fs::read_to_string(&current).is_ok_and(|t| t.contains("\"rotate-last\""));
    assert!(wait_until(Duration::from_secs(5), followed));
    for kind in ["llm_interactions", "system"] {
        let names: Vec<String> = log_files(&logs, &format!("llmcallgateway_{kind}_"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(plain(kind).exists(), "{names:?}");
        let stem = plain(kind)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut numbers: Vec<u32> = names
            .iter()
            .filter_map(|n| {
                n.strip_prefix(&format!("{stem}."))?
                    .strip_suffix(".log")?
                    .parse()
                    .ok()
            })
            .collect();
        numbers.sort();
        assert!(!numbers.is_empty(), "{kind} rotated: {names:?}");
        assert_eq!(
            numbers,
            (1..=numbers.len() as u32).collect::<Vec<_>>(),
            "{names:?}"
        );
        assert_eq!(
            names.len(),
            numbers.len() + 1,
            "only the plain and numbered files: {names:?}"
        );
    }
    assert!(written(26), "every call is in exactly one of the files");
    gw.stop();
}
