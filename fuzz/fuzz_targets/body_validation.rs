//! Any request body through the validation every handler starts with: an object or a 400,
//! then `model` and the embeddings `input` accepted or a 400 naming them; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmcallgateway::handlers::{json_object, model_name};
use llmcallgateway::providers::request::{embedding_inputs, MAX_EMBEDDING_INPUTS};

fuzz_target!(|data: &[u8]| {
    let body = match json_object(data) {
        Ok(body) => body,
        Err(e) => {
            assert_eq!(e.status, 400);
            return;
        }
    };
    match model_name(&body) {
        Ok(m) => assert!(!m.trim().is_empty()),
        Err(e) => assert_eq!((e.status, e.param.as_deref()), (400, Some("model"))),
    }
    match embedding_inputs(&body) {
        Ok(inputs) => assert!(!inputs.is_empty() && inputs.len() <= MAX_EMBEDDING_INPUTS),
        Err(e) => assert_eq!((e.status, e.param.as_deref()), (400, Some("input"))),
    }
});
