//! The interaction explorer: `GET /admin/interactions` and `/admin/interactions/{id}` over a
//! real gateway (the in-memory ring, then the interaction files; filters, paging, bodies as
//! logged), the queue wait on every line and in the metrics, and the dashboard's Requests view
//! in headless Chromium (list, filters, a deep link to one request, hostile text shown as
//! text, no script error, no request beyond the gateway).

use std::time::Duration;

use serde_json::{json, Value};

use crate::dashboard::{chromium, render_page};
use crate::support::client::{assert_error, get, send, wait_until};
use crate::support::gateway::{temp_dir, Gateway};
use crate::support::logs::interaction_lines;
use crate::support::upstream::{MockUpstream, Script};

fn chat(model: &str, content: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]})
}

/// Sends a chat request with our own request id; returns the status.
fn call(gw: &Gateway, id: &str, body: &Value) -> u16 {
    let headers = [("content-type", "application/json"), ("x-request-id", id)];
    let bytes = body.to_string();
    send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &headers,
        bytes.as_bytes(),
    )
    .status
}

/// The request ids of a list page, in order.
fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect()
}

/// The texts of a rendered page's table column heads.
fn column_heads(page: &crate::dashboard::Rendered) -> Vec<String> {
    page.tags()
        .iter()
        .filter(|t| t.name == "th")
        .map(|t| t.text())
        .collect()
}

fn list(gw: &Gateway, query: &str) -> Value {
    let reply = get(gw.addr, &format!("/admin/interactions{query}"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// Waits until the explorer lists `n` interactions.
fn held(gw: &Gateway, n: usize) {
    let listed = || ids(&list(gw, "?limit=500")).len() >= n;
    assert!(
        wait_until(Duration::from_secs(10), listed),
        "the explorer never listed {n} interactions"
    );
}

/// Five calls: three to mock/echo, one stream from mock/lorem, one unknown model (404).
fn traffic(gw: &Gateway) {
    for i in 1..=3 {
        assert_eq!(
            call(gw, &format!("echo-{i}"), &chat("mock/echo", "hi", false)),
            200
        );
    }
    assert_eq!(call(gw, "stream-1", &chat("mock/lorem", "hi", true)), 200);
    assert_eq!(call(gw, "missing-1", &chat("mock/nope", "hi", false)), 404);
    held(gw, 5);
}

#[test]
fn interactions_are_listed_newest_first_and_filtered_by_model_provider_status_route_time_and_text()
{
    let gw = Gateway::start(&[]);
    traffic(&gw);
    let all = list(&gw, "");
    assert_eq!(
        ids(&all),
        ["missing-1", "stream-1", "echo-3", "echo-2", "echo-1"]
    );
    assert_eq!(all["next_cursor"], Value::Null);
    assert_eq!(all["recent"], json!({"held": 5, "capacity": 2000}));
    // Summaries carry every field but the bodies.
    let first = &all["data"][1];
    for field in [
        "timestamp",
        "route",
        "status",
        "usage",
        "queue_wait_ms",
        "attempts",
    ] {
        assert!(first.get(field).is_some(), "{field} missing in {first}");
    }
    for body in [
        "client_request",
        "downstream_request",
        "downstream_response",
    ] {
        assert!(first.get(body).is_none(), "{body} in a summary");
    }
    assert_eq!(ids(&list(&gw, "?model=mock/lorem")), ["stream-1"]);
    assert_eq!(ids(&list(&gw, "?model=mock%2Fecho&limit=2")).len(), 2);
    assert_eq!(ids(&list(&gw, "?status=error")), ["missing-1"]);
    assert_eq!(ids(&list(&gw, "?status=404")), ["missing-1"]);
    assert_eq!(ids(&list(&gw, "?provider=mock")).len(), 4);
    assert_eq!(ids(&list(&gw, "?q=ECHO-2")), ["echo-2"]);
    assert_eq!(ids(&list(&gw, "?q=does%20not%20exist")), ["missing-1"]);
    assert_eq!(ids(&list(&gw, "?route=chat/completions")).len(), 5);
    assert!(ids(&list(&gw, "?route=embeddings")).is_empty());
    assert!(ids(&list(&gw, "?since=4102444800")).is_empty(), "2100");
    assert_eq!(ids(&list(&gw, "?until=2100-01-01T00:00:00Z")).len(), 5);
    for bad in ["?limit=0", "?limit=501", "?since=yesterday", "?cursor=xyz"] {
        let reply = get(gw.addr, &format!("/admin/interactions{bad}"));
        assert_error(&reply, 400);
    }
}

#[test]
fn one_interaction_is_the_whole_record_as_logged_and_an_unknown_id_is_a_404() {
    let gw = Gateway::start(&[]);
    traffic(&gw);
    let reply = get(gw.addr, "/admin/interactions/stream-1");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let record = reply.json();
    // The recorder flushes the file each second.
    let logged = || interaction_lines(&gw.log_dir);
    assert!(wait_until(Duration::from_secs(10), || logged().len() == 5));
    let logged = logged();
    let line = logged.iter().find(|l| l["request_id"] == "stream-1");
    assert_eq!(Some(&record), line, "the record is the logged line");
    assert!(record["downstream_response"]["chunks"].as_u64().unwrap() > 1);
    let missing = assert_error(&get(gw.addr, "/admin/interactions/nobody"), 404);
    assert_eq!(missing["code"], "interaction_not_found");
    assert!(missing["message"].as_str().unwrap().contains("\"nobody\""));
}

#[test]
fn bodies_are_kept_as_logged_redacted_and_per_log_bodies() {
    let fake_key = "sk-proj-FAKEFAKEFAKEFAKE0123456789";
    let gw = Gateway::start(&[]);
    let content = format!("my key is {fake_key}");
    assert_eq!(
        call(&gw, "secret-1", &chat("mock/echo", &content, false)),
        200
    );
    held(&gw, 1);
    let record = get(gw.addr, "/admin/interactions/secret-1").text();
    assert!(!record.contains(fake_key), "{record}");
    assert!(record.contains("my key is sk-***"), "{record}");

    let gw = Gateway::start(&[("LOG_BODIES", "metadata")]);
    assert_eq!(call(&gw, "meta-1", &chat("mock/echo", "hi", false)), 200);
    held(&gw, 1);
    let record = get(gw.addr, "/admin/interactions/meta-1").json();
    assert_eq!(record["downstream_request"], Value::Null);
    assert_eq!(record["model_requested"], "mock/echo");

    // No interactions file at all: the ring still holds what was served.
    let gw = Gateway::start(&[("LOG_BODIES", "none")]);
    assert_eq!(call(&gw, "none-1", &chat("mock/echo", "hi", false)), 200);
    held(&gw, 1);
    assert_eq!(list(&gw, "")["scan"]["files"], false);
}

#[test]
fn pages_go_from_the_memory_ring_into_the_log_files_without_gaps_or_repeats() {
    let dir = temp_dir("explorer-pages");
    let gw = Gateway::start(&[("EXPLORER_RECENT", "2"), ("LOG_DIR", dir.to_str().unwrap())]);
    for i in 1..=7 {
        assert_eq!(
            call(&gw, &format!("p-{i}"), &chat("mock/echo", "hi", false)),
            200
        );
    }
    // The recorder flushes the file each second.
    let flushed = || interaction_lines(&dir).len() == 7;
    assert!(wait_until(Duration::from_secs(10), flushed));
    let mut seen = Vec::new();
    let mut query = "?limit=3".to_string();
    let mut read_files = false;
    for _ in 0..10 {
        let page = list(&gw, &query);
        assert!(ids(&page).len() <= 3);
        seen.extend(ids(&page));
        read_files |= page["scan"]["bytes_read"].as_u64().unwrap() > 0;
        assert_eq!(page["recent"]["held"], 2);
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    // Each once: the two in memory, then the files' (records are written as answers end,
    // which for requests sent one after the other may be in either order).
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["p-1", "p-2", "p-3", "p-4", "p-5", "p-6", "p-7"],
        "{seen:?}"
    );
    assert!(read_files, "older pages come from the files");
    // A record no longer in memory is found in the files.
    assert_eq!(
        get(gw.addr, "/admin/interactions/p-1").json()["request_id"],
        "p-1"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_interaction_line_and_the_metrics_carry_the_queue_wait() {
    let gw = Gateway::start(&[]);
    traffic(&gw);
    for line in interaction_lines(&gw.log_dir) {
        let wait = line["queue_wait_ms"].as_f64();
        assert!(wait.is_some_and(|w| w >= 0.0), "{line}");
    }
    let metrics = get(gw.addr, "/metrics").json();
    let queue = &metrics["totals"]["latency_seconds"]["queue_wait"];
    assert_eq!(queue["count"], 5, "{queue}");
    let text = get(gw.addr, "/metrics/prometheus").text();
    assert!(text.contains("# TYPE llmcallgateway_queue_wait_seconds histogram"));
    assert!(
        text.contains("llmcallgateway_queue_wait_seconds_count{"),
        "{text}"
    );
}

#[test]
fn requests_view_lists_filters_and_deep_links_in_chromium_without_script_errors() {
    let test = "requests_view_lists_filters_and_deep_links_in_chromium_without_script_errors";
    let Some(browser) = chromium(test) else {
        return;
    };
    let upstream = MockUpstream::always(Script::fixture(200, "openai/chat_completion.json"));
    let gw = Gateway::in_front_of(&upstream, &[]);
    traffic(&gw);
    assert_eq!(
        call(&gw, "openai-1", &chat("gpt-4o-mini", "hi", false)),
        200
    );
    held(&gw, 6);
    let rows = |page: &crate::dashboard::Rendered| -> Vec<String> {
        let rows = page.by_testid("request-row");
        rows.iter().map(|t| t.attr("data-id").unwrap()).collect()
    };

    let page = render_page(&browser, &gw, "/dashboard#/requests");
    page.assert_no_script_errors();
    assert_eq!(
        rows(&page),
        [
            "openai-1",
            "missing-1",
            "stream-1",
            "echo-3",
            "echo-2",
            "echo-1"
        ]
    );
    assert!(page.one("overview-view").attrs.contains("hidden"));
    assert!(page.one("requests-empty").attrs.contains("hidden"));
    let source = page.text("requests-source");
    assert!(source.starts_with("6 shown · 6 of the last 2k"), "{source}");
    // No key names in these records: no key column.
    let head = column_heads(&page);
    assert!(head.contains(&"TTFT".to_string()) && !head.contains(&"Key".to_string()));

    let page = render_page(&browser, &gw, "/dashboard#/requests?model=mock%2Florem");
    page.assert_no_script_errors();
    assert_eq!(rows(&page), ["stream-1"]);
    let page = render_page(&browser, &gw, "/dashboard#/requests?status=error");
    assert_eq!(rows(&page), ["missing-1"]);
    let page = render_page(
        &browser,
        &gw,
        "/dashboard#/requests?provider=openai&q=openai",
    );
    assert_eq!(rows(&page), ["openai-1"]);
    let page = render_page(&browser, &gw, "/dashboard#/requests?q=nothing-like-this");
    assert!(rows(&page).is_empty());
    assert_eq!(
        page.text("requests-empty"),
        "No request matches these filters."
    );

    // A deep link to one streamed request: its record, timing bar, stream and replay command.
    let page = render_page(&browser, &gw, "/dashboard#/requests/stream-1");
    page.assert_no_script_errors();
    assert!(page.one("requests-view").attrs.contains("hidden"));
    assert_eq!(page.text("detail-id"), "stream-1");
    assert_eq!(page.text("detail-status"), "success 200");
    let fields: Vec<String> = page
        .by_testid("detail-field")
        .iter()
        .map(|t| t.attr("data-key").unwrap())
        .collect();
    for field in [
        "timestamp",
        "route",
        "model_requested",
        "queue_wait_ms",
        "usage",
        "cost_usd",
    ] {
        assert!(
            fields.contains(&field.to_string()),
            "{field} not in {fields:?}"
        );
    }
    assert_eq!(fields[..2], ["timestamp", "request_id"], "reading order");
    assert!(
        !page.by_testid("timing-rest").is_empty(),
        "the streaming segment"
    );
    let response = page.text("detail-downstream-response");
    assert!(response.contains("\"chunks\""), "{response}");
    let curl = page.text("detail-curl");
    let expected = format!("curl -N 'http://{}/v1/chat/completions'", gw.addr);
    assert!(curl.starts_with(&expected), "{curl}");
    assert!(
        curl.contains("$LLMCALLGATEWAY_KEY") && curl.contains("\"stream\":true"),
        "{curl}"
    );

    // The provider call: its key never shows, the attempts table does.
    let page = render_page(&browser, &gw, "/dashboard#/requests/openai-1");
    page.assert_no_script_errors();
    assert!(!page.dom.contains("sk-test-fake-key"));
    assert_eq!(page.by_testid("detail-attempts").len(), 1);

    let page = render_page(&browser, &gw, "/dashboard#/requests/no-such-id");
    page.assert_no_script_errors();
    assert!(page.text("detail-missing").contains("no-such-id"));
}

#[test]
fn requests_view_shows_hostile_model_names_and_messages_as_text() {
    let Some(browser) = chromium("requests_view_shows_hostile_model_names_and_messages_as_text")
    else {
        return;
    };
    let gw = Gateway::start(&[]);
    // Parsed as HTML, either would run or fail to load an image and log an error, which the
    // page and Chromium's log both catch.
    let model = "<script>console.error('injected model')</script><img src=x onerror=\"console.error('img')\">";
    let message = "<script>console.error('injected message')</script><b>bold</b>";
    assert_eq!(call(&gw, "hostile-model", &chat(model, "hi", false)), 404);
    assert_eq!(
        call(&gw, "hostile-message", &chat("mock/echo", message, false)),
        200
    );
    held(&gw, 2);
    let injected = |page: &crate::dashboard::Rendered| {
        let tags = page.tags();
        let bad: Vec<String> = tags
            .iter()
            .filter(|t| t.name == "img" || (t.name == "b" && t.text() == "bold"))
            .map(|t| t.name.to_string())
            .collect();
        assert!(bad.is_empty(), "markup from the records: {bad:?}");
    };

    let page = render_page(&browser, &gw, "/dashboard#/requests");
    page.assert_no_script_errors();
    injected(&page);
    let row = page
        .by_testid("request-row")
        .into_iter()
        .find(|t| t.attr("data-id").as_deref() == Some("hostile-model"))
        .expect("the hostile row");
    assert_eq!(row.attr("data-model").as_deref(), Some(model));
    let cell = page
        .tags()
        .into_iter()
        .find(|t| t.name == "td" && t.attrs.contains("class=\"model\"") && t.text() == model);
    assert!(cell.is_some(), "the model name is shown as sent");

    let page = render_page(&browser, &gw, "/dashboard#/requests/hostile-message");
    page.assert_no_script_errors();
    injected(&page);
    assert!(page.text("detail-downstream-request").contains(message));
    let page = render_page(&browser, &gw, "/dashboard#/requests/hostile-model");
    page.assert_no_script_errors();
    injected(&page);
    assert!(page.text("detail-error").contains(model));
}

#[test]
fn requests_view_shows_fields_it_does_not_know_and_a_key_column_when_records_carry_key_names() {
    let test =
        "requests_view_shows_fields_it_does_not_know_and_a_key_column_when_records_carry_key_names";
    let Some(browser) = chromium(test) else {
        return;
    };
    // An older line, as a gateway with keys (and a field added later still) would log it:
    // the explorer finds it in the interaction files.
    let dir = temp_dir("explorer-keys");
    let line = json!({
        "timestamp": "2026-12-01T10:00:00.000000+00:00", "request_id": "keyed-1", "method": "POST",
        "route": "/v1/chat/completions", "key_name": "team-a-ci", "team": "team-a",
        "client": {"address": "127.0.0.1:5000", "user_agent": null},
        "model_requested": "mock/echo", "model": "echo", "provider": "mock", "api_base": null,
        "stream": false, "http_status": 200, "status": "success", "error": null,
        "processing_time": 0.001, "upstream_latency": 0.0, "time_to_first_token": null,
        "gateway_overhead_ms": 0.5, "queue_wait_ms": 0.0, "a_field_added_later": "shown",
        "usage": null, "usage_source": null, "cost_usd": null, "dropped_params": [], "attempts": [],
        "client_request": null, "downstream_request": {"model": "mock/echo", "messages": []},
        "downstream_response": null,
    });
    let file = dir.join("llmcallgateway_llm_interactions_2026-12-01.log");
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let gw = Gateway::start(&[("LOG_DIR", dir.to_str().unwrap())]);

    let page = render_page(&browser, &gw, "/dashboard#/requests");
    page.assert_no_script_errors();
    let row = page.one("request-row");
    assert_eq!(row.attr("data-id").as_deref(), Some("keyed-1"));
    assert_eq!(row.attr("data-key").as_deref(), Some("team-a-ci"));
    let head = column_heads(&page);
    assert!(head.contains(&"Key".to_string()), "{head:?}");

    let page = render_page(&browser, &gw, "/dashboard#/requests/keyed-1");
    page.assert_no_script_errors();
    let fields: Vec<String> = page
        .by_testid("detail-field")
        .iter()
        .map(|t| t.attr("data-key").unwrap())
        .collect();
    for field in ["key_name", "team", "a_field_added_later"] {
        assert!(
            fields.contains(&field.to_string()),
            "{field} not in {fields:?}"
        );
    }
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}
