//! The [`Gateway`]: what every handler shares — the configuration, the HTTP clients to
//! providers, the recorder, the calls in flight and the providers' model lists. One instance
//! serves every worker thread.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use serde_json::Value;

use crate::access::Access;
use crate::config::Config;
use crate::http;
use crate::recorder::Recorder;
use crate::router::{FileError, Routing};
use crate::store::Store;
use crate::upstream::Agents;

pub struct Gateway {
    pub config: Config,
    pub agents: Agents,
    pub recorder: Recorder,
    /// Keys, limits, spend and stored responses: embedded, or Redis when `REDIS_URL` is set.
    pub store: Store,
    /// Gateway keys, their limits and spend.
    pub access: Arc<Access>,
    pub started: Instant,
    /// API calls being handled now.
    pub in_flight: AtomicUsize,
    /// The providers' model lists for `/v1/models`, by provider name.
    pub model_lists: Mutex<HashMap<&'static str, ModelList>>,
    /// The HTTP server's connections and workers, for the metrics (set once it runs).
    pub server: OnceLock<http::Load>,
    /// The routing table, swapped whole on reload: a request takes one `Arc` and keeps it.
    routing: RwLock<Arc<Routing>>,
}

/// One provider's model list as `/v1/models` shows it, and when to ask again.
pub struct ModelList {
    pub expires: Instant,
    pub models: Vec<Value>,
}

impl Gateway {
    pub fn new(config: Config) -> std::io::Result<Self> {
        let (routing, warnings) = Routing::load(&config)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        for warning in warnings {
            log::warn!("{warning}");
        }
        let store = Store::open(&config.data_dir, config.redis_url.as_deref())
            .map_err(std::io::Error::other)?;
        let access = Access::new(&config, store.clone()).map_err(std::io::Error::other)?;
        crate::access::keys::refuse_unauthenticated(&config, &access)
            .map_err(std::io::Error::other)?;
        Ok(Gateway {
            store,
            access,
            routing: RwLock::new(Arc::new(routing)),
            agents: Agents::new(config.upstream_connect_timeout, config.upstream_timeout),
            recorder: Recorder::start(&config)?,
            config,
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            model_lists: Mutex::default(),
            server: OnceLock::new(),
        })
    }

    /// The routing table now.
    pub fn routing(&self) -> Arc<Routing> {
        self.routing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the config file again and, when it is valid, swaps the routing table in: new
    /// requests see the new table, requests in flight finish on theirs. Retry and fallback
    /// counts carry over; deployments' health starts afresh.
    pub fn reload(&self) -> Result<(), FileError> {
        let (mut routing, warnings) = Routing::load(&self.config)?;
        for warning in warnings {
            log::warn!("{warning}");
        }
        routing.counters = self.routing().counters.clone();
        *self.routing.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(routing);
        Ok(())
    }

    /// The value of `access-control-allow-origin` for a request's `Origin`, if it is allowed.
    pub fn allowed_origin<'o>(&'o self, origin: &'o str) -> Option<&'o str> {
        let origins = &self.config.cors_allow_origins;
        if origins.iter().any(|o| o == "*") {
            Some("*")
        } else {
            origins.iter().any(|o| o == origin).then_some(origin)
        }
    }
}
