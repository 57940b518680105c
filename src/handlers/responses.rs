//! OpenAI's Responses API: `POST /v1/responses` for every provider, and the stored responses
//! behind `GET /v1/responses/{id}`, `GET /v1/responses/{id}/input_items` and
//! `DELETE /v1/responses/{id}`.
//!
//! A create is validated, the router plans its model and the plan is walked like a chat
//! request's. A target that serves the Responses API itself (`Api::Responses`: OpenAI at
//! api.openai.com or with `OPENAI_RESPONSES_API=true`, Azure) gets the client's body as it
//! came and its answer is relayed ([`native`]); any other takes the chat path with the request
//! translated by the Responses ingress, its answer and chunks turned into a response object and
//! Responses events.
//!
//! With `store` (the default, as at OpenAI) the response is kept in the shared store (space
//! `responses`; embedded under `DATA_DIR`, or Redis with `REDIS_URL` so any instance continues
//! any conversation) for `RESPONSES_RETENTION_DAYS`, redacted like the logs: the response, the
//! request's input items and the conversation before them, so that `previous_response_id`
//! continues it on any provider. A `previous_response_id` the gateway never stored is left to
//! the Responses API itself when every candidate serves it, else a 404.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::access::Caller;
use crate::error::ApiError;
use crate::exchange::Exchange;
use crate::handlers::chat::{self, send_error};
use crate::handlers::{json_object, model_name, native, optional_bool, params, query_param};
use crate::http::Responder;
use crate::ingress::responses::{item_id, request, Keeper, Responses};
use crate::logging::Redactor;
use crate::providers::Api;
use crate::router;

/// The store's space for responses.
const SPACE: &str = "responses";

pub fn create(x: &Exchange, res: &mut Responder<'_>) {
    x.mark_api_call();
    let mut ingress = Responses::unread();
    if let Err(e) = run(x, res, &mut ingress) {
        send_error(x, res, &ingress, &e);
    }
}

/// A stored response, as kept in the store.
struct Stored {
    response: Value,
    /// The request's input items, with ids.
    input: Vec<Value>,
    /// The conversation before the input (the items of the responses it continued).
    context: Vec<Value>,
    /// It was served by the Responses API itself, which keeps its own state too.
    native: bool,
    /// The SHA-256 (hex) of the gateway key that made it; only that key (or the admin key)
    /// reads, continues or deletes it. `None` when it was made without a key.
    owner: Option<String>,
}

impl Stored {
    fn to_value(&self) -> Value {
        json!({"response": self.response, "input": self.input, "context": self.context, "native": self.native, "owner": self.owner})
    }

    fn from_value(v: Value) -> Stored {
        let items = |k: &str| v[k].as_array().cloned().unwrap_or_default();
        Stored {
            input: items("input"),
            context: items("context"),
            native: v["native"].as_bool().unwrap_or(false),
            owner: v["owner"].as_str().map(str::to_string),
            response: v["response"].clone(),
        }
    }

    /// The whole conversation up to and including this response's output.
    fn conversation(&self) -> Vec<Value> {
        let output = self.response["output"].as_array().into_iter().flatten();
        let mut items = self.context.clone();
        items.extend(self.input.iter().cloned());
        items.extend(output.cloned());
        items
    }
}

/// A stored response, if there is one. One made with another gateway key is a 404 to this
/// caller (as a response of another project is at OpenAI), never passed on as an id the
/// gateway does not know: that would let a key continue another's native conversation.
fn load(x: &Exchange, id: &str, param: Option<&str>) -> Result<Option<Stored>, ApiError> {
    let bytes = x.gw.store.get(SPACE, id).map_err(store_error)?;
    let stored = bytes
        .and_then(|b| serde_json::from_slice(&b).ok())
        .map(Stored::from_value);
    match (&stored, x.caller()) {
        (
            Some(Stored {
                owner: Some(owner), ..
            }),
            Some(Caller::Key(key)),
        ) if *owner != key.token => Err(not_found(id, param)),
        _ => Ok(stored),
    }
}

/// Who owns what this call stores: its gateway key's hash, if it came with one.
fn owner(x: &Exchange) -> Option<String> {
    match x.caller() {
        Some(Caller::Key(key)) => Some(key.token.clone()),
        _ => None,
    }
}

fn store_error(e: crate::store::StoreError) -> ApiError {
    ApiError::new(
        503,
        "server_error",
        Some("store_unavailable"),
        format!("The response store is unavailable: {e}."),
    )
}

fn not_found(id: &str, param: Option<&str>) -> ApiError {
    let mut e = ApiError::new(
        404,
        "invalid_request_error",
        Some("response_not_found"),
        format!("Response with id '{id}' not found."),
    );
    e.param = param.map(str::to_string);
    e
}

fn run(x: &Exchange, res: &mut Responder<'_>, ingress: &mut Responses) -> Result<(), ApiError> {
    let body = json_object(&x.req.body)?;
    let model = model_name(&body)?;
    x.record().model_requested = Some(model.clone());
    request::validate(&body)?;
    let stream = optional_bool(&body, "stream")?;
    x.record().stream = stream;
    let store = body.get("store").and_then(Value::as_bool).unwrap_or(true);
    let previous_id = body.get("previous_response_id").and_then(Value::as_str);
    let previous = match previous_id {
        Some(id) => load(x, id, Some("previous_response_id"))?,
        None => None,
    };
    let context = previous
        .as_ref()
        .map(Stored::conversation)
        .unwrap_or_default();
    let input = request::stored_items(&request::input_items(&body));
    let keeper_for =
        |native: bool| store.then(|| keeper(x, input.clone(), context.clone(), native));
    let id = item_id("resp");
    *ingress = Responses::new(id, &model, &body, keeper_for(false));
    let plan = router::plan(&x.gw.routing(), &model)?;
    // The Responses API keeps its own conversations; one the gateway translated is ours only.
    let relays = |t: &crate::providers::Target| {
        t.serves(Api::Responses) && previous.as_ref().is_none_or(|p| p.native)
    };
    let all_relay = plan.candidates.iter().all(relays);
    // A response the gateway never stored may be the Responses API's own: only it can go on.
    if let (Some(id), None, false) = (previous_id, &previous, all_relay) {
        return Err(not_found(id, Some("previous_response_id")));
    }
    let translated = if all_relay {
        Map::new()
    } else {
        let internal = request::internal(&body, &context, x.gw.config.drop_unsupported_params)?;
        params::check(&internal.body)?;
        x.record().dropped_params = internal.dropped;
        internal.body
    };
    let ingress = &*ingress;
    let native_keeper = keeper_for(true);
    x.walk(&plan, translated, |target, translated| {
        if relays(target) {
            native::relay(
                x,
                res,
                target,
                Api::Responses,
                body.clone(),
                stream,
                false,
                ingress,
                native_keeper.clone(),
            )
        } else {
            chat::attempt(x, res, target, translated, stream, ingress)
        }
    })
}

/// What keeps a response in the store (redacted like the logs, for
/// `RESPONSES_RETENTION_DAYS`) with the request's input items and the conversation before
/// them. It runs before the client gets the response; a failure is logged, and the client
/// still gets its answer.
fn keeper(x: &Exchange, input: Vec<Value>, context: Vec<Value>, native: bool) -> Keeper {
    let store = x.gw.store.clone();
    let redactor = Redactor::for_config(&x.gw.config);
    let days = x.gw.config.responses_retention_days;
    let ttl = (days > 0).then(|| Duration::from_secs(u64::from(days) * 86_400));
    let request_id = x.request_id.clone();
    let owner = owner(x);
    Arc::new(move |response: &Value| {
        let Some(id) = response["id"].as_str() else {
            return;
        };
        let stored = Stored {
            response: response.clone(),
            input: input.clone(),
            context: context.clone(),
            native,
            owner: owner.clone(),
        };
        let text = stored.to_value().to_string();
        let redacted = redactor.text(&text);
        if let Err(e) = store.put(SPACE, id, redacted.as_bytes(), ttl) {
            log::warn!("request {request_id}: response {id} was not stored: {e}");
        }
    })
}

/// `GET /v1/responses/{id}` and `GET /v1/responses/{id}/input_items`.
pub fn retrieve(x: &Exchange, res: &mut Responder<'_>, param: &str) {
    x.mark_api_call();
    let answer = match param.strip_suffix("/input_items") {
        Some(id) => input_items(x, id),
        None => load(x, param, None)
            .and_then(|s| s.map(|s| s.response).ok_or_else(|| not_found(param, None))),
    };
    match answer {
        Ok(value) => {
            let _ = x.send_value(res, &value, Vec::new());
        }
        Err(e) => x.send_error(res, &e),
    }
}

/// A stored response's input items as a list: newest first unless `order=asc`, `limit`
/// (1–100, default 20) after the item `after`.
fn input_items(x: &Exchange, id: &str) -> Result<Value, ApiError> {
    let stored = load(x, id, None)?.ok_or_else(|| not_found(id, None))?;
    let query = x.req.query();
    let mut items = stored.input;
    if query_param(query, "order").as_deref() != Some("asc") {
        items.reverse();
    }
    if let Some(after) = query_param(query, "after") {
        if let Some(i) = items.iter().position(|item| item["id"] == after.as_str()) {
            items.drain(..=i);
        }
    }
    let limit = match query_param(query, "limit") {
        None => 20,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| {
                ApiError::invalid(
                    Some("limit"),
                    "`limit` must be a whole number from 1 to 100.",
                )
            })?,
    };
    let has_more = items.len() > limit;
    items.truncate(limit);
    Ok(json!({
        "object": "list",
        "first_id": items.first().map_or(Value::Null, |i| i["id"].clone()),
        "last_id": items.last().map_or(Value::Null, |i| i["id"].clone()),
        "has_more": has_more,
        "data": items,
    }))
}

/// `DELETE /v1/responses/{id}`.
pub fn delete(x: &Exchange, res: &mut Responder<'_>, id: &str) {
    x.mark_api_call();
    let deleted = load(x, id, None).and_then(|stored| match stored {
        Some(_) => x.gw.store.delete(SPACE, id).map_err(store_error),
        None => Ok(false),
    });
    match deleted {
        Ok(true) => {
            let answer = json!({"id": id, "object": "response", "deleted": true});
            let _ = x.send_value(res, &answer, Vec::new());
        }
        Ok(false) => x.send_error(res, &not_found(id, None)),
        Err(e) => x.send_error(res, &e),
    }
}
