//! Request validation (`handlers::json_object`, `handlers::model_name`,
//! `providers::request::embedding_inputs`): any bytes are an object or a 400 (never a panic,
//! never a stack overflow, whatever the nesting), and what is accepted is exactly what the
//! rules say.

use llmcallgateway::handlers::{json_object, model_name};
use llmcallgateway::providers::request::{embedding_inputs, EmbeddingInput, MAX_EMBEDDING_INPUTS};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::{bounded, json_from};

const WORDS: &[&str] = &[
    "model", "messages", "input", "role", "content", "user", "", " ",
];

fn object_with(key: &str, value: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(key.into(), value);
    m
}

proptest! {
    #![proptest_config(bounded(512))]

    #[test]
    fn any_bytes_are_an_object_or_a_400(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let parsed = serde_json::from_slice::<Value>(&bytes);
        match json_object(&bytes) {
            Ok(map) => prop_assert_eq!(parsed.ok(), Some(Value::Object(map))),
            Err(e) => {
                prop_assert_eq!(e.status, 400);
                prop_assert!(!matches!(parsed, Ok(Value::Object(_))));
            }
        }
    }

    #[test]
    fn any_json_value_is_accepted_exactly_when_it_is_an_object(value in json_from(WORDS)) {
        let text = value.to_string();
        let got = json_object(text.as_bytes());
        prop_assert_eq!(got.is_ok(), value.is_object());
        if let Ok(map) = got {
            // Compared with serde_json's own reading of the text: without its
            // `float_roundtrip` feature a float's last digit may differ from the value written.
            prop_assert_eq!(Some(Value::Object(map)), serde_json::from_str(&text).ok());
        }
    }

    #[test]
    fn model_is_accepted_exactly_when_it_is_a_string_with_something_in_it(
        model in json_from(WORDS),
    ) {
        let body = object_with("model", model.clone());
        match model_name(&body) {
            Ok(name) => {
                prop_assert_eq!(Some(name.as_str()), model.as_str());
                prop_assert!(!name.trim().is_empty());
            }
            Err(e) => {
                prop_assert_eq!(e.status, 400);
                prop_assert_eq!(e.param.as_deref(), Some("model"));
                prop_assert!(model.as_str().is_none_or(|m| m.trim().is_empty()));
            }
        }
    }

    #[test]
    fn embeddings_input_is_validated_into_what_it_says(
        input in prop_oneof![
            json_from(WORDS),
            prop::collection::vec(0u64..100_000, 0..8).prop_map(|v| json!(v)),
            prop::collection::vec(prop::collection::vec(0u64..100, 0..4), 0..4).prop_map(|v| json!(v)),
            prop::collection::vec(".{0,6}", 0..6).prop_map(|v| json!(v)),
        ],
    ) {
        let body = object_with("input", input.clone());
        match embedding_inputs(&body) {
            Ok(inputs) => {
                prop_assert!(!inputs.is_empty() && inputs.len() <= MAX_EMBEDDING_INPUTS);
                // The inputs say what the request said, in order.
                let rebuilt = match (&input, inputs.as_slice()) {
                    (Value::String(_), [EmbeddingInput::Text(t)]) => json!(t),
                    (Value::Array(items), [EmbeddingInput::Tokens(ids)])
                        if items.iter().all(Value::is_number) => json!(ids),
                    _ => Value::Array(inputs.iter().map(|i| match i {
                        EmbeddingInput::Text(t) => json!(t),
                        EmbeddingInput::Tokens(ids) => json!(ids),
                    }).collect()),
                };
                prop_assert_eq!(rebuilt, input);
                prop_assert!(inputs.iter().all(|i| !matches!(i, EmbeddingInput::Text(t) if t.is_empty())));
            }
            Err(e) => {
                prop_assert_eq!(e.status, 400);
                prop_assert_eq!(e.param.as_deref(), Some("input"));
            }
        }
    }
}

/// 10,000 nested arrays (or objects) are a 400 from the parser's depth limit, not a stack
/// overflow of the worker.
#[test]
fn json_nested_ten_thousand_deep_is_a_400_not_a_stack_overflow() {
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let body = format!("{}1{}", open.repeat(10_000), close.repeat(10_000));
        let e = json_object(body.as_bytes()).unwrap_err();
        assert_eq!(e.status, 400);
        let unclosed = open.repeat(10_000);
        assert_eq!(json_object(unclosed.as_bytes()).unwrap_err().status, 400);
    }
}

#[test]
fn invalid_utf8_in_a_body_is_a_400() {
    for body in [
        &b"{\"model\":\"mock/echo\xff\"}"[..],
        b"\xfe\xff{}",
        b"{\"model\":\"\xc3\x28\"}",
        b"{\"model\":\"\xed\xa0\x80\"}", // a UTF-16 surrogate encoded in UTF-8
    ] {
        assert_eq!(json_object(body).unwrap_err().status, 400, "{body:?}");
    }
}

#[test]
fn more_than_the_embedding_inputs_limit_is_a_400() {
    let many = vec![json!("a"); MAX_EMBEDDING_INPUTS + 1];
    let e = embedding_inputs(&object_with("input", json!(many))).unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("input")));
    let ok = vec![json!("a"); MAX_EMBEDDING_INPUTS];
    assert_eq!(
        embedding_inputs(&object_with("input", json!(ok)))
            .unwrap()
            .len(),
        MAX_EMBEDDING_INPUTS
    );
}
