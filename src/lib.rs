//! LLMCallGateway: a single-binary LLM API gateway.
#![forbid(unsafe_code)]

pub mod http;
