use serde_json::{json, Value};

use std::sync::{Arc, Mutex};

use super::request::{internal, stored_items, validate};
use super::*;
use crate::assembler::Assembler;

fn body(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// An ingress whose keeper puts the final response in the returned cell.
fn ingress() -> (Responses, Arc<Mutex<Option<Value>>>) {
    let kept = Arc::new(Mutex::new(None));
    let cell = kept.clone();
    let keeper: Keeper = Arc::new(move |r: &Value| *cell.lock().unwrap() = Some(r.clone()));
    let request = body(json!({"model": "m", "input": "x"}));
    (
        Responses::new(item_id("resp"), "m", &request, Some(keeper)),
        kept,
    )
}

#[test]
fn items_become_chat_messages_with_tool_calls_joined_to_the_assistant_turn() {
    let request = body(json!({
        "model": "m", "instructions": "be brief",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "weather?"},
                                         {"type": "input_image", "image_url": "data:image/png;base64,AA"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
        ],
        "tools": [{"type": "function", "name": "get", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "get"},
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
        "max_output_tokens": 9, "reasoning": {"effort": "low"}
    }));
    validate(&request).unwrap();
    let chat = internal(&request, &[], false).unwrap().body;
    let messages = chat["messages"].as_array().unwrap();
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(
        messages[1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,AA"
    );
    assert_eq!(messages[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny"})
    );
    assert_eq!(chat["tools"][0]["function"]["name"], "get");
    assert_eq!(chat["tool_choice"]["function"]["name"], "get");
    assert_eq!(chat["response_format"]["json_schema"]["name"], "w");
    assert_eq!(chat["max_completion_tokens"], 9);
    assert_eq!(chat["reasoning_effort"], "low");
}

#[test]
fn built_in_tools_and_unknown_fields_are_refused_by_name() {
    let request = body(json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}));
    let e = internal(&request, &[], false).err().unwrap();
    assert_eq!(e.param.as_deref(), Some("tools[0].type"));
    assert!(e.message.contains("web_search"));
    let e = validate(&body(json!({"model": "m", "input": "x", "bogus": 1}))).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("bogus"));
}

#[test]
fn history_comes_before_the_new_input_and_items_get_ids() {
    let history = stored_items(&[json!({"role": "user", "content": "hi"})]);
    assert!(history[0]["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(history[0]["content"][0]["type"], "input_text");
    let request = body(json!({"model": "m", "input": "again"}));
    let chat = internal(&request, &history, false).unwrap().body;
    assert_eq!(chat["messages"][0]["content"], "hi");
    assert_eq!(chat["messages"][1]["content"], "again");
}

#[test]
fn a_cut_answer_is_an_incomplete_response_with_responses_usage() {
    let (ingress, kept) = ingress();
    let chat = json!({"choices": [{"index": 0, "finish_reason": "length",
        "message": {"role": "assistant", "content": "abc", "reasoning_content": "hmm"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                  "prompt_tokens_details": {"cached_tokens": 1}}});
    let reply: Value =
        serde_json::from_slice(&ingress.reply(chat.to_string().into_bytes()).unwrap()).unwrap();
    assert_eq!(reply["status"], "incomplete");
    assert_eq!(reply["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(reply["output"][0]["type"], "reasoning");
    assert_eq!(reply["output"][1]["content"][0]["text"], "abc");
    assert_eq!(reply["usage"]["input_tokens_details"]["cached_tokens"], 1);
    assert_eq!(kept.lock().unwrap().clone().unwrap()["id"], reply["id"]);
}

#[test]
fn chunks_become_numbered_events_in_the_documented_order() {
    let (ingress, kept) = ingress();
    let mut egress = ingress.stream(false);
    let mut assembler = Assembler::new(1024);
    let mut out = Vec::new();
    for chunk in [
        json!({"id": "c", "choices": [{"index": 0, "delta": {"content": "He"}}]}),
        json!({"id": "c", "choices": [{"index": 0, "delta": {"content": "llo"}}]}),
        json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_9", "function": {"name": "f", "arguments": "{\"a\""}}]}}]}),
        json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": ":1}"}}]}, "finish_reason": "tool_calls"}]}),
        json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}),
    ] {
        let data = chunk.to_string();
        let seen = assembler.add(&data).unwrap();
        egress.chunk(&data, &seen, &mut out);
    }
    egress.done(&mut out);
    let text = String::from_utf8(out).unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i);
    }
    let done = &events[14]["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["output"][1]["arguments"], "{\"a\":1}");
    assert_eq!(done["usage"]["output_tokens"], 2);
    assert_eq!(kept.lock().unwrap().clone().unwrap()["status"], "completed");
}

#[test]
fn errors_name_parameters_as_the_client_sent_them() {
    let (ingress, _) = ingress();
    let e = ApiError::invalid(
        Some("reasoning_effort"),
        "Anthropic has no reasoning_effort.",
    );
    let (status, body) = ingress.error(&e);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "reasoning.effort");
    assert_eq!(body["error"]["type"], "invalid_request_error");
}
