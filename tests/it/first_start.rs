//! What a new user meets first: `GET /` pointing the way (HTML for a browser, JSON for an API
//! client), the favicon a browser asks for, the dashboard reached with a trailing slash, the
//! start-up banner and `--check` compared with the configuration that produced them, host
//! names for `HOST`, warnings for misspelt variables, log levels that mean something, and log
//! file names a user can follow.

use serde_json::Value;

use crate::dashboard::{chromium, render_page};
use crate::support::client::{get, send};
use crate::support::gateway::Gateway;

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
