//! The one error type every failure becomes, and the one place it is rendered:
//! `{"error":{"message","type","param","code"}}` with all four keys and a truthful status.

use serde_json::{json, Value};

/// A failure to report to the client, from the gateway itself or from a provider.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `server_error`, `upstream_error`, …
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
    /// Response headers to pass on with the error (the provider's `retry-after`, …).
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(status: u16, kind: &str, code: Option<&str>, message: impl Into<String>) -> Self {
        // A message never ends in white space (a template with an empty last part would).
        let mut message = message.into();
        message.truncate(message.trim_end().len());
        ApiError {
            status,
            message,
            kind: kind.into(),
            param: None,
            code: code.map(str::to_string),
            headers: Vec::new(),
        }
    }

    /// 400: the request is malformed; `param` names the offending field.
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        let mut e = ApiError::new(400, "invalid_request_error", None, message);
        e.param = param.map(str::to_string);
        e
    }

    /// 404 `model_not_found`.
    pub fn model_not_found(model: &str, hint: &str) -> Self {
        let mut e = ApiError::new(
            404,
            "invalid_request_error",
            Some("model_not_found"),
            format!("The model `{model}` does not exist or no provider serves it. {hint}"),
        );
        e.param = Some("model".into());
        e
    }

    /// 502: the provider could not be reached or answered something unusable.
    pub fn bad_gateway(code: &str, message: impl Into<String>) -> Self {
        ApiError::new(502, "upstream_error", Some(code), message)
    }

    /// 504: the provider did not answer in time.
    pub fn gateway_timeout(message: impl Into<String>) -> Self {
        ApiError::new(504, "upstream_error", Some("upstream_timeout"), message)
    }

    /// The status and body the gateway itself produces for protocol-level failures.
    pub fn protocol(status: u16, message: &str) -> Self {
        let (kind, code) = match status {
            503 => ("server_error", Some("overloaded")),
            500..=599 => ("server_error", None),
            408 => ("invalid_request_error", Some("request_timeout")),
            413 => ("invalid_request_error", Some("request_too_large")),
            431 => (
                "invalid_request_error",
                Some("request_header_fields_too_large"),
            ),
            _ => ("invalid_request_error", None),
        };
        ApiError::new(status, kind, code, message)
    }

    pub fn to_value(&self) -> Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }

    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_value()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_error_has_all_four_keys() {
        let v = ApiError::invalid(None, "bad").to_value();
        let e = v["error"].as_object().unwrap();
        for key in ["message", "type", "param", "code"] {
            assert!(e.contains_key(key), "{key} missing");
        }
        assert!(e["param"].is_null() && e["code"].is_null());
        let v = ApiError::model_not_found("x/y", "").to_value();
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
    }

    #[test]
    fn messages_never_end_in_white_space() {
        let e = ApiError::bad_gateway("x", format!("The provider failed: {} ", ""));
        assert_eq!(e.message, "The provider failed:");
        assert_eq!(ApiError::invalid(None, "ok.").message, "ok.");
    }
}
