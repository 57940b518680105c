//! Transport to providers: pooled `ureq` agents, a `post` that never turns a provider's
//! 4xx/5xx into a transport error, the mapping of transport failures to 502/504, and the
//! readers of streamed bodies ([`sse`], with AWS event-stream framing from [`eventstream`]),
//! which a relay may read without blocking over the gateway's own TCP transport
//! (`transport`: [`NonBlockingReads`], [`Answer::fd`]). It knows no dialect: a [`Call`] is a
//! URL, headers and a body that a dialect built.

mod buffers;
pub mod eventstream;
pub mod sse;
mod transport;

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use ureq::http::{response::Parts, Response};
use ureq::tls::TlsConfig;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    ConnectProxyConnector, ConnectionDetails, Connector, Either, NextTimeout, RustlsConnector,
    Transport,
};
use ureq::{Body, ProxyProtocol};

use crate::error::ApiError;

pub use sse::{EventReader, SseEvent, StreamError};
pub use transport::NonBlockingReads;
use transport::TcpConnector;

/// Largest non-stream response body read from a provider (large embedding batches included).
const MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

/// The HTTP clients, shared by all workers: a few independent pools, each worker thread always
/// using the same one. ureq keeps one lock per pool, held while it picks and checks an idle
/// connection; with a single pool, a worker descheduled while holding it stalls every other
/// (measured in `bench/`). Settings from `shared/research/tech.md`: statuses are answers, not
/// errors; idle pools large enough that concurrent calls reuse connections; small buffers, since
/// every open stream holds one upstream connection and ureq zero-fills both of its buffers to
/// their full size (see [`UPSTREAM_BUFFER_BYTES`]).
pub struct Agents {
    agents: Vec<ureq::Agent>,
}

/// Independent connection pools, and the idle connections each keeps per host: 512 per host
/// in all, as with 8 pools of 64 before. ureq scans a pool's whole idle list, comparing each
/// connection's scheme and authority, every time a connection goes back (`Pool::purge` counts
/// them per host). After a burst of streams had filled 8 pools of 64, that scan was a tenth of
/// the gateway's CPU at c=32 (perf: `Authority::eq`, `Scheme::eq`, `purge`) and a request cost
/// 130-140 µs of CPU instead of 80 until the connections aged out; with 64 pools of 8, 63-86.
const POOLS: usize = 64;
const IDLE_PER_POOL: usize = 8;

/// Each upstream connection's input and output buffer, allocated at their full size on a
/// connection's first call (`buffers.rs`: the input kept while the connection lives, the output
/// freed while a stream is read), so the input is a per-open-stream cost. 8 KiB, down from 16
/// (issue 18, `bench/memory.sh`): 1,000 open streams took 16 KB less heap each (63 → 47 MB of
/// malloc'd memory), and c=32 throughput did not move (0.99× non-stream, 1.05× stream,
/// alternating rounds). Why not smaller: the input buffer must hold a provider's whole response
/// head (ureq fails the call otherwise, as nginx fails an "upstream sent too big header" past
/// its 4–8 KiB; a provider's is 1–3 KB); the output buffer must hold the longest request header
/// line (a 2–3 KB OAuth bearer token for Vertex or Azure AD). 4 KiB saved only about 4 KB more
/// per stream.
const UPSTREAM_BUFFER_BYTES: usize = 8 * 1024;

impl Agents {
    /// Agents that connect within `connect_timeout` and wait `timeout` for a response head.
    pub fn new(connect_timeout: Duration, timeout: Duration) -> Self {
        Agents::with_tls(connect_timeout, timeout, TlsConfig::default())
    }

    /// [`Agents::new`] checking providers' certificates as `tls` says: ureq's default (the
    /// webpki roots) in production, a test's own certificate in the TLS tests.
    fn with_tls(connect_timeout: Duration, timeout: Duration, tls: TlsConfig) -> Self {
        let agents = (0..POOLS)
            .map(|_| {
                let config = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .max_idle_connections(2 * IDLE_PER_POOL)
                    .max_idle_connections_per_host(IDLE_PER_POOL)
                    .input_buffer_size(UPSTREAM_BUFFER_BYTES)
                    .output_buffer_size(UPSTREAM_BUFFER_BYTES)
                    .timeout_connect(Some(connect_timeout))
                    .timeout_recv_response(Some(timeout))
                    .user_agent(concat!("llmcallgateway/", env!("CARGO_PKG_VERSION")))
                    .no_delay(true)
                    .tls_config(tls.clone())
                    .build();
                ureq::Agent::with_parts(
                    config,
                    SteppedConnector::default(),
                    InlineResolver::default(),
                )
            })
            .collect();
        Agents { agents }
    }

    /// This thread's client.
    pub fn get(&self) -> &ureq::Agent {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static POOL: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        &self.agents[POOL.with(|p| *p) % self.agents.len()]
    }
}

/// Resolves a provider's host name on the calling thread. ureq's own resolver spawns a thread
/// per call, to time the lookup out, whenever the call has an overall deadline (and every
/// non-stream call has one): measured, that thread halved the non-stream throughput. A lookup
/// is bounded by the system resolver's own timeouts, and a pooled connection needs none.
#[derive(Debug, Default)]
struct InlineResolver(DefaultResolver);

impl Resolver for InlineResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        self.0.resolve(uri, config, NextTimeout::default())
    }
}

/// Opens a provider connection in the order of ureq's `DefaultConnector` (a CONNECT proxy when
/// one is configured, else TCP; then rustls for https), one step per function: ureq's own
/// connectors but for TCP, whose transport is the gateway's (`transport`) so that a stream's
/// body can be read without blocking; a proxy's tunnel is made through this connector too.
/// `DefaultConnector` chains them generically, and the compiler merged the chain into one 12 KB
/// stack frame (the transports pass through it by value) that every worker opening a
/// connection touched and kept resident for its life (issue 18, `bench/memory.sh`); one step
/// at a time, only the deepest step's frame is on the stack. The boxed transport between steps
/// is what ureq's chain ends with anyway.
#[derive(Debug, Default)]
struct SteppedConnector {
    proxy: ConnectProxyConnector,
    tcp: TcpConnector,
    tls: RustlsConnector,
}

impl Connector<()> for SteppedConnector {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        // What ureq's chain says when a SOCKS proxy is set without its feature: the call goes
        // direct.
        if let Some(proxy) = details.config.proxy() {
            if matches!(
                proxy.protocol(),
                ProxyProtocol::Socks4
                    | ProxyProtocol::Socks4A
                    | ProxyProtocol::Socks5
                    | ProxyProtocol::Socks5h
            ) {
                log::warn!("a SOCKS proxy is configured but not supported; connecting directly");
            }
        }
        let proxied = connect_step(&self.proxy, details, None)?;
        let tcp = connect_step(&self.tcp, details, proxied)?;
        // rustls passes a plain-http transport through too, but its step's frame is 8 KB.
        if tcp.is_none() || !details.needs_tls() {
            return Ok(tcp);
        }
        connect_step(&self.tls, details, tcp)
    }
}

/// One connector of [`SteppedConnector`]: the transport it was given, or the one it made.
#[inline(never)]
fn connect_step<C, T>(
    connector: &C,
    details: &ConnectionDetails,
    chained: Option<Box<dyn Transport>>,
) -> Result<Option<Box<dyn Transport>>, ureq::Error>
where
    C: Connector<Box<dyn Transport>, Out = Either<Box<dyn Transport>, T>>,
    T: Transport,
{
    Ok(match connector.connect(details, chained)? {
        Some(Either::A(given)) => Some(given),
        Some(Either::B(made)) => Some(Box::new(made)),
        None => None,
    })
}

/// RFC 3986's reserved and other characters: everything but `A-Z a-z 0-9 - _ . ~`.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A path segment or query value, percent-encoded so it cannot change the URL's structure.
pub fn url_component(value: &str) -> String {
    utf8_percent_encode(value, NOT_UNRESERVED).to_string()
}

/// One call to a provider.
pub struct Call {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// For streams: the longest silence allowed between two reads of the body.
    pub idle_timeout: Option<Duration>,
    /// For whole answers: the longest the call may take, from sending the request to the
    /// last byte of the body (a provider that sends its head and then stalls is cut).
    pub deadline: Option<Duration>,
}

impl Call {
    /// A POST of a JSON body.
    pub fn post(url: String, headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Call {
        Call {
            url,
            headers,
            body,
            idle_timeout: None,
            deadline: None,
        }
    }

    /// A GET (a provider's model list).
    pub fn get(url: String, headers: Vec<(&'static str, String)>) -> Call {
        Call::post(url, headers, Vec::new())
    }
}

/// A provider's answer, headers received; the body not yet read.
pub struct Answer {
    pub response: Response<Body>,
    /// From sending the request to receiving the response head.
    pub latency: Duration,
    /// The descriptor of the connection the body arrives on (to watch for readiness while
    /// reading it inside [`NonBlockingReads`]); `None` for an answer made in-process. Only to
    /// poll: its mode and ownership stay the transport's.
    pub fd: Option<RawFd>,
}

impl Answer {
    /// An answer made in-process (the built-in models), read like one a provider sent.
    pub fn local(status: u16, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = builder
            .body(Body::builder().data(body))
            .unwrap_or_else(|_| Response::new(Body::builder().data(Vec::new())));
        Answer {
            response,
            latency: Duration::ZERO,
            fd: None,
        }
    }

    pub fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Reads the whole body (bounded).
    pub fn read(self) -> Result<Received, ApiError> {
        let (head, mut body) = self.response.into_parts();
        let body = body
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| transport_error(e, "reading the provider's response"))?;
        Ok(Received { head, body })
    }

    /// The body as a stream of events: SSE, or AWS event-stream messages when the provider
    /// answered `application/vnd.amazon.eventstream` (Bedrock).
    pub fn into_events(self) -> EventReader {
        let binary = self
            .header("content-type")
            .is_some_and(|t| t.starts_with(eventstream::CONTENT_TYPE));
        let body = self.response.into_body().into_reader();
        let events = if binary {
            EventReader::event_stream(body)
        } else {
            EventReader::new(body)
        };
        events.with_source(self.fd)
    }

    /// Whether the body is a stream of events (SSE or AWS event-stream).
    pub fn is_event_stream(&self) -> bool {
        self.header("content-type").is_some_and(|t| {
            t.starts_with("text/event-stream") || t.starts_with(eventstream::CONTENT_TYPE)
        })
    }
}

/// A provider's whole answer: its head and its body.
pub struct Received {
    head: Parts,
    pub body: Vec<u8>,
}

impl Received {
    pub fn status(&self) -> u16 {
        self.head.status.as_u16()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// Sends a POST with a JSON body.
pub fn post(agent: &ureq::Agent, call: &Call) -> Result<Answer, ApiError> {
    let mut request = agent.post(&call.url);
    for (name, value) in &call.headers {
        request = request.header(*name, value);
    }
    let request = request.content_type("application/json");
    let started = Instant::now();
    // ureq exposes no connection, but it sends the call and reads its head on this thread
    // through the gateway's transport, which records the descriptor of every read and write:
    // the last one recorded once the head is in is the connection the body will come on.
    transport::forget_connection();
    // A request-level configuration copies the agent's; only calls with a timing of their
    // own need one.
    let sent = match (call.idle_timeout, call.deadline) {
        (Some(idle), _) => request
            .config()
            .timeout_per_read(Some(idle))
            .build()
            .send(&call.body[..]),
        // The agent's wait for a head is the environment's; a deployment may allow longer.
        (None, Some(deadline)) => request
            .config()
            .timeout_global(Some(deadline))
            .timeout_recv_response(Some(deadline))
            .build()
            .send(&call.body[..]),
        (None, None) => request.send(&call.body[..]),
    };
    let response = sent.map_err(|e| transport_error(e, "calling the provider"))?;
    Ok(Answer {
        response,
        latency: started.elapsed(),
        fd: transport::last_connection(),
    })
}

/// Sends a GET (a provider's model list), the whole exchange bounded by `timeout`; returns the
/// status and the body (bounded).
pub fn get(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(&'static str, String)],
    timeout: Duration,
) -> Result<(u16, Vec<u8>), ApiError> {
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let mut response = request
        .config()
        .timeout_global(Some(timeout))
        .build()
        .call()
        .map_err(|e| transport_error(e, "listing the provider's models"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| transport_error(e, "reading the provider's model list"))?;
    Ok((status, body))
}

/// Maps a transport failure to the status a client should see: 504 when the provider was
/// too slow, 502 when it could not be reached or broke the protocol. URLs in messages never
/// carry query strings (they may hold keys).
pub fn transport_error(e: ureq::Error, doing: &str) -> ApiError {
    match e {
        ureq::Error::Timeout(which) => ApiError::gateway_timeout(format!(
            "The provider did not answer in time while {doing} ({which})."
        )),
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            ApiError::gateway_timeout(format!(
                "The provider did not answer in time while {doing}."
            ))
        }
        ureq::Error::BodyExceedsLimit(limit) => ApiError::bad_gateway(
            "upstream_response_too_large",
            format!("The provider's response exceeded {limit} bytes."),
        ),
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => ApiError::bad_gateway(
            "upstream_unreachable",
            format!("Could not connect to the provider while {doing}."),
        ),
        other => {
            let why = describe(&other);
            let message = if why.is_empty() {
                format!("The provider connection failed while {doing}.")
            } else {
                format!("The provider connection failed while {doing}: {why}")
            };
            ApiError::bad_gateway("upstream_unreachable", message)
        }
    }
}

/// A transport error's text without any URL in it.
fn describe(e: &ureq::Error) -> String {
    let text = e.to_string();
    match text.find("http") {
        Some(i) => text[..i].trim_end().to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests;
