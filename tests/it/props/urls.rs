//! Which URLs a client can make the gateway call: none of its own choosing. Bases come only
//! from the configuration; the model name is the one part of a URL a client chooses, and for
//! every provider, whatever the name (`../`, `%2e%2e`, NUL, control characters, `?`, `#`,
//! `@`, a whole URL), a call the dialect accepts to make stays under the configured base: same
//! scheme, host and port, no `.`/`..` segment, nothing outside printable ASCII, no fragment,
//! and only the query the dialect itself adds. SECURITY.md's SSRF section rests on this.

use std::collections::BTreeMap;
use std::sync::Arc;

use llmcallgateway::providers::{registry, RequestContext, Settings, Target};
use llmcallgateway::upstream::Call;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::bounded;

const BASE: &str = "http://127.0.0.1:9/base";

/// Names a hostile client would try, and pieces to build more from.
const PIECES: &[&str] = &[
    "..",
    ".",
    "../",
    "/",
    "%2e%2e",
    "%2E%2E/",
    "%2f",
    "\0",
    "\r\n",
    "\t",
    "\u{7f}",
    "?",
    "#",
    "@",
    "evil.example",
    "http://evil.example/",
    "//evil.example",
    ":",
    "\\",
    "model",
    "%00",
    " ",
    "é",
    "\u{202e}",
    "models/",
];

fn model_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(PIECES), 1..6).prop_map(|p| p.concat()),
        ".{1,16}",
        "[a-z0-9.:/-]{1,16}",
    ]
}

fn target(provider: &'static str, model: &str) -> Target {
    let mut extra = BTreeMap::new();
    if provider == "bedrock" {
        extra.insert("AWS_ACCESS_KEY_ID", "AKIDFAKEFORTESTS".to_string());
        extra.insert("AWS_SECRET_ACCESS_KEY", "fake/secret+for/tests".to_string());
        extra.insert("AWS_REGION", "us-east-1".to_string());
    }
    if provider == "azure" {
        extra.insert("AZURE_API_VERSION", "2024-10-21".to_string());
    }
    Target {
        provider: registry::find(provider).expect("a registry row"),
        model: model.to_string(),
        settings: Arc::new(Settings {
            base_url: Some(BASE.to_string()),
            api_key: Some("fake-key-for-url-tests".to_string()),
            extra,
            explicit: true,
            ..Settings::default()
        }),
    }
}

/// Every call the dialect would make for a chat (plain and streamed) and an embeddings
/// request with this model name, once it accepted the name.
fn calls_for(provider: &'static str, model: &str) -> Vec<Call> {
    let target = target(provider, model);
    let dialect = target.dialect();
    if dialect.check_model(model, model).is_err() {
        return Vec::new();
    }
    let context = RequestContext {
        drop_unsupported: true,
        client_headers: &[],
    };
    let chat = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let embed = json!({"model": model, "input": ["hi"]});
    let object = |v: &Value| v.as_object().unwrap().clone();
    let mut calls = Vec::new();
    for stream in [false, true] {
        if let Ok(p) = dialect.chat_request(&target, object(&chat), stream, &context) {
            calls.push(p.call);
        }
    }
    if let Ok(more) = dialect.embeddings_request(&target, object(&embed)) {
        calls.extend(more);
    }
    calls
}

/// Why `url` leaves the configured base, if it does.
fn escape(url: &str) -> Option<String> {
    let Some(rest) = url.strip_prefix(BASE).and_then(|r| r.strip_prefix('/')) else {
        return Some("not under the base".into());
    };
    if let Some(c) = rest.chars().find(|c| !c.is_ascii_graphic()) {
        return Some(format!("holds {c:?}"));
    }
    if rest.contains('#') {
        return Some("holds a fragment".into());
    }
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    for segment in path.split('/') {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        if matches!(decoded.as_ref(), "." | "..") {
            return Some(format!("a `{segment}` segment"));
        }
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if !["alt", "api-version"].contains(&key) {
            return Some(format!("query parameter `{key}`"));
        }
    }
    None
}

/// One row of each dialect that builds URLs its own way (the OpenAI vendors share one), so
/// each gets its share of the cases; the fixed-list test covers every row.
const URL_DIALECTS: &[&str] = &[
    "openai",
    "anthropic",
    "gemini",
    "cohere",
    "bedrock",
    "azure",
    "groq",
];

fn providers_with_urls() -> Vec<&'static str> {
    registry::PROVIDERS
        .iter()
        .map(|p| p.name)
        .filter(|n| *n != "mock")
        .collect()
}

proptest! {
    #![proptest_config(bounded(256))]

    #[test]
    fn no_model_name_takes_a_call_outside_its_configured_base(
        provider in prop::sample::select(URL_DIALECTS),
        model in model_name(),
    ) {
        for call in calls_for(provider, &model) {
            if let Some(why) = escape(&call.url) {
                return Err(TestCaseError::fail(format!(
                    "{provider}/{model:?} → {}: {why}", call.url
                )));
            }
        }
    }
}

/// The names the issue lists, for every provider: refused, or confined to the base.
#[test]
fn traversal_nul_and_control_character_model_names_stay_under_the_base() {
    let names = [
        "..",
        ".",
        "../x",
        "../../admin",
        "%2e%2e",
        "%2e%2e/x",
        "%2E%2E",
        "a/../../b",
        "a\0b",
        "\0",
        "a\r\nHost: evil",
        "a\tb",
        "\u{1b}[31m",
        "x?key=1",
        "x#frag",
        "@evil.example",
        "http://evil.example/",
        "//evil.example/x",
    ];
    for provider in providers_with_urls() {
        for name in names {
            for call in calls_for(provider, name).into_iter() {
                assert_eq!(
                    escape(&call.url),
                    None,
                    "{provider}/{name:?} → {}",
                    call.url
                );
            }
        }
    }
}

/// `.` and `..` would be dot segments in the path, which a server normalises away: Azure's
/// deployment and Bedrock's model id refuse them (percent-encoding keeps `.` as it is).
#[test]
fn dot_segment_model_names_are_refused_by_azure_and_bedrock() {
    for provider in ["azure", "bedrock"] {
        for name in [".", ".."] {
            for call in calls_for(provider, name) {
                assert_eq!(
                    escape(&call.url),
                    None,
                    "{provider}/{name:?} → {}",
                    call.url
                );
            }
        }
    }
}
