//! Azure OpenAI: the OpenAI dialect addressed by deployment. `azure/<deployment>` goes to
//! `{AZURE_API_BASE}/openai/deployments/<deployment>/chat/completions?api-version=…` (and
//! `/embeddings`) with the key in the `api-key` header — never in the URL. Answers, streams and
//! errors are OpenAI's: a `content_filter` finish reason passes through as is, and a 400 with
//! `code: content_filter` keeps its message, code and status (`openai::parse_error`).

use serde_json::{Map, Value};

use crate::config::Endpoint;
use crate::error::ApiError;
use crate::upstream::Call;

use super::openai;

/// Deployment names are letters, digits, `-`, `_` and `.`; anything else would change the path.
pub fn check_deployment(deployment: &str) -> Result<(), ApiError> {
    let valid = !deployment.is_empty()
        && deployment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            Some("model"),
            format!("`azure/{deployment}`: an Azure deployment name has only letters, digits, '-', '_' and '.'."),
        ))
    }
}

/// The Azure form of an OpenAI call built for `{base}/openai/deployments/{deployment}`.
fn azure_call(
    endpoint: &Endpoint,
    api_version: &str,
    build: impl FnOnce(&Endpoint) -> Call,
) -> Call {
    let keyless = Endpoint {
        base_url: endpoint.base_url.clone(),
        api_key: None,
    };
    let mut call = build(&keyless);
    call.url.push_str("?api-version=");
    call.url.push_str(&query_value(api_version));
    if let Some(key) = &endpoint.api_key {
        call.headers.push(("api-key", key.clone()));
    }
    call
}

/// `POST …/chat/completions?api-version=…`; streams ask for usage like OpenAI.
pub fn chat_request(
    endpoint: &Endpoint,
    deployment: &str,
    api_version: &str,
    body: Map<String, Value>,
    stream: bool,
) -> Call {
    azure_call(
        &deployment_endpoint(endpoint, deployment),
        api_version,
        |e| openai::chat_request(e, deployment, body, stream, true),
    )
}

/// `POST …/embeddings?api-version=…`.
pub fn embeddings_request(
    endpoint: &Endpoint,
    deployment: &str,
    api_version: &str,
    body: Map<String, Value>,
) -> Call {
    azure_call(
        &deployment_endpoint(endpoint, deployment),
        api_version,
        |e| openai::embeddings_request(e, deployment, body),
    )
}

fn deployment_endpoint(endpoint: &Endpoint, deployment: &str) -> Endpoint {
    Endpoint {
        base_url: format!("{}/openai/deployments/{deployment}", endpoint.base_url),
        api_key: endpoint.api_key.clone(),
    }
}

/// Percent-encodes everything but unreserved characters.
fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoint() -> Endpoint {
        Endpoint {
            base_url: "https://res.openai.azure.com".into(),
            api_key: Some("azure-secret-fake".into()),
        }
    }

    #[test]
    fn chat_goes_to_the_deployment_with_the_key_in_a_header() {
        let body = json!({"model": "azure/prod-4o", "stream": true})
            .as_object()
            .unwrap()
            .clone();
        let call = chat_request(&endpoint(), "prod-4o", "2024-10-21", body, true);
        assert_eq!(
            call.url,
            "https://res.openai.azure.com/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
        );
        assert!(!call.url.contains("azure-secret-fake"));
        assert!(call
            .headers
            .contains(&("api-key", "azure-secret-fake".to_string())));
        assert!(call.headers.iter().all(|(n, _)| *n != "authorization"));
        let sent: Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(sent["stream_options"]["include_usage"], true);
    }

    #[test]
    fn deployment_names_cannot_change_the_path() {
        assert!(check_deployment("gpt-4o.mini_2").is_ok());
        assert_eq!(check_deployment("../x").unwrap_err().status, 400);
        assert_eq!(check_deployment("a?b").unwrap_err().status, 400);
        assert!(check_deployment("").is_err());
    }

    #[test]
    fn content_filter_errors_keep_message_code_and_status() {
        let body = br#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation"}}}"#;
        let e = openai::parse_error(400, body);
        assert_eq!((e.status, e.code.as_deref()), (400, Some("content_filter")));
        assert!(e.message.contains("content management policy"));
        assert_eq!(e.param.as_deref(), Some("prompt"));
    }
}
