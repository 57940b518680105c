//! The route handlers, one file per endpoint family, and the request validation they share.

pub mod chat;
pub mod embeddings;
pub mod health;
pub mod models;

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The body as a JSON object, or a 400 that says what is wrong with it.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::invalid(
            None,
            "The request body is empty; send a JSON object.",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid(
            None,
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(ApiError::invalid(
            None,
            format!("The request body is not valid JSON: {e}."),
        )),
    }
}

/// The required, non-empty string `model`.
pub fn model_name(body: &Map<String, Value>) -> Result<String, ApiError> {
    match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => Ok(m.clone()),
        Some(Value::String(_)) => Err(ApiError::invalid(
            Some("model"),
            "`model` must not be empty.",
        )),
        None | Some(Value::Null) => Err(ApiError::invalid(
            Some("model"),
            "Missing required parameter: `model`.",
        )),
        Some(_) => Err(ApiError::invalid(
            Some("model"),
            "`model` must be a string.",
        )),
    }
}

/// An optional boolean field.
pub fn optional_bool(body: &Map<String, Value>, name: &str) -> Result<bool, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::invalid(
            Some(name),
            format!("`{name}` must be a boolean."),
        )),
    }
}
