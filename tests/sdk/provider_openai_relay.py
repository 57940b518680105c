"""The real OpenAI Python SDK through the gateway's OpenAI-dialect relay to a mock provider
(an OpenAI-compatible vendor, Azure, or the default upstream), as `GATEWAY_MODEL` names it.

Run by tests/it/sdk_relay.rs, which plays OpenAI's documented answers from tests/fixtures/openai:
a chat completion ("The image shows a wooden boardwalk…") and a stream ("Hello there!").
"""

import os

import openai
import pytest

BASE_URL = os.environ["GATEWAY_BASE_URL"]
MODEL = os.environ["GATEWAY_MODEL"]


@pytest.fixture(scope="module")
def client():
    return openai.OpenAI(base_url=BASE_URL, api_key="sk-fake-relay-test", max_retries=0, timeout=30)


def test_chat_is_relayed_with_usage(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is in this image?"}]
    )
    assert reply.choices[0].message.content.startswith("The image shows a wooden boardwalk")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens == 1117
    assert reply._request_id


def test_stream_is_relayed_without_the_unrequested_usage_chunk(client):
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there!"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_stream_with_include_usage_gets_the_usage_chunk(client):
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens == 12
