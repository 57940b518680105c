//! OpenAI `messages` → Gemini's `systemInstruction` parts and `contents` turns: text, images
//! (`inlineData` from data URLs, `fileData` from URLs), audio and files, assistant tool calls as
//! `functionCall` parts (with their thought signatures), tool results as `functionResponse`
//! parts named after the call they answer.

use serde_json::{json, Value};

use super::SIGNATURE_MARK;
use crate::error::ApiError;

/// `messages` → the system instruction's parts and the `contents` turns. Consecutive tool
/// results form one `user` turn, as Gemini expects the answers to one turn's calls together.
pub(super) fn contents(messages: Option<&Value>) -> Result<(Vec<Value>, Vec<Value>), ApiError> {
    let messages = messages
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut system = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    let mut call_names: Vec<(String, String)> = Vec::new();
    let mut last_was_tool = false;
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let content = m.get("content").unwrap_or(&Value::Null);
        let is_tool = role == "tool";
        match role {
            "system" | "developer" => system.extend(text_parts(content, i)?),
            "user" => {
                let parts = user_parts(content, i)?;
                if !parts.is_empty() {
                    turns.push(json!({"role": "user", "parts": parts}));
                }
            }
            "assistant" => {
                let mut parts = text_parts(content, i)?;
                let calls = m.get("tool_calls").and_then(Value::as_array);
                for (j, c) in calls.into_iter().flatten().enumerate() {
                    let (part, id, name) = function_call(c, i, j)?;
                    call_names.push((id, name));
                    parts.push(part);
                }
                if !parts.is_empty() {
                    turns.push(json!({"role": "model", "parts": parts}));
                }
            }
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                let Some((_, name)) = call_names.iter().rev().find(|(c, _)| c == id) else {
                    return Err(ApiError::invalid(
                        Some(&format!("messages[{i}].tool_call_id")),
                        format!("`messages[{i}]` answers tool call {id:?}, which no earlier assistant message made."),
                    ));
                };
                let text = plain_text(content, i)?;
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(object @ Value::Object(_)) => object,
                    _ => json!({ "result": text }),
                };
                let part = json!({"functionResponse": {"name": name, "response": response}});
                match turns.last_mut() {
                    Some(turn) if last_was_tool => {
                        if let Some(parts) = turn["parts"].as_array_mut() {
                            parts.push(part);
                        }
                    }
                    _ => turns.push(json!({"role": "user", "parts": [part]})),
                }
            }
            other => {
                return Err(ApiError::invalid(
                    Some(&format!("messages[{i}].role")),
                    format!("Unknown role {other:?}."),
                ))
            }
        }
        last_was_tool = is_tool;
    }
    Ok((system, turns))
}

/// An assistant's tool call → a `functionCall` part (with its thought signature), its id and
/// its function name.
fn function_call(c: &Value, i: usize, j: usize) -> Result<(Value, String, String), ApiError> {
    let param = format!("messages[{i}].tool_calls[{j}]");
    let function = c.get("function").unwrap_or(&Value::Null);
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid(Some(&param), "A tool call needs a function name."))?;
    let raw = function
        .get("arguments")
        .and_then(Value::as_str)
        .unwrap_or("");
    let args = if raw.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str::<Value>(raw) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Err(ApiError::invalid(
                    Some(&format!("{param}.function.arguments")),
                    "Tool call arguments must be a JSON object.",
                ))
            }
        }
    };
    let id = c
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut part = json!({"functionCall": {"name": name, "args": args}});
    if let Some((_, signature)) = id.split_once(SIGNATURE_MARK) {
        part["thoughtSignature"] = json!(signature);
    }
    Ok((part, id, name.to_string()))
}

/// Text content (a string, or text/refusal parts) → text parts.
fn text_parts(content: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
    let text = plain_text(content, i)?;
    Ok(if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({ "text": text })]
    })
}

/// The text of a content that may only hold text.
fn plain_text(content: &Value, i: usize) -> Result<String, ApiError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for (j, p) in parts.iter().enumerate() {
                match p
                    .get("text")
                    .or_else(|| p.get("refusal"))
                    .and_then(Value::as_str)
                {
                    Some(t) => text.push_str(t),
                    None => {
                        return Err(ApiError::invalid(
                            Some(&format!("messages[{i}].content[{j}]")),
                            "Only text parts are accepted in this message.",
                        ))
                    }
                }
            }
            Ok(text)
        }
        _ => Err(ApiError::invalid(
            Some(&format!("messages[{i}].content")),
            "`content` must be a string or an array of parts.",
        )),
    }
}

/// A user's content → text, `inlineData` (data URLs, audio) and `fileData` (URLs) parts.
fn user_parts(content: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
    let Value::Array(parts) = content else {
        return text_parts(content, i);
    };
    let mut out = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        let param = format!("messages[{i}].content[{j}]");
        let bad = |msg: &str| ApiError::invalid(Some(&param), msg.to_string());
        match p.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = p
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("A text part needs `text`."))?;
                out.push(json!({ "text": text }));
            }
            Some("image_url") => {
                let url = p
                    .get("image_url")
                    .and_then(|u| u.get("url").or(Some(u)))
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("An image_url part needs `image_url.url`."))?;
                out.push(media(url).map_err(|m| bad(&m))?);
            }
            Some("input_audio") => {
                let audio = p.get("input_audio").unwrap_or(&Value::Null);
                let data = audio.get("data").and_then(Value::as_str);
                let format = audio.get("format").and_then(Value::as_str).unwrap_or("wav");
                let data =
                    data.ok_or_else(|| bad("An input_audio part needs `input_audio.data`."))?;
                let mime = if format == "mp3" {
                    "audio/mp3"
                } else {
                    "audio/wav"
                };
                out.push(json!({"inlineData": {"mimeType": mime, "data": data}}));
            }
            Some("file") => {
                let data = p
                    .get("file")
                    .and_then(|f| f.get("file_data"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("Gemini takes files as `file.file_data` data URLs; file ids are not supported."))?;
                out.push(media(data).map_err(|m| bad(&m))?);
            }
            _ => return Err(bad("Unsupported content part type.")),
        }
    }
    Ok(out)
}

/// A data URL → `inlineData`; an http(s) URL → `fileData`.
fn media(url: &str) -> Result<Value, String> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').ok_or("A data URL needs a comma.")?;
        let mime = meta
            .strip_suffix(";base64")
            .ok_or("Only base64 data URLs are supported.")?;
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    if !(url.starts_with("https://") || url.starts_with("http://") || url.starts_with("gs://")) {
        return Err("An image must be a data URL or an http(s) URL.".into());
    }
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    let mime = [
        (".png", "image/png"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".webp", "image/webp"),
        (".gif", "image/gif"),
        (".heic", "image/heic"),
        (".heif", "image/heif"),
        (".pdf", "application/pdf"),
    ]
    .iter()
    .find(|(ext, _)| path.ends_with(ext))
    .map(|(_, m)| *m);
    let mut file = json!({ "fileUri": url });
    if let Some(m) = mime {
        file["mimeType"] = json!(m);
    }
    Ok(json!({ "fileData": file }))
}
