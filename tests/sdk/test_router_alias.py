"""The real OpenAI Python SDK calling a config file's alias.

Run by the Rust integration test `routing::the_openai_python_sdk_calls_an_alias_streamed_and_not`,
which starts the gateway with an alias `chat` whose first deployment always answers 503 and
whose second is mock/echo, so every call is retried once, then answered.
"""

import os

import openai
import pytest

BASE_URL = os.environ["GATEWAY_BASE_URL"]


@pytest.fixture(scope="module")
def client():
    return openai.OpenAI(base_url=BASE_URL, api_key="sk-fake-sdk-test", max_retries=0, timeout=30)


def test_an_alias_answers_after_a_retry(client):
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "through the alias"}]
    )
    assert raw.headers["x-gateway-attempts"] == "2"
    reply = raw.parse()
    assert reply.choices[0].message.content == "through the alias"
    assert reply.choices[0].finish_reason == "stop"


def test_an_alias_streams_after_a_retry(client):
    raw = client.chat.completions.with_raw_response.create(
        model="chat",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
    )
    assert raw.headers["x-gateway-attempts"] == "2"
    text = "".join(
        chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices
    )
    assert text == "one two three"
