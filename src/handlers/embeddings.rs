//! `POST /v1/embeddings`: a string, an array of strings, a token array or an array of token
//! arrays; `encoding_format` float or base64; `dimensions`. The dialect builds the provider's
//! calls (one, or one per input for a provider that embeds one text per call), they are made
//! in order, and their answers become one OpenAI embeddings list (relayed as received for the
//! OpenAI dialect). The first error answers for all.

use std::time::Instant;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::events::Body;
use crate::exchange::Exchange;
use crate::handlers::{json_object, model_name, provider_error};
use crate::http::Responder;
use crate::providers::request::embedding_inputs;
use crate::providers::{self, Target};
use crate::router::{self, Failure};

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
    embedding_inputs(&body)?;
    let plan = router::plan(&x.gw.config, &model)?;
    plan.walk(body, |target, body| attempt(x, res, target, body))
}

fn attempt(
    x: &Exchange<'_>,
    res: &mut Responder<'_>,
    target: &Target,
    body: Map<String, Value>,
) -> Result<(), Failure> {
    x.note_target(target);
    let dialect = target.dialect();
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let calls = dialect.embeddings_request(target, body)?;
    let started = Instant::now();
    let mut answers = Vec::with_capacity(calls.len());
    let mut headers = Vec::new();
    let mut sent_bodies = Vec::new();
    for call in &calls {
        let answer = dialect.send(x.gw.agents.get(), call);
        if x.keeps_bodies() {
            sent_bodies.push(&call.body[..]);
        }
        let answer = answer?;
        headers = providers::forwarded_headers(|name| answer.header(name));
        let received = answer.read()?;
        if !(200..300).contains(&received.status()) {
            x.record().upstream_latency = Some(started.elapsed());
            if x.keeps_bodies() {
                let mut record = x.record();
                record.request_body = Some(bodies(&sent_bodies));
                record.response_body = Some(Body::Raw(received.body.clone()));
            }
            return Err(provider_error(dialect, &received, headers).into());
        }
        answers.push(received);
    }
    let upstream_time = started.elapsed();
    x.record().upstream_latency = Some(upstream_time);
    if x.keeps_bodies() {
        let mut record = x.record();
        record.request_body = Some(bodies(&sent_bodies));
        if let [only] = &answers[..] {
            record.response_body = Some(Body::Raw(only.body.clone()));
        }
    }
    let reply = dialect.embeddings_response(target, answers, base64)?;
    if x.keeps_bodies() && calls.len() > 1 {
        x.record().response_body = Some(Body::Raw(reply.body.clone()));
    }
    let cost = x.set_usage(reply.usage);
    let (name, ms) = x.overhead(upstream_time);
    headers.push((name.into(), ms));
    headers.extend(cost);
    let _ = x.send_json(res, 200, reply.body, headers);
    Ok(())
}

/// The bodies sent: the one body as it was, or several as one JSON array.
fn bodies(sent: &[&[u8]]) -> Body {
    match sent {
        [only] => Body::Raw(only.to_vec()),
        many => Body::Value(Value::Array(
            many.iter()
                .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
                .collect(),
        )),
    }
}
