"""The real OpenAI Python SDK with gateway keys: what it does on each refusal.

Run by the Rust integration test `access_sdk::openai_sdk_with_a_gateway_key_and_its_refusals`,
which starts a gateway with an admin key, makes the keys below through /key/generate and passes
them in the environment (all fake, made for this run). The SDK's retry sleeps are recorded,
not slept, so its retry decisions show without waiting for them.
"""

import os

import openai
import pytest
from openai import _base_client

BASE_URL = os.environ["GATEWAY_BASE_URL"]
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def sleeps(monkeypatch):
    slept = []
    monkeypatch.setattr(_base_client.time, "sleep", slept.append)
    return slept


def client(key, retries=0):
    return openai.OpenAI(base_url=BASE_URL, api_key=key, max_retries=retries, timeout=30)


def test_a_gateway_key_works_and_its_limits_show_in_the_headers():
    raw = client(os.environ["KEY_PLAIN"]).chat.completions.with_raw_response.create(
        model="mock/echo", messages=HELLO
    )
    assert raw.parse().choices[0].message.content == "hello"
    assert raw.headers["x-ratelimit-limit-requests"] == "1000"
    assert int(raw.headers["x-ratelimit-remaining-requests"]) < 1000


def test_an_unknown_key_is_an_authentication_error_and_is_not_retried(sleeps):
    with pytest.raises(openai.AuthenticationError) as e:
        client("sk-gw-test-fake-not-a-key-000000000", retries=2).chat.completions.create(
            model="mock/echo", messages=HELLO
        )
    assert e.value.status_code == 401
    assert e.value.code == "invalid_api_key"
    assert sleeps == []


def test_a_model_outside_the_list_is_permission_denied_naming_it():
    with pytest.raises(openai.PermissionDeniedError) as e:
        client(os.environ["KEY_NARROW"]).chat.completions.create(model="mock/lorem", messages=HELLO)
    assert e.value.status_code == 403
    assert "mock/lorem" in e.value.message


def test_a_spent_budget_is_insufficient_quota_and_the_sdk_does_not_retry_it(sleeps):
    spent = client(os.environ["KEY_BUDGET"], retries=2)
    with pytest.raises(openai.RateLimitError) as e:
        for _ in range(50):
            spent.chat.completions.create(model="mock/echo", messages=HELLO)
    assert e.value.code == "insufficient_quota"
    assert e.value.type == "insufficient_quota"
    assert sleeps == [], "x-should-retry: false stops the SDK's retries"


def test_over_the_rpm_limit_the_sdk_retries_after_the_retry_after_it_was_given(sleeps):
    limited = client(os.environ["KEY_RPM"], retries=2)
    limited.chat.completions.create(model="mock/echo", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as e:
        limited.chat.completions.create(model="mock/echo", messages=HELLO)
    assert e.value.code == "rate_limit_exceeded"
    retry_after = int(e.value.response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    # Two retries, each after the gateway's retry-after (the window had not moved: the sleeps
    # were recorded, not slept).
    assert len(sleeps) == 2
    assert all(abs(s - retry_after) <= 1 for s in sleeps), sleeps
