//! Known OpenAI chat parameters are checked against the official schema's types and ranges
//! before any provider call (issue 12): a 400 naming the parameter, whatever the provider;
//! unknown fields still pass through. Over real sockets.

use serde_json::{json, Value};

use crate::support::client::{assert_error, post_json};
use crate::support::gateway::Gateway;
use crate::support::upstream::{MockUpstream, Script};

fn request(model: &str, name: &str, value: Value) -> Value {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    body[name] = value;
    body
}

/// (parameter, bad value, the `param` named)
fn bad_values() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        ("max_tokens", json!("ten"), "max_tokens"),
        ("max_tokens", json!(2.5), "max_tokens"),
        ("max_completion_tokens", json!(-1), "max_completion_tokens"),
        ("temperature", json!("hot"), "temperature"),
        ("temperature", json!(3), "temperature"),
        ("top_p", json!(1.5), "top_p"),
        ("n", json!(0), "n"),
        ("n", json!(129), "n"),
        ("stream", json!("yes"), "stream"),
        ("presence_penalty", json!(-3), "presence_penalty"),
        ("frequency_penalty", json!("x"), "frequency_penalty"),
        ("top_logprobs", json!(21), "top_logprobs"),
        ("logprobs", json!("yes"), "logprobs"),
        ("seed", json!("42"), "seed"),
        ("stop", json!(7), "stop"),
        ("stop", json!(["a", 1]), "stop"),
        ("user", json!(5), "user"),
        ("tools", json!({"type": "function"}), "tools"),
        ("parallel_tool_calls", json!(1), "parallel_tool_calls"),
        ("response_format", json!("json"), "response_format"),
        ("stream_options", json!(true), "stream_options"),
        ("logit_bias", json!({"50256": 101}), "logit_bias"),
        (
            "messages",
            json!([{"role": "user", "content": 42}]),
            "messages[0].content",
        ),
        (
            "messages",
            json!([{"role": "user", "content": {"text": "hi"}}]),
            "messages[0].content",
        ),
    ]
}

#[test]
fn wrong_types_and_ranges_are_400s_naming_the_parameter_for_every_provider() {
    let upstream = MockUpstream::always(Script::fixture(200, "openai/chat_completion.json"));
    let base = upstream.base_url();
    let root = base.strip_suffix("/v1").unwrap_or(&base).to_string();
    let gw = Gateway::start(&[
        ("LITELLM_BASE_URL", base.as_str()),
        ("LITELLM_API_KEY", "sk-test-fake-key"),
        ("ANTHROPIC_API_BASE", root.as_str()),
        ("ANTHROPIC_API_KEY", "sk-ant-test-fake-key"),
        ("GEMINI_API_BASE", root.as_str()),
        ("GEMINI_API_KEY", "fake-gemini-key"),
    ]);
    for model in [
        "mock/echo",
        "gpt-4o-mini",
        "anthropic/claude-sonnet-4-5",
        "gemini/gemini-2.5-flash",
    ] {
        for (name, value, param) in bad_values() {
            let reply = post_json(
                gw.addr,
                "/v1/chat/completions",
                &request(model, name, value.clone()),
            );
            let error = assert_error(&reply, 400);
            assert_eq!(error["param"], param, "{model} {name}={value}: {error:?}");
            assert!(
                error["message"].as_str().unwrap().contains(param),
                "{error:?}"
            );
        }
    }
    assert!(upstream.requests().is_empty(), "no provider was called");
}

#[test]
fn valid_values_and_unknown_fields_pass() {
    let gw = Gateway::start(&[]);
    for (name, value) in [
        ("temperature", json!(0)),
        ("temperature", json!(2)),
        ("temperature", Value::Null),
        ("n", json!(2)),
        ("max_tokens", json!(10.0)),
        ("stop", json!("END")),
        ("stop", json!(["a", "b"])),
        ("logit_bias", json!({"50256": -100})),
        ("my_vendor_field", json!({"anything": [1, "x"]})),
        (
            "messages",
            json!([{"role": "assistant", "content": null, "tool_calls": []}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}]),
        ),
    ] {
        let reply = post_json(
            gw.addr,
            "/v1/chat/completions",
            &request("mock/echo", name, value.clone()),
        );
        assert_eq!(reply.status, 200, "{name}={value}: {}", reply.text());
    }
}

#[test]
fn the_mock_models_answer_n_choices_streams_too() {
    let gw = Gateway::start(&[]);
    let reply = post_json(
        gw.addr,
        "/v1/chat/completions",
        &request("mock/echo", "n", json!(3)),
    );
    assert_eq!(reply.status, 200);
    let choices = reply.json()["choices"].as_array().unwrap().clone();
    let indices: Vec<&Value> = choices.iter().map(|c| &c["index"]).collect();
    assert_eq!(indices, [&json!(0), &json!(1), &json!(2)]);
    let mut body = request("mock/lorem", "n", json!(2));
    body["stream"] = json!(true);
    let reply = post_json(gw.addr, "/v1/chat/completions", &body);
    let mut finished = std::collections::BTreeSet::new();
    for event in reply.events().iter().filter(|e| *e != "[DONE]") {
        let chunk: Value = serde_json::from_str(event).unwrap();
        for c in chunk["choices"].as_array().unwrap() {
            if c["finish_reason"].is_string() {
                finished.insert(c["index"].as_u64().unwrap());
            }
        }
    }
    assert_eq!(finished.into_iter().collect::<Vec<_>>(), [0, 1]);
}
