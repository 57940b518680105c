//! LLMCallGateway: a single-binary LLM API gateway. Clients speak the OpenAI HTTP API to it;
//! it forwards each call to the provider that serves the model and relays the answer, JSON or
//! streamed event by event.
//!
//! The shape (see `DESIGN.md` in the shared folder): [`http`] is a small synchronous HTTP/1.1
//! server (a pool of worker threads, deadlines and limits); [`routes::Gateway`] is its handler;
//! [`providers`] resolve model names and translate dialects; [`upstream`] is the pooled HTTP
//! client. [`start`] runs it all and returns a handle for graceful shutdown.
#![forbid(unsafe_code)]
// `ApiError` is returned by value on the cold path of a request that already costs a network
// round trip; boxing it everywhere would buy nothing measurable.
#![allow(clippy::result_large_err)]

pub mod assembler;
pub mod config;
pub mod error;
pub mod events;
pub mod handlers;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod pricing;
pub mod prometheus;
pub mod providers;
pub mod recorder;
pub mod reply;
pub mod routes;
pub mod trends;
pub mod upstream;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

pub use config::Config;

/// A running gateway.
pub struct Running {
    server: http::Server,
    gateway: Arc<routes::Gateway>,
}

impl Running {
    /// The address it listens on (with the real port when `PORT=0`).
    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Records waiting for the recorder thread now, and the most seen at once.
    pub fn recorder_depth(&self) -> (usize, usize) {
        (
            self.gateway.recorder.depth(),
            self.gateway.recorder.max_depth(),
        )
    }

    /// Graceful shutdown: stop accepting, let requests and streams in flight finish within
    /// `SHUTDOWN_GRACE_SECS`, then write every interaction record and flush the log.
    /// Returns false when the grace period ran out first.
    pub fn shutdown(self) -> bool {
        let clean = self.server.shutdown();
        self.gateway.recorder.stop();
        clean
    }
}

/// Binds the listener and starts serving.
pub fn start(config: Config) -> io::Result<Running> {
    let listener = http::bind(config.listen_addr(), 1024)?;
    let server_config = http::ServerConfig {
        workers: config.workers,
        max_connections: config.max_connections,
        keepalive_idle: config.keepalive_idle,
        header_timeout: config.header_timeout,
        body_timeout: config.body_timeout,
        send_timeout: config.send_timeout,
        max_body_bytes: config.max_request_bytes,
        shutdown_grace: config.shutdown_grace,
        backlog: 1024,
    };
    let gateway = Arc::new(routes::Gateway::new(config)?);
    let server = http::Server::start(listener, server_config, gateway.clone())?;
    Ok(Running { server, gateway })
}
