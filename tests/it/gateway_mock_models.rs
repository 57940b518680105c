//! The built-in models that need no provider: `mock/echo`, `mock/lorem`, `mock/embed`, the
//! model list and lookup, and `/health`.

use base64::Engine;
use serde_json::{json, Value};

use crate::support::client::{assert_error, get, post_json};
use crate::support::gateway::Gateway;

fn ask(model: &str, content: &str) -> Value {
    json!({"model": model, "messages": [
        {"role": "system", "content": "You are a test."},
        {"role": "user", "content": "an earlier question"},
        {"role": "assistant", "content": "an earlier answer"},
        {"role": "user", "content": content}
    ]})
}

#[test]
fn mock_echo_answers_with_the_last_user_message() {
    let gw = Gateway::start(&[]);
    let reply = post_json(
        gw.addr,
        "/v1/chat/completions",
        &ask("mock/echo", "Hello,  wörld 你好"),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "mock/echo");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Hello,  wörld 你好");
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &body["usage"];
    assert_eq!(usage["completion_tokens"], 3);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + 3
    );
}

#[test]
fn mock_echo_streams_word_by_word_and_reassembles_to_the_message() {
    let gw = Gateway::start(&[]);
    let mut request = ask("mock/echo", "one two three");
    request["stream"] = json!(true);
    let reply = post_json(gw.addr, "/v1/chat/completions", &request);
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = reply.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "one two three");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(
        chunks
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null)),
        "no usage chunk unless asked"
    );
    let ids: Vec<&Value> = chunks.iter().map(|c| &c["id"]).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one id per stream");
}

#[test]
fn mock_stream_sends_the_usage_chunk_when_asked() {
    let gw = Gateway::start(&[]);
    let mut request = ask("mock/lorem", "4");
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});
    let events = post_json(gw.addr, "/chat/completions", &request).events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 4);
}

#[test]
fn mock_lorem_writes_n_words_and_stops_with_length_at_max_tokens() {
    let gw = Gateway::start(&[]);
    let body = post_json(gw.addr, "/v1/chat/completions", &ask("mock/lorem", "5")).json();
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(text.split_whitespace().count(), 5, "{text}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");

    for limit_key in ["max_tokens", "max_completion_tokens"] {
        let mut request = ask("mock/lorem", "50");
        request[limit_key] = json!(7);
        let body = post_json(gw.addr, "/v1/chat/completions", &request).json();
        assert_eq!(body["choices"][0]["finish_reason"], "length", "{limit_key}");
        assert_eq!(body["usage"]["completion_tokens"], 7);
        let text = body["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(text.split_whitespace().count(), 7);

        request["stream"] = json!(true);
        let events = post_json(gw.addr, "/v1/chat/completions", &request).events();
        let finish: Vec<Value> = events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .filter_map(|c| c["choices"][0]["finish_reason"].as_str().map(Value::from))
            .collect();
        assert_eq!(finish, vec![json!("length")]);
    }
}

#[test]
fn mock_embed_honours_dimensions_and_base64_is_little_endian_unit_f32() {
    let gw = Gateway::start(&[]);
    let request = json!({"model": "mock/embed", "input": ["alpha", "beta"], "dimensions": 12});
    let reply = post_json(gw.addr, "/v1/embeddings", &request);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "mock/embed");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let floats: Vec<Vec<f64>> = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["object"], "embedding");
            assert_eq!(d["index"], i);
            serde_json::from_value(d["embedding"].clone()).unwrap()
        })
        .collect();
    for v in &floats {
        assert_eq!(v.len(), 12);
        let norm: f64 = v.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4, "norm² {norm}");
    }
    assert_ne!(floats[0], floats[1]);
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() >= 2);

    let mut request = request;
    request["encoding_format"] = json!("base64");
    let body = post_json(gw.addr, "/v1/embeddings", &request).json();
    for (i, d) in body["data"].as_array().unwrap().iter().enumerate() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(d["embedding"].as_str().expect("base64 string"))
            .unwrap();
        assert_eq!(bytes.len(), 12 * 4);
        let decoded: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let norm: f32 = decoded.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4, "norm² {norm}");
        for (a, b) in decoded.iter().zip(&floats[i]) {
            assert!((*a as f64 - b).abs() < 1e-6, "base64 and float agree");
        }
    }
}

#[test]
fn mock_embed_accepts_token_arrays_and_rejects_bad_dimensions() {
    let gw = Gateway::start(&[]);
    for input in [json!([1, 2, 3]), json!([[1, 2], [3]]), json!("text")] {
        let reply = post_json(
            gw.addr,
            "/v1/embeddings",
            &json!({"model": "mock/embed", "input": input}),
        );
        assert_eq!(reply.status, 200, "{input}: {}", reply.text());
    }
    for dims in [json!(0), json!(-3), json!("8"), json!(100_000)] {
        let reply = post_json(
            gw.addr,
            "/v1/embeddings",
            &json!({"model": "mock/embed", "input": "x", "dimensions": dims}),
        );
        assert_eq!(assert_error(&reply, 400)["param"], "dimensions", "{dims}");
    }
}

#[test]
fn mock_models_are_only_served_on_their_own_endpoint() {
    let gw = Gateway::start(&[]);
    let reply = post_json(gw.addr, "/v1/chat/completions", &ask("mock/embed", "hi"));
    assert_eq!(assert_error(&reply, 400)["param"], "model");
    let reply = post_json(
        gw.addr,
        "/v1/embeddings",
        &json!({"model": "mock/echo", "input": "x"}),
    );
    assert_eq!(assert_error(&reply, 400)["param"], "model");
}

#[test]
fn models_are_listed_and_found_by_percent_encoded_id() {
    let gw = Gateway::start(&[]);
    let body = get(gw.addr, "/v1/models").json();
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mock/echo", "mock/lorem", "mock/embed"]);
    for path in [
        "/v1/models/mock%2Fecho",
        "/v1/models/mock%2fecho",
        "/v1/models/mock/echo",
    ] {
        let reply = get(gw.addr, path);
        assert_eq!(reply.status, 200, "{path}");
        let model = reply.json();
        assert_eq!(model["id"], "mock/echo");
        assert_eq!(model["object"], "model");
    }
    let e = assert_error(&get(gw.addr, "/v1/models/mock%2Fnope"), 404);
    assert_eq!(e["code"], "model_not_found");
}

#[test]
fn health_reports_ok_with_version_and_uptime() {
    let gw = Gateway::start(&[]);
    let reply = get(gw.addr, "/health");
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptime_seconds"].as_f64().unwrap() >= 0.0);
    let head = crate::support::client::send(gw.addr, "HEAD", "/v1/health", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}
