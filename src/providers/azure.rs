//! Azure OpenAI: the OpenAI dialect addressed by deployment. `azure/<deployment>` goes to
//! `{AZURE_API_BASE}/openai/deployments/<deployment>/chat/completions?api-version=…` (and
//! `/embeddings`) with the key in the `api-key` header — never in the URL. Answers, streams and
//! errors are OpenAI's: a `content_filter` finish reason passes through as is, and a 400 with
//! `code: content_filter` keeps its message, code and status. A stream's first chunk holds
//! the prompt's content-filter results with `object: ""`, which fails the OpenAI schema: it is
//! relayed as a `chat.completion.chunk` (its results reach the record with it). Azure lists deployments through
//! its management API, not the inference endpoint, so `/v1/models` does not list them.

use serde_json::{Map, Value};

use super::calls::bearer;
use super::errors::openai_error;
use super::openai::STANDARD as OPENAI;
use super::{Api, ChatStream, Dialect, Emit, Prepared, Reply, RequestContext, Target};
use crate::error::ApiError;
use crate::upstream::{url_component, Call, Received, SseEvent};

/// The variable holding the `api-version` query parameter.
pub const API_VERSION_VAR: &str = "AZURE_API_VERSION";

pub struct Azure;

impl Azure {
    /// A POST to `{base}/openai/deployments/{deployment}{path}?api-version=…` with the key in
    /// `api-key`.
    fn call(target: &Target, path: &str, body: &Map<String, Value>, stream: bool) -> Call {
        let version = target.settings.extra(API_VERSION_VAR).unwrap_or_default();
        let url = format!(
            "{}/openai/deployments/{}{path}?api-version={}",
            target.base_url(),
            target.model,
            url_component(version)
        );
        let mut headers = bearer(None, stream);
        if let Some(key) = target.api_key() {
            headers.push(("api-key", key.to_string()));
        }
        Call::post(url, headers, serde_json::to_vec(body).unwrap_or_default())
    }
}

impl Dialect for Azure {
    /// Deployment names are letters, digits, `-`, `_` and `.`, and not dots alone; anything
    /// else would change the path.
    fn check_model(&self, _requested: &str, deployment: &str) -> Result<(), ApiError> {
        // Dots alone (`.`, `..`) would be path segments of their own: the URL would leave
        // `/openai/deployments/`.
        let valid = deployment.chars().any(|c| c != '.')
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

    fn chat_request(
        &self,
        target: &Target,
        body: Map<String, Value>,
        stream: bool,
        context: &RequestContext<'_>,
    ) -> Result<Prepared, ApiError> {
        let (body, dropped) = OPENAI.chat_body(target, body, stream, context.drop_unsupported)?;
        Ok(Prepared {
            call: Azure::call(target, "/chat/completions", &body, stream),
            dropped,
        })
    }

    fn chat_response(&self, target: &Target, answer: Received) -> Result<Reply, ApiError> {
        OPENAI.chat_response(target, answer)
    }

    fn chat_stream(&self, target: &Target) -> Box<dyn ChatStream> {
        Box::new(FilterChunk(OPENAI.chat_stream(target)))
    }

    fn embeddings_request(
        &self,
        target: &Target,
        mut body: Map<String, Value>,
    ) -> Result<Vec<Call>, ApiError> {
        body.insert("model".into(), Value::String(target.model.clone()));
        Ok(vec![Azure::call(target, "/embeddings", &body, false)])
    }

    fn embeddings_response(
        &self,
        target: &Target,
        answers: Vec<Received>,
        base64: bool,
    ) -> Result<Reply, ApiError> {
        OPENAI.embeddings_response(target, answers, base64)
    }

    fn parse_error(&self, status: u16, body: &[u8]) -> ApiError {
        openai_error(status, body)
    }

    /// Azure serves completions (instruct deployments) and the Responses API (its v1 API).
    fn serves(&self, api: Api) -> bool {
        matches!(api, Api::Completions | Api::Responses)
    }

    /// Completions at the deployment; Responses at `{base}/openai/v1/responses`, Azure's
    /// versionless v1 API, where `model` names the deployment.
    fn native_call(
        &self,
        target: &Target,
        api: Api,
        mut body: Map<String, Value>,
        stream: bool,
    ) -> Result<Call, ApiError> {
        body.insert("model".into(), Value::String(target.model.clone()));
        match api {
            Api::Completions => Ok(Azure::call(target, "/completions", &body, stream)),
            Api::Responses => {
                let mut headers = bearer(None, stream);
                if let Some(key) = target.api_key() {
                    headers.push(("api-key", key.to_string()));
                }
                Ok(Call::post(
                    format!("{}/openai/v1/responses", target.base_url()),
                    headers,
                    serde_json::to_vec(&body).unwrap_or_default(),
                ))
            }
            Api::AnthropicMessages => Err(super::not_served(target)),
        }
    }
}

/// OpenAI's stream, with Azure's prompt-filter chunk made a `chat.completion.chunk`.
struct FilterChunk(Box<dyn ChatStream>);

impl ChatStream for FilterChunk {
    fn on_event(&mut self, event: SseEvent) -> Result<Vec<Emit>, ApiError> {
        let mut emits = self.0.on_event(event)?;
        for emit in &mut emits {
            // Only that chunk names `prompt_filter_results`; no other event is parsed here.
            if let Emit::Raw(data) = emit {
                if data.contains("\"prompt_filter_results\"") {
                    if let Ok(Value::Object(mut chunk)) = serde_json::from_str(data) {
                        chunk.insert("object".into(), "chat.completion.chunk".into());
                        *data = Value::Object(chunk).to_string();
                    }
                }
            }
        }
        Ok(emits)
    }

    fn finish(&mut self) -> Result<Vec<Emit>, ApiError> {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::registry::test_target;
    use serde_json::json;

    fn target(deployment: &str) -> Target {
        let mut t = test_target(
            "azure",
            deployment,
            "https://res.openai.azure.com",
            Some("azure-secret-fake"),
        );
        let mut settings = (*t.settings).clone();
        settings.extra.insert(API_VERSION_VAR, "2024-10-21".into());
        t.settings = std::sync::Arc::new(settings);
        t
    }

    #[test]
    fn chat_goes_to_the_deployment_with_the_key_in_a_header() {
        let body = json!({"model": "azure/prod-4o", "stream": true})
            .as_object()
            .unwrap()
            .clone();
        let context = RequestContext {
            drop_unsupported: false,
            client_headers: &[],
        };
        let t = target("prod-4o");
        let call = Azure.chat_request(&t, body, true, &context).unwrap().call;
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
        assert!(Azure.check_model("", "gpt-4o.mini_2").is_ok());
        assert_eq!(Azure.check_model("", "../x").unwrap_err().status, 400);
        assert_eq!(Azure.check_model("", "a?b").unwrap_err().status, 400);
        assert!(Azure.check_model("", "").is_err());
        for traversal in [".", "..", "...", "a/b", "%2e%2e", "x%2Fy"] {
            assert_eq!(
                Azure.check_model("", traversal).unwrap_err().status,
                400,
                "{traversal}"
            );
        }
    }

    #[test]
    fn content_filter_errors_keep_message_code_and_status() {
        let body = br#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation"}}}"#;
        let e = Azure.parse_error(400, body);
        assert_eq!((e.status, e.code.as_deref()), (400, Some("content_filter")));
        assert!(e.message.contains("content management policy"));
        assert_eq!(e.param.as_deref(), Some("prompt"));
    }
}
