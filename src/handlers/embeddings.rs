//! `POST /v1/embeddings`: a string, an array of strings, a token array or an array of token
//! arrays; `encoding_format` float or base64; `dimensions`. The dialect builds the provider's
//! calls (one, or one per input for a provider that embeds one text per call), they are made
//! a few at a time within `UPSTREAM_TIMEOUT`, and their answers become one OpenAI embeddings
//! list, in input order (relayed as received for the OpenAI dialect). The first error, in
//! call order, answers for all.

use std::time::Instant;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::events::Body;
use crate::exchange::Exchange;
use crate::handlers::{json_object, model_name, provider_error};
use crate::http::Responder;
use crate::providers::request::embedding_inputs;
use crate::providers::{self, Dialect, Target};
use crate::router::{self, Failure};
use crate::tokens;
use crate::upstream::{Call, Received};

/// Calls to a provider made at once for one embeddings request, at most.
const PARALLEL_CALLS: usize = 8;

pub fn create(x: &Exchange, res: &mut Responder<'_>) {
    x.mark_api_call();
    if let Err(e) = run(x, res) {
        x.send_error(res, &e);
    }
}

fn run(x: &Exchange, res: &mut Responder<'_>) -> Result<(), ApiError> {
    let body = json_object(&x.req.body)?;
    let model = model_name(&body)?;
    x.record().model_requested = Some(model.clone());
    embedding_inputs(&body)?;
    let plan = router::plan(&x.gw.routing(), &model)?;
    x.walk(&plan, body, |target, body| attempt(x, res, target, body))
}

fn attempt(
    x: &Exchange,
    res: &mut Responder<'_>,
    target: &Target,
    body: Map<String, Value>,
) -> Result<(), Failure> {
    x.note_target(target);
    let dialect = target.dialect();
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let calls = dialect.embeddings_request(target, body)?;
    let started = Instant::now();
    let deadline = started + x.gw.config.upstream_timeout;
    let answers = send_all(x, dialect, calls, deadline);
    let upstream_time = started.elapsed();
    x.record().upstream_latency = Some(upstream_time);
    let mut received = Vec::with_capacity(answers.len());
    let mut sent_bodies = Vec::with_capacity(answers.len());
    let mut headers = Vec::new();
    let mut failure = None;
    for (sent, answer) in answers {
        sent_bodies.push(sent);
        match answer {
            Ok((forwarded, answer)) if failure.is_none() => {
                headers = forwarded;
                if !(200..300).contains(&answer.status()) {
                    let e = provider_error(dialect, &answer, headers.clone());
                    failure = Some((e, Some(answer.body)));
                } else {
                    received.push(answer);
                }
            }
            Err(e) if failure.is_none() => failure = Some((e, None)),
            _ => {}
        }
    }
    if x.keeps_bodies() {
        let mut record = x.record();
        record.request_body = Some(bodies(&sent_bodies));
        match (&failure, &received[..]) {
            (Some((_, Some(body))), _) => record.response_body = Some(Body::Raw(body.clone())),
            (None, [only]) => record.response_body = Some(Body::Raw(only.body.clone())),
            _ => {}
        }
    }
    if let Some((e, _)) = failure {
        return Err(e.into());
    }
    let several = received.len() > 1;
    let mut reply = dialect.embeddings_response(target, received, base64)?;
    if x.keeps_bodies() && several {
        x.record().response_body = Some(Body::Raw(reply.body.clone()));
    }
    let cost = match reply.usage.take() {
        Some(usage) => x.set_usage(Some(usage)),
        None => {
            let usage = tokens::fill_in_embeddings(&x.req.body, &mut reply.body);
            headers.push(("x-gateway-usage".into(), "estimated".into()));
            usage.and_then(|u| x.set_estimated_usage(u))
        }
    };
    let (name, ms) = x.overhead(upstream_time);
    headers.push((name.into(), ms));
    headers.extend(cost);
    let _ = x.send_json(res, 200, reply.body, headers);
    Ok(())
}

/// A call's answer: the provider's headers passed on, and the answer read.
type Answered = Result<(Vec<(String, String)>, Received), ApiError>;

/// Makes the calls, at most [`PARALLEL_CALLS`] at a time, all within `deadline`; each call's
/// body and its answer, in the order of the calls. A provider that embeds one input per call
/// (Bedrock's Titan) gets a batch of 2,048 inputs in 256 rounds, not 2,048.
fn send_all(
    x: &Exchange,
    dialect: &dyn Dialect,
    calls: Vec<Call>,
    deadline: Instant,
) -> Vec<(Vec<u8>, Answered)> {
    let agents = &x.gw.agents;
    let one = |mut call: Call| {
        let left = deadline.saturating_duration_since(Instant::now());
        let answered = if left.is_zero() {
            Err(ApiError::gateway_timeout(
                "The provider did not answer every embeddings call in time.",
            ))
        } else {
            call.deadline = Some(left);
            dialect.send(agents.get(), &call).and_then(|answer| {
                let forwarded = providers::forwarded_headers(|name| answer.header(name));
                Ok((forwarded, answer.read()?))
            })
        };
        (call.body, answered)
    };
    if calls.len() == 1 {
        return calls.into_iter().map(one).collect();
    }
    let mut out = Vec::with_capacity(calls.len());
    let mut calls = calls.into_iter().peekable();
    while calls.peek().is_some() {
        let round: Vec<Call> = calls.by_ref().take(PARALLEL_CALLS).collect();
        std::thread::scope(|scope| {
            let running: Vec<_> = round
                .into_iter()
                .map(|call| scope.spawn(move || one(call)))
                .collect();
            for handle in running {
                out.push(handle.join().unwrap_or_else(|_| {
                    let e = ApiError::new(500, "server_error", None, "An embeddings call failed.");
                    (Vec::new(), Err(e))
                }));
            }
        });
    }
    out
}

/// The bodies sent: the one body as it was, or several as one JSON array.
fn bodies(sent: &[Vec<u8>]) -> Body {
    match sent {
        [only] => Body::Raw(only.clone()),
        many => Body::Value(Value::Array(
            many.iter()
                .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
                .collect(),
        )),
    }
}
