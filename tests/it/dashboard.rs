//! The `/dashboard` page as a browser renders it: a real headless Chromium loads the page from
//! a gateway on loopback, lets its scripts fetch the metrics (virtual time waits for pending
//! fetches), and dumps the resulting DOM, which the tests read through the page's
//! `data-testid` attributes. Script errors are caught twice: the page keeps every error and
//! `console.error` in `#console-errors`, and Chromium's own log (stderr) is searched for
//! uncaught exceptions. Without Chromium the tests print SKIPPED and pass, except under CI
//! (`CI=true`), where a missing browser is a failure (`.ci/run` installs it).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::client::{get, post_json, wait_until};
use crate::support::gateway::{temp_dir, Gateway};
use crate::support::upstream::{MockUpstream, Script};

/// How long one Chromium run may take before it is killed and the test fails.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(45);
/// Virtual time the page gets: the first refresh renders at once, a second one at 5 s.
const VIRTUAL_TIME_MS: u32 = 6000;

/// Hosts Chromium itself calls (network time, component updates, sign-in, autofill, push
/// messaging, and since Chromium 148 `www.google.com/async/folae`, the omnibox's AI-mode
/// eligibility, which no `--disable-features` name stops), whatever page it shows. Only these exact hosts: a page's
/// own request to, say, fonts.googleapis.com still counts.
const CHROMIUM_SERVICES: &[&str] = &[
    " http://clients2.google.com/",
    " clients2.google.com:",
    " http://update.googleapis.com/",
    " update.googleapis.com:",
    " accounts.google.com:",
    " content-autofill.googleapis.com:",
    " optimizationguide-pa.googleapis.com:",
    " safebrowsingohttpgateway.googleapis.com:",
    " www.google.com:",
    " android.clients.google.com:",
];

/// What the tripwire notes for a connection that sent no request.
const NO_REQUEST_LINE: &str = "(no request line)";

/// One browser at a time: several at once on a small machine only slow each other down.
static BROWSER: Mutex<()> = Mutex::new(());

/// The Chromium binary (`$CHROMIUM`, else `chromium` or `chromium-browser` on the PATH).
/// `None` (after printing SKIPPED) when there is none, unless CI=true: then the test fails.
pub(crate) fn chromium(test: &str) -> Option<PathBuf> {
    let from_env = std::env::var_os("CHROMIUM").map(PathBuf::from);
    let on_path = || {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|p| p.is_file())
    };
    let found = from_env.filter(|p| p.is_file()).or_else(on_path);
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: Chromium is not installed, and CI=true requires it: install the Debian \
             package `chromium` (.ci/run does) or point $CHROMIUM at a Chromium binary"
        );
        println!("SKIPPED {test}: no chromium on PATH (set $CHROMIUM or install `chromium`)");
    }
    found
}

/// What Chromium left after loading a page: the serialized DOM and its own log.
pub(crate) struct Rendered {
    pub(crate) dom: String,
    pub(crate) log: String,
    /// The first line of each request the page sent anywhere but the loopback address.
    pub(crate) off_host: Vec<String>,
}

/// A stand-in proxy on loopback that Chromium must send every non-loopback request to: it
/// answers nothing and notes each request's first line (`CONNECT host:443 …`, `GET http://…`).
struct Tripwire {
    addr: std::net::SocketAddr,
    seen: std::sync::Arc<Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Tripwire {
    fn start() -> Tripwire {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind tripwire");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
                        let mut head = [0u8; 512];
                        let n = conn.read(&mut head).unwrap_or(0);
                        let text = String::from_utf8_lossy(&head[..n]);
                        let line = text.lines().next().unwrap_or(NO_REQUEST_LINE);
                        seen2.lock().unwrap().push(line.to_string());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Tripwire {
            addr,
            seen,
            stop,
            thread,
        }
    }

    /// What the page asked for: every request but Chromium's own calls home.
    fn finish(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.thread.join();
        let seen = self.seen.lock().unwrap();
        // A connection that sent nothing is a browser's speculative preconnect, not a request.
        seen.iter()
            .filter(|line| *line != NO_REQUEST_LINE)
            .filter(|line| !CHROMIUM_SERVICES.iter().any(|host| line.contains(host)))
            .cloned()
            .collect()
    }
}

fn render(browser: &Path, gw: &Gateway) -> Rendered {
    render_page(browser, gw, "/dashboard")
}

/// Loads `http://addr{path}` in headless Chromium and dumps the DOM once virtual time has run
/// out. Every request to anywhere but loopback goes to a [`Tripwire`] and is reported in
/// `off_host`, so a page that reached for a CDN shows. Bounded: killed after
/// [`CHROMIUM_DEADLINE`].
pub(crate) fn render_page(browser: &Path, gw: &Gateway, path: &str) -> Rendered {
    let _one_at_a_time = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let profile = temp_dir("chromium-profile");
    let tripwire = Tripwire::start();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--window-size=1400,1000",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--proxy-server=http://{}", tripwire.addr))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_MS}"))
        .arg("--dump-dom")
        .arg(format!("http://{}{path}", gw.addr))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    // Read both pipes on threads, so a full pipe never stalls the browser and a helper
    // process that keeps a pipe open never stalls the test.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
        });
        rx
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + CHROMIUM_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = stderr
                .recv_timeout(Duration::from_secs(2))
                .unwrap_or_default();
            panic!("chromium did not finish within {CHROMIUM_DEADLINE:?}; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = stdout
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_default();
    let log = stderr
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        status.success() && dom.contains("</html>"),
        "chromium failed ({status}); its log:\n{log}"
    );
    let off_host = tripwire.finish();
    Rendered { dom, log, off_host }
}

/// A start tag of the dumped DOM: its name and raw attribute text, and the text right after it.
pub(crate) struct Tag<'a> {
    pub(crate) name: &'a str,
    pub(crate) attrs: &'a str,
    text: &'a str,
}

impl Tag<'_> {
    /// An attribute's value, entities decoded.
    pub(crate) fn attr(&self, name: &str) -> Option<String> {
        let key = format!(" {name}=\"");
        let start = self.attrs.find(&key)? + key.len();
        let len = self.attrs[start..].find('"')?;
        Some(decode(&self.attrs[start..start + len]))
    }

    pub(crate) fn text(&self) -> String {
        decode(self.text)
    }
}

fn decode(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

impl Rendered {
    /// Every start tag outside `<script>` and `<style>`, in document order.
    pub(crate) fn tags(&self) -> Vec<Tag<'_>> {
        let mut tags = Vec::new();
        let dom = self.dom.as_str();
        let mut i = 0;
        while let Some(at) = dom[i..].find('<').map(|at| i + at) {
            i = at + 1;
            let rest = &dom[at + 1..];
            if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
                continue;
            }
            let name_len = rest
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                .unwrap_or(rest.len());
            let mut quoted = false;
            let Some(end) = rest.char_indices().find_map(|(k, c)| match c {
                '"' => {
                    quoted = !quoted;
                    None
                }
                '>' if !quoted => Some(k),
                _ => None,
            }) else {
                break;
            };
            let after = &rest[end + 1..];
            let name = &rest[..name_len];
            if name == "script" || name == "style" {
                i = at + 1 + end + after.find("</").unwrap_or(after.len());
                continue;
            }
            let text = &after[..after.find('<').unwrap_or(after.len())];
            tags.push(Tag {
                name,
                attrs: &rest[name_len..end],
                text,
            });
        }
        tags
    }

    pub(crate) fn by_testid(&self, id: &str) -> Vec<Tag<'_>> {
        self.tags()
            .into_iter()
            .filter(|t| t.attr("data-testid").as_deref() == Some(id))
            .collect()
    }

    /// The element with this `data-testid` (exactly one must exist).
    pub(crate) fn one(&self, id: &str) -> Tag<'_> {
        let mut found = self.by_testid(id);
        assert_eq!(found.len(), 1, "elements with data-testid={id:?}");
        found.remove(0)
    }

    pub(crate) fn text(&self, id: &str) -> String {
        self.one(id).text()
    }

    /// (model, provider, requests as shown) of each row of the models table.
    fn model_rows(&self) -> Vec<(String, String, String)> {
        self.by_testid("model-row")
            .iter()
            .map(|t| {
                let get = |a: &str| t.attr(a).unwrap_or_default();
                (
                    get("data-model"),
                    get("data-provider"),
                    get("data-requests"),
                )
            })
            .collect()
    }

    /// How many marks (bars, line points) a chart drew.
    fn chart_marks(&self, chart: &str) -> u64 {
        let svg = self.one(&format!("chart-{chart}"));
        svg.attr("data-marks")
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("chart {chart} has no data-marks"))
    }

    /// The SVG markup of one chart.
    fn chart_svg(&self, chart: &str) -> &str {
        let marker = format!("data-testid=\"chart-{chart}\"");
        let start = self.dom.find(&marker).expect("chart in the DOM");
        let end = start + self.dom[start..].find("</svg>").expect("chart closes");
        &self.dom[start..end]
    }

    /// Fails on any error the page caught or Chromium logged as uncaught.
    pub(crate) fn assert_no_script_errors(&self) {
        let errors = self.one("console-errors");
        assert_eq!(
            errors.attr("data-count").as_deref(),
            Some("0"),
            "the page reported errors: {}",
            errors.text()
        );
        let console: Vec<&str> = self
            .log
            .lines()
            .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
            .collect();
        assert!(
            console
                .iter()
                .all(|l| !l.contains("Uncaught") && !l.to_ascii_lowercase().contains("error")),
            "chromium logged console errors:\n{}",
            console.join("\n")
        );
        assert!(
            self.dom.contains("data-loaded=\"true\""),
            "the page never rendered the metrics"
        );
        assert!(
            self.off_host.is_empty(),
            "the page reached beyond the gateway: {:?}",
            self.off_host
        );
    }
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello dashboard"}]})
}

/// Waits until the recorder has counted `n` API calls; returns `GET /metrics`.
fn metrics_after(gw: &Gateway, n: u64) -> Value {
    let counted = || get(gw.addr, "/metrics").json()["totals"]["requests"] == n;
    assert!(
        wait_until(Duration::from_secs(10), counted),
        "metrics never counted {n} requests"
    );
    get(gw.addr, "/metrics").json()
}

#[test]
fn dashboard_shows_the_served_totals_model_rows_and_charts_without_script_errors() {
    let Some(browser) =
        chromium("dashboard_shows_the_served_totals_model_rows_and_charts_without_script_errors")
    else {
        return;
    };
    let gw = Gateway::start(&[]);
    for _ in 0..5 {
        let reply = post_json(gw.addr, "/v1/chat/completions", &chat("mock/echo", false));
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    for _ in 0..2 {
        let reply = post_json(gw.addr, "/v1/chat/completions", &chat("mock/lorem", true));
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat("mock/nope", false));
    assert_eq!(reply.status, 404, "{}", reply.text());
    let served = metrics_after(&gw, 8);
    let totals = &served["totals"];

    let page = render(&browser, &gw);
    page.assert_no_script_errors();

    let requests = page.one("total-requests");
    assert_eq!(requests.text(), "8");
    assert_eq!(requests.attr("data-value").as_deref(), Some("8"));
    assert_eq!(page.text("success-rate"), "87.5%");
    let errors = page.text("total-errors");
    assert!(
        errors.contains("1 error") && errors.contains("404 ×1"),
        "{errors}"
    );
    for (id, key) in [
        ("tokens-prompt", "prompt"),
        ("tokens-completion", "completion"),
    ] {
        let served = totals["tokens"][key].as_u64().unwrap();
        assert!(served > 0 && served < 1000, "{key} tokens: {served}");
        assert_eq!(page.text(id), served.to_string(), "{id}");
    }
    assert_eq!(
        page.one("unpriced-requests").attr("data-value"),
        Some(totals["unpriced_requests"].to_string())
    );
    assert!(page.text("cost-usd").starts_with('$'));
    assert!(page.text("latency-p50").ends_with(" ms"));
    assert!(page.text("latency-p99").ends_with(" ms"));
    assert_eq!(page.text("version"), served["version"].as_str().unwrap());
    assert_eq!(page.text("in-flight"), "0");
    // The server's pool against its caps (the counts move with the page's own requests).
    let load = page.text("server-load");
    let server = &served["server"];
    assert!(
        load.starts_with("workers ")
            && load.contains(&format!(
                " of {} busy · connections ",
                server["workers"]["max"]
            ))
            && load.contains(&format!(" of {} open, ", server["connections"]["max"]))
            && load.contains(" idle, ")
            && load.ends_with(" streaming"),
        "{load}"
    );

    let rows = page.model_rows();
    for expected in [
        ("mock/echo", "mock", "5"),
        ("mock/lorem", "mock", "2"),
        ("(unresolved)", "(none)", "1"),
    ] {
        let row = (expected.0.into(), expected.1.into(), expected.2.into());
        assert!(rows.contains(&row), "no row {expected:?} in {rows:?}");
    }
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(page.by_testid("models-empty")[0].attrs.contains("hidden"));

    // Charts: bars for requests (7 succeeded and 1 failed, in one or two minutes) and tokens,
    // points or a line for latency, and an empty cost chart (the mock models cost nothing).
    assert!(page.chart_marks("requests") >= 2);
    assert!(page.chart_svg("requests").contains("class=\"bar f-ok\""));
    assert!(page.chart_svg("requests").contains("class=\"bar f-err\""));
    assert!(page.chart_marks("tokens") >= 2);
    assert!(page.chart_svg("tokens").contains("<rect"));
    assert!(page.chart_marks("latency") >= 2);
    let latency = page.chart_svg("latency");
    assert!(latency.contains("<path d=\"M"), "{latency}");
    assert!(
        latency.contains(" ms</text>"),
        "latency axis in ms: {latency}"
    );
    assert!(
        page.chart_svg("cost").contains("$0</text>"),
        "cost axis in USD"
    );
}

#[test]
fn dashboard_shows_each_deployments_health_and_the_routers_counts() {
    let Some(browser) = chromium("dashboard_shows_each_deployments_health_and_the_routers_counts")
    else {
        return;
    };
    let down = MockUpstream::always(Script::json(500, r#"{"error":{"message":"boom"}}"#));
    let path = temp_dir("dashboard-routing").join("config.yaml");
    // least-busy with nothing in flight keeps file order: the failing one first; one failure
    // cools it down for a minute, and the retry goes to mock/echo.
    let yaml = format!(
        "model_list:\n  - model_name: chat\n    litellm_params: {{model: openai/m, api_base: \"{}\", api_key: sk-test-fake}}\n  - model_name: chat\n    litellm_params: {{model: mock/echo}}\nrouter_settings:\n  routing_strategy: least-busy\n  num_retries: 1\n  allowed_fails: 1\n  cooldown_time: 60\n",
        down.base_url()
    );
    std::fs::write(&path, yaml).unwrap();
    let gw = Gateway::start(&[("CONFIG_FILE", path.to_str().unwrap())]);
    assert_eq!(
        post_json(gw.addr, "/v1/chat/completions", &chat("chat", false)).status,
        200
    );
    let page = render(&browser, &gw);
    page.assert_no_script_errors();
    assert!(!page.one("deployments").attrs.contains("hidden"));
    let health: Vec<(String, String)> = page
        .by_testid("deployment-row")
        .iter()
        .map(|t| {
            let attr = |name| t.attr(name).unwrap_or_default().to_string();
            (attr("data-alias"), attr("data-health"))
        })
        .collect();
    assert_eq!(
        health,
        [
            ("chat".to_string(), "cooling down".to_string()),
            ("chat".to_string(), "healthy".to_string())
        ]
    );
    assert_eq!(page.text("routing-counts"), "1 retries · 0 fallbacks");
}

#[test]
fn dashboard_shows_empty_states_when_there_is_no_traffic_yet() {
    let Some(browser) = chromium("dashboard_shows_empty_states_when_there_is_no_traffic_yet")
    else {
        return;
    };
    let gw = Gateway::start(&[]);
    let page = render(&browser, &gw);
    page.assert_no_script_errors();
    assert_eq!(page.text("total-requests"), "0");
    assert_eq!(page.text("success-rate"), "—");
    assert_eq!(page.text("latency-p50"), "—");
    assert!(page.model_rows().is_empty());
    let deployments = page.one("deployments");
    assert!(
        deployments.attrs.contains("hidden"),
        "no config file, no deployments"
    );
    let empty = page.one("models-empty");
    assert!(!empty.attrs.contains("hidden"), "the empty table says so");
    assert!(empty.text().contains("No traffic yet"), "{}", empty.text());
    for chart in ["requests", "latency", "tokens", "cost"] {
        assert_eq!(page.chart_marks(chart), 0, "{chart}");
        assert!(page.chart_svg(chart).contains("chart-empty"), "{chart}");
    }
    assert!(page
        .chart_svg("requests")
        .contains("No traffic in this range"));
}

#[test]
fn dashboard_shows_client_supplied_model_names_as_text_never_as_markup() {
    let Some(browser) =
        chromium("dashboard_shows_client_supplied_model_names_as_text_never_as_markup")
    else {
        return;
    };
    let upstream = MockUpstream::always(Script::fixture(200, "openai/chat_completion.json"));
    let gw = Gateway::in_front_of(&upstream, &[]);
    // Were this name parsed as HTML, the image would fail to load and its handler would log
    // an error, which the page and Chromium's log both catch.
    let hostile = "<img src=x onerror=\"console.error('injected')\"><b>bold</b>&amp;";
    let reply = post_json(gw.addr, "/v1/chat/completions", &chat(hostile, false));
    assert_eq!(reply.status, 200, "{}", reply.text());
    metrics_after(&gw, 1);

    let page = render(&browser, &gw);
    page.assert_no_script_errors();
    let rows = page.model_rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, hostile);
    assert_eq!(rows[0].1, "openai");
    let cell = page
        .tags()
        .into_iter()
        .find(|t| t.attrs.contains("class=\"model\""))
        .expect("the model cell");
    assert_eq!(cell.text(), hostile, "the name is shown as it was sent");
    let injected: Vec<String> = page
        .tags()
        .iter()
        .filter(|t| t.name == "img" || (t.name == "b" && t.text == "bold"))
        .map(|t| format!("<{}{}>", t.name, t.attrs))
        .collect();
    assert!(
        injected.is_empty(),
        "markup from the model name: {injected:?}"
    );
}
