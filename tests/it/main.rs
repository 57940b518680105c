mod support;

mod gateway_errors;
mod gateway_headers;
mod gateway_limits;
mod gateway_mock_models;
mod gateway_relay;
mod gateway_schema;
mod interaction_logs;
mod sdk;
