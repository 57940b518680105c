//! LLMCallGateway: a single-binary LLM API gateway. Clients speak the OpenAI HTTP API to it;
//! it forwards each call to the provider that serves the model and relays the answer, JSON or
//! streamed event by event.
//!
//! The shape (see the README's Architecture section): [`http`] is a small synchronous HTTP/1.1
//! server (a pool of worker threads, deadlines and limits); [`gateway::Gateway`] is its handler
//! ([`routes`]), each request an [`exchange`]; the [`router`] turns a model name into a plan of
//! [`providers`] targets, whose dialects translate; [`upstream`] is the pooled HTTP client;
//! the [`recorder`] writes every interaction. [`start`] runs it all and returns a handle for
//! graceful shutdown.
#![forbid(unsafe_code)]
// `ApiError` is returned by value on the cold path of a request that already costs a network
// round trip; boxing it everywhere would buy nothing measurable.
#![allow(clippy::result_large_err)]

pub mod access;
pub mod assembler;
pub mod config;
pub mod error;
pub mod events;
pub mod exchange;
pub mod explorer;
pub mod gateway;
pub mod handlers;
pub mod http;
pub mod ingress;
pub mod logging;
pub mod metrics;
pub mod misspelt;
pub mod pricing;
pub mod prometheus;
pub mod providers;
pub mod recorder;
pub mod rotation;
pub mod router;
pub mod routes;
pub mod store;
pub mod tokens;
pub mod trends;
pub mod upstream;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

pub use config::Config;

/// A running gateway.
pub struct Running {
    server: http::Server,
    gateway: Arc<gateway::Gateway>,
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

    /// The gateway it runs, for reloading its routing table (`Gateway::reload`).
    pub fn gateway(&self) -> Arc<gateway::Gateway> {
        self.gateway.clone()
    }

    /// Graceful shutdown: stop accepting, let requests and streams in flight finish within
    /// `SHUTDOWN_GRACE_SECS`, then write every interaction record and flush the log.
    /// Returns false when the grace period ran out first.
    pub fn shutdown(self) -> bool {
        let clean = self.server.shutdown();
        self.gateway.access.stop();
        self.gateway.recorder.stop();
        clean
    }
}

/// Binds the listener and starts serving.
pub fn start(config: Config) -> io::Result<Running> {
    let (addr, server_config) = (config.listen_addr(), config.server.clone());
    // The gateway first: a configuration it refuses (an unprotected public listener) never
    // binds the port.
    let gateway = Arc::new(gateway::Gateway::new(config)?);
    let listener = match http::bind(addr, server_config.backlog) {
        Ok(listener) => listener,
        Err(e) => {
            gateway.access.stop();
            gateway.recorder.stop();
            return Err(e);
        }
    };
    let server = http::Server::start(listener, server_config, gateway.clone())?;
    let _ = gateway.server.set(server.load());
    Ok(Running { server, gateway })
}
