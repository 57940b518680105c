//! The route handlers, one file per endpoint family, and the request validation they share.

pub mod chat;
pub mod completions;
pub mod docs;
pub mod embeddings;
pub mod health;
pub mod home;
pub mod interactions;
pub mod keys;
pub mod messages;
pub mod metrics;
pub mod models;
pub mod native;
pub mod params;
pub mod relay;
pub mod responses;
pub mod spend;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::providers::Dialect;
use crate::upstream::Received;

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

/// A provider's error answer in the OpenAI shape, with the provider's own retry and
/// rate-limit headers (`forwarded`), which win over those the dialect derived from its body.
pub fn provider_error(
    dialect: &dyn Dialect,
    received: &Received,
    forwarded: Vec<(String, String)>,
) -> ApiError {
    let mut e = dialect.parse_error(received.status(), &received.body);
    e.headers
        .retain(|(n, _)| forwarded.iter().all(|(f, _)| f != n));
    e.headers.extend(forwarded);
    e
}

/// Decodes `%XX` escapes; anything malformed is kept as it is.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The value of a query parameter, percent-decoded (`+` as a space).
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(&v.replace('+', " ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_percent_decoded() {
        assert_eq!(percent_decode("mock%2Fecho"), "mock/echo");
        assert_eq!(percent_decode("a%2fb%"), "a/b%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn query_parameters_are_found_and_decoded() {
        let q = Some("hours=24&model=mock%2Fecho&flag");
        assert_eq!(query_param(q, "hours").as_deref(), Some("24"));
        assert_eq!(query_param(q, "model").as_deref(), Some("mock/echo"));
        assert_eq!(query_param(q, "flag").as_deref(), Some(""));
        assert_eq!(query_param(q, "bucket"), None);
        assert_eq!(query_param(None, "hours"), None);
    }
}
