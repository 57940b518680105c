//! A Messages request (`POST /v1/messages`) → the gateway's internal OpenAI-shaped chat
//! request, for targets that are not Anthropic (those get the client's body untouched).
//!
//! `system` (a string or text blocks) becomes a system message; user turns keep their text,
//! images (base64 and URL) and documents (a PDF as a `file` part, plain text as text); a
//! user turn's `tool_result` blocks become `tool` messages, placed first as OpenAI requires
//! (`is_error` is said in the content, OpenAI having no flag for it); assistant `tool_use`
//! blocks become `tool_calls`, and assistant `thinking` blocks are left out (OpenAI has no
//! way to send them back). `tools` become functions, `tool_choice` `auto`/`any`/`tool`/`none`
//! becomes `auto`/`required`/a named function/`none`, `disable_parallel_tool_use` becomes
//! `parallel_tool_calls: false`; `stop_sequences` → `stop`, `metadata.user_id` → `user`,
//! `thinking` → `reasoning_effort` (by its budget). `cache_control` marks are Anthropic's
//! own and are dropped. What cannot be honoured (server tools, unknown fields) is a 400 naming
//! it, or dropped with `DROP_UNSUPPORTED_PARAMS`.

use serde_json::{json, Map, Value};

use crate::error::ApiError;

/// The Messages fields this translation reads; any other is refused (or dropped).
const KNOWN: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "metadata",
    "tools",
    "tool_choice",
    "thinking",
    "stream",
];

/// The internal request, and the fields dropped to make it.
pub struct Internal {
    pub body: Map<String, Value>,
    pub dropped: Vec<String>,
}

/// Checks what every Messages request needs, whatever its target: `max_tokens`, and
/// `messages` as a non-empty array of `user`/`assistant` turns.
pub fn validate(body: &Map<String, Value>, count_only: bool) -> Result<(), ApiError> {
    if !count_only {
        match body.get("max_tokens") {
            Some(v) if v.as_u64().is_some_and(|n| n >= 1) => {}
            None | Some(Value::Null) => {
                return Err(ApiError::invalid(
                    Some("max_tokens"),
                    "max_tokens: Field required",
                ))
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    Some("max_tokens"),
                    "max_tokens: Input should be a positive integer",
                ))
            }
        }
    }
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid(
                Some("messages"),
                "messages: at least one message is required",
            ))
        }
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                Some("messages"),
                "messages: Field required",
            ))
        }
        Some(_) => {
            return Err(ApiError::invalid(
                Some("messages"),
                "messages: Input should be a valid list",
            ))
        }
    };
    for (i, m) in messages.iter().enumerate() {
        if !matches!(
            m.get("role").and_then(Value::as_str),
            Some("user" | "assistant")
        ) {
            return Err(ApiError::invalid(
                Some(&format!("messages.{i}.role")),
                format!("messages.{i}.role: Input should be 'user' or 'assistant'"),
            ));
        }
    }
    Ok(())
}

/// The internal request for a (validated) Messages request.
pub fn internal(body: &Map<String, Value>, drop_unsupported: bool) -> Result<Internal, ApiError> {
    let mut dropped = Vec::new();
    let mut unsupported = |name: &str, what: &str| -> Result<(), ApiError> {
        if drop_unsupported {
            dropped.push(name.to_string());
            return Ok(());
        }
        Err(ApiError::invalid(
            Some(name),
            format!("{name}: {what} is not supported for models that are not Anthropic's. Remove it, or set DROP_UNSUPPORTED_PARAMS=true to have the gateway drop it."),
        ))
    };
    for key in body.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        unsupported(key, "this field")?;
    }

    let mut out = Map::new();
    out.insert("model".into(), body["model"].clone());
    let mut messages = Vec::new();
    match body.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            let parts = blocks
                .iter()
                .enumerate()
                .map(|(j, b)| text_part(b, &format!("system.{j}")))
                .collect::<Result<Vec<_>, _>>()?;
            messages.push(json!({"role": "system", "content": parts}));
        }
        Some(_) => {
            return Err(ApiError::invalid(
                Some("system"),
                "system: Input should be a string or a list of text blocks",
            ))
        }
    }
    for (i, m) in body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        match m["role"].as_str() {
            Some("assistant") => messages.push(assistant(&m["content"], i)?),
            _ => messages.extend(user(&m["content"], i)?),
        }
    }
    out.insert("messages".into(), Value::Array(messages));
    for (from, to) in [
        ("max_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("top_k", "top_k"),
        ("stop_sequences", "stop"),
        ("stream", "stream"),
    ] {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
    if let Some(user) = body.get("metadata").and_then(|m| m.get("user_id")) {
        if !user.is_null() {
            out.insert("user".into(), user.clone());
        }
    }
    if let Some(tools) = body.get("tools").filter(|t| !t.is_null()) {
        let tools = tools.as_array().ok_or_else(|| {
            ApiError::invalid(Some("tools"), "tools: Input should be a valid list")
        })?;
        let mut functions = Vec::new();
        for (i, tool) in tools.iter().enumerate() {
            match tool.get("type").and_then(Value::as_str) {
                None | Some("custom") => functions.push(function(tool, i)?),
                Some(kind) => {
                    unsupported(&format!("tools.{i}"), &format!("the server tool `{kind}`"))?
                }
            }
        }
        if !functions.is_empty() {
            out.insert("tools".into(), Value::Array(functions));
        }
    }
    if let Some(choice) = body.get("tool_choice").filter(|c| !c.is_null()) {
        let (choice, serial) = tool_choice(choice)?;
        if out.contains_key("tools") || choice == "none" {
            out.insert("tool_choice".into(), choice);
            if serial {
                out.insert("parallel_tool_calls".into(), json!(false));
            }
        }
    }
    if let Some(effort) = reasoning_effort(body.get("thinking"))? {
        out.insert("reasoning_effort".into(), json!(effort));
    }
    Ok(Internal { body: out, dropped })
}

/// A text block → an OpenAI text part.
fn text_part(block: &Value, at: &str) -> Result<Value, ApiError> {
    match (
        block.get("type").and_then(Value::as_str),
        block.get("text").and_then(Value::as_str),
    ) {
        (Some("text"), Some(text)) => Ok(json!({"type": "text", "text": text})),
        _ => Err(ApiError::invalid(
            Some(at),
            format!("{at}: Input should be a text block with a string `text`"),
        )),
    }
}

/// A user turn → its `tool` messages (first, as OpenAI wants them right after the assistant's
/// calls), then a user message with the other blocks (none when there are none).
fn user(content: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
    let blocks = match content {
        Value::String(s) => return Ok(vec![json!({"role": "user", "content": s})]),
        Value::Array(blocks) => blocks,
        _ => return Err(content_error(i)),
    };
    let mut out = Vec::new();
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("messages.{i}.content.{j}");
        match block.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(text_part(block, &at)?),
            Some("image") => parts.push(image(block, &at)?),
            Some("document") => parts.push(document(block, &at)?),
            Some("tool_result") => out.push(tool_result(block, &at)?),
            other => return Err(unsupported_block(other, &at)),
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(out)
}

/// An assistant turn → one assistant message: its text, its `tool_use` blocks as `tool_calls`.
fn assistant(content: &Value, i: usize) -> Result<Value, ApiError> {
    let blocks = match content {
        Value::String(s) => return Ok(json!({"role": "assistant", "content": s})),
        Value::Array(blocks) => blocks,
        _ => return Err(content_error(i)),
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("messages.{i}.content.{j}");
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                text.push_str(text_part(block, &at)?["text"].as_str().unwrap_or_default())
            }
            Some("tool_use") => {
                let (Some(id), Some(name)) = (block["id"].as_str(), block["name"].as_str()) else {
                    return Err(ApiError::invalid(
                        Some(&at),
                        format!("{at}: a tool_use block needs a string `id` and `name`"),
                    ));
                };
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()},
                }));
            }
            // Earlier reasoning: OpenAI-shaped providers take none back.
            Some("thinking" | "redacted_thinking") => {}
            other => return Err(unsupported_block(other, &at)),
        }
    }
    let mut message = json!({"role": "assistant", "content": (!text.is_empty()).then_some(text)});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    Ok(message)
}

fn content_error(i: usize) -> ApiError {
    ApiError::invalid(
        Some(&format!("messages.{i}.content")),
        format!("messages.{i}.content: Input should be a string or a list of content blocks"),
    )
}

fn unsupported_block(kind: Option<&str>, at: &str) -> ApiError {
    ApiError::invalid(
        Some(at),
        format!(
            "{at}: content blocks of type `{}` are not supported for models that are not Anthropic's",
            kind.unwrap_or("(none)")
        ),
    )
}

/// An image block (base64 or URL source) → an `image_url` part.
fn image(block: &Value, at: &str) -> Result<Value, ApiError> {
    let source = &block["source"];
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => match (source["media_type"].as_str(), source["data"].as_str()) {
            (Some(media), Some(data)) => format!("data:{media};base64,{data}"),
            _ => {
                return Err(source_error(
                    at,
                    "a base64 source needs `media_type` and `data`",
                ))
            }
        },
        Some("url") => match source["url"].as_str() {
            Some(url) => url.to_string(),
            None => return Err(source_error(at, "a url source needs a string `url`")),
        },
        _ => {
            return Err(source_error(
                at,
                "the image source must be `base64` or `url`",
            ))
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A document block: a base64 PDF → a `file` part; plain text (or text blocks) → a text part.
fn document(block: &Value, at: &str) -> Result<Value, ApiError> {
    let source = &block["source"];
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let (Some(media), Some(data)) =
                (source["media_type"].as_str(), source["data"].as_str())
            else {
                return Err(source_error(
                    at,
                    "a base64 source needs `media_type` and `data`",
                ));
            };
            let filename = block["title"].as_str().unwrap_or("document.pdf");
            Ok(json!({"type": "file", "file": {
                "filename": filename,
                "file_data": format!("data:{media};base64,{data}"),
            }}))
        }
        Some("text") => match source["data"].as_str() {
            Some(text) => Ok(json!({"type": "text", "text": text})),
            None => Err(source_error(at, "a text source needs a string `data`")),
        },
        Some("content") => {
            let texts: Vec<&str> = source["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| b["text"].as_str())
                .collect();
            Ok(json!({"type": "text", "text": texts.join("\n")}))
        }
        _ => Err(source_error(
            at,
            "only base64 and text documents can be sent to models that are not Anthropic's",
        )),
    }
}

fn source_error(at: &str, what: &str) -> ApiError {
    ApiError::invalid(
        Some(&format!("{at}.source")),
        format!("{at}.source: {what}"),
    )
}

/// A `tool_result` block → a `tool` message; an error result says so in its content.
fn tool_result(block: &Value, at: &str) -> Result<Value, ApiError> {
    let id = block["tool_use_id"]
        .as_str()
        .ok_or_else(|| ApiError::invalid(Some(at), format!("{at}: tool_use_id: Field required")))?;
    let text = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::new();
            for (k, b) in blocks.iter().enumerate() {
                let part = text_part(b, &format!("{at}.content.{k}"))?;
                texts.push(part["text"].as_str().unwrap_or_default().to_string());
            }
            texts.join("\n")
        }
        Some(_) => {
            return Err(ApiError::invalid(
                Some(at),
                format!("{at}.content: Input should be a string or a list of blocks"),
            ))
        }
    };
    let text = if block["is_error"] == true {
        format!("Error: {text}")
    } else {
        text
    };
    Ok(json!({"role": "tool", "tool_call_id": id, "content": text}))
}

/// A Messages tool → an OpenAI function tool.
fn function(tool: &Value, i: usize) -> Result<Value, ApiError> {
    let name = tool["name"].as_str().ok_or_else(|| {
        ApiError::invalid(
            Some(&format!("tools.{i}.name")),
            format!("tools.{i}.name: Field required"),
        )
    })?;
    let mut function = json!({
        "name": name,
        "parameters": tool.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"})),
    });
    if let Some(d) = tool.get("description").filter(|d| d.is_string()) {
        function["description"] = d.clone();
    }
    Ok(json!({"type": "function", "function": function}))
}

/// A Messages `tool_choice` → OpenAI's, and whether parallel tool use is disabled.
fn tool_choice(choice: &Value) -> Result<(Value, bool), ApiError> {
    let serial = choice["disable_parallel_tool_use"] == true;
    let openai = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => match choice["name"].as_str() {
            Some(name) => json!({"type": "function", "function": {"name": name}}),
            None => {
                return Err(ApiError::invalid(
                    Some("tool_choice.name"),
                    "tool_choice.name: Field required",
                ))
            }
        },
        _ => {
            return Err(ApiError::invalid(
                Some("tool_choice.type"),
                "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'",
            ))
        }
    };
    Ok((openai, serial))
}

/// `thinking` → OpenAI's `reasoning_effort`, by the budget it grants.
fn reasoning_effort(thinking: Option<&Value>) -> Result<Option<&'static str>, ApiError> {
    let Some(thinking) = thinking.filter(|t| !t.is_null()) else {
        return Ok(None);
    };
    match thinking.get("type").and_then(Value::as_str) {
        Some("disabled") => Ok(None),
        Some("enabled") => Ok(Some(
            match thinking["budget_tokens"].as_u64().unwrap_or(0) {
                0..4096 => "low",
                4096..16384 => "medium",
                _ => "high",
            },
        )),
        _ => Err(ApiError::invalid(
            Some("thinking.type"),
            "thinking.type: Input should be 'enabled' or 'disabled'",
        )),
    }
}
