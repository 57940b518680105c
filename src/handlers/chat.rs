//! `POST /v1/chat/completions`: validates the request, asks the router for its plan, and walks
//! it: each candidate's dialect builds the provider's request, the answer is translated back
//! (or relayed as is), streams event by event (a [`Relayer`] run by [`relay::run`]). Events
//! that arrived together leave together; nothing else is held back. The handler knows no provider: everything provider-specific is
//! behind the dialect interface.
//!
//! The call and the relay are shared by every chat-shaped ingress route ([`attempt`]): what
//! the client gets back (the answer, each chunk, the end, errors) is its route's [`Ingress`]'s
//! business, the identity here.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::assembler::Assembler;
use crate::error::ApiError;
use crate::events::{Body, Outcome};
use crate::exchange::Exchange;
use crate::handlers::relay::{self, Flow, Relayer};
use crate::handlers::{json_object, model_name, optional_bool, params, provider_error};
use crate::http::Responder;
use crate::ingress::openai::OpenAi;
use crate::ingress::{Egress, Ingress};
use crate::providers::{self, ChatStream, Emit, Target};
use crate::router::{self, Failure};
use crate::tokens;
use crate::upstream::{Answer, Call, Received, SseEvent, StreamError};

pub fn completions(x: &Exchange, res: &mut Responder<'_>) {
    x.mark_api_call();
    if let Err(e) = run(x, res) {
        x.send_error(res, &e);
    }
}

fn run(x: &Exchange, res: &mut Responder<'_>) -> Result<(), ApiError> {
    let body = json_object(&x.req.body)?;
    let model = model_name(&body)?;
    x.record().model_requested = Some(model.clone());
    validate_messages(&body)?;
    params::check(&body)?;
    let stream = optional_bool(&body, "stream")?;
    x.record().stream = stream;
    let plan = router::plan(&x.gw.routing(), &model)?;
    x.walk(&plan, body, |target, body| {
        attempt(x, res, target, body, stream, &OpenAi)
    })
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

/// Answers with an error in the route's shape (when nothing was sent yet).
pub fn send_error(x: &Exchange, res: &mut Responder<'_>, ingress: &dyn Ingress, e: &ApiError) {
    if res.is_started() {
        return;
    }
    x.record_error(e);
    let (status, body) = ingress.error(e);
    let _ = x.send_json(res, status, body, e.headers.clone());
}

/// One candidate for an internal chat request: its request built by the dialect, its answer
/// translated back (or relayed as is) and handed to the client through `ingress`, a stream
/// relayed event by event. A failure before anything reached the client may go to the next
/// candidate.
pub fn attempt(
    x: &Exchange,
    res: &mut Responder<'_>,
    target: &Target,
    body: Map<String, Value>,
    stream: bool,
    ingress: &dyn Ingress,
) -> Result<(), Failure> {
    x.note_target(target);
    let dialect = target.dialect();
    let wants_usage = providers::client_wants_usage(&body);
    let context = providers::RequestContext {
        drop_unsupported: x.gw.config.drop_unsupported_params,
        client_headers: &x.req.headers,
    };
    let prepared = dialect.chat_request(target, body, stream, &context)?;
    // Added to what the ingress may have dropped already (Messages fields).
    let mut record = x.record();
    for name in prepared.dropped {
        if !record.dropped_params.contains(&name) {
            record.dropped_params.push(name);
        }
    }
    drop(record);
    let (answer, started) = send(x, target, prepared.call, stream)?;
    let status = answer.status();
    let forwarded = providers::forwarded_headers(|name| answer.header(name));
    if !(200..300).contains(&status) || !stream || !answer.is_event_stream() {
        let (received, upstream_time) = read_whole(x, answer, started)?;
        if !(200..300).contains(&status) {
            return Err(provider_error(dialect, &received, forwarded).into());
        }
        let mut reply = dialect.chat_response(target, received)?;
        let mut headers = forwarded;
        match reply.usage.take() {
            Some(usage) => headers.extend(x.set_usage(Some(usage))),
            None => {
                if let Some(usage) = tokens::fill_in_completion(&x.req.body, &mut reply.body) {
                    headers.push(("x-gateway-usage".into(), "estimated".into()));
                    headers.extend(x.set_estimated_usage(usage));
                }
            }
        }
        let body = ingress.reply(reply.body)?;
        let (name, ms) = x.overhead(upstream_time);
        headers.push((name.into(), ms));
        let _ = x.send_json(res, status, body, headers);
        return Ok(());
    }
    let (name, ms) = x.overhead(answer.latency);
    let mut headers = forwarded;
    headers.push((name.into(), ms));
    let Ok(sse) = x.start_sse(res, headers) else {
        return Ok(());
    };
    let relayer = Relay {
        idle_timeout: target.idle_timeout(x.gw.config.stream_idle_timeout),
        translator: dialect.chat_stream(target),
        assembled: Assembler::new(x.log_text_limit()),
        egress: ingress.stream(wants_usage),
        provider_error: None,
        estimated: false,
        complete: false,
        failure: None,
        relayed: false,
    };
    relay::run(x, sse, answer.into_events(), Box::new(relayer));
    Ok(())
}

/// Reads a whole answer (not a stream, or a failure): the upstream time and, when bodies are
/// kept, the body go on the record.
pub fn read_whole(
    x: &Exchange,
    answer: Answer,
    started: Instant,
) -> Result<(Received, Duration), ApiError> {
    let received = answer.read()?;
    let upstream_time = started.elapsed();
    x.record().upstream_latency = Some(upstream_time);
    if x.keeps_bodies() {
        x.record().response_body = Some(Body::Raw(received.body.clone()));
    }
    Ok((received, upstream_time))
}

/// Sends one candidate's call: a stream's reads bounded by the idle timeout, any other call by
/// the upstream deadline (the deployment's own when it has them); the body sent and the head's
/// latency recorded. Returns the answer's head and when the call was sent.
pub fn send(
    x: &Exchange,
    target: &Target,
    mut call: Call,
    stream: bool,
) -> Result<(Answer, Instant), ApiError> {
    let config = &x.gw.config;
    if stream {
        call.idle_timeout = Some(target.idle_timeout(config.stream_idle_timeout));
    } else {
        call.deadline = Some(target.deadline(config.upstream_timeout));
    }
    let started = Instant::now();
    let sent = target.dialect().send(x.gw.agents.get(), &call);
    if x.keeps_bodies() {
        x.record().request_body = Some(Body::Raw(call.body));
    }
    let answer = sent?;
    x.record().upstream_latency = Some(answer.latency);
    Ok((answer, started))
}

/// One stream being relayed: the dialect's translator, the completion it adds up to (for the
/// log and the usage), and the route's writer of what the client gets.
struct Relay {
    /// The silence after which the stream is cut (for the error's message).
    idle_timeout: Duration,
    translator: Box<dyn ChatStream>,
    assembled: Assembler,
    egress: Box<dyn Egress>,
    /// The provider's own error event (`{"error": …}`), relayed as it came: the record's error.
    provider_error: Option<Value>,
    /// The usage chunk that ended the stream was the gateway's estimate.
    estimated: bool,
    /// The stream reached its end (`[DONE]`, or the provider's error event).
    complete: bool,
    /// What cut the stream short (its error event is the last the client gets).
    failure: Option<ApiError>,
    /// Something of the stream itself was written for the client: the time to first token
    /// counts that, not an error that cut the stream before anything.
    relayed: bool,
}

impl Relayer for Relay {
    /// Translates one read until `[DONE]`, an error, or the provider's error event.
    fn on_read(
        &mut self,
        x: &Exchange,
        read: Result<Option<SseEvent>, StreamError>,
        out: &mut Vec<u8>,
    ) -> Flow {
        let emitted = match read {
            Ok(Some(event)) => self.translator.on_event(event),
            // The body ended without the dialect's terminal event.
            Ok(None) => self.translator.finish(),
            Err(e) => Err(relay::read_failure(e, self.idle_timeout)),
        };
        let before = out.len();
        let emitted = emitted.and_then(|emits| self.emit(emits, &x.req.body, out));
        self.relayed |= out.len() > before;
        match emitted {
            Ok(false) => Flow::Go,
            Ok(true) => {
                self.complete = true;
                Flow::End
            }
            Err(e) => {
                self.egress.fail(&e, out);
                self.failure = Some(e);
                Flow::End
            }
        }
    }

    fn completed(&self) -> bool {
        self.complete
    }

    fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Whatever happened, the record gets what the stream amounted to and its usage: the
    /// provider's, else an estimate of what was relayed (a client that left is billed too).
    fn finish(self: Box<Self>, x: &Exchange, first_sent: Option<Duration>, delivered: bool) {
        let Relay {
            assembled,
            egress,
            provider_error,
            estimated,
            failure,
            relayed,
            ..
        } = *self;
        match assembled.usage().cloned() {
            Some(usage) if !estimated => x.set_usage(Some(usage)),
            Some(usage) => x.set_estimated_usage(usage),
            None if assembled.chunks() > 0 => {
                x.set_estimated_usage(assembled.estimated_usage(&x.req.body))
            }
            None => x.set_usage(None),
        };
        let first_sent = first_sent.filter(|_| relayed);
        relay::record_stream(x, first_sent, assembled.chunks(), || {
            egress.recorded(assembled.to_value())
        });
        if let Some(error) = provider_error {
            let mut record = x.record();
            record.error = Some(error);
            record.outcome = Some(Outcome::Error);
        }
        if let Some(e) = &failure {
            x.record_error(e);
        }
        if !delivered {
            relay::client_closed(x);
        }
    }
}

impl Relay {
    /// Writes what the translator emitted into `out`, through the route's egress; true once
    /// the stream is complete. An error object from the provider is relayed and ends the
    /// stream too; an event that is not JSON is an error. `request`: the client's, for the
    /// usage estimate of a stream that reported none.
    fn emit(
        &mut self,
        emits: Vec<Emit>,
        request: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, ApiError> {
        for emit in emits {
            let data = match emit {
                Emit::Done => {
                    if self.assembled.usage().is_none() {
                        // The provider reported none: the estimate ends the stream instead,
                        // through the egress like the provider's own usage chunk would.
                        let data = self.assembled.estimated_usage_chunk(request);
                        let seen = self.assembled.add(&data).map_err(|e| {
                            providers::bad_response(format_args!("a usage estimate: {e}"))
                        })?;
                        self.egress.chunk(&data, &seen, out);
                        self.estimated = true;
                    }
                    self.egress.done(out);
                    return Ok(true);
                }
                Emit::Raw(data) => data,
                Emit::Chunk(chunk) => chunk.to_string(),
            };
            let seen = self.assembled.add(&data).map_err(|e| {
                providers::bad_response(format_args!("a stream event is not JSON: {e}"))
            })?;
            let data = if seen.unindexed {
                self.assembled.reindexed(&data)
            } else {
                data
            };
            self.egress.chunk(&data, &seen, out);
            if seen.error {
                // Rare, so parsed again here rather than on every event.
                self.provider_error = serde_json::from_str(&data).ok();
                return Ok(true);
            }
        }
        Ok(false)
    }
}
