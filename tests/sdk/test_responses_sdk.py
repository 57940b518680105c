"""The real OpenAI Python SDK on the Responses API and legacy completions, against the mock
models; every body and every stream event is also validated against the OpenAI schemas the
gateway serves in its /openapi.json (copied from OpenAI's own description).

Run by the Rust integration test `sdk::openai_python_sdk_drives_the_gateway`.
"""

import json
import os
import urllib.request

import openai
import pytest

from openai_schema import validate

BASE_URL = os.environ["GATEWAY_BASE_URL"]


def get_json(path):
    with urllib.request.urlopen(f"{BASE_URL}{path}", timeout=30) as r:
        return json.loads(r.read())


def raw_events(body):
    """Posts a streamed request; returns (event name, parsed data) of every event."""
    events = []
    request = urllib.request.Request(
        f"{BASE_URL}{body.pop('_path')}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        assert r.status == 200
        name = None
        for line in (raw.decode().rstrip("\n") for raw in r):
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data = line[len("data: "):]
                events.append((name, None if data == "[DONE]" else json.loads(data)))
                name = None
    return events


@pytest.fixture(scope="module")
def client():
    return openai.OpenAI(base_url=BASE_URL, api_key="sk-fake-sdk-test", max_retries=0, timeout=30)


def test_responses_create_returns_the_text_and_usage(client):
    raw = client.responses.with_raw_response.create(
        model="mock/echo", input="hello responses", instructions="be brief"
    )
    validate("Response", json.loads(raw.text))
    response = raw.parse()
    assert response.output_text == "hello responses"
    assert response.status == "completed"
    assert response.usage.output_tokens == 2
    assert response.usage.total_tokens == response.usage.input_tokens + 2


def test_responses_stream_events_are_in_order_and_valid(client):
    events = raw_events({"_path": "/responses", "model": "mock/lorem", "input": "4", "stream": True})
    for i, (name, data) in enumerate(events):
        assert data["type"] == name
        assert data["sequence_number"] == i
        validate("ResponseStreamEvent", data)
    assert events[0][0] == "response.created"
    assert events[-1][0] == "response.completed"
    assert events[-1][1]["response"]["usage"]["output_tokens"] == 4

    with client.responses.stream(model="mock/lorem", input="3") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text
    assert final.usage.output_tokens == 3


def test_function_call_output_items_are_accepted_as_a_tool_round_trip(client):
    response = client.responses.create(
        model="mock/echo",
        input=[
            {"role": "user", "content": "weather in Paris?"},
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"role": "user", "content": "thanks"},
        ],
        tools=[{"type": "function", "name": "weather", "parameters": {"type": "object"}}],
    )
    assert response.output_text == "thanks"
    assert response.tools[0].name == "weather"


def test_previous_response_id_retrieve_input_items_and_delete(client):
    first = client.responses.create(model="mock/echo", input="remember ostrich")
    second = client.responses.create(
        model="mock/lorem", input="2", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert second.usage.input_tokens > first.usage.input_tokens
    again = client.responses.retrieve(first.id)
    assert again.output_text == "remember ostrich"
    items = client.responses.input_items.list(first.id)
    assert items.data[0].content[0].text == "remember ostrich"
    validate("ResponseItemList", get_json(f"/responses/{first.id}/input_items"))
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_a_built_in_tool_on_a_translated_model_is_a_400_naming_it(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="mock/echo", input="x", tools=[{"type": "web_search"}])
    assert e.value.body["param"] == "tools[0].type"


def test_completions_create_returns_text_completions(client):
    raw = client.completions.with_raw_response.create(model="mock/echo", prompt="say this", max_tokens=5)
    validate("CreateCompletionResponse", json.loads(raw.text))
    completion = raw.parse()
    assert completion.choices[0].text == "say this"
    assert completion.usage.completion_tokens == 2


def test_streamed_completions_are_valid_chunks_ending_with_usage(client):
    events = raw_events({
        "_path": "/completions", "model": "mock/lorem", "prompt": "3", "stream": True,
        "stream_options": {"include_usage": True},
    })
    assert events[-1][1] is None
    for _, chunk in events[:-1]:
        validate("CreateCompletionChunk", chunk)
    stream = client.completions.create(model="mock/lorem", prompt="3", stream=True)
    text = "".join(c.choices[0].text for c in stream if c.choices)
    assert len(text.split()) == 3
