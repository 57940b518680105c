#!/usr/bin/env python3
"""Calls a running LLMCallGateway with the OpenAI Python SDK: chat, a stream, embeddings (one
text and a batch), the model list, and the gateway's metrics. By default it uses the built-in
mock models, so it needs no API key:

    pip install openai
    python examples/client.py                                   # http://127.0.0.1:8728/v1
    python examples/client.py --base-url http://gw.internal:8728/v1 --chat-model gpt-4o-mini \
        --embedding-model text-embedding-3-small

GATEWAY_BASE_URL sets the base URL too. Exits 1 when any call fails.
"""

import argparse
import json
import os
import sys
import time
import urllib.request

from openai import OpenAI


def chat(client, model):
    start = time.monotonic()
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "周树人和鲁迅是兄弟吗？请简短回答。"}],
    )
    print(f"chat ({time.monotonic() - start:.3f}s, request id {reply._request_id}):")
    print(f"  answer: {reply.choices[0].message.content}")
    print(f"  model: {reply.model}, tokens: {reply.usage.total_tokens if reply.usage else 'n/a'}")


def stream(client, model):
    print("stream: ", end="", flush=True)
    chunks = 0
    for chunk in client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "12"}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            chunks += 1
            print(chunk.choices[0].delta.content, end="", flush=True)
        if chunk.usage:
            print(f"\n  {chunks} content chunks, tokens: {chunk.usage.total_tokens}")


def embeddings(client, model):
    one = client.embeddings.create(model=model, input="Hello, world! This is a test.")
    print(f"embedding: {len(one.data[0].embedding)} dimensions, tokens: {one.usage.total_tokens}")
    texts = ["第一段文本：人工智能的发展", "第二段文本：自然语言处理技术"]
    batch = client.embeddings.create(model=model, input=texts)
    for item in batch.data:
        print(f"batch embedding {item.index}: {len(item.embedding)} dimensions")


def models(client):
    print("models:", ", ".join(m.id for m in client.models.list()))


def metrics(base_url):
    root = base_url.rstrip("/").removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/metrics", timeout=10) as response:
        figures = json.load(response)
    totals = figures["totals"]
    print(
        f"metrics: {totals['requests']} requests, success rate {totals['success_rate']}, "
        f"{totals['tokens']['total']} tokens, cost ${totals['cost_usd']}, "
        f"gateway {figures['version']} up {figures['uptime_seconds']}s"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-url",
        default=os.environ.get("GATEWAY_BASE_URL", "http://127.0.0.1:8728/v1"),
        help="the gateway's OpenAI base URL (env GATEWAY_BASE_URL)",
    )
    parser.add_argument("--chat-model", default="mock/echo")
    parser.add_argument("--stream-model", default="mock/lorem")
    parser.add_argument("--embedding-model", default="mock/embed")
    args = parser.parse_args()

    # The gateway holds the provider keys; the SDK insists on a key, so send a placeholder.
    client = OpenAI(
        base_url=args.base_url, api_key=os.environ.get("GATEWAY_API_KEY", "unused"), timeout=30.0
    )
    steps = [
        ("chat", lambda: chat(client, args.chat_model)),
        ("stream", lambda: stream(client, args.stream_model)),
        ("embeddings", lambda: embeddings(client, args.embedding_model)),
        ("models", lambda: models(client)),
        ("metrics", lambda: metrics(args.base_url)),
    ]
    failed = []
    for name, step in steps:
        try:
            step()
        except Exception as error:  # report every failing step, not just the first
            print(f"\n{name} FAILED: {error}", file=sys.stderr)
            failed.append(name)
    print("all calls succeeded" if not failed else f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
