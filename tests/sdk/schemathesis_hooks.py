"""Schemathesis hooks for the API fuzzing run (tests/it/api_fuzz.rs).

Generated bodies name random models, which the gateway answers with 404 before reading
anything else. Half of the generated JSON objects get one of the built-in mock models instead
(chosen from the body's own hash, so a run with a fixed seed is repeatable), so the fuzzing
also reaches the validation and answers behind the model lookup. The other half keep their
random model, and non-object bodies are left alone.
"""

import hashlib
import json

import schemathesis

MOCK_MODELS = {
    "/v1/chat/completions": ["mock/echo", "mock/lorem"],
    "/v1/completions": ["mock/echo", "mock/lorem"],
    "/v1/responses": ["mock/echo", "mock/lorem"],
    "/v1/embeddings": ["mock/embed"],
    "/v1/messages": ["mock/echo", "mock/lorem"],
    "/v1/messages/count_tokens": ["mock/echo"],
}


@schemathesis.hook
def map_body(ctx, body):
    models = MOCK_MODELS.get(ctx.operation.path)
    if not models or not isinstance(body, dict):
        return body
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).digest()
    if digest[0] % 2 == 0:
        body = dict(body)
        body["model"] = models[digest[1] % len(models)]
    return body
