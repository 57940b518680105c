//! The API documentation the binary serves: `/openapi.json` describes exactly the routes the
//! router answers (`llmcallgateway::routes::ROUTES`) and passes a real OpenAPI validator
//! (`openapi-spec-validator`, from the project's virtualenv); Swagger UI (`/docs`) and ReDoc
//! (`/redoc`) come from assets embedded in the binary and render every path in a headless
//! Chromium, without console errors and without a single request beyond the gateway.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::dashboard::{chromium, render_page, Rendered};
use crate::support::client::{get, send};
use crate::support::gateway::Gateway;

fn served_description(gw: &Gateway) -> Value {
    let reply = get(gw.addr, "/openapi.json");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    reply.json()
}

/// (method, path) of every operation the description lists.
fn described(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("path item");
            methods
                .keys()
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                .map(|m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect()
}

#[test]
fn openapi_json_describes_exactly_the_routes_the_router_answers() {
    // With an admin key, so that every route answers (key management takes one).
    let admin = "sk-gw-test-fake-docs-admin-000000";
    let gw = Gateway::start(&[("ADMIN_API_KEY", admin)]);
    let bearer = format!("Bearer {admin}");
    let auth = [("authorization", bearer.as_str())];
    let doc: Value = send(gw.addr, "GET", "/openapi.json", &auth, b"").json();
    let routed: BTreeSet<(String, String)> = llmcallgateway::routes::ROUTES
        .iter()
        .map(|(method, path, _)| (method.to_string(), path.to_string()))
        .collect();
    let documented = described(&doc);
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes not described: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "described but not routed: {unrouted:?}"
    );
    // And each described GET path is really answered (a model id stands in for `{model}`, a
    // recorded request's id for `{id}`, a stored response's for `{response_id}`).
    let probe =
        serde_json::json!({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]});
    let json = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    let probe = probe.to_string();
    let recorded = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &json,
        probe.as_bytes(),
    );
    let id = recorded.header("x-request-id").unwrap().to_string();
    let interaction = format!("/admin/interactions/{id}");
    let held = || send(gw.addr, "GET", &interaction, &auth, b"").status == 200;
    assert!(crate::support::client::wait_until(
        std::time::Duration::from_secs(5),
        held
    ));
    let kept = serde_json::json!({"model": "mock/echo", "input": "kept"}).to_string();
    let stored = send(gw.addr, "POST", "/v1/responses", &json, kept.as_bytes()).json();
    let response_id = stored["id"].as_str().expect("a stored response");
    for (method, path) in &documented {
        let required_query = doc["paths"][path.as_str()]["get"]["parameters"]
            .as_array()
            .is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["in"] == "query" && p["required"] == true)
            });
        if method == "GET" && !required_query {
            let path = path
                .replace("{model}", "mock/echo")
                .replace("{id}", &id)
                .replace("{response_id}", response_id);
            let reply = send(gw.addr, "GET", &path, &auth, b"");
            assert_eq!(reply.status, 200, "GET {path}: {}", reply.text());
        }
    }
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["servers"], serde_json::json!([{"url": "/"}]));
    let about = doc["info"]["description"].as_str().unwrap();
    assert!(about.contains("without the `/v1` prefix"), "{about}");
}

#[test]
fn openapi_json_passes_the_openapi_spec_validator() {
    let Some(python) = crate::sdk::python_or_skip() else {
        return;
    };
    let gw = Gateway::start(&[]);
    let body = get(gw.addr, "/openapi.json").body;
    let script = "import json, sys\n\
                  from openapi_spec_validator import validate\n\
                  from openapi_spec_validator.versions import get_spec_version\n\
                  doc = json.load(sys.stdin)\n\
                  validate(doc)\n\
                  print('valid', get_spec_version(doc))\n";
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let output = child.wait_with_output().expect("the validator finishes");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "openapi-spec-validator:\n{report}");
    assert!(report.contains("valid OpenAPIV3.1"), "{report}");
}

#[test]
fn openai_routes_use_openai_schemas_error_responses_and_gateway_headers() {
    let gw = Gateway::start(&[]);
    let doc = served_description(&gw);
    let op = &doc["paths"]["/v1/chat/completions"]["post"];
    let schema = |content: &Value, ty: &str| content[ty]["schema"]["$ref"].clone();
    assert_eq!(
        schema(&op["requestBody"]["content"], "application/json"),
        "#/components/schemas/CreateChatCompletionRequest"
    );
    let ok = &op["responses"]["200"];
    assert_eq!(
        schema(&ok["content"], "application/json"),
        "#/components/schemas/CreateChatCompletionResponse"
    );
    assert_eq!(
        schema(&ok["content"], "text/event-stream"),
        "#/components/schemas/CreateChatCompletionStreamResponse"
    );
    for header in [
        "x-request-id",
        "x-gateway-overhead-ms",
        "x-gateway-cost-usd",
    ] {
        assert!(ok["headers"][header]["$ref"].is_string(), "{header}");
    }
    for status in [
        "400", "404", "405", "413", "429", "500", "502", "503", "504",
    ] {
        let reference = op["responses"][status]["$ref"].as_str().expect(status);
        let name = reference.rsplit('/').next().unwrap();
        let response = &doc["components"]["responses"][name];
        assert_eq!(
            schema(&response["content"], "application/json"),
            "#/components/schemas/ErrorResponse",
            "{status}"
        );
    }
    let embeddings = &doc["paths"]["/v1/embeddings"]["post"];
    assert_eq!(
        schema(
            &embeddings["responses"]["200"]["content"],
            "application/json"
        ),
        "#/components/schemas/CreateEmbeddingResponse"
    );
    assert_eq!(
        schema(
            &doc["paths"]["/v1/models"]["get"]["responses"]["200"]["content"],
            "application/json"
        ),
        "#/components/schemas/ListModelsResponse"
    );
    // The schemas are OpenAI's: every reference resolves, and a real error from the gateway
    // has exactly the fields the ErrorResponse schema requires.
    let text = doc.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling reference to {name}"
        );
    }
    let schemas = &doc["components"]["schemas"];
    let required = |name: &str| -> BTreeSet<String> {
        serde_json::from_value(schemas[name]["required"].clone()).unwrap()
    };
    let chat_request = &schemas["CreateChatCompletionRequest"]["allOf"][1]["required"];
    assert_eq!(chat_request, &serde_json::json!(["model", "messages"]));
    let error = get(gw.addr, "/v1/nowhere").json();
    let fields: BTreeSet<String> = error["error"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(fields, required("Error"), "{error}");
}

#[test]
fn docs_pages_and_their_embedded_assets_are_served_with_types_and_cache_headers() {
    let gw = Gateway::start(&[]);
    let assets = [
        (
            "/docs/swagger-ui-bundle.js",
            "text/javascript; charset=utf-8",
            1_000_000,
        ),
        ("/docs/swagger-ui.css", "text/css; charset=utf-8", 100_000),
        (
            "/redoc/redoc.standalone.js",
            "text/javascript; charset=utf-8",
            1_000_000,
        ),
    ];
    for (path, content_type, min_len) in assets {
        let reply = get(gw.addr, path);
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        assert!(
            reply.body.len() > min_len,
            "{path}: {} bytes",
            reply.body.len()
        );
        assert_eq!(
            reply.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        let head = send(gw.addr, "HEAD", path, &[], b"");
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty(), "HEAD {path} has no body");
        // A browser gets the embedded gzip as it is; it decodes to the same bytes.
        let gzipped = send(
            gw.addr,
            "GET",
            path,
            &[("accept-encoding", "gzip, br")],
            b"",
        );
        assert_eq!(gzipped.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(gzipped.header("vary"), Some("accept-encoding"));
        assert!(
            gzipped.body.len() < reply.body.len() / 2,
            "{path} compressed"
        );
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&gzipped.body[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert!(
            decoded == reply.body,
            "{path}: gzip decodes to the plain body"
        );
    }
    // Each page, at each of its paths, links only to relative URLs that the gateway serves.
    for page in ["/docs", "/docs/", "/v1/docs", "/redoc", "/redoc/"] {
        let reply = get(gw.addr, page);
        assert_eq!(reply.status, 200, "{page}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(reply.header("cache-control"), Some("no-cache"));
        let html = reply.text();
        let links: Vec<&str> = html
            .split(['"', '\''])
            .filter(|s| s.contains(".js") || s.contains(".css") || s.ends_with(".json"))
            .collect();
        assert!(links.len() >= 2, "{page}: {links:?}");
        for link in links {
            assert!(
                !link.contains("://") && !link.starts_with('/'),
                "{page} links to {link}"
            );
            let base = &page[..page.rfind('/').unwrap() + 1];
            let target = resolve(base, link.split('?').next().unwrap());
            let linked = get(gw.addr, &target);
            assert_eq!(linked.status, 200, "{page} → {link} ({target})");
        }
    }
}

/// A relative reference resolved against a directory path (`../` steps up).
fn resolve(dir: &str, link: &str) -> String {
    let mut parts: Vec<&str> = dir.trim_end_matches('/').split('/').collect();
    let mut link = link;
    while let Some(rest) = link.strip_prefix("../") {
        parts.pop();
        link = rest;
    }
    format!("{}/{link}", parts.join("/"))
}

/// Fails on anything Chromium logged from the page's console as an error or uncaught, and on
/// any request the page sent anywhere but the gateway.
fn assert_quiet_console(page: &Rendered, what: &str) {
    let console: Vec<&str> = page
        .log
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect();
    let bad: Vec<&&str> = console
        .iter()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("uncaught") || l.contains("error") || l.contains("failed to load")
        })
        .collect();
    assert!(bad.is_empty(), "{what}: console errors:\n{bad:#?}");
    assert!(
        page.off_host.is_empty(),
        "{what} reached beyond the gateway: {:?}",
        page.off_host
    );
}

fn assert_every_operation_shown(page: &Rendered, doc: &Value, what: &str) {
    let missing: Vec<String> = described(doc)
        .into_iter()
        .map(|(_, path)| path)
        .filter(|path| !page.dom.contains(path.as_str()))
        .collect();
    assert!(missing.is_empty(), "{what} does not show {missing:?}");
}

#[test]
fn swagger_ui_renders_every_route_offline_without_console_errors() {
    let Some(browser) = chromium("swagger_ui_renders_every_route_offline_without_console_errors")
    else {
        return;
    };
    let gw = Gateway::start(&[]);
    let doc = served_description(&gw);
    let page = render_page(&browser, &gw, "/docs");
    assert!(
        page.dom.contains("LLMCallGateway"),
        "no title: {}",
        page.dom
    );
    assert!(page.dom.contains("opblock-summary-path"), "no operations");
    assert_every_operation_shown(&page, &doc, "Swagger UI");
    assert_quiet_console(&page, "Swagger UI");
}

#[test]
fn redoc_renders_every_route_offline_without_console_errors() {
    let Some(browser) = chromium("redoc_renders_every_route_offline_without_console_errors") else {
        return;
    };
    let gw = Gateway::start(&[]);
    let doc = served_description(&gw);
    let page = render_page(&browser, &gw, "/redoc");
    assert!(page.dom.contains("LLMCallGateway"), "no title");
    assert_every_operation_shown(&page, &doc, "ReDoc");
    assert_quiet_console(&page, "ReDoc");
}
