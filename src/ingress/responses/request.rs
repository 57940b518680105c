//! A Responses request → the internal chat request: `instructions` as the system message,
//! the conversation's items (those of `previous_response_id` first) as chat messages —
//! messages with `input_text`/`input_image`/`input_file` parts, `function_call` items as the
//! assistant's tool calls, `function_call_output` items as tool messages — function tools,
//! `tool_choice`, `text.format` as `response_format`, `max_output_tokens`, `reasoning.effort`
//! as `reasoning_effort`, and the sampling parameters. What only OpenAI's own Responses API
//! does (built-in tools, server-side conversations, prompt templates, background runs) is a
//! 400 naming it. Also: the request's input as stored items, with ids.

use serde_json::{json, Map, Value};

use crate::error::ApiError;

/// Every top-level field of a Responses request the gateway knows; any other is refused, as
/// OpenAI does.
const KNOWN: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "max_output_tokens",
    "temperature",
    "top_p",
    "reasoning",
    "metadata",
    "user",
    "safety_identifier",
    "store",
    "previous_response_id",
    "truncation",
    "stream",
    "stream_options",
    "include",
    "service_tier",
    "top_logprobs",
    "prompt_cache_key",
    "background",
    "conversation",
    "prompt",
    "max_tool_calls",
];

/// Fields that only OpenAI's own Responses API honours, refused when they ask for something.
const OPENAI_ONLY: &[(&str, &str)] = &[
    ("background", "background runs"),
    ("conversation", "server-side conversations"),
    ("prompt", "stored prompt templates"),
    ("max_tool_calls", "limits on built-in tool calls"),
];

/// The request's checks that hold whoever serves it: known fields, the types of `input`,
/// `instructions`, `previous_response_id`, `store`, `tools` and `metadata`.
pub fn validate(body: &Map<String, Value>) -> Result<(), ApiError> {
    if let Some(unknown) = body.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            Some(unknown),
            format!("Unrecognized request argument supplied: {unknown}."),
        ));
    }
    match body.get("input") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                Some("input"),
                "Missing required parameter: `input`.",
            ))
        }
        Some(Value::String(_)) => {}
        Some(Value::Array(items)) => {
            if let Some(i) = items.iter().position(|item| !item.is_object()) {
                return Err(ApiError::invalid(
                    Some(&format!("input[{i}]")),
                    format!("`input[{i}]` must be an object (an input item)."),
                ));
            }
        }
        Some(_) => {
            return Err(ApiError::invalid(
                Some("input"),
                "`input` must be a string or an array of input items.",
            ))
        }
    }
    for (name, check, what) in [
        (
            "instructions",
            Value::is_string as fn(&Value) -> bool,
            "a string",
        ),
        ("previous_response_id", Value::is_string, "a string"),
        ("store", Value::is_boolean, "a boolean"),
        ("tools", Value::is_array, "an array"),
        ("metadata", Value::is_object, "an object"),
        ("text", Value::is_object, "an object"),
        ("reasoning", Value::is_object, "an object"),
        ("max_output_tokens", Value::is_u64, "a non-negative integer"),
    ] {
        if body.get(name).is_some_and(|v| !v.is_null() && !check(v)) {
            return Err(ApiError::invalid(
                Some(name),
                format!("`{name}` must be {what}."),
            ));
        }
    }
    Ok(())
}

/// The input of a request as a list of items (a string is one user message).
pub fn input_items(body: &Map<String, Value>) -> Vec<Value> {
    match body.get("input") {
        Some(Value::String(text)) => vec![json!({
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        })],
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

/// Items as stored and listed by `input_items`: each with an id and a status, message
/// content as parts.
pub fn stored_items(items: &[Value]) -> Vec<Value> {
    items
        .iter()
        .map(|item| {
            let mut item = item.as_object().cloned().unwrap_or_default();
            let kind = item
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("message")
                .to_string();
            item.insert("type".into(), json!(kind));
            if kind == "message" {
                if let Some(Value::String(text)) = item.get("content") {
                    let part = if item.get("role").and_then(Value::as_str) == Some("assistant") {
                        json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
                    } else {
                        json!({"type": "input_text", "text": text})
                    };
                    item.insert("content".into(), json!([part]));
                }
            }
            let prefix = match kind.as_str() {
                "function_call" => "fc",
                "function_call_output" => "fco",
                "reasoning" => "rs",
                _ => "msg",
            };
            item.entry("id")
                .or_insert_with(|| json!(super::item_id(prefix)));
            item.entry("status").or_insert_with(|| json!("completed"));
            Value::Object(item)
        })
        .collect()
}

/// A translated request: the internal chat body and the parameters left out.
pub struct Internal {
    pub body: Map<String, Value>,
    pub dropped: Vec<String>,
}

/// The internal chat request for a Responses request whose conversation so far is `history`
/// (the items of the previous responses, oldest first). `drop`: leave out what cannot be
/// honoured instead of answering 400.
pub fn internal(
    body: &Map<String, Value>,
    history: &[Value],
    drop: bool,
) -> Result<Internal, ApiError> {
    let mut dropped = Vec::new();
    for (name, what) in OPENAI_ONLY {
        let asks = !matches!(
            body.get(*name),
            None | Some(Value::Null) | Some(Value::Bool(false))
        );
        if asks {
            if !drop {
                return Err(ApiError::invalid(
                    Some(name),
                    format!("`{name}` ({what}) is served only by OpenAI's own Responses API, and this model is not (DROP_UNSUPPORTED_PARAMS=true drops it)."),
                ));
            }
            dropped.push(name.to_string());
        }
    }
    let mut messages = Vec::new();
    if let Some(instructions) = body.get("instructions").and_then(Value::as_str) {
        messages.push(json!({"role": "system", "content": instructions}));
    }
    let input = input_items(body);
    for (i, item) in history.iter().chain(input.iter()).enumerate() {
        // Positions in the client's own input, for messages that name one.
        let at = i.checked_sub(history.len());
        add_item(&mut messages, item, at)?;
    }
    let mut chat = Map::new();
    chat.insert("model".into(), body["model"].clone());
    chat.insert("messages".into(), Value::Array(messages));
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("max_output_tokens", "max_completion_tokens"),
        ("stream", "stream"),
        ("user", "user"),
    ] {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            chat.insert(to.into(), v.clone());
        }
    }
    if !chat.contains_key("user") {
        if let Some(id) = body.get("safety_identifier").filter(|v| v.is_string()) {
            chat.insert("user".into(), id.clone());
        }
    }
    if chat.get("stream") == Some(&Value::Bool(true)) {
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(effort) = body
        .get("reasoning")
        .and_then(|r| r.get("effort"))
        .filter(|e| !e.is_null())
    {
        chat.insert("reasoning_effort".into(), effort.clone());
    }
    if let Some(tools) = tools(body.get("tools"))? {
        chat.insert("tools".into(), tools);
    }
    if let Some(choice) = tool_choice(body.get("tool_choice"))? {
        chat.insert("tool_choice".into(), choice);
    }
    if let Some(format) = response_format(body.get("text"))? {
        chat.insert("response_format".into(), format);
    }
    Ok(Internal {
        body: chat,
        dropped,
    })
}

/// The param name of an input item (`input[3]`), or of the history.
fn param(at: Option<usize>, rest: &str) -> String {
    match at {
        Some(i) => format!("input[{i}]{rest}"),
        None => format!("previous_response_id{rest}"),
    }
}

/// Appends one item as chat messages: a message, a function call (joined to the assistant
/// message before it), a function call's output; reasoning items are the provider's own and
/// are left out.
fn add_item(messages: &mut Vec<Value>, item: &Value, at: Option<usize>) -> Result<(), ApiError> {
    let kind = item["type"].as_str().unwrap_or("message");
    match kind {
        "message" => {
            let role = match item["role"].as_str() {
                Some("developer") | Some("system") => "system",
                Some("user") => "user",
                Some("assistant") => "assistant",
                _ => {
                    return Err(ApiError::invalid(
                        Some(&param(at, ".role")),
                        "A message's `role` must be `user`, `assistant`, `system` or `developer`.",
                    ))
                }
            };
            let content = content(&item["content"], role == "assistant", at)?;
            messages.push(json!({"role": role, "content": content}));
        }
        "function_call" => {
            let call = json!({
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            });
            if !item["call_id"].is_string() || !item["name"].is_string() || !item["arguments"].is_string() {
                return Err(ApiError::invalid(
                    Some(&param(at, "")),
                    "A `function_call` item needs string `call_id`, `name` and `arguments`.",
                ));
            }
            match messages.last_mut() {
                Some(last) if last["role"] == "assistant" => {
                    match last.get_mut("tool_calls").and_then(Value::as_array_mut) {
                        Some(calls) => calls.push(call),
                        None => last["tool_calls"] = json!([call]),
                    }
                }
                _ => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" => {
            let output = match &item["output"] {
                Value::String(s) => s.clone(),
                parts @ Value::Array(_) => text_of(parts),
                _ => {
                    return Err(ApiError::invalid(
                        Some(&param(at, ".output")),
                        "A `function_call_output` item's `output` must be a string or content parts.",
                    ))
                }
            };
            if !item["call_id"].is_string() {
                return Err(ApiError::invalid(
                    Some(&param(at, ".call_id")),
                    "A `function_call_output` item needs its `call_id`.",
                ));
            }
            messages.push(json!({"role": "tool", "tool_call_id": item["call_id"], "content": output}));
        }
        "reasoning" => {}
        other => {
            return Err(ApiError::invalid(
                Some(&param(at, ".type")),
                format!("Input items of type `{other}` are served only by OpenAI's own Responses API, and this model is not."),
            ))
        }
    }
    Ok(())
}

/// The texts of content parts, joined.
fn text_of(parts: &Value) -> String {
    parts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
        .collect()
}

/// A message's content: a string as it is; parts as chat parts (text, `image_url`, `file`).
/// The assistant's earlier turns become their text.
fn content(content: &Value, assistant: bool, at: Option<usize>) -> Result<Value, ApiError> {
    let parts = match content {
        Value::String(_) => return Ok(content.clone()),
        Value::Array(parts) => parts,
        _ => {
            return Err(ApiError::invalid(
                Some(&param(at, ".content")),
                "A message's `content` must be a string or an array of content parts.",
            ))
        }
    };
    let text_only = parts
        .iter()
        .all(|p| matches!(p["type"].as_str(), Some("input_text" | "output_text")));
    if assistant || text_only {
        // Plain text reads the same to every dialect as a string.
        return Ok(json!(text_of(content)));
    }
    let mut out = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let at_part = || param(at, &format!(".content[{j}]"));
        match part["type"].as_str() {
            Some("input_text" | "output_text") => {
                out.push(json!({"type": "text", "text": part["text"]}));
            }
            Some("input_image") => {
                let Some(url) = part["image_url"].as_str() else {
                    return Err(ApiError::invalid(
                        Some(&at_part()),
                        "An `input_image` needs an `image_url` (a URL or a data URL); uploaded files (`file_id`) are OpenAI's own.",
                    ));
                };
                let detail = part["detail"].as_str().unwrap_or("auto");
                out.push(json!({"type": "image_url", "image_url": {"url": url, "detail": detail}}));
            }
            Some("input_file") => {
                let Some(data) = part["file_data"].as_str() else {
                    return Err(ApiError::invalid(
                        Some(&at_part()),
                        "An `input_file` needs its `file_data` (a data URL); uploaded files (`file_id`) and `file_url` are OpenAI's own.",
                    ));
                };
                let mut file = json!({"file_data": data});
                if let Some(name) = part["filename"].as_str() {
                    file["filename"] = json!(name);
                }
                out.push(json!({"type": "file", "file": file}));
            }
            _ => {
                return Err(ApiError::invalid(
                    Some(&at_part()),
                    "A content part's `type` must be `input_text`, `input_image` or `input_file`.",
                ))
            }
        }
    }
    Ok(Value::Array(out))
}

/// Function tools as chat tools; a built-in tool (`web_search`, `file_search`, …) is a 400
/// naming it.
fn tools(tools: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let Some(tools) = tools.and_then(Value::as_array).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        match tool["type"].as_str() {
            Some("function") => {
                if !tool["name"].is_string() {
                    return Err(ApiError::invalid(
                        Some(&format!("tools[{i}].name")),
                        "A function tool needs its `name`.",
                    ));
                }
                let mut function = json!({"name": tool["name"]});
                for key in ["description", "parameters", "strict"] {
                    if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
                        function[key] = v.clone();
                    }
                }
                out.push(json!({"type": "function", "function": function}));
            }
            other => {
                let name = other.unwrap_or("(no type)");
                return Err(ApiError::invalid(
                    Some(&format!("tools[{i}].type")),
                    format!("The built-in tool `{name}` is served only by OpenAI's own Responses API, and this model is not; function tools work with every model."),
                ));
            }
        }
    }
    Ok(Some(Value::Array(out)))
}

/// `tool_choice`: `auto`/`none`/`required` as they are, a function by name as chat names one.
fn tool_choice(choice: Option<&Value>) -> Result<Option<Value>, ApiError> {
    match choice {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(Some(json!(s)))
        }
        Some(c) if c["type"] == "function" && c["name"].is_string() => Ok(Some(
            json!({"type": "function", "function": {"name": c["name"]}}),
        )),
        Some(_) => Err(ApiError::invalid(
            Some("tool_choice"),
            "`tool_choice` must be `auto`, `none`, `required` or {\"type\": \"function\", \"name\": …} for this model.",
        )),
    }
}

/// `text.format` → `response_format`: `json_object` as it is, `json_schema` with its name,
/// schema and strictness; `text` is the default.
fn response_format(text: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let Some(format) = text.and_then(|t| t.get("format")).filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format["type"].as_str() {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") if format["name"].is_string() && format["schema"].is_object() => {
            let mut schema = json!({"name": format["name"], "schema": format["schema"]});
            for key in ["strict", "description"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    schema[key] = v.clone();
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        _ => Err(ApiError::invalid(
            Some("text.format"),
            "`text.format` must be `text`, `json_object`, or `json_schema` with a `name` and a `schema`.",
        )),
    }
}
