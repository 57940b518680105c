//! `POST /v1/embeddings`: a string, an array of strings, a token array or an array of token
//! arrays; `encoding_format` float or base64; `dimensions`. Answered by `mock/embed` or
//! relayed to the provider as received.

use std::time::Instant;

use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::events::Body;
use crate::handlers::{json_object, model_name};
use crate::http::Responder;
use crate::providers::mock::EmbeddingInput;
use crate::providers::{self, bedrock, mock, Provider, Target};
use crate::reply::Exchange;
use crate::upstream;

/// OpenAI's limit on inputs per request.
const MAX_INPUTS: usize = 2048;

pub fn create(x: &Exchange<'_>, res: &mut Responder<'_>) {
    x.mark_api_call();
    if let Err(e) = run(x, res) {
        x.send_error(res, &e);
    }
}

fn run(x: &Exchange<'_>, res: &mut Responder<'_>) -> Result<(), ApiError> {
    let body = json_object(&x.req.body)?;
    let model = model_name(&body)?;
    x.record().model_requested = Some(model.clone());
    let inputs = parse_inputs(&body)?;
    let target = providers::resolve(&x.gw.config, &model)?;
    x.note_target(&target);
    match target.provider {
        Provider::Mock => {
            if target.model != "embed" {
                return Err(ApiError::invalid(
                    Some("model"),
                    format!("`{model}` is a chat model; use mock/embed for embeddings."),
                ));
            }
            let (data, tokens) = mock::embed(&inputs, &Value::Object(body))?;
            let usage = json!({"prompt_tokens": tokens, "total_tokens": tokens});
            let cost = x.set_usage(Some(usage.clone()));
            let answer = json!({"object": "list", "data": data, "model": model, "usage": usage});
            if x.keeps_bodies() {
                let mut record = x.record();
                record.request_body = Some(Body::Raw(x.req.body.clone()));
                record.response_body = Some(Body::Value(answer.clone()));
            }
            let _ = x.send_value(res, &answer, cost.into_iter().collect());
            Ok(())
        }
        Provider::OpenAI => remote_embeddings(x, res, &target, body),
        Provider::Gemini => remote_embeddings(x, res, &target, body),
        Provider::Anthropic => remote_embeddings(x, res, &target, body),
        Provider::Azure => remote_embeddings(x, res, &target, body),
        Provider::Cohere => remote_embeddings(x, res, &target, body),
        Provider::Bedrock => bedrock_embeddings(x, res, &target, body),
    }
}

/// Embeddings from a remote provider, its answer translated back (or relayed as is).
fn remote_embeddings(
    x: &Exchange<'_>,
    res: &mut Responder<'_>,
    target: &Target,
    body: Map<String, Value>,
) -> Result<(), ApiError> {
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let call = providers::embeddings_request(target, body)?;
    let started = Instant::now();
    let sent = upstream::post(x.gw.agents.get(), &call);
    if x.keeps_bodies() {
        x.record().request_body = Some(Body::Raw(call.body));
    }
    let mut answer = sent?;
    let status = answer.status();
    let bytes = answer.read_body()?;
    let upstream_time = started.elapsed();
    x.record().upstream_latency = Some(upstream_time);
    if x.keeps_bodies() {
        x.record().response_body = Some(Body::Raw(bytes.clone()));
    }
    let mut headers = providers::forwarded_headers(&answer);
    if !(200..300).contains(&status) {
        let mut e = providers::parse_error(target, status, &bytes);
        e.headers
            .retain(|(n, _)| headers.iter().all(|(f, _)| f != n));
        e.headers.extend(headers);
        return Err(e);
    }
    let reply = providers::embeddings_response(target, bytes, base64)?;
    let cost = x.set_usage(reply.usage);
    let (name, ms) = x.overhead(upstream_time);
    headers.push((name.into(), ms));
    headers.extend(cost);
    let _ = x.send_json(res, status, reply.body, headers);
    Ok(())
}

/// Embeddings from Bedrock (InvokeModel): Titan takes one text per call, so the inputs are
/// sent one after another and their answers joined; the first error answers for all.
fn bedrock_embeddings(
    x: &Exchange<'_>,
    res: &mut Responder<'_>,
    target: &Target,
    body: Map<String, Value>,
) -> Result<(), ApiError> {
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let endpoint = target
        .endpoint
        .as_ref()
        .ok_or_else(|| ApiError::new(500, "server_error", None, "Bedrock has no endpoint."))?;
    let calls = bedrock::embeddings_calls(endpoint, target, &body)?;
    let started = Instant::now();
    let mut sent_bodies = Vec::new();
    let mut answers = Vec::with_capacity(calls.len());
    let mut headers = Vec::new();
    for call in &calls {
        let mut answer = upstream::post(x.gw.agents.get(), call)?;
        let status = answer.status();
        let bytes = answer.read_body()?;
        headers = providers::forwarded_headers(&answer);
        if x.keeps_bodies() {
            sent_bodies.push(serde_json::from_slice(&call.body).unwrap_or(Value::Null));
        }
        if !(200..300).contains(&status) {
            x.record().upstream_latency = Some(started.elapsed());
            let mut e = providers::parse_error(target, status, &bytes);
            e.headers
                .retain(|(n, _)| headers.iter().all(|(f, _)| f != n));
            e.headers.extend(headers);
            return Err(e);
        }
        let counted = answer
            .header("x-amzn-bedrock-input-token-count")
            .and_then(|n| n.parse().ok());
        answers.push((bytes, counted));
    }
    let upstream_time = started.elapsed();
    x.record().upstream_latency = Some(upstream_time);
    if x.keeps_bodies() {
        x.record().request_body = Some(Body::Value(Value::Array(sent_bodies)));
    }
    let reply = bedrock::embeddings_response(&target.model, &answers, base64)?;
    if x.keeps_bodies() {
        x.record().response_body = Some(Body::Raw(reply.body.clone()));
    }
    let cost = x.set_usage(reply.usage);
    let (name, ms) = x.overhead(upstream_time);
    headers.push((name.into(), ms));
    headers.extend(cost);
    let _ = x.send_json(res, 200, reply.body, headers);
    Ok(())
}

/// Validates `input` into a list of texts or token arrays.
fn parse_inputs(body: &Map<String, Value>) -> Result<Vec<EmbeddingInput>, ApiError> {
    let bad = |msg: &str| ApiError::invalid(Some("input"), msg.to_string());
    let tokens =
        |items: &[Value]| -> Option<Vec<u64>> { items.iter().map(Value::as_u64).collect() };
    let inputs = match body.get("input") {
        None | Some(Value::Null) => return Err(bad("Missing required parameter: `input`.")),
        Some(Value::String(s)) => vec![EmbeddingInput::Text(s.clone())],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(bad("`input` must not be an empty array."))
        }
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .map(|s| EmbeddingInput::Text(s.as_str().unwrap_or_default().to_string()))
            .collect(),
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => match tokens(items) {
            Some(ids) => vec![EmbeddingInput::Tokens(ids)],
            None => return Err(bad("Token ids in `input` must be non-negative integers.")),
        },
        Some(Value::Array(items)) if items.iter().all(Value::is_array) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match tokens(item.as_array().map(Vec::as_slice).unwrap_or(&[])) {
                    Some(ids) if !ids.is_empty() => out.push(EmbeddingInput::Tokens(ids)),
                    _ => return Err(bad("Each token array in `input` must hold non-negative integers.")),
                }
            }
            out
        }
        Some(_) => {
            return Err(bad(
                "`input` must be a string, an array of strings, an array of token ids, or an array of token arrays.",
            ))
        }
    };
    if inputs.len() > MAX_INPUTS {
        return Err(bad(&format!("`input` holds more than {MAX_INPUTS} items.")));
    }
    if inputs
        .iter()
        .any(|i| matches!(i, EmbeddingInput::Text(t) if t.is_empty()))
    {
        return Err(bad("`input` must not contain empty strings."));
    }
    Ok(inputs)
}
