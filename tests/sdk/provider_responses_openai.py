"""The real OpenAI Python SDK on /v1/responses and /v1/completions relayed to a mock OpenAI
upstream that serves both (OPENAI_RESPONSES_API=true). The relayed bodies are OpenAI's own (its
documented response example has `user: null`, which its schema does not allow), so only the
completion is checked against the schema here; what the gateway builds itself is checked in
test_responses_sdk.py and tests/it/responses_api.rs. Run by tests/it/sdk_responses.rs, which plays OpenAI's documented answers from
tests/fixtures/openai (responses_create.json, responses_stream.sse, completion.json,
completion_stream.sse).
"""

import json
import os

import openai
import pytest

from openai_schema import validate

BASE_URL = os.environ["GATEWAY_BASE_URL"]


@pytest.fixture(scope="module")
def client():
    return openai.OpenAI(base_url=BASE_URL, api_key="sk-fake-relay-test", max_retries=0, timeout=30)


def test_responses_create_is_relayed(client):
    raw = client.responses.with_raw_response.create(
        model="openai/gpt-4o", input="hi", tools=[{"type": "web_search"}]
    )
    response = raw.parse()
    assert response.output_text == "Hello from the Responses API."
    assert response.usage.input_tokens_details.cached_tokens == 128


def test_responses_stream_is_relayed(client):
    with client.responses.stream(model="openai/gpt-4o", input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "Hi there"
    assert final.usage.output_tokens == 2


def test_completions_are_relayed_streamed_and_not(client):
    raw = client.completions.with_raw_response.create(model="openai/gpt-3.5-turbo-instruct", prompt="x")
    validate("CreateCompletionResponse", json.loads(raw.text))
    assert raw.parse().choices[0].text == "\n\nThis is indeed a test"
    chunks = list(
        client.completions.create(model="openai/gpt-3.5-turbo-instruct", prompt="x", stream=True)
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "This is a test"
    assert all(c.usage is None for c in chunks)
