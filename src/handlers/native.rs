//! The relay for a request in an OpenAI API that its target serves itself (legacy
//! completions at OpenAI-compatible servers, the Responses API at OpenAI and Azure): the
//! client's body goes as it came (the dialect sets the model, see
//! [`Dialect::native_call`](crate::providers::Dialect::native_call)), and the answer comes
//! back as received: JSON as it is, a stream event by event with its `event:` names. The
//! relay only reads what the record needs (the usage, in the chat shape the record keeps, and
//! whether the stream ended) and hands the final Responses object to the caller's hook (the
//! response store) before the client gets it.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::events::{Body, Outcome};
use crate::exchange::{sse_data, Exchange};
use crate::handlers::chat;
use crate::handlers::provider_error;
use crate::http::{Responder, Stream};
use crate::ingress::Ingress;
use crate::providers::{self, Api, Target};
use crate::router::Failure;
use crate::upstream::{EventReader, SseEvent, StreamError};

/// What is done with the final Responses object before the client gets it.
pub type Hook<'h> = Option<&'h dyn Fn(&Value)>;

/// Sends the client's request to a target that serves `api` itself and relays its answer.
/// `wants_usage`: a completions client that asked for the usage chunk (the gateway asks for
/// it on every stream and hides it from the others). `hook` gets the final Responses object.
#[allow(clippy::too_many_arguments)]
pub fn relay(
    x: &Exchange<'_>,
    res: &mut Responder<'_>,
    target: &Target,
    api: Api,
    body: Map<String, Value>,
    stream: bool,
    wants_usage: bool,
    ingress: &dyn Ingress,
    hook: Hook<'_>,
) -> Result<(), Failure> {
    x.note_target(target);
    let dialect = target.dialect();
    let call = dialect.native_call(target, api, body, stream)?;
    let (answer, started) = chat::send(x, target, call, stream)?;
    let status = answer.status();
    let mut headers = providers::forwarded_headers(|name| answer.header(name));
    if !(200..300).contains(&status) || !stream || !answer.is_event_stream() {
        let received = answer.read()?;
        let upstream_time = started.elapsed();
        x.record().upstream_latency = Some(upstream_time);
        if x.keeps_bodies() {
            x.record().response_body = Some(Body::Raw(received.body.clone()));
        }
        if !(200..300).contains(&status) {
            return Err(provider_error(dialect, &received, headers).into());
        }
        let parsed: Value = serde_json::from_slice(&received.body)
            .map_err(|_| providers::bad_response("the answer is not JSON"))?;
        headers.extend(x.set_usage(chat_usage(api, &parsed["usage"])));
        let (name, ms) = x.overhead(upstream_time);
        headers.push((name.into(), ms));
        if let (Api::Responses, Some(hook)) = (api, hook) {
            hook(&parsed);
        }
        let _ = x.send_json(res, status, received.body, headers);
        return Ok(());
    }
    let (name, ms) = x.overhead(answer.latency);
    headers.push((name.into(), ms));
    let Ok(sse) = x.start_sse(res, headers) else {
        return Ok(());
    };
    let idle = target.idle_timeout(x.gw.config.stream_idle_timeout);
    let mut events = Events {
        api,
        wants_usage,
        usage: None,
        finished: None,
        texts: Vec::new(),
        chunks: 0,
        hook,
    };
    events.run(x, sse, answer.into_events(), ingress, idle);
    Ok(())
}

/// The usage of a native answer in the chat shape the record keeps (a Responses usage's
/// input and output tokens as prompt and completion tokens).
fn chat_usage(api: Api, usage: &Value) -> Option<Value> {
    if !usage.is_object() {
        return None;
    }
    if api != Api::Responses {
        return Some(usage.clone());
    }
    let n = |k: &str| usage[k].as_u64().unwrap_or(0);
    Some(json!({
        "prompt_tokens": n("input_tokens"),
        "completion_tokens": n("output_tokens"),
        "total_tokens": n("total_tokens"),
        "prompt_tokens_details": {
            "cached_tokens": usage["input_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0),
            "cache_write_tokens": usage["input_tokens_details"]["cache_write_tokens"].as_u64().unwrap_or(0),
        },
        "completion_tokens_details": {
            "reasoning_tokens": usage["output_tokens_details"]["reasoning_tokens"].as_u64().unwrap_or(0)
        },
    }))
}

/// One relayed stream.
struct Events<'h> {
    api: Api,
    wants_usage: bool,
    usage: Option<Value>,
    /// The Responses object of the terminal event.
    finished: Option<Value>,
    /// Completions: each choice's text so far (for the record).
    texts: Vec<String>,
    chunks: u64,
    hook: Hook<'h>,
}

impl Events<'_> {
    /// Relays until the stream is complete, fails, or the client leaves.
    fn run(
        &mut self,
        x: &Exchange<'_>,
        mut sse: Stream<'_, '_>,
        mut events: EventReader,
        ingress: &dyn Ingress,
        idle: Duration,
    ) {
        let mut out = Vec::with_capacity(4096);
        let mut first_sent = None;
        let mut client_gone = false;
        let failure = loop {
            let event = match events.next_event() {
                Ok(Some(event)) => event,
                Ok(None) if self.complete() => break None,
                Ok(None) => break Some(providers::truncated()),
                Err(StreamError::Idle) => {
                    break Some(ApiError::gateway_timeout(format!(
                        "The provider sent nothing for {} s; the stream was cut.",
                        idle.as_secs_f64()
                    )))
                }
                Err(StreamError::Broken(why)) => {
                    break Some(ApiError::bad_gateway(
                        "upstream_stream_broken",
                        format!("The provider's stream broke: {why}."),
                    ))
                }
            };
            let done = self.forward(&event, &mut out);
            if (!events.has_complete_event() || done) && !out.is_empty() {
                first_sent.get_or_insert_with(|| x.req.received_at.elapsed());
                if sse.send(&out).is_err() {
                    client_gone = true;
                    break None;
                }
                out.clear();
            }
            if done {
                events.drain(64 * 1024);
                break None;
            }
        };
        if let Some(e) = &failure {
            ingress.stream(false).fail(e, &mut out);
        }
        x.set_usage(self.usage.as_ref().and_then(|u| chat_usage(self.api, u)));
        {
            let mut record = x.record();
            record.time_to_first_token = first_sent;
            record.chunks = Some(self.chunks);
            if x.keeps_bodies() {
                record.response_body = Some(Body::Value(self.recorded()));
            }
        }
        if let Some(e) = &failure {
            x.record_error(e);
        }
        if client_gone || sse.finish_with(&out).is_err() {
            log::info!("request {}: the client closed the stream", x.request_id);
            x.record().outcome = Some(Outcome::ClientClosed);
        }
        let failed = self
            .finished
            .as_ref()
            .is_some_and(|r| r["status"] == "failed");
        if failed {
            if let Some(response) = &self.finished {
                let message = response["error"]["message"].as_str().unwrap_or("failed");
                x.record_error(&ApiError::bad_gateway("response_failed", message));
            }
        }
    }

    /// Whether the stream reached its terminal event.
    fn complete(&self) -> bool {
        self.finished.is_some()
    }

    /// Writes one event as it came (the completions usage chunk only for clients that asked
    /// for it); true once it was the last.
    fn forward(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> bool {
        self.chunks += 1;
        if event.data.trim() == "[DONE]" {
            sse_data(out, "[DONE]");
            self.finished.get_or_insert(Value::Null);
            return true;
        }
        let parsed: Value = serde_json::from_str(&event.data).unwrap_or_default();
        let mut relayed = true;
        match self.api {
            Api::Responses => {
                let kind = parsed["type"].as_str().unwrap_or_default();
                if matches!(
                    kind,
                    "response.completed" | "response.incomplete" | "response.failed"
                ) {
                    self.usage = parsed["response"].get("usage").cloned();
                    if let Some(hook) = self.hook {
                        hook(&parsed["response"]);
                    }
                    self.finished = Some(parsed["response"].clone());
                }
            }
            _ => {
                if let Some(usage) = parsed.get("usage").filter(|u| u.is_object()) {
                    self.usage = Some(usage.clone());
                    let no_choices = parsed["choices"].as_array().is_some_and(Vec::is_empty);
                    relayed = self.wants_usage || !no_choices;
                }
                for choice in parsed["choices"].as_array().into_iter().flatten() {
                    let i = choice["index"].as_u64().unwrap_or(0) as usize;
                    if i < 128 {
                        if self.texts.len() <= i {
                            self.texts.resize(i + 1, String::new());
                        }
                        self.texts[i].push_str(choice["text"].as_str().unwrap_or_default());
                    }
                }
            }
        }
        if relayed {
            if let Some(name) = &event.event {
                out.extend_from_slice(b"event: ");
                out.extend_from_slice(name.as_bytes());
                out.push(b'\n');
            }
            sse_data(out, &event.data);
        }
        self.api == Api::Responses && self.finished.is_some()
    }

    /// What the record keeps of the stream: the final Responses object, or the completions'
    /// texts.
    fn recorded(&self) -> Value {
        match self.api {
            Api::Responses => self.finished.clone().unwrap_or_default(),
            _ => json!({
                "object": "text_completion",
                "choices": self.texts.iter().enumerate().map(|(i, t)| json!({"index": i, "text": t})).collect::<Vec<_>>(),
                "usage": self.usage,
            }),
        }
    }
}
