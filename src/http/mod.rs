//! The HTTP/1.1 server layer: a listener, a bounded pool of worker threads serving one
//! request at a time, a poller thread (epoll through `mio`) holding connections between
//! requests, and the wire protocol, built on `httparse`, `std::net` and `socket2`. It knows
//! nothing about LLMs: it
//! parses a request (with deadlines and size limits), hands it to a [`Handler`], and writes
//! what the handler answers, either a fixed [`Response`] or a chunked stream flushed per
//! event. Why it is ours and not tiny_http or astra: `../shared/research/server-choice.md`.
//!
//! Some requests the layer answers on its own: 400 (malformed head, framing or chunk), 408
//! (head or body too slow), 413 (body too large), 417, 431 (head too large), 501, 505, 503
//! at the connection cap or with every worker busy, and 500 when the handler panicked or sent
//! nothing. Each one goes
//! through [`Handler::refuse`] with a [`Refusal`]: the status and reason, the peer, when the
//! request began and, once the head was parsed, the request head itself, so the application
//! shapes the answer, records it and can echo the client's request id. The status, the
//! `connection: close` and the closing of the connection stay the layer's.

mod chunked;
mod poller;
mod relay;
mod request;
mod response;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub use relay::{Pump, Pumped};
pub use request::{Request, Version};
pub use response::{ClientGone, Responder, Response, Stream};
pub use server::{bind, Load, LoadNow, Server, ServerConfig};

/// A request the layer answers on its own: refused before the handler saw it, or answered
/// with a 500 because the handler panicked or sent nothing.
#[derive(Debug, Clone, Copy)]
pub struct Refusal<'a> {
    pub status: u16,
    /// Why, in a few words (e.g. "request body too large").
    pub message: &'a str,
    pub peer: SocketAddr,
    /// When the request (or, with no head, the connection's wait for it) began.
    pub received_at: Instant,
    /// The request head when it was read and parsed (method, target, headers; `body` empty):
    /// present for 413, a 408 or 400 while reading the body, a malformed chunk, and the 500s;
    /// `None` when the head never came or could not be parsed (408 head timeout, 400 malformed
    /// head, 431, the 503s at the connection cap and with every worker busy).
    pub head: Option<&'a Request>,
    /// True for the 500s after the handler ran (it has seen and recorded the request itself).
    pub after_handler: bool,
}

/// What the layer calls for every request. Implementations must be cheap to share: one
/// instance serves every worker thread.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request through `res` (`send` once, or `stream`). A handler that returns
    /// without answering gets a 500; one that panics gets a 500 too, and the worker lives on.
    /// Either 500 goes through [`Handler::refuse`] with `after_handler` set. The handler and
    /// the request come shared, so that a stream handed to the relay loop
    /// ([`Stream::detach`]) can keep them for as long as it runs.
    fn handle(self: Arc<Self>, req: &Arc<Request>, res: &mut Responder<'_>);

    /// The response to a request the layer refuses; the application decides its shape and may
    /// record it. Called on the acceptor thread for the 503 at the connection cap and on the
    /// poller thread for the 503 when every worker is busy, so it must be quick and must not
    /// block. The default is a plain-text body.
    ///
    /// The layer keeps `refusal.status` whatever the response says, answers with
    /// `connection: close` and closes the connection; the 503 gets a `retry-after` unless
    /// the response has one. A `refuse` that panics on a worker closes that connection
    /// unanswered (the panic is logged); on the acceptor the default answer goes out instead.
    fn refuse(&self, refusal: &Refusal<'_>) -> Response {
        Response::text(refusal.status, refusal.message)
    }
}
