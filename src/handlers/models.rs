//! `GET /v1/models` and `GET /v1/models/{id}`: the built-in mock models. Ids may contain `/`,
//! which the SDKs send percent-encoded (`mock%2Fecho`).

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::handlers::percent_decode;
use crate::http::Responder;
use crate::providers::mock;
use crate::reply::Exchange;

fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": mock::CREATED, "owned_by": "llmcallgateway"})
}

pub fn list(x: &Exchange<'_>, res: &mut Responder<'_>) {
    let data: Vec<Value> = mock::MODELS
        .iter()
        .map(|m| model_object(&format!("mock/{m}")))
        .collect();
    let body = json!({"object": "list", "data": data});
    let _ = x.send_json(res, 200, body.to_string().into_bytes(), Vec::new());
}

pub fn retrieve(x: &Exchange<'_>, res: &mut Responder<'_>, raw_id: &str) {
    let id = percent_decode(raw_id);
    let known = id
        .strip_prefix("mock/")
        .is_some_and(|m| mock::MODELS.contains(&m));
    if known {
        let _ = x.send_json(
            res,
            200,
            model_object(&id).to_string().into_bytes(),
            Vec::new(),
        );
    } else {
        x.send_error(res, &ApiError::model_not_found(&id, ""));
    }
}
