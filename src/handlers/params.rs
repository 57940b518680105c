//! The known OpenAI chat parameters checked against the official schema's types and ranges
//! (`CreateChatCompletionRequest` in OpenAI's description) before any provider call, so a
//! malformed request is the same 400 naming its parameter whatever the provider, instead of
//! whatever each provider makes of it. Null is accepted wherever the schema makes a parameter
//! nullable or optional; unknown fields are not looked at (they pass through).

use serde_json::{Map, Value};

use crate::error::ApiError;

/// What a parameter's value must be.
enum Kind {
    /// A number within (min, max).
    Number(f64, f64),
    /// An integer within (min, max).
    Integer(f64, f64),
    Bool,
    String,
    Object,
    Array,
    /// A string or an object (`tool_choice`).
    StringOrObject,
    /// A string or up to 4 strings (`stop`).
    Stop,
    /// An object of token ids to numbers within -100..100 (`logit_bias`).
    LogitBias,
}

/// The parameters checked, by the schema's type and range.
const PARAMS: &[(&str, Kind)] = &[
    ("temperature", Kind::Number(0.0, 2.0)),
    ("top_p", Kind::Number(0.0, 1.0)),
    ("presence_penalty", Kind::Number(-2.0, 2.0)),
    ("frequency_penalty", Kind::Number(-2.0, 2.0)),
    ("n", Kind::Integer(1.0, 128.0)),
    ("max_tokens", Kind::Integer(0.0, f64::MAX)),
    ("max_completion_tokens", Kind::Integer(0.0, f64::MAX)),
    ("top_logprobs", Kind::Integer(0.0, 20.0)),
    ("seed", Kind::Integer(f64::MIN, f64::MAX)),
    ("stream", Kind::Bool),
    ("logprobs", Kind::Bool),
    ("parallel_tool_calls", Kind::Bool),
    ("store", Kind::Bool),
    ("user", Kind::String),
    ("service_tier", Kind::String),
    ("reasoning_effort", Kind::String),
    ("response_format", Kind::Object),
    ("stream_options", Kind::Object),
    ("metadata", Kind::Object),
    ("tools", Kind::Array),
    ("modalities", Kind::Array),
    ("tool_choice", Kind::StringOrObject),
    ("stop", Kind::Stop),
    ("logit_bias", Kind::LogitBias),
];

/// Checks every known parameter present, and each message's `content` (a string, an array of
/// parts, or null).
pub fn check(body: &Map<String, Value>) -> Result<(), ApiError> {
    for (name, kind) in PARAMS {
        match body.get(*name) {
            None | Some(Value::Null) => {}
            Some(value) => check_one(name, kind, value)?,
        }
    }
    let messages = body.get("messages").and_then(Value::as_array);
    for (i, message) in messages.into_iter().flatten().enumerate() {
        if let Some(content) = message.get("content") {
            if !matches!(content, Value::String(_) | Value::Array(_) | Value::Null) {
                let param = format!("messages[{i}].content");
                return Err(wrong_type(
                    &param,
                    "a string or an array of content parts",
                    content,
                ));
            }
        }
    }
    Ok(())
}

fn check_one(name: &str, kind: &Kind, value: &Value) -> Result<(), ApiError> {
    let ok = match kind {
        Kind::Number(min, max) => {
            let n = value
                .as_f64()
                .ok_or_else(|| wrong_type(name, "a number", value))?;
            return in_range(name, n, *min, *max);
        }
        Kind::Integer(min, max) => {
            let n = value
                .as_f64()
                .filter(|n| n.fract() == 0.0)
                .ok_or_else(|| wrong_type(name, "an integer", value))?;
            return in_range(name, n, *min, *max);
        }
        Kind::Bool => value.is_boolean(),
        Kind::String => value.is_string(),
        Kind::Object => value.is_object(),
        Kind::Array => value.is_array(),
        Kind::StringOrObject => value.is_string() || value.is_object(),
        Kind::Stop => match value {
            Value::String(_) => true,
            Value::Array(items) => items.len() <= 4 && items.iter().all(Value::is_string),
            _ => false,
        },
        Kind::LogitBias => {
            let biases = value
                .as_object()
                .ok_or_else(|| wrong_type(name, "an object", value))?;
            for bias in biases.values() {
                let n = bias
                    .as_f64()
                    .ok_or_else(|| wrong_type(name, "an object of numbers", value))?;
                in_range(name, n, -100.0, 100.0)?;
            }
            true
        }
    };
    if ok {
        return Ok(());
    }
    let expected = match kind {
        Kind::Bool => "a boolean",
        Kind::String => "a string",
        Kind::Object => "an object",
        Kind::Array => "an array",
        Kind::StringOrObject => "a string or an object",
        _ => "a string or an array of up to 4 strings",
    };
    Err(wrong_type(name, expected, value))
}

fn in_range(name: &str, n: f64, min: f64, max: f64) -> Result<(), ApiError> {
    if n < min {
        return Err(ApiError::invalid(
            Some(name),
            format!("Invalid '{name}': expected a value >= {min}, but got {n} instead."),
        ));
    }
    if n > max {
        return Err(ApiError::invalid(
            Some(name),
            format!("Invalid '{name}': expected a value <= {max}, but got {n} instead."),
        ));
    }
    Ok(())
}

fn wrong_type(name: &str, expected: &str, value: &Value) -> ApiError {
    let got = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    ApiError::invalid(
        Some(name),
        format!("Invalid type for '{name}': expected {expected}, but got {got} instead."),
    )
}
