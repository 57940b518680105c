//! The OpenAI ingress (`/v1/chat/completions`): the identity. Answers and chunks leave as the
//! dialect made them; the usage-only chunk reaches only clients that asked for it
//! (`stream_options.include_usage`); a stream ends with `data: [DONE]`, or with one `data:`
//! event holding the error object and no `[DONE]`.

use serde_json::Value;

use super::{Egress, Ingress};
use crate::assembler::Seen;
use crate::error::ApiError;
use crate::exchange::sse_data;

pub struct OpenAi;

impl Ingress for OpenAi {
    fn reply(&self, completion: Vec<u8>) -> Result<Vec<u8>, ApiError> {
        Ok(completion)
    }

    fn error(&self, error: &ApiError) -> (u16, Vec<u8>) {
        (error.status, error.to_body())
    }

    fn stream(&self, wants_usage: bool) -> Box<dyn Egress> {
        Box::new(Chunks { wants_usage })
    }
}

/// OpenAI chunks relayed as `data:` events.
struct Chunks {
    wants_usage: bool,
}

impl Egress for Chunks {
    fn chunk(&mut self, data: &str, seen: &Seen, out: &mut Vec<u8>) {
        if seen.error || self.wants_usage || !seen.usage_only {
            sse_data(out, data);
        }
    }

    fn done(&mut self, out: &mut Vec<u8>) {
        sse_data(out, "[DONE]");
    }

    fn fail(&mut self, error: &ApiError, out: &mut Vec<u8>) {
        sse_data(out, &error.to_value().to_string());
    }

    fn recorded(&self, completion: Value) -> Value {
        completion
    }
}
