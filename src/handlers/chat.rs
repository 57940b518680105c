//! `POST /v1/chat/completions`: validates the request, resolves the model, and answers from
//! the mock models or relays the provider's answer, as JSON or as an SSE stream relayed event
//! by event. Events that arrived together leave together; nothing else is held back.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::assembler::Assembler;
use crate::error::ApiError;
use crate::events::{Body, Outcome};
use crate::handlers::{json_object, model_name, optional_bool};
use crate::http::{ClientGone, Responder, Stream};
use crate::providers::bedrock::eventstream::CONTENT_TYPE as EVENT_STREAM;
use crate::providers::{self, mock, Emit, Provider, Target};
use crate::reply::{end_with_error, sse_data, unix_now, Exchange};
use crate::upstream::{self, StreamError};

pub fn completions(x: &Exchange<'_>, res: &mut Responder<'_>) {
    x.mark_api_call();
    if let Err(e) = run(x, res) {
        x.send_error(res, &e);
    }
}

fn run(x: &Exchange<'_>, res: &mut Responder<'_>) -> Result<(), ApiError> {
    let body = json_object(&x.req.body)?;
    let model = model_name(&body)?;
    x.record().model_requested = Some(model.clone());
    validate_messages(&body)?;
    let stream = optional_bool(&body, "stream")?;
    x.record().stream = stream;
    let target = providers::resolve(&x.gw.config, &model)?;
    x.note_target(&target);
    match target.provider {
        Provider::Mock => mock_chat(x, res, &model, &target, &body, stream),
        Provider::OpenAI => remote_chat(x, res, &target, body, stream),
        Provider::Gemini => remote_chat(x, res, &target, body, stream),
        Provider::Anthropic => remote_chat(x, res, &target, body, stream),
        Provider::Azure => remote_chat(x, res, &target, body, stream),
        Provider::Cohere => remote_chat(x, res, &target, body, stream),
        Provider::Bedrock => remote_chat(x, res, &target, body, stream),
    }
}

/// `messages` must be a non-empty array of objects, each with a string `role`.
fn validate_messages(body: &Map<String, Value>) -> Result<(), ApiError> {
    let messages = match body.get("messages") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                Some("messages"),
                "Missing required parameter: `messages`.",
            ))
        }
        Some(Value::Array(m)) => m,
        Some(_) => {
            return Err(ApiError::invalid(
                Some("messages"),
                "`messages` must be an array.",
            ))
        }
    };
    if messages.is_empty() {
        return Err(ApiError::invalid(
            Some("messages"),
            "`messages` must contain at least one message.",
        ));
    }
    for (i, m) in messages.iter().enumerate() {
        if !m.get("role").is_some_and(Value::is_string) {
            return Err(ApiError::invalid(
                Some(&format!("messages[{i}].role")),
                format!("`messages[{i}]` must be an object with a string `role`."),
            ));
        }
    }
    Ok(())
}

fn mock_chat(
    x: &Exchange<'_>,
    res: &mut Responder<'_>,
    requested: &str,
    target: &Target,
    body: &Map<String, Value>,
    stream: bool,
) -> Result<(), ApiError> {
    if !mock::is_chat_model(&target.model) {
        return Err(ApiError::invalid(
            Some("model"),
            format!("`{requested}` is an embedding model; use it with /v1/embeddings."),
        ));
    }
    let completion = mock::chat(&target.model, &Value::Object(body.clone()))?;
    if x.keeps_bodies() {
        x.record().request_body = Some(Body::Raw(x.req.body.clone()));
    }
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = unix_now();
    let completion_tokens = completion.words.len() as u64;
    let usage = json!({
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": completion.prompt_tokens + completion_tokens,
    });
    let cost = x.set_usage(Some(usage.clone()));
    let answer = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": requested,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": completion.content(), "refusal": null},
            "logprobs": null,
            "finish_reason": completion.finish_reason,
        }],
        "usage": usage,
    });
    if x.keeps_bodies() {
        x.record().response_body = Some(Body::Value(answer.clone()));
    }
    if !stream {
        let _ = x.send_value(res, &answer, cost.into_iter().collect());
        return Ok(());
    }
    let (name, ms) = x.overhead(Duration::ZERO);
    let Ok(mut sse) = x.start_sse(res, vec![(name.into(), ms)]) else {
        return Ok(());
    };
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": requested,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    };
    let mut out = Vec::new();
    let mut chunks = 0;
    let mut send = |sse: &mut Stream<'_, '_>, value: &Value| {
        if chunks == 0 {
            x.record().time_to_first_token = Some(x.req.received_at.elapsed());
        }
        chunks += 1;
        out.clear();
        sse_data(&mut out, &value.to_string());
        sse.send(&out)
    };
    let mut sent = send(
        &mut sse,
        &chunk(json!({"role": "assistant", "content": ""}), None),
    );
    for word in &completion.words {
        sent = sent.and_then(|()| send(&mut sse, &chunk(json!({"content": word}), None)));
    }
    sent = sent.and_then(|()| send(&mut sse, &chunk(json!({}), Some(completion.finish_reason))));
    if providers::client_wants_usage(body) {
        let last = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": requested,
            "choices": [], "usage": usage,
        });
        sent = sent.and_then(|()| send(&mut sse, &last));
    }
    let finished = sent.and_then(|()| sse.finish_with(b"data: [DONE]\n\n"));
    let mut record = x.record();
    record.chunks = Some(chunks);
    if finished.is_err() {
        record.outcome = Some(Outcome::ClientClosed);
    }
    Ok(())
}

/// A chat answered by a remote provider: its request built by the dialect adapter, its answer
/// translated back (or relayed as is), streams relayed event by event.
fn remote_chat(
    x: &Exchange<'_>,
    res: &mut Responder<'_>,
    target: &Target,
    body: Map<String, Value>,
    stream: bool,
) -> Result<(), ApiError> {
    let wants_usage = providers::client_wants_usage(&body);
    let context = providers::RequestContext {
        drop_unsupported: x.gw.config.drop_unsupported_params,
        client_headers: &x.req.headers,
    };
    let prepared = providers::chat_request(target, body, stream, &context)?;
    x.record().dropped_params = prepared.dropped;
    let mut call = prepared.call;
    if stream {
        call.idle_timeout = Some(x.gw.config.stream_idle_timeout);
    }
    let started = Instant::now();
    let sent = upstream::post(x.gw.agents.get(), &call);
    if x.keeps_bodies() {
        x.record().request_body = Some(Body::Raw(call.body));
    }
    let mut answer = sent?;
    x.record().upstream_latency = Some(answer.latency);
    let status = answer.status();
    let forwarded = providers::forwarded_headers(&answer);
    let is_sse = answer
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream") || t.starts_with(EVENT_STREAM));
    if !(200..300).contains(&status) || !stream || !is_sse {
        let bytes = answer.read_body()?;
        let upstream_time = started.elapsed();
        x.record().upstream_latency = Some(upstream_time);
        if x.keeps_bodies() {
            x.record().response_body = Some(Body::Raw(bytes.clone()));
        }
        if !(200..300).contains(&status) {
            let mut e = providers::parse_error(target, status, &bytes);
            // The provider's own headers win over those the adapter derived from its body.
            e.headers
                .retain(|(n, _)| forwarded.iter().all(|(f, _)| f != n));
            e.headers.extend(forwarded);
            return Err(e);
        }
        let reply = providers::chat_response(target, bytes)?;
        let cost = x.set_usage(reply.usage);
        let (name, ms) = x.overhead(upstream_time);
        let mut headers = forwarded;
        headers.push((name.into(), ms));
        headers.extend(cost);
        let _ = x.send_json(res, status, reply.body, headers);
        return Ok(());
    }
    let (name, ms) = x.overhead(answer.latency);
    let mut headers = forwarded;
    headers.push((name.into(), ms));
    let Ok(sse) = x.start_sse(res, headers) else {
        return Ok(());
    };
    let relay = Relay {
        translator: providers::chat_stream(target),
        assembled: Assembler::new(x.log_text_limit()),
        wants_usage,
    };
    relay.run(x, sse, answer.into_events());
    Ok(())
}

/// How a relayed stream ended.
enum End {
    Complete,
    Failed(ApiError),
    ClientGone,
}

/// One stream being relayed: the dialect's translator, the completion it adds up to (for the
/// log and the usage), and whether the client wants the usage chunk.
struct Relay {
    translator: providers::ChatStream,
    assembled: Assembler,
    wants_usage: bool,
}

impl Relay {
    /// Relays until `[DONE]`, an error, or the client leaving. Events that arrived together
    /// are written together; before waiting on the network for the next one, everything in
    /// hand is sent.
    fn run(mut self, x: &Exchange<'_>, mut sse: Stream<'_, '_>, mut events: upstream::EventReader) {
        let mut out = Vec::with_capacity(4096);
        let mut first_sent = None;
        let end = loop {
            let event = match events.next_event() {
                Ok(Some(event)) => event,
                Ok(None) if self.assembled.finished() => {
                    // Some compatible servers end without `[DONE]`; the stream was complete.
                    sse_data(&mut out, "[DONE]");
                    break End::Complete;
                }
                Ok(None) => {
                    break End::Failed(ApiError::bad_gateway(
                        "upstream_stream_truncated",
                        "The provider's stream ended before the response was complete.",
                    ))
                }
                Err(StreamError::Idle) => {
                    break End::Failed(ApiError::gateway_timeout(format!(
                        "The provider sent nothing for {} s; the stream was cut.",
                        x.gw.config.stream_idle_timeout.as_secs_f64()
                    )))
                }
                Err(StreamError::Broken(why)) => {
                    break End::Failed(ApiError::bad_gateway(
                        "upstream_stream_broken",
                        format!("The provider's stream broke: {why}."),
                    ))
                }
            };
            match self
                .translator
                .on_event(&event)
                .and_then(|emits| self.emit(emits, &mut out))
            {
                Ok(true) => break End::Complete,
                Ok(false) => {}
                Err(e) => break End::Failed(e),
            }
            if !events.has_complete_event() && !out.is_empty() {
                first_sent.get_or_insert_with(|| x.req.received_at.elapsed());
                if sse.send(&out).is_err() {
                    break End::ClientGone;
                }
                out.clear();
            }
        };
        if !out.is_empty() {
            first_sent.get_or_insert_with(|| x.req.received_at.elapsed());
        }
        // Whatever happened, the record gets what the stream amounted to and its usage.
        x.set_usage(self.assembled.usage().cloned());
        {
            let mut record = x.record();
            record.time_to_first_token = first_sent;
            record.chunks = Some(self.assembled.chunks());
            if x.keeps_bodies() {
                record.response_body = Some(Body::Value(self.assembled.to_value()));
            }
        }
        let delivered = match end {
            End::Complete => {
                let delivered = sse.finish_with(&out);
                // After the client has it all: read the provider's body to its end so the
                // connection is reused (dropping it unread closes it).
                events.drain(64 * 1024);
                delivered
            }
            End::Failed(e) => {
                x.record_error(&e);
                end_with_error(sse, &out, &e)
            }
            // Dropping the event reader closes the provider's connection.
            End::ClientGone => Err(ClientGone),
        };
        if delivered.is_err() {
            log::info!("request {}: the client closed the stream", x.request_id);
            x.record().outcome = Some(Outcome::ClientClosed);
        }
    }

    /// Writes what the translator emitted into `out`; true once the stream is complete. An
    /// error object from the provider is relayed and ends the stream too; an event that is not
    /// JSON is an error.
    fn emit(&mut self, emits: Vec<Emit>, out: &mut Vec<u8>) -> Result<bool, ApiError> {
        for emit in emits {
            let data = match emit {
                Emit::Done => {
                    sse_data(out, "[DONE]");
                    return Ok(true);
                }
                Emit::Raw(data) => data,
                Emit::Chunk(chunk) => chunk.to_string(),
            };
            let seen = self.assembled.add(&data).map_err(|e| {
                ApiError::bad_gateway(
                    "upstream_bad_response",
                    format!("The provider sent a stream event that is not valid JSON: {e}"),
                )
            })?;
            if seen.error {
                sse_data(out, &data);
                return Ok(true);
            }
            if self.wants_usage || !seen.usage_only {
                sse_data(out, &data);
            }
        }
        Ok(false)
    }
}
