"""The official Anthropic Python SDK against the gateway's Messages API (issue 14).

Run by tests/it/sdk_anthropic.rs, which starts a gateway with the built-in models, a mock
Anthropic (claude-* names, passed through byte for byte) and a mock OpenAI-compatible provider
(gpt-* names, translated). Message texts steer the mocks: "rate-limit" and "bad-key" make
them answer 429 and 401.
"""

import os

import anthropic
import pytest

BASE_URL = os.environ["GATEWAY_BASE_URL"].removesuffix("/v1")
MOCK = "mock/echo"
ANTHROPIC = "claude-sonnet-4-5"
TRANSLATED = "gpt-4o-mini"
WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}


@pytest.fixture
def client():
    # An obviously fake key: the gateway never forwards the client's key.
    return anthropic.Anthropic(base_url=BASE_URL, api_key="sk-ant-client-fake", max_retries=0)


def user(text):
    return [{"role": "user", "content": text}]


def test_create_answers_with_a_message_from_a_mock_model(client):
    message = client.messages.create(model=MOCK, max_tokens=32, messages=user("hello gateway"))
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == "hello gateway"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 2 and message.usage.input_tokens > 0


def test_bearer_tokens_are_accepted_like_api_keys():
    bearer = anthropic.Anthropic(base_url=BASE_URL, auth_token="fake-bearer", max_retries=0)
    message = bearer.messages.create(model=MOCK, max_tokens=8, messages=user("ok"))
    assert message.content[0].text == "ok"


@pytest.mark.parametrize("model", [MOCK, ANTHROPIC, TRANSLATED])
def test_stream_delivers_text_deltas_and_a_final_message(client, model):
    with client.messages.stream(model=model, max_tokens=64, messages=user("hello world")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and next(b for b in final.content if b.type == "text").text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", [ANTHROPIC, TRANSLATED])
def test_stream_delivers_tool_use_with_streamed_input_json(client, model):
    kinds = []
    with client.messages.stream(
        model=model, max_tokens=256, tools=[WEATHER], messages=user("Weather in Paris?")
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                kinds.append(event.delta.type)
        final = stream.get_final_message()
    assert "input_json_delta" in kinds
    tool = next(b for b in final.content if b.type == "tool_use")
    assert isinstance(tool.input, dict) and tool.input
    assert final.stop_reason == "tool_use"


@pytest.mark.parametrize("model", [ANTHROPIC, TRANSLATED])
def test_a_tool_round_trip_sends_results_back_including_errors(client, model):
    first = client.messages.create(
        model=model, max_tokens=256, tools=[WEATHER], messages=user("Weather in Paris?")
    )
    tool = next(b for b in first.content if b.type == "tool_use")
    results = [{"type": "tool_result", "tool_use_id": tool.id, "content": "15 degrees"}]
    failed = [{"type": "tool_result", "tool_use_id": tool.id, "content": "timeout", "is_error": True}]
    for content in (results, failed):
        messages = user("Weather in Paris?") + [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {"role": "user", "content": content},
        ]
        second = client.messages.create(model=model, max_tokens=256, tools=[WEATHER], messages=messages)
        assert second.type == "message" and second.content


def test_count_tokens_from_anthropic_and_estimated_for_others(client):
    counted = client.messages.count_tokens(model=ANTHROPIC, messages=user("hello"))
    assert counted.input_tokens == 2095
    raw = client.messages.with_raw_response.count_tokens(model=MOCK, messages=user("Hello, world!"))
    assert raw.headers.get("x-gateway-usage") == "estimated"
    assert raw.parse().input_tokens == 11


@pytest.mark.parametrize("model", [ANTHROPIC, TRANSLATED])
def test_provider_errors_raise_the_sdks_exceptions(client, model):
    with pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model=model, max_tokens=16, messages=user("rate-limit"))
    assert e.value.status_code == 429
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model=model, max_tokens=16, messages=user("bad-key"))


def test_invalid_requests_raise_bad_request_error(client):
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=MOCK, max_tokens=0, messages=user("x"))
    assert e.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=MOCK, max_tokens=5, messages=[{"role": "system", "content": "x"}])


def test_models_list_in_anthropics_shape(client):
    ids = [m.id for m in client.models.list()]
    assert MOCK in ids
