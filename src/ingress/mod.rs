//! The ingress seam: the API a client speaks on its route, and how the chat path's answers
//! reach it. Every chat-shaped route runs the same path (plan walk, the target's dialect, the
//! call, the relay) on the gateway's internal OpenAI-shaped request; an [`Ingress`] says what
//! the client gets back: the non-stream `chat.completion` body, each stream chunk (through an
//! [`Egress`], one per stream), the end of a stream and errors, all in the client's own shape.
//! N ingress routes + M provider dialects, never N × M.
//!
//! [`openai`] is the identity (`/v1/chat/completions`); [`anthropic`] is Anthropic's Messages
//! API (`/v1/messages`). A new ingress (Responses, Completions) is one more module here that
//! translates its request to the internal one and implements these two traits.

pub mod anthropic;
pub mod completions;
pub mod openai;
pub mod responses;

use serde_json::Value;

use crate::assembler::Seen;
use crate::error::ApiError;

/// What the client of one route gets back from the chat path.
pub trait Ingress: Sync {
    /// A 2xx `chat.completion` body (as the dialect produced it) → the body the client gets.
    fn reply(&self, completion: Vec<u8>) -> Result<Vec<u8>, ApiError>;

    /// A failure → the status and body the client gets.
    fn error(&self, error: &ApiError) -> (u16, Vec<u8>);

    /// The writer of one stream (`wants_usage`: the client asked for OpenAI's usage chunk).
    fn stream(&self, wants_usage: bool) -> Box<dyn Egress>;
}

/// One stream's writer: OpenAI chunks in, the client's events out. It owns what it needs
/// (no borrow of the route's [`Ingress`]), so a stream's relay can move to another thread.
pub trait Egress: Send {
    /// One chunk (its JSON text, and what the assembler saw in it) → events appended to `out`.
    /// A chunk carrying the provider's error object ends the stream after this.
    fn chunk(&mut self, data: &str, seen: &Seen, out: &mut Vec<u8>);

    /// The stream is complete: its closing events.
    fn done(&mut self, out: &mut Vec<u8>);

    /// The stream failed after its head was sent: the error event that ends it.
    fn fail(&mut self, error: &ApiError, out: &mut Vec<u8>);

    /// The completion the stream added up to, as the interactions log records it: in the
    /// shape the client received (as the route's own non-stream answer would be).
    fn recorded(&self, completion: Value) -> Value;
}
