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
use crate::exchange::{sse_data, Exchange};
use crate::handlers::chat;
use crate::handlers::provider_error;
use crate::handlers::relay::{self, Flow, Relayer};
use crate::http::Responder;
use crate::ingress::responses::Keeper;
use crate::ingress::{Egress, Ingress};
use crate::providers::{self, Api, Target};
use crate::router::Failure;
use crate::tokens;
use crate::upstream::{SseEvent, StreamError};

/// Sends the client's request to a target that serves `api` itself and relays its answer.
/// `wants_usage`: a completions client that asked for the usage chunk (the gateway asks for
/// it on every stream and hides it from the others). `hook` gets the final Responses object.
#[allow(clippy::too_many_arguments)]
pub fn relay(
    x: &Exchange,
    res: &mut Responder<'_>,
    target: &Target,
    api: Api,
    body: Map<String, Value>,
    stream: bool,
    wants_usage: bool,
    ingress: &dyn Ingress,
    hook: Option<Keeper>,
) -> Result<(), Failure> {
    x.note_target(target);
    let dialect = target.dialect();
    let prompt = prompt_estimate(&body);
    let call = dialect.native_call(target, api, body, stream)?;
    let (answer, started) = chat::send(x, target, call, stream)?;
    let status = answer.status();
    let mut headers = providers::forwarded_headers(|name| answer.header(name));
    if !(200..300).contains(&status) || !stream || !answer.is_event_stream() {
        let (received, upstream_time) = chat::read_whole(x, answer, started)?;
        if !(200..300).contains(&status) {
            return Err(provider_error(dialect, &received, headers).into());
        }
        let parsed: Value = serde_json::from_slice(&received.body)
            .map_err(|_| providers::bad_response("the answer is not JSON"))?;
        match chat_usage(api, &parsed["usage"]) {
            Some(usage) => headers.extend(x.set_usage(Some(usage))),
            None => {
                let text = answer_text(&parsed);
                let usage = tokens::usage(prompt, tokens::count(&text));
                headers.push(("x-gateway-usage".into(), "estimated".into()));
                headers.extend(x.set_estimated_usage(usage));
            }
        }
        let (name, ms) = x.overhead(upstream_time);
        headers.push((name.into(), ms));
        if let (Api::Responses, Some(hook)) = (api, &hook) {
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
    let relayer = Events {
        api,
        wants_usage,
        usage: None,
        finished: None,
        texts: Vec::new(),
        chunks: 0,
        hook,
        last_sequence: None,
        prompt,
        idle: target.idle_timeout(x.gw.config.stream_idle_timeout),
        egress: (api != Api::Responses).then(|| ingress.stream(false)),
        failure: None,
        relayed: false,
    };
    relay::run(x, sse, answer.into_events(), Box::new(relayer));
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

/// The estimated input tokens of a completions or Responses request: its prompt or its
/// instructions and input, as text.
fn prompt_estimate(body: &Map<String, Value>) -> u64 {
    ["prompt", "instructions", "input"]
        .iter()
        .filter_map(|k| body.get(*k))
        .map(|v| match v {
            Value::String(s) => tokens::count(s),
            other => tokens::count(&other.to_string()),
        })
        .sum()
}

/// The text of a completions or Responses answer: its choices' texts or its output texts.
fn answer_text(answer: &Value) -> String {
    let choices = answer["choices"].as_array().into_iter().flatten();
    let mut text: String = choices.filter_map(|c| c["text"].as_str()).collect();
    for item in answer["output"].as_array().into_iter().flatten() {
        for part in item["content"].as_array().into_iter().flatten() {
            text.push_str(part["text"].as_str().unwrap_or_default());
        }
    }
    text
}

/// One relayed stream.
struct Events {
    api: Api,
    wants_usage: bool,
    usage: Option<Value>,
    /// The Responses object of the terminal event.
    finished: Option<Value>,
    /// Completions: each choice's text so far; Responses: the output text (for the record and
    /// an estimate).
    texts: Vec<String>,
    chunks: u64,
    /// What is done with the final Responses object before the client gets it.
    hook: Option<Keeper>,
    /// Responses: the last `sequence_number` relayed.
    last_sequence: Option<u64>,
    /// The request's estimated input tokens, for a stream that reports no usage.
    prompt: u64,
    /// The silence after which the stream is cut (for the error's message).
    idle: Duration,
    /// Completions: the ingress's writer of the error that cuts a stream (a Responses stream's
    /// is numbered here instead).
    egress: Option<Box<dyn Egress>>,
    /// What cut the stream short (its error event is the last the client gets).
    failure: Option<ApiError>,
    /// Something of the stream itself was written for the client: the time to first token
    /// counts that, not an error that cut the stream before anything.
    relayed: bool,
}

impl Relayer for Events {
    /// Relays until the stream is complete or fails.
    fn on_read(
        &mut self,
        _x: &Exchange,
        read: Result<Option<SseEvent>, StreamError>,
        out: &mut Vec<u8>,
    ) -> Flow {
        let failure = match read {
            Ok(Some(event)) => {
                let before = out.len();
                let done = self.forward(&event, out);
                self.relayed |= out.len() > before;
                return if done { Flow::End } else { Flow::Go };
            }
            Ok(None) if self.complete() => return Flow::End,
            Ok(None) => providers::truncated(),
            Err(e) => relay::read_failure(e, self.idle),
        };
        self.fail(&failure, out);
        self.failure = Some(failure);
        Flow::End
    }

    fn completed(&self) -> bool {
        self.complete()
    }

    fn idle_timeout(&self) -> Duration {
        self.idle
    }

    fn finish(self: Box<Self>, x: &Exchange, first_sent: Option<Duration>, delivered: bool) {
        match self.usage.as_ref().and_then(|u| chat_usage(self.api, u)) {
            Some(usage) => x.set_usage(Some(usage)),
            // The provider reported none (or left early): the estimate of what was relayed.
            None if self.chunks > 0 => {
                let completion = self.texts.iter().map(|t| tokens::count(t)).sum();
                x.set_estimated_usage(tokens::usage(self.prompt, completion))
            }
            None => x.set_usage(None),
        };
        let first_sent = first_sent.filter(|_| self.relayed);
        relay::record_stream(x, first_sent, self.chunks, || self.recorded());
        if let Some(e) = &self.failure {
            x.record_error(e);
        }
        if !delivered {
            relay::client_closed(x);
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
}

impl Events {
    /// The event that ends a stream cut short: for Responses, OpenAI's `error` event numbered
    /// after the provider's last; for completions, the error object in the ingress's shape.
    fn fail(&mut self, e: &ApiError, out: &mut Vec<u8>) {
        if let Some(egress) = &mut self.egress {
            egress.fail(e, out);
            return;
        }
        let sequence_number = self.last_sequence.map_or(0, |n| n + 1);
        let event = json!({
            "type": "error",
            "code": e.code,
            "message": e.message,
            "param": e.param,
            "sequence_number": sequence_number,
        });
        out.extend_from_slice(b"event: error\n");
        sse_data(out, &event.to_string());
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
                if let Some(n) = parsed["sequence_number"].as_u64() {
                    self.last_sequence = Some(n);
                }
                let kind = parsed["type"].as_str().unwrap_or_default();
                if kind == "response.output_text.delta" {
                    if self.texts.is_empty() {
                        self.texts.push(String::new());
                    }
                    self.texts[0].push_str(parsed["delta"].as_str().unwrap_or_default());
                }
                if matches!(
                    kind,
                    "response.completed" | "response.incomplete" | "response.failed"
                ) {
                    self.usage = parsed["response"].get("usage").cloned();
                    if let Some(hook) = &self.hook {
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
