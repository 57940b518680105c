//! The OpenAI Python SDK with gateway keys (`tests/sdk/test_openai_sdk_keys.py`): a key works,
//! and each refusal reaches the SDK as its own exception, retried or not as the SDK decides
//! from the gateway's headers (`x-should-retry: false` for a spent budget, `retry-after` for
//! a rate limit).

use serde_json::json;

use crate::access::{generate, priced_mock, ADMIN};
use crate::sdk::{pytest_with, python_or_skip};
use crate::support::gateway::Gateway;

#[test]
fn openai_sdk_with_a_gateway_key_and_its_refusals() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let prices = priced_mock();
    let gw = Gateway::start(&[
        ("ADMIN_API_KEY", ADMIN),
        ("PRICES_FILE", prices.to_str().unwrap()),
    ]);
    let plain = generate(&gw, json!({"rpm_limit": 1000}));
    let narrow = generate(&gw, json!({"models": ["mock/echo"]}));
    let budget = generate(&gw, json!({"max_budget": 0.05}));
    let rpm = generate(&gw, json!({"rpm_limit": 1}));
    pytest_with(
        python,
        gw.addr,
        &["tests/sdk/test_openai_sdk_keys.py"],
        &[
            ("KEY_PLAIN", &plain),
            ("KEY_NARROW", &narrow),
            ("KEY_BUDGET", &budget),
            ("KEY_RPM", &rpm),
        ],
    );
    let _ = std::fs::remove_dir_all(prices.parent().unwrap());
}
