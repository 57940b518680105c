//! The [`Gateway`]: what every handler shares — the configuration, the HTTP clients to
//! providers, the recorder, the calls in flight and the providers' model lists. One instance
//! serves every worker thread.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

use crate::config::Config;
use crate::recorder::Recorder;
use crate::upstream::Agents;

pub struct Gateway {
    pub config: Config,
    pub agents: Agents,
    pub recorder: Recorder,
    pub started: Instant,
    /// API calls being handled now.
    pub in_flight: AtomicUsize,
    /// The providers' model lists for `/v1/models`, by provider name.
    pub model_lists: Mutex<HashMap<&'static str, ModelList>>,
}

/// One provider's model list as `/v1/models` shows it, and when to ask again.
pub struct ModelList {
    pub expires: Instant,
    pub models: Vec<Value>,
}

impl Gateway {
    pub fn new(config: Config) -> std::io::Result<Self> {
        Ok(Gateway {
            agents: Agents::new(config.upstream_connect_timeout, config.upstream_timeout),
            recorder: Recorder::start(&config)?,
            config,
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            model_lists: Mutex::default(),
        })
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
