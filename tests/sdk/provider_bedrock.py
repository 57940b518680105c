"""The real OpenAI Python SDK, unchanged, talking to an AWS Bedrock model through the gateway.

Run by the Rust integration test `conformance_bedrock::openai_python_sdk_through_bedrock`,
which starts a mock Bedrock Runtime playing the fixtures in tests/fixtures/bedrock/ (streams
as binary event-stream messages) and a gateway in front of it, and passes the gateway's base
URL in GATEWAY_BASE_URL.
"""

import json
import os

import openai
import pytest

BASE_URL = os.environ["GATEWAY_BASE_URL"]
MODEL = "bedrock/anthropic.claude-3-5-haiku-20241022-v1:0"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def client():
    return openai.OpenAI(base_url=BASE_URL, api_key="sk-fake-sdk-test", max_retries=0, timeout=30)


def test_chat_through_bedrock_reads_like_openai(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello"}]
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "Hello! How can I help you today?"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_stream_through_bedrock_reassembles_text_and_usage(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! How can I help you today?"
    assert len({c.id for c in chunks}) == 1
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 19


def test_tool_call_through_bedrock_streamed_and_not(client):
    kwargs = dict(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER],
    )
    reply = client.chat.completions.create(**kwargs)
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}

    arguments, names = "", []
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            assert delta.index == 0
            if delta.function.name:
                names.append(delta.function.name)
            arguments += delta.function.arguments or ""
    assert names == ["get_weather"]
    assert json.loads(arguments) == json.loads(call.function.arguments)


def test_titan_embeddings_through_bedrock(client):
    reply = client.embeddings.create(
        model="bedrock/amazon.titan-embed-text-v2:0", input=["hello", "world"]
    )
    assert [d.index for d in reply.data] == [0, 1]
    assert reply.data[0].embedding == [0.125, -0.5, 0.25, 1.0]
