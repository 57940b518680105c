//! Relaying a provider's stream to the client: one [`Relayer`] per stream holds its logic
//! (translate, write, add up for the record) and all its state; a driver feeds it the
//! provider's reads and writes what it appends. [`run`] is the blocking driver (a worker
//! thread relays the whole stream); the trait is what lets a stream be pumped from elsewhere
//! too, a relayer owning everything it needs ('static + Send), nothing of the handler's stack.
//!
//! The relayers: the chat path's (`chat`), the native relay of OpenAI's own APIs (`native`),
//! Anthropic's byte-for-byte relay (`messages`).

use std::time::Duration;

use crate::error::ApiError;
use crate::events::Outcome;
use crate::exchange::Exchange;
use crate::http::Stream;
use crate::upstream::{EventReader, SseEvent, StreamError};

/// Whether a stream goes on after a read.
pub enum Flow {
    Go,
    End,
}

/// One stream's logic between the provider's events and the client's bytes. Owns all its
/// state ('static + Send): it moves to another thread when the stream is pumped by an event loop.
pub trait Relayer: Send + 'static {
    /// One read of the provider's stream: an event, the body's end (`Ok(None)`), or a failure
    /// (`StreamError::Idle` / `Broken`). Appends what the client gets to `out`. `Flow::End` once the
    /// stream is over (complete, failed or cut: the closing/error bytes are in `out` by then);
    /// after that only `completed` and `finish` are called.
    fn on_read(
        &mut self,
        x: &Exchange,
        read: Result<Option<SseEvent>, StreamError>,
        out: &mut Vec<u8>,
    ) -> Flow;

    /// After `End`: whether the provider's stream ended normally, so the rest of its body is
    /// read to the end (`EventReader::drain(64 * 1024)`) for the connection's reuse.
    fn completed(&self) -> bool;

    /// Once, at the very end, whatever happened: the record gets what the stream amounted to
    /// (usage or its estimate, chunks, body, errors, time to first token) and, when `delivered`
    /// is false (the client left, a write failed), the ClientClosed outcome and its log line, in
    /// the same order of record writes as today's code.
    fn finish(self: Box<Self>, x: &Exchange, first_sent: Option<Duration>, delivered: bool);
}

/// The blocking driver (a worker thread relays the whole stream): reads with
/// `events.next_event()`, feeds `on_read`; writes `out` with `sse.send` whenever no further whole
/// event is already buffered (`!events.has_complete_event()`) and `out` is non-empty (exactly
/// today's batching: events that arrived together leave together); at `End`: `sse.finish_with(&out)`,
/// then drain when `completed()`; a failed send stops reading at once (delivered = false).
/// `first_sent` = `x.req.received_at.elapsed()` at the first non-empty write.
///
/// The relayer's `finish` comes before the drain: the record (and the call's cost, which the
/// key's next call reserves) does not wait on what the provider still sends after its end.
pub fn run(
    x: &Exchange,
    mut sse: Stream<'_, '_>,
    mut events: EventReader,
    mut relayer: Box<dyn Relayer>,
) {
    // Grown to what arrives together (an event is a few hundred bytes); a capacity reserved
    // up front would be held by every open stream (issue 18).
    let mut out = Vec::new();
    let mut first_sent = None;
    let ended = loop {
        if let Flow::End = relayer.on_read(x, events.next_event(), &mut out) {
            break true;
        }
        if !events.has_complete_event() && !out.is_empty() {
            first_sent.get_or_insert_with(|| x.req.received_at.elapsed());
            if sse.send(&out).is_err() {
                break false;
            }
            out.clear();
        }
    };
    if !ended {
        // Dropping the event reader closes the provider's connection.
        relayer.finish(x, first_sent, false);
        return;
    }
    if !out.is_empty() {
        first_sent.get_or_insert_with(|| x.req.received_at.elapsed());
    }
    let delivered = sse.finish_with(&out).is_ok();
    let completed = relayer.completed();
    relayer.finish(x, first_sent, delivered);
    if completed {
        // After the client has it all: the provider's body read to its end, so that its
        // connection is reused (dropping it unread closes it).
        events.drain(64 * 1024);
    }
}

/// The error that ends a stream whose read failed: cut after `idle` of silence, or broken.
pub fn read_failure(e: StreamError, idle: Duration) -> ApiError {
    match e {
        StreamError::Idle => ApiError::gateway_timeout(format!(
            "The provider sent nothing for {} s; the stream was cut.",
            idle.as_secs_f64()
        )),
        StreamError::Broken(why) => ApiError::bad_gateway(
            "upstream_stream_broken",
            format!("The provider's stream broke: {why}."),
        ),
    }
}

/// A stream the client did not get to its end: logged and recorded as `client_closed`.
pub fn client_closed(x: &Exchange) {
    log::info!("request {}: the client closed the stream", x.request_id);
    x.record().outcome = Some(Outcome::ClientClosed);
}
