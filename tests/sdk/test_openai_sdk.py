"""The real OpenAI Python SDK as the client of a running gateway.

Run by the Rust integration test `sdk::openai_python_sdk_drives_the_gateway`, which starts the
gateway on a free port and passes its base URL in GATEWAY_BASE_URL. The built-in mock models
need no key; the SDK still wants one, so a fake one is given.
"""

import base64
import os
import struct

import openai
import pytest

BASE_URL = os.environ["GATEWAY_BASE_URL"]


@pytest.fixture(scope="module")
def client():
    return openai.OpenAI(base_url=BASE_URL, api_key="sk-fake-sdk-test", max_retries=0, timeout=30)


def test_chat_completion_returns_the_echoed_message_and_usage(client):
    reply = client.chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "hello from the SDK 你好"}]
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "hello from the SDK 你好"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == 5
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply._request_id  # the x-request-id header, exposed by the SDK


def test_streamed_chat_reassembles_to_the_same_text(client):
    stream = client.chat.completions.create(
        model="mock/echo",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_stream_with_include_usage_ends_with_a_usage_chunk(client):
    stream = client.chat.completions.create(
        model="mock/lorem",
        messages=[{"role": "user", "content": "4"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 4


def test_max_tokens_cuts_lorem_with_finish_reason_length(client):
    reply = client.chat.completions.create(
        model="mock/lorem", messages=[{"role": "user", "content": "50"}], max_tokens=5
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 5


def test_embeddings_as_floats(client):
    reply = client.embeddings.create(model="mock/embed", input=["alpha", "beta"], dimensions=16)
    assert [d.index for d in reply.data] == [0, 1]
    vector = reply.data[0].embedding
    assert len(vector) == 16
    assert abs(sum(x * x for x in vector) - 1.0) < 1e-4
    assert reply.usage.prompt_tokens == 2


def test_embeddings_as_base64_decode_to_the_same_floats(client):
    floats = client.embeddings.create(
        model="mock/embed", input="same text", dimensions=8, encoding_format="float"
    ).data[0].embedding
    raw = client.embeddings.with_raw_response.create(
        model="mock/embed", input="same text", dimensions=8, encoding_format="base64"
    ).http_response.json()
    decoded = struct.unpack("<8f", base64.b64decode(raw["data"][0]["embedding"]))
    assert decoded == pytest.approx(floats, abs=1e-6)


def test_sdk_default_embeddings_call_works(client):
    # The SDK asks for base64 by default and decodes it itself.
    reply = client.embeddings.create(model="mock/embed", input="default format")
    assert len(reply.data[0].embedding) == 256


def test_models_list_and_retrieve_by_id_with_a_slash(client):
    ids = [m.id for m in client.models.list()]
    assert "mock/echo" in ids and "mock/embed" in ids
    model = client.models.retrieve("mock/echo")
    assert model.id == "mock/echo" and model.object == "model"


def test_unknown_model_raises_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="no-such-provider/none", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.code == "model_not_found"
    assert caught.value.request_id


def test_bad_request_raises_bad_request_naming_the_param(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="mock/echo", messages=[])
    assert caught.value.param == "messages"
