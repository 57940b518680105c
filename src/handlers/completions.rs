//! `POST /v1/completions`: OpenAI's legacy completions, for clients that still default to it
//! (LlamaIndex's `OpenAILike`, the AI SDK's `.completion()`, `litellm.text_completion`).
//!
//! The request is validated, the router plans its model and the plan is walked like a chat
//! request's. A target that serves `/completions` itself (OpenAI, Azure, most OpenAI-compatible
//! servers: `Api::Completions`) gets the client's body as it came and its answer is relayed
//! ([`native`]); any other (Anthropic, Gemini, Cohere, Bedrock, the mock models, chat-only
//! vendors) takes the chat path with the prompt as one user message, its answer and chunks
//! turned back into `text_completion`s by the completions ingress.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::exchange::Exchange;
use crate::handlers::chat::{self, send_error};
use crate::handlers::{json_object, model_name, native, optional_bool, params};
use crate::http::Responder;
use crate::ingress::completions::{self, Completions};
use crate::providers::{self, Api};
use crate::router;

pub fn create(x: &Exchange, res: &mut Responder<'_>) {
    x.mark_api_call();
    let mut ingress = Completions {
        model: String::new(),
        echo: None,
    };
    if let Err(e) = run(x, res, &mut ingress) {
        send_error(x, res, &ingress, &e);
    }
}

fn run(x: &Exchange, res: &mut Responder<'_>, ingress: &mut Completions) -> Result<(), ApiError> {
    let body = json_object(&x.req.body)?;
    let model = model_name(&body)?;
    x.record().model_requested = Some(model.clone());
    completions::validate(&body)?;
    // `logprobs` is a count here, a flag in chat; the ingress reads it.
    let mut shared = body.clone();
    shared.remove("logprobs");
    params::check(&shared)?;
    let stream = optional_bool(&body, "stream")?;
    x.record().stream = stream;
    *ingress = Completions::new(model.clone(), &body);
    let plan = router::plan(&x.gw.routing(), &model)?;
    let translated = internal(x, &plan, &body)?;
    let wants_usage = providers::client_wants_usage(&body);
    let ingress = &*ingress;
    x.walk(&plan, translated, |target, translated| {
        if target.serves(Api::Completions) {
            native::relay(
                x,
                res,
                target,
                Api::Completions,
                body.clone(),
                stream,
                wants_usage,
                ingress,
                None,
            )
        } else {
            chat::attempt(x, res, target, translated, stream, ingress)
        }
    })
}

/// The internal chat request, translated only when some candidate needs it.
fn internal(
    x: &Exchange,
    plan: &router::Plan,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    if plan.candidates.iter().all(|t| t.serves(Api::Completions)) {
        return Ok(Map::new());
    }
    let internal = completions::internal(body, x.gw.config.drop_unsupported_params)?;
    x.record().dropped_params = internal.dropped;
    Ok(internal.body)
}
