//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages API, for
//! Claude Code and the Anthropic SDKs, to any provider.
//!
//! The request is validated, the router plans its model, and the plan is walked. A target that
//! is Anthropic itself gets the client's body untouched (its model name replaced by the
//! target's), its `anthropic-version`/`anthropic-beta`, and the gateway's key; the answer, the
//! stream and errors come back byte for byte, while the target's dialect reads the usage from
//! the body or the events for the record. Any other target takes the chat path
//! ([`chat::attempt`]) with the request translated to the internal one and the answer, chunks
//! and errors translated back by the Messages ingress. `count_tokens` goes to Anthropic's own
//! endpoint, or is an estimate from a tokenizer, flagged `x-gateway-usage: estimated`.
//!
//! The client's key (`x-api-key` or `Authorization: Bearer`) is never forwarded: calls carry
//! only the headers a dialect or the passthrough builds.

use serde_json::{json, Map, Value};
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::assembler::Assembler;
use crate::error::ApiError;
use crate::exchange::Exchange;
use crate::handlers::chat::{self, send_error};
use crate::handlers::relay::{self, Flow, Relayer};
use crate::handlers::{json_object, model_name, optional_bool, provider_error};
use crate::http::Responder;
use crate::ingress::anthropic::{is_native, native_call, request, Messages};
use crate::ingress::{Egress, Ingress};
use crate::providers::{self, ChatStream, Emit, Target};
use crate::router::{self, Failure};
use crate::tokens;
use crate::upstream::{Answer, EventReader, SseEvent, StreamError};

const MESSAGES_PATH: &str = "/v1/messages";
const COUNT_PATH: &str = "/v1/messages/count_tokens";

/// Anthropic's response headers passed on besides the common retry and rate-limit ones.
const ANTHROPIC_HEADER_PREFIXES: &[&str] = &["anthropic-ratelimit-", "request-id"];

pub fn create(x: &Exchange, res: &mut Responder<'_>) {
    serve(x, res, run);
}

pub fn count_tokens(x: &Exchange, res: &mut Responder<'_>) {
    serve(x, res, count);
}

/// What both routes answer: an API call, its failures in Anthropic's error shape.
type Route = fn(&Exchange, &mut Responder<'_>, &mut Messages) -> Result<(), ApiError>;

fn serve(x: &Exchange, res: &mut Responder<'_>, route: Route) {
    x.mark_api_call();
    let mut ingress = Messages {
        model: String::new(),
    };
    if let Err(e) = route(x, res, &mut ingress) {
        send_error(x, res, &ingress, &e);
    }
}

/// The body, its model (noted in the record and the ingress), checked as Messages wants it.
fn read(
    x: &Exchange,
    ingress: &mut Messages,
    count_only: bool,
) -> Result<(Map<String, Value>, router::Plan), ApiError> {
    let body = json_object(&x.req.body)?;
    let model = model_name(&body)?;
    x.record().model_requested = Some(model.clone());
    ingress.model.clone_from(&model);
    request::validate(&body, count_only)?;
    let plan = router::plan(&x.gw.routing(), &model)?;
    Ok((body, plan))
}

/// The internal request, translated only when some candidate is not Anthropic.
fn internal(
    x: &Exchange,
    plan: &router::Plan,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    if plan.candidates.iter().all(is_native) {
        return Ok(Map::new());
    }
    let internal = request::internal(body, x.gw.config.drop_unsupported_params)?;
    x.record().dropped_params = internal.dropped;
    Ok(internal.body)
}

fn run(x: &Exchange, res: &mut Responder<'_>, ingress: &mut Messages) -> Result<(), ApiError> {
    let (body, plan) = read(x, ingress, false)?;
    let stream = optional_bool(&body, "stream")?;
    x.record().stream = stream;
    let translated = internal(x, &plan, &body)?;
    let ingress = &*ingress;
    x.walk(&plan, translated, |target, translated| {
        if is_native(target) {
            passthrough(x, res, target, &body, MESSAGES_PATH, stream, ingress)
        } else {
            chat::attempt(x, res, target, translated, stream, ingress)
        }
    })
}

fn count(x: &Exchange, res: &mut Responder<'_>, ingress: &mut Messages) -> Result<(), ApiError> {
    let (body, plan) = read(x, ingress, true)?;
    let translated = internal(x, &plan, &body)?;
    let ingress = &*ingress;
    x.walk(&plan, translated, |target, translated| {
        if is_native(target) {
            return passthrough(x, res, target, &body, COUNT_PATH, false, ingress);
        }
        x.note_target(target);
        let answer = json!({"input_tokens": tokens::estimate(&translated)});
        let estimated = vec![("x-gateway-usage".to_string(), "estimated".to_string())];
        let _ = x.send_value(res, &answer, estimated);
        Ok(())
    })
}

/// Sends the client's Messages request to Anthropic as it came and relays the answer byte
/// for byte: JSON (errors included) as received, a stream as its bytes arrive.
#[allow(clippy::too_many_arguments)]
fn passthrough(
    x: &Exchange,
    res: &mut Responder<'_>,
    target: &Target,
    body: &Map<String, Value>,
    path: &str,
    stream: bool,
    ingress: &Messages,
) -> Result<(), Failure> {
    x.note_target(target);
    let dialect = target.dialect();
    let call = native_call(target, &x.req.body, body, &x.req.headers, path, stream);
    let (answer, started) = chat::send(x, target, call, stream)?;
    let status = answer.status();
    let mut headers = relayed_headers(&answer);
    if !(200..300).contains(&status) || !stream || !answer.is_event_stream() {
        let (received, upstream_time) = chat::read_whole(x, answer, started)?;
        let relayed = received.body.clone();
        if !(200..300).contains(&status) {
            x.record_error(&provider_error(dialect, &received, Vec::new()));
        } else if path == MESSAGES_PATH {
            // The dialect reads Anthropic's usage into the OpenAI shape the record keeps.
            let usage = dialect
                .chat_response(target, received)
                .ok()
                .and_then(|r| r.usage);
            headers.extend(x.set_usage(usage));
        }
        let (name, ms) = x.overhead(upstream_time);
        headers.push((name.into(), ms));
        let _ = x.send_json(res, status, relayed, headers);
        return Ok(());
    }
    let (name, ms) = x.overhead(answer.latency);
    headers.push((name.into(), ms));
    let Ok(sse) = x.start_sse(res, headers) else {
        return Ok(());
    };
    // The provider's bytes as they arrive, copied as the event parser reads them.
    let copy = Arc::new(Mutex::new(Vec::new()));
    let source = answer.fd;
    let events = EventReader::new(Tee {
        inner: answer.response.into_body().into_reader(),
        copy: copy.clone(),
    })
    .with_source(source);
    let relayer = Bytes {
        copy,
        translator: dialect.chat_stream(target),
        assembled: Assembler::new(x.log_text_limit()),
        egress: ingress.stream(false),
        idle: target.idle_timeout(x.gw.config.stream_idle_timeout),
        failure: None,
        complete: false,
    };
    relay::run(x, sse, events, Box::new(relayer));
    Ok(())
}

/// The provider's headers a client of Anthropic's API acts on.
fn relayed_headers(answer: &Answer) -> Vec<(String, String)> {
    let mut headers = providers::forwarded_headers(|name| answer.header(name));
    for (name, value) in answer.response.headers() {
        let name = name.as_str();
        if ANTHROPIC_HEADER_PREFIXES
            .iter()
            .any(|p| name.starts_with(p))
        {
            if let Ok(value) = value.to_str() {
                headers.push((name.to_string(), value.to_string()));
            }
        }
    }
    headers
}

/// A reader that keeps a copy of every byte it reads, so what the event parser consumed can
/// be relayed exactly as it arrived.
struct Tee<R> {
    inner: R,
    copy: Arc<Mutex<Vec<u8>>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// Anthropic's stream relayed byte for byte: whatever was read is sent before waiting on the
/// network again. The events are also read by the dialect's translator and added up, for the
/// record's usage and body; a transport failure ends the stream with an Anthropic `error`
/// event.
struct Bytes {
    /// The bytes read from the provider since the last read was relayed (the [`Tee`]'s copy).
    copy: Arc<Mutex<Vec<u8>>>,
    translator: Box<dyn ChatStream>,
    assembled: Assembler,
    /// The Messages writer: the error event of a cut stream, the record's message.
    egress: Box<dyn Egress>,
    /// The silence after which the stream is cut (for the error's message).
    idle: Duration,
    /// Anthropic's own error event, or what cut the stream.
    failure: Option<ApiError>,
    /// The provider's body reached its end.
    complete: bool,
}

impl Relayer for Bytes {
    fn on_read(
        &mut self,
        _x: &Exchange,
        read: Result<Option<SseEvent>, StreamError>,
        out: &mut Vec<u8>,
    ) -> Flow {
        let cut = match read {
            Ok(Some(event)) => {
                match self.translator.on_event(event) {
                    Ok(emits) => {
                        for emit in emits {
                            let _ = match emit {
                                Emit::Raw(data) => self.assembled.add(&data),
                                Emit::Chunk(chunk) => self.assembled.add(&chunk.to_string()),
                                Emit::Done => continue,
                            };
                        }
                    }
                    // Anthropic's own error event: relayed like every byte, recorded here.
                    Err(e) => self.failure = Some(e),
                }
                None
            }
            Ok(None) => {
                self.complete = true;
                None
            }
            Err(e) => Some(relay::read_failure(e, self.idle)),
        };
        out.append(&mut self.copy.lock().unwrap_or_else(PoisonError::into_inner));
        if let Some(e) = cut {
            // After the bytes that came before the failure.
            self.egress.fail(&e, out);
            self.failure = Some(e);
            return Flow::End;
        }
        if self.complete {
            Flow::End
        } else {
            Flow::Go
        }
    }

    fn completed(&self) -> bool {
        self.complete
    }

    fn idle_timeout(&self) -> Duration {
        self.idle
    }

    fn finish(self: Box<Self>, x: &Exchange, first_sent: Option<Duration>, delivered: bool) {
        x.set_usage(self.assembled.usage().cloned());
        relay::record_stream(x, first_sent, self.assembled.chunks(), || {
            self.egress.recorded(self.assembled.to_value())
        });
        if let Some(e) = &self.failure {
            x.record_error(e);
        }
        if !delivered {
            relay::client_closed(x);
        }
    }
}
