//! Any JSON as a tool's `parameters` in a chat for a Gemini model: a request or a 400, never a
//! panic; the cleaned schema has no `$ref` left at any schema position (`properties` values,
//! `items`, `anyOf` branches). Values of other keywords are data, passed as they are: a `$ref`
//! inside a malformed `"type": {…}` is not a schema (the first crash this target found was this
//! assertion looking there; the input is now a seed and a named test in tests/it/props).
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmcallgateway::providers::RequestContext;
use llmcallgateway_fuzz::target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(parameters) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let body = json!({
        "model": "gemini/gemini-2.0-flash",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": parameters}},
    });
    let Value::Object(body) = body else { return };
    let target = target("gemini", "gemini-2.0-flash");
    let context = RequestContext {
        drop_unsupported: true,
        client_headers: &[],
    };
    match target.dialect().chat_request(&target, body, false, &context) {
        Ok(prepared) => {
            let request: Value = serde_json::from_slice(&prepared.call.body).expect("JSON");
            if let Some(cleaned) = request["tools"][0]["functionDeclarations"][0].get("parameters") {
                assert_no_ref(cleaned);
            }
        }
        Err(e) => assert_eq!(e.status, 400),
    }
});

fn assert_no_ref(node: &Value) {
    let Some(o) = node.as_object() else { return };
    assert!(!o.contains_key("$ref"), "a $ref survived: {node}");
    if let Some(Value::Object(props)) = o.get("properties") {
        props.values().for_each(assert_no_ref);
    }
    if let Some(items) = o.get("items") {
        assert_no_ref(items);
    }
    if let Some(Value::Array(branches)) = o.get("anyOf") {
        branches.iter().for_each(assert_no_ref);
    }
}
