//! The one integration-test binary. Shared helpers live in `support/`; each capability has
//! its own module.

mod support;

mod access;
mod access_redis;
mod access_sdk;
mod anthropic_ingress;
mod api_docs;
mod api_fuzz;
mod chat_params;
mod cli;
mod conformance_anthropic;
mod conformance_bedrock;
mod conformance_cohere;
mod conformance_compat;
mod conformance_gemini;
mod dashboard;
mod estimated_usage;
mod exact_cost;
mod examples;
mod gateway_errors;
mod gateway_headers;
mod gateway_limits;
mod gateway_mock_models;
mod gateway_relay;
mod gateway_schema;
mod hostile_bodies;
mod http_layer;
mod interaction_logs;
mod metrics;
mod module_graph;
mod props;
mod readmes;
mod record_truth;
mod refusal_records;
mod routing;
mod routing_faults;
mod sdk;
mod sdk_anthropic;
mod sdk_relay;
mod store;
