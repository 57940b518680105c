"""The real OpenAI Python SDK talking to Gemini models through the gateway.

Run by the Rust test `conformance_gemini::openai_python_sdk_drives_gemini_through_the_gateway`,
which starts a mock Gemini playing the fixtures in tests/fixtures/gemini/ and a gateway with
GEMINI_API_BASE pointing at it, and passes the gateway's base URL in GATEWAY_BASE_URL.
"""

import json
import os

import openai
import pytest

BASE_URL = os.environ["GATEWAY_BASE_URL"]
MODEL = "gemini/gemini-2.5-flash"


@pytest.fixture(scope="module")
def client():
    return openai.OpenAI(base_url=BASE_URL, api_key="sk-fake-sdk-test", max_retries=0, timeout=30)


def test_chat_completion_reads_like_openai(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello"}]
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "Hello! How can I help you today?"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens == 4
    assert reply.usage.total_tokens == 13


def test_stream_reassembles_and_ends_with_usage_when_asked(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Why is the sky blue?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The sky is blue because of Rayleigh scattering."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 41


def test_tool_call_comes_back_with_json_arguments(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                        "required": ["city"],
                        "additionalProperties": False,
                    },
                },
            }
        ],
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.id == "call_0"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}


def test_embeddings_keep_order(client):
    # The SDK asks for base64 unless told otherwise, and decodes it.
    result = client.embeddings.create(
        model="gemini/gemini-embedding-001", input=["first", "second", "third"], dimensions=3
    )
    assert [d.index for d in result.data] == [0, 1, 2]
    assert result.data[2].embedding == pytest.approx([-0.7, 0.8, -0.9], rel=1e-6)
