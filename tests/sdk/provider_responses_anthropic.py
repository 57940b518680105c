"""The real OpenAI Python SDK on /v1/responses and /v1/completions translated for Anthropic (a
mock upstream playing tests/fixtures/anthropic): a tool round trip where the tool's output
continues the conversation through `previous_response_id`, a stream, and completions. Run by
tests/it/sdk_responses.rs, which also checks what reached Anthropic.
"""

import json
import os

import openai
import pytest

from openai_schema import validate

BASE_URL = os.environ["GATEWAY_BASE_URL"]
MODEL = "anthropic/claude-sonnet-4-5"
TOOLS = [{
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}]


@pytest.fixture(scope="module")
def client():
    return openai.OpenAI(base_url=BASE_URL, api_key="sk-fake-anthropic-test", max_retries=0, timeout=30)


def test_tool_round_trip_with_function_call_output_and_previous_response_id(client):
    raw = client.responses.with_raw_response.create(
        model=MODEL, input="What is the weather in Paris?", tools=TOOLS
    )
    validate("Response", json.loads(raw.text))
    first = raw.parse()
    call = first.output[0]
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert json.loads(call.arguments)["city"] == "Paris"
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 degrees"}],
        tools=TOOLS,
    )
    assert second.output_text == "Hello! How can I help you today?"
    assert second.previous_response_id == first.id


def test_stream_translates_thinking_and_text(client):
    with client.responses.stream(model=MODEL, input="stream please") as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.reasoning_summary_text.delta" in kinds
    assert final.output_text == "Hello, world!"
    assert final.usage.input_tokens == 25


def test_completions_are_translated(client):
    completion = client.completions.create(model=MODEL, prompt="Say hello")
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "Hello! How can I help you today?"
