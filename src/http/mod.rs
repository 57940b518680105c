//! The HTTP/1.1 server layer: a listener, a bounded pool of worker threads and the wire
//! protocol, built on `httparse`, `std::net` and `socket2`. It knows nothing about LLMs: it
//! parses a request (with deadlines and size limits), hands it to a [`Handler`], and writes
//! what the handler answers, either a fixed [`Response`] or a chunked stream flushed per
//! event. Why it is ours and not tiny_http or astra: `../shared/research/server-choice.md`.

mod request;
mod response;
mod server;

pub use request::{Request, Version};
pub use response::{ClientGone, Responder, Response, Stream};
pub use server::{bind, Server, ServerConfig};

/// What the layer calls for every request. Implementations must be cheap to share: one
/// instance serves every worker thread.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request through `res` (`send` once, or `stream`). A handler that returns
    /// without answering gets a 500; one that panics gets a 500 too, and the worker lives on.
    fn handle(&self, req: &Request, res: &mut Responder<'_>);

    /// The body of a response the layer produces on its own (400, 408, 413, 431, 500, 503):
    /// the application decides its shape. `status` is already decided.
    fn protocol_error(&self, status: u16, message: &str) -> Response {
        Response::text(status, message)
    }
}
