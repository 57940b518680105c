//! Any JSON as a tool's `parameters` in a chat for a Gemini model: a request or a 400, never a
//! panic; the cleaned schema has no `$ref` left and is bounded.
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
            let text = String::from_utf8(prepared.call.body).expect("UTF-8");
            assert!(!text.contains("\"$ref\""), "a $ref survived: {text}");
        }
        Err(e) => assert_eq!(e.status, 400),
    }
});
