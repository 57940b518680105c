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
use crate::events::{Body, Outcome};
use crate::exchange::Exchange;
use crate::handlers::chat::{self, send_error};
use crate::handlers::{json_object, model_name, optional_bool, provider_error};
use crate::http::{Responder, Stream};
use crate::ingress::anthropic::{is_native, native_call, request, Messages};
use crate::ingress::Ingress;
use crate::providers::{self, ChatStream, Emit, Target};
use crate::router::{self, Failure};
use crate::tokens;
use crate::upstream::{Answer, EventReader, StreamError};

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

fn count(
    x: &Exchange,
    res: &mut Responder<'_>,
    ingress: &mut Messages,
) -> Result<(), ApiError> {
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
    let idle = target.idle_timeout(x.gw.config.stream_idle_timeout);
    relay_bytes(x, sse, answer, dialect.chat_stream(target), ingress, idle);
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

/// Relays Anthropic's stream byte for byte: whatever was read is sent before waiting on the
/// network again. The events are also read by the dialect's translator and added up, for the
/// record's usage and body; a transport failure ends the stream with an Anthropic `error`
/// event.
fn relay_bytes(
    x: &Exchange,
    mut sse: Stream<'_, '_>,
    answer: Answer,
    mut translator: Box<dyn ChatStream>,
    ingress: &Messages,
    idle: Duration,
) {
    let copy = Arc::new(Mutex::new(Vec::new()));
    let body = answer.response.into_body().into_reader();
    let mut events = EventReader::new(Tee {
        inner: body,
        copy: copy.clone(),
    });
    let mut assembled = Assembler::new(x.log_text_limit());
    let mut failure: Option<ApiError> = None;
    let mut first_sent = None;
    let mut client_gone = false;
    let mut cut = false;
    loop {
        let end = match events.next_event() {
            Ok(Some(event)) => {
                match translator.on_event(event) {
                    Ok(emits) => {
                        for emit in emits {
                            let _ = match emit {
                                Emit::Raw(data) => assembled.add(&data),
                                Emit::Chunk(chunk) => assembled.add(&chunk.to_string()),
                                Emit::Done => continue,
                            };
                        }
                    }
                    // Anthropic's own error event: relayed like every byte, recorded here.
                    Err(e) => failure = Some(e),
                }
                false
            }
            Ok(None) => true,
            Err(StreamError::Idle) => {
                cut = true;
                failure = Some(ApiError::gateway_timeout(format!(
                    "The provider sent nothing for {} s; the stream was cut.",
                    idle.as_secs_f64()
                )));
                true
            }
            Err(StreamError::Broken(why)) => {
                cut = true;
                failure = Some(ApiError::bad_gateway(
                    "upstream_stream_broken",
                    format!("The provider's stream broke: {why}."),
                ));
                true
            }
        };
        if end || !events.has_complete_event() {
            let mut out = std::mem::take(&mut *copy.lock().unwrap_or_else(PoisonError::into_inner));
            if cut {
                if let Some(e) = &failure {
                    ingress.stream(false).fail(e, &mut out);
                }
            }
            if !out.is_empty() {
                first_sent.get_or_insert_with(|| x.req.received_at.elapsed());
                if sse.send(&out).is_err() {
                    client_gone = true;
                    break;
                }
            }
        }
        if end {
            break;
        }
    }
    x.set_usage(assembled.usage().cloned());
    {
        let mut record = x.record();
        record.time_to_first_token = first_sent;
        record.chunks = Some(assembled.chunks());
        if x.keeps_bodies() {
            record.response_body = Some(Body::Value(ingress.recorded(assembled.to_value())));
        }
    }
    if let Some(e) = &failure {
        x.record_error(e);
    }
    if client_gone || sse.finish().is_err() {
        log::info!("request {}: the client closed the stream", x.request_id);
        x.record().outcome = Some(Outcome::ClientClosed);
    }
}
