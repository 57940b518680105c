//! Cached, cache-write and billed tokens give the exact cost, per provider (issue 12): each
//! answer from a fixture written from the provider's public reference, through the gateway
//! over real sockets; the cost in `x-gateway-cost-usd` worked out by hand from the price
//! table, and the cached tokens in the client's `prompt_tokens_details.cached_tokens`.

use serde_json::{json, Value};

use crate::support::client::{post_json, Reply};
use crate::support::gateway::{temp_dir, Gateway};
use crate::support::upstream::{MockUpstream, Script, Step};

/// The mock's root, for the adapters that add their own path (`/v1` and all).
fn root(upstream: &MockUpstream) -> String {
    let base = upstream.base_url();
    base.strip_suffix("/v1").unwrap_or(&base).to_string()
}

fn ask(gw: &Gateway, model: &str) -> Reply {
    let body = json!({"model": model, "max_tokens": 64,
        "messages": [{"role": "user", "content": "Summarise the document."}]});
    let reply = post_json(gw.addr, "/v1/chat/completions", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply
}

/// The cost header is `usd` (micro-dollars worked out by hand / 1e6) and the client's usage
/// reports `cached` cached tokens of `prompt` prompt tokens.
fn assert_cost(reply: &Reply, micro_usd: f64, prompt: u64, cached: u64) {
    let expected = format!("{:.8}", micro_usd / 1e6);
    assert_eq!(reply.header("x-gateway-cost-usd"), Some(expected.as_str()));
    let usage: Value = reply.json()["usage"].clone();
    assert_eq!(usage["prompt_tokens"], prompt, "{usage}");
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"], cached,
        "{usage}"
    );
}

#[test]
fn openai_cached_tokens_are_priced_as_cached() {
    let upstream = MockUpstream::always(Script::fixture(200, "openai/chat_completion_cached.json"));
    let gw = Gateway::in_front_of(&upstream, &[]);
    // gpt-4o: 86 fresh × $2.50 + 1,920 cached × $1.25 + 300 out × $10 per million.
    let reply = ask(&gw, "gpt-4o");
    assert_cost(
        &reply,
        86.0 * 2.5 + 1920.0 * 1.25 + 300.0 * 10.0,
        2006,
        1920,
    );
}

#[test]
fn deepseek_cache_hits_are_cached_tokens_for_the_client_and_the_cost() {
    let upstream = MockUpstream::always(Script::fixture(200, "openai/deepseek_cached.json"));
    let gw = Gateway::start(&[
        ("DEEPSEEK_API_BASE", &upstream.base_url()),
        ("DEEPSEEK_API_KEY", "sk-test-fake-key"),
    ]);
    // deepseek-chat: 400 misses × $0.28 + 600 hits × $0.028 + 100 out × $0.42 per million.
    let reply = ask(&gw, "deepseek/deepseek-chat");
    assert_cost(
        &reply,
        400.0 * 0.28 + 600.0 * 0.028 + 100.0 * 0.42,
        1000,
        600,
    );
    assert_eq!(reply.json()["usage"]["prompt_cache_hit_tokens"], 600);
}

#[test]
fn anthropic_cache_reads_and_5_minute_and_1_hour_writes_have_their_prices() {
    let upstream =
        MockUpstream::always(Script::fixture(200, "anthropic/response_cache_write.json"));
    let gw = Gateway::start(&[
        ("ANTHROPIC_API_BASE", &root(&upstream)),
        ("ANTHROPIC_API_KEY", "sk-ant-test-fake-key"),
    ]);
    // claude-sonnet-4-5 ($3 in, $15 out): 50 fresh × $3 + 1,000 reads × $0.30 (0.1×) +
    // 456 5-minute writes × $3.75 (1.25×) + 100 1-hour writes × $6 (2×) + 25 out × $15.
    let reply = ask(&gw, "anthropic/claude-sonnet-4-5");
    let micro = 50.0 * 3.0 + 1000.0 * 0.3 + 456.0 * 3.75 + 100.0 * 6.0 + 25.0 * 15.0;
    assert_cost(&reply, micro, 1606, 1000);
}

#[test]
fn gemini_cached_content_and_thinking_tokens_have_their_prices() {
    let upstream = MockUpstream::always(Script::fixture(200, "gemini/usage_cached.response.json"));
    let gw = Gateway::start(&[
        ("GEMINI_API_BASE", &root(&upstream)),
        ("GEMINI_API_KEY", "fake-gemini-key"),
    ]);
    // gemini-2.5-flash: 52 fresh × $0.30 + 2,048 cached × $0.075 + (7 + 120 thinking) × $2.50.
    let reply = ask(&gw, "gemini/gemini-2.5-flash");
    assert_cost(
        &reply,
        52.0 * 0.3 + 2048.0 * 0.075 + 127.0 * 2.5,
        2100,
        2048,
    );
    assert_eq!(
        reply.json()["usage"]["completion_tokens_details"]["reasoning_tokens"],
        120
    );
}

#[test]
fn bedrock_cache_reads_and_writes_have_their_prices() {
    let upstream = MockUpstream::always(Script::fixture(200, "bedrock/response_cached.json"));
    let dir = temp_dir("bedrock-prices");
    let prices = dir.join("prices.json");
    let model = "anthropic.claude-3-5-haiku-20241022-v1:0";
    std::fs::write(
        &prices,
        json!({model: {"input": 0.8, "cached_input": 0.08, "output": 4.0}}).to_string(),
    )
    .unwrap();
    let gw = Gateway::start(&[
        ("BEDROCK_API_BASE", &root(&upstream)),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        ),
        ("AWS_REGION", "eu-west-3"),
        ("PRICES_FILE", prices.to_str().unwrap()),
    ]);
    // 20 fresh × $0.80 + 300 reads × $0.08 + 200 writes × $1.00 (1.25×) + 10 out × $4.
    let reply = ask(&gw, &format!("bedrock/{model}"));
    assert_cost(
        &reply,
        20.0 * 0.8 + 300.0 * 0.08 + 200.0 * 1.0 + 10.0 * 4.0,
        520,
        300,
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cohere_cost_comes_from_billed_units_and_cached_tokens_reach_the_client() {
    let upstream = MockUpstream::always(Script::fixture(200, "cohere/response_cached.json"));
    let gw = Gateway::start(&[
        ("COHERE_API_BASE", &root(&upstream)),
        ("COHERE_API_KEY", "fake-cohere-key"),
    ]);
    // command-a-03-2025: 5 billed in × $2.50 + 9 billed out × $10 per million.
    let reply = ask(&gw, "cohere/command-a-03-2025");
    assert_cost(&reply, 5.0 * 2.5 + 9.0 * 10.0, 495, 448);
}

#[test]
fn a_deepseek_streams_cache_hits_reach_the_client_as_cached_tokens() {
    let usage = json!({"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
        "prompt_cache_hit_tokens": 600, "prompt_cache_miss_tokens": 400});
    let chunk = |choices: Value, usage: Value| {
        Step::Event(
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                "model": "deepseek-chat", "choices": choices, "usage": usage})
            .to_string(),
        )
    };
    let upstream = MockUpstream::always(Script::sse(vec![
        chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}]),
            Value::Null,
        ),
        chunk(json!([]), usage),
        Step::Event("[DONE]".into()),
    ]));
    let gw = Gateway::start(&[
        ("DEEPSEEK_API_BASE", &upstream.base_url()),
        ("DEEPSEEK_API_KEY", "sk-test-fake-key"),
    ]);
    let body = json!({"model": "deepseek/deepseek-chat", "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Hi"}]});
    let reply = post_json(gw.addr, "/v1/chat/completions", &body);
    let events = reply.events();
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(
        last["usage"]["prompt_tokens_details"]["cached_tokens"], 600,
        "{last}"
    );
    assert_eq!(last["usage"]["prompt_cache_hit_tokens"], 600);
}
