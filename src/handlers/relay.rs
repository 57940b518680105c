//! Relaying a provider's stream to the client: one [`Relayer`] per stream holds its logic
//! (translate, write, add up for the record) and all its state; a driver feeds it the
//! provider's reads and writes what it appends. [`run`] picks the driver: a stream whose
//! provider connection can be read without blocking goes to the HTTP layer's relay loop
//! ([`StreamPump`]: many streams on a few epoll threads, no worker held, issue 18); any other
//! (the built-in models' in-process answers, a CONNECT proxy) is relayed by its worker, which
//! blocks on each read. A relayer owns everything it needs ('static + Send), nothing of the
//! handler's stack, and gets the request's shared [`Exchange`] on every call.
//!
//! The relayers: the chat path's (`chat`), the native relay of OpenAI's own APIs (`native`),
//! Anthropic's byte-for-byte relay (`messages`).

use std::os::fd::RawFd;
use std::task::Poll;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::ApiError;
use crate::events::{Body, Outcome};
use crate::exchange::Exchange;
use crate::http::{Pump, Pumped, Stream};
use crate::upstream::{EventReader, NonBlockingReads, SseEvent, StreamError};

/// Whether a stream goes on after a read.
pub enum Flow {
    Go,
    End,
}

/// One stream's logic between the provider's events and the client's bytes. Owns all its
/// state ('static + Send): it moves to another thread when the stream is pumped by an event loop.
pub trait Relayer: Send + 'static {
    /// One read of the provider's stream: an event, the body's end (`Ok(None)`), or a failure
    /// (`StreamError::Idle` / `Broken`). Appends what the client gets to `out`. `Flow::End`
    /// once the stream is over (complete, failed or cut: the closing/error bytes are in `out`
    /// by then); after that only `completed` and `finish` are called.
    fn on_read(
        &mut self,
        x: &Exchange,
        read: Result<Option<SseEvent>, StreamError>,
        out: &mut Vec<u8>,
    ) -> Flow;

    /// After `End`: whether the provider's stream ended normally, so the rest of its body is
    /// read to the end (`EventReader::drain(64 * 1024)`) for the connection's reuse.
    fn completed(&self) -> bool;

    /// How long the provider may stay silent before the stream is cut.
    fn idle_timeout(&self) -> Duration;

    /// Once, at the very end, whatever happened: the record gets what the stream amounted to
    /// (usage or its estimate, chunks, body, errors, time to first token) and, when `delivered`
    /// is false (the client left, a write failed), the ClientClosed outcome and its log line
    /// ([`client_closed`]). `first_sent` is from the request's arrival to the first bytes
    /// written for the client.
    fn finish(self: Box<Self>, x: &Exchange, first_sent: Option<Duration>, delivered: bool);
}

/// Relays a stream: in the relay loop when its provider connection can be read without
/// blocking, else on this worker ([`relay_here`]).
///
/// With Redis (`REDIS_URL`) a stream stays on its worker: a keyed call's settlement at the end,
/// and a Responses stream's stored response, are Redis round trips, which on a relay thread
/// would stall every other stream there (for seconds, with Redis unreachable). The embedded
/// store's writes are local (SQLite, batched in memory for spend).
pub fn run(x: &Exchange, sse: Stream<'_, '_>, events: EventReader, relayer: Box<dyn Relayer>) {
    let redis = x.gw.config.redis_url.is_some();
    match events.source() {
        Some(source) if sse.can_detach() && !redis => {
            let pump = StreamPump {
                x: x.share(),
                events,
                relayer,
                source,
            };
            if let Err(pump) = sse.detach(Box::new(pump)) {
                // `can_detach` said yes; should it not hold, the stream ends undelivered
                // rather than unrecorded.
                log::error!("request {}: the relay loop refused a stream", x.request_id);
                pump.finish(None, false);
            }
        }
        _ => relay_here(x, sse, events, relayer),
    }
}

/// A stream in the HTTP layer's relay loop: each time the provider's connection is readable,
/// the events that came are read without blocking and fed to the relayer; the exchange is
/// shared, so the request is recorded when the stream ends.
struct StreamPump {
    x: Exchange,
    events: EventReader,
    relayer: Box<dyn Relayer>,
    source: RawFd,
}

/// What one pump appends at most before it is written: a provider that sends faster than the
/// client reads is held back there.
const PUMP_BYTES: usize = 64 * 1024;

impl Pump for StreamPump {
    fn source(&self) -> RawFd {
        self.source
    }

    fn idle_timeout(&self) -> Duration {
        self.relayer.idle_timeout()
    }

    fn pump(&mut self, out: &mut Vec<u8>) -> Pumped {
        let _nonblocking = NonBlockingReads::enter();
        loop {
            let read = match self.events.poll_event() {
                Poll::Pending => return Pumped::Blocked,
                Poll::Ready(read) => read,
            };
            if let Flow::End = self.relayer.on_read(&self.x, read, out) {
                if self.relayer.completed() {
                    // Whatever the provider sent after its end and is here already, so that
                    // its connection goes back to the pool (else it is closed).
                    self.events.drain(64 * 1024);
                }
                return Pumped::End;
            }
            if out.len() >= PUMP_BYTES {
                return Pumped::More;
            }
        }
    }

    fn idle(&mut self, out: &mut Vec<u8>) {
        let _ = self.relayer.on_read(&self.x, Err(StreamError::Idle), out);
    }

    fn finish(self: Box<Self>, first_sent: Option<Instant>, delivered: bool) {
        let StreamPump { x, relayer, .. } = *self;
        let first_sent = first_sent.map(|t| t.saturating_duration_since(x.req.received_at));
        relayer.finish(&x, first_sent, delivered);
    }
}

/// The blocking driver (a worker thread relays the whole stream): reads with
/// `events.next_event()`, feeds `on_read`; writes `out` with `sse.send` whenever no further
/// whole event is already buffered (`!events.has_complete_event()`) and `out` is non-empty
/// (events that arrived together leave together); at `End`: `sse.finish_with(&out)`, then
/// drain when `completed()`; a failed send stops reading at once (delivered = false).
/// `first_sent` = `x.req.received_at.elapsed()` at the first non-empty write.
///
/// The relayer's `finish` comes before the drain: the record (and the call's cost, which the
/// key's next call reserves) does not wait on what the provider still sends after its end.
fn relay_here(
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

/// What every relayed stream leaves on its record: when its first bytes reached the client,
/// its chunks, and, when bodies are kept, what it amounted to (`body`, made only then).
pub fn record_stream(
    x: &Exchange,
    first_sent: Option<Duration>,
    chunks: u64,
    body: impl FnOnce() -> Value,
) {
    let body = x.keeps_bodies().then(body);
    let mut record = x.record();
    record.time_to_first_token = first_sent;
    record.chunks = Some(chunks);
    if let Some(body) = body {
        record.response_body = Some(Body::Value(body));
    }
}

/// A stream the client did not get to its end: logged and recorded as `client_closed`.
pub fn client_closed(x: &Exchange) {
    log::info!("request {}: the client closed the stream", x.request_id);
    x.record().outcome = Some(Outcome::ClientClosed);
}
