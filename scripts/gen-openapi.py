#!/usr/bin/env python3
"""Writes src/handlers/openapi.json, the OpenAPI 3.1 description the gateway serves at
/openapi.json.

The paths are this gateway's own (written here, and in scripts/openapi-gateway.json, which is
laid over the result); the OpenAI request and response schemas are
copied from the official OpenAI description, with everything they reference, so they agree with
what the SDKs expect. Trimmed: vendor extensions (x-oaiMeta, x-stainless-*, ...) and null defaults are dropped, and
the long enum of OpenAI model names becomes a plain string (the gateway takes any
"provider/model" name).

    python3 scripts/gen-openapi.py path/to/openai/openapi.yaml > src/handlers/openapi.json

Needs PyYAML. Run it again when the routes, the headers, scripts/openapi-gateway.json or the
OpenAI description change; tests/it/api_docs.rs checks the result against the router.
"""

import json
import re
import sys

import yaml

OPENAI_SCHEMAS = [
    "CreateChatCompletionRequest",
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "CreateEmbeddingRequest",
    "CreateEmbeddingResponse",
    "Model",
    "ListModelsResponse",
    "ErrorResponse",
    "CreateCompletionRequest",
    "CreateCompletionResponse",
    "CreateResponse",
    "Response",
    "ResponseStreamEvent",
    "ResponseItemList",
]


def version():
    with open("Cargo.toml") as f:
        return re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)


def strip_extensions(node):
    """Drops vendor extensions, and `default: null` (OpenAI puts it on schemas whose type
    does not allow null, which a validator rejects)."""
    if isinstance(node, dict):
        return {
            k: strip_extensions(v)
            for k, v in node.items()
            if not k.startswith("x-") and not (k == "default" and v is None)
        }
    if isinstance(node, list):
        return [strip_extensions(v) for v in node]
    return node


def recursion_as_ref(node, name):
    """Draft 2019-09's `$recursiveAnchor`/`$recursiveRef: "#"` (OpenAI's `CompoundFilter`),
    which OpenAPI 3.1's dialect rejects, as a plain `$ref` to the schema itself."""
    if isinstance(node, dict):
        if node.get("$recursiveRef") == "#":
            rest = {k: v for k, v in node.items() if k != "$recursiveRef"}
            return {**recursion_as_ref(rest, name), "$ref": f"#/components/schemas/{name}"}
        return {
            k: recursion_as_ref(v, name) for k, v in node.items() if k != "$recursiveAnchor"
        }
    if isinstance(node, list):
        return [recursion_as_ref(v, name) for v in node]
    return node


def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v.rsplit("/", 1)[-1]
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def openai_schemas(path):
    with open(path) as f:
        schemas = yaml.safe_load(f)["components"]["schemas"]
    schemas = dict(schemas)
    schemas["ModelIdsShared"] = {
        "type": "string",
        "description": "A model the gateway serves: `provider/model` (e.g. `openai/gpt-4o-mini`, "
        "`anthropic/claude-sonnet-4-5`, `mock/echo`), or a bare model name the gateway "
        "resolves. `GET /v1/models` lists them.",
        "example": "mock/echo",
    }
    # OpenAI's schema has only the array, but with `encoding_format: "base64"` the API (and
    # the gateway) answer a base64 string of little-endian float32s (schemathesis found it).
    embedding = dict(schemas["Embedding"])
    embedding["properties"] = dict(embedding["properties"])
    embedding["properties"]["embedding"] = {
        "oneOf": [
            embedding["properties"]["embedding"],
            {"type": "string", "description": "With `encoding_format: \"base64\"`: the "
             "vector as little-endian float32s, base64-encoded."},
        ]
    }
    schemas["Embedding"] = embedding
    out, todo = {}, list(OPENAI_SCHEMAS)
    while todo:
        name = todo.pop()
        if name not in out:
            out[name] = recursion_as_ref(strip_extensions(schemas[name]), name)
            todo.extend(refs(out[name]))
    return dict(sorted(out.items()))


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def header(name):
    return {"$ref": f"#/components/headers/{name}"}


COMMON_HEADERS = {"x-request-id": header("RequestId")}
API_HEADERS = {
    "x-request-id": header("RequestId"),
    "x-gateway-overhead-ms": header("GatewayOverheadMs"),
    "x-gateway-cost-usd": header("GatewayCostUsd"),
}


def error(status):
    return {"$ref": f"#/components/responses/{status}"}


def errors(*statuses):
    return {str(s): error(s) for s in statuses}


def ok_json(description, schema, headers=COMMON_HEADERS):
    return {
        "description": description,
        "headers": headers,
        "content": {"application/json": {"schema": schema}},
    }


def static(content_type, description):
    return {
        "200": {
            "description": description,
            "headers": COMMON_HEADERS,
            "content": {content_type: {"schema": {"type": "string"}}},
        }
    }


def get(op_id, tag, summary, responses, description=None, parameters=None):
    op = {"operationId": op_id, "tags": [tag], "summary": summary}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    op["responses"] = responses
    return {"get": op}


ERRORS = {
    400: "The request is malformed: not JSON, a missing or invalid parameter, a bad header.",
    401: "The provider refused the credentials (relayed from the provider).",
    404: "Unknown URL, unknown model, or (metrics routes) metrics turned off.",
    405: "The method is not allowed on this path; `allow` names the one that is.",
    413: "The request body is larger than the gateway accepts.",
    429: "Rate limited by the provider (relayed, with its retry headers).",
    500: "An internal error in the gateway, or the provider's (relayed).",
    502: "The provider could not be reached or answered with something unusable.",
    503: "The gateway is at its connection limit, the provider is overloaded, or the response "
    "store is unavailable.",
    504: "The provider did not answer in time.",
}

METRICS_DISABLED = "404: metrics are turned off (`METRICS=false`)."

ANTHROPIC_HEADERS = [
    {
        "in": "header",
        "name": "anthropic-version",
        "required": False,
        "description": "Anthropic's API version; passed on to Anthropic (default `2023-06-01`).",
        "schema": {"type": "string", "example": "2023-06-01"},
    },
    {
        "in": "header",
        "name": "anthropic-beta",
        "required": False,
        "description": "Anthropic beta features; passed on to Anthropic.",
        "schema": {"type": "string"},
    },
]

# The headers and body every Messages route takes.
ANTHROPIC_REQUEST = {
    "parameters": ANTHROPIC_HEADERS,
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ref("AnthropicMessageRequest")}},
    },
}


def anthropic_errors(*statuses):
    return {
        str(s): {
            "description": ERRORS.get(s, "Overloaded (a provider's 503, Anthropic's 529)."),
            "headers": COMMON_HEADERS,
            "content": {"application/json": {"schema": ref("AnthropicError")}},
        }
        for s in statuses
    }

RESPONSE_ID = {
    "in": "path",
    "name": "response_id",
    "required": True,
    "description": "The id of a response created with `store` (the default).",
    "schema": {"type": "string", "example": "resp_0123456789abcdef0123456789abcdef"},
}

PATHS = {
    "/v1/chat/completions": {
        "post": {
            "operationId": "createChatCompletion",
            "tags": ["OpenAI API"],
            "summary": "Create a chat completion",
            "description": "Forwards the request to the provider that serves `model`, translating "
            "where the provider speaks another dialect. With `stream: true` the answer is "
            "server-sent events, one `chat.completion.chunk` per `data:` line, ended by "
            "`data: [DONE]`.",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("CreateChatCompletionRequest")}},
            },
            "responses": {
                "200": {
                    "description": "The completion (JSON), or a stream of chunks (SSE).",
                    "headers": API_HEADERS,
                    "content": {
                        "application/json": {"schema": ref("CreateChatCompletionResponse")},
                        "text/event-stream": {
                            "schema": ref("CreateChatCompletionStreamResponse")
                        },
                    },
                },
                **errors(400, 401, 404, 405, 413, 429, 500, 502, 503, 504),
            },
        }
    },
    "/v1/completions": {
        "post": {
            "operationId": "createCompletion",
            "tags": ["OpenAI API"],
            "summary": "Create a completion (legacy)",
            "description": "OpenAI's legacy completions, for clients that default to it "
            "(LlamaIndex's `OpenAILike`, the AI SDK's `.completion()`). Providers that serve "
            "`/completions` (OpenAI, Azure, most OpenAI-compatible servers) get the body as it "
            "came; chat-only providers (Anthropic, Gemini, Cohere, Bedrock, the mock models) get "
            "the prompt as one user message, and the answer comes back as `text_completion`s. "
            "For those, `suffix`, `logprobs`, `best_of` above 1, several prompts and token-id "
            "prompts are a 400 naming the parameter. With `stream: true`: `text_completion` "
            "chunks, then `data: [DONE]`.",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("CreateCompletionRequest")}},
            },
            "responses": {
                "200": {
                    "description": "The completion (JSON), or a stream of chunks (SSE).",
                    "headers": API_HEADERS,
                    "content": {
                        "application/json": {"schema": ref("CreateCompletionResponse")},
                        "text/event-stream": {"schema": ref("CreateCompletionResponse")},
                    },
                },
                **errors(400, 401, 404, 405, 413, 429, 500, 502, 503, 504),
            },
        }
    },
    "/v1/responses": {
        "post": {
            "operationId": "createResponse",
            "tags": ["OpenAI API"],
            "summary": "Create a response (Responses API)",
            "description": "OpenAI's Responses API for every model. OpenAI (at api.openai.com, "
            "or with `OPENAI_RESPONSES_API=true`) and Azure get the body as it came; any other "
            "provider gets it translated to chat (function tools, `text.format`, "
            "`reasoning.effort`, images and files) and its answer back as a `response` object; "
            "built-in tools are a 400 naming them there. With `stream: true` the answer is the "
            "documented named events, each with its `sequence_number`, ended by "
            "`response.completed` (or `response.incomplete`/`response.failed`) carrying the "
            "usage. With `store` (default true) the response is kept for "
            "`RESPONSES_RETENTION_DAYS` (in Redis with `REDIS_URL`), so `previous_response_id` "
            "continues it on any instance.",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("CreateResponse")}},
            },
            "responses": {
                "200": {
                    "description": "The response (JSON), or a stream of events (SSE).",
                    "headers": API_HEADERS,
                    "content": {
                        "application/json": {"schema": ref("Response")},
                        "text/event-stream": {"schema": ref("ResponseStreamEvent")},
                    },
                },
                **errors(400, 401, 404, 405, 413, 429, 500, 502, 503, 504),
            },
        }
    },
    "/v1/responses/{response_id}": {
        **get(
            "getResponse",
            "OpenAI API",
            "Retrieve a stored response",
            {"200": ok_json("The response.", ref("Response")), **errors(404, 503)},
            parameters=[RESPONSE_ID],
        ),
        "delete": {
            "operationId": "deleteResponse",
            "tags": ["OpenAI API"],
            "summary": "Delete a stored response",
            "parameters": [RESPONSE_ID],
            "responses": {
                "200": ok_json(
                    "It was deleted.",
                    {
                        "type": "object",
                        "required": ["id", "object", "deleted"],
                        "properties": {
                            "id": {"type": "string"},
                            "object": {"type": "string", "enum": ["response"]},
                            "deleted": {"type": "boolean"},
                        },
                    },
                ),
                **errors(404, 503),
            },
        },
    },
    "/v1/responses/{response_id}/input_items": get(
        "listInputItems",
        "OpenAI API",
        "List a stored response's input items",
        {"200": ok_json("The items, newest first unless `order=asc`.", ref("ResponseItemList")),
         **errors(400, 404, 503)},
        parameters=[
            RESPONSE_ID,
            {"in": "query", "name": "order", "schema": {"type": "string", "enum": ["asc", "desc"]}},
            {"in": "query", "name": "limit", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
            {"in": "query", "name": "after", "schema": {"type": "string"}},
        ],
    ),
    "/v1/messages": {
        "post": {
            "operationId": "createMessage",
            "tags": ["Anthropic API"],
            "summary": "Create a message (Anthropic Messages API)",
            "description": "For Claude Code and the Anthropic SDKs (`ANTHROPIC_BASE_URL` = the "
            "gateway). Anthropic models get the body untouched and their answer byte for byte; "
            "any other model is translated to and from the gateway's internal chat request. "
            "With `stream: true` the answer is Anthropic's named events (`message_start`, "
            "`content_block_start`/`delta`/`stop`, `message_delta`, `message_stop`, `ping`, "
            "`error`). The client's key (`x-api-key` or `Authorization: Bearer`) is never "
            "forwarded.",
            **ANTHROPIC_REQUEST,
            "responses": {
                "200": {
                    "description": "The message (JSON), or a stream of events (SSE).",
                    "headers": API_HEADERS,
                    "content": {
                        "application/json": {"schema": ref("AnthropicMessage")},
                        "text/event-stream": {"schema": ref("AnthropicStreamEvent")},
                    },
                },
                **anthropic_errors(400, 401, 404, 413, 429, 500, 502, 504, 529),
            },
        }
    },
    "/v1/messages/count_tokens": {
        "post": {
            "operationId": "countMessageTokens",
            "tags": ["Anthropic API"],
            "summary": "Count the input tokens of a message request",
            "description": "Anthropic's own count for Anthropic models; for any other model an "
            "estimate with OpenAI's `o200k_base` encoding, flagged by `x-gateway-usage: "
            "estimated`.",
            **ANTHROPIC_REQUEST,
            "responses": {
                "200": {
                    "description": "The count.",
                    "headers": {
                        **COMMON_HEADERS,
                        "x-gateway-usage": {
                            "description": "`estimated` when the count is the gateway's own "
                            "estimate rather than the provider's.",
                            "schema": {"type": "string", "enum": ["estimated"]},
                        },
                    },
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["input_tokens"],
                                "properties": {"input_tokens": {"type": "integer"}},
                            }
                        }
                    },
                },
                **anthropic_errors(400, 401, 404, 429, 500, 502),
            },
        }
    },
    "/v1/embeddings": {
        "post": {
            "operationId": "createEmbedding",
            "tags": ["OpenAI API"],
            "summary": "Create embeddings",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("CreateEmbeddingRequest")}},
            },
            "responses": {
                "200": ok_json("The embeddings.", ref("CreateEmbeddingResponse"), API_HEADERS),
                **errors(400, 401, 404, 405, 413, 429, 500, 502, 503, 504),
            },
        }
    },
    "/v1/models": get(
        "listModels",
        "OpenAI API",
        "List the models the gateway serves",
        {"200": ok_json("The models.", ref("ListModelsResponse")), **errors(405)},
    ),
    "/v1/models/{model}": get(
        "retrieveModel",
        "OpenAI API",
        "Retrieve a model",
        {"200": ok_json("The model.", ref("Model")), **errors(404, 405)},
        parameters=[
            {
                "in": "path",
                "name": "model",
                "required": True,
                "description": "The model id, e.g. `mock/echo`; its `/` may be sent as it is "
                "or percent-encoded (`mock%2Fecho`).",
                "schema": {"type": "string", "example": "mock/echo"},
            }
        ],
    ),
    "/health": get(
        "health",
        "Gateway",
        "Liveness",
        {"200": ok_json("The gateway is up.", ref("Health")), **errors(405)},
    ),
    "/metrics": get(
        "metrics",
        "Gateway",
        "Metrics totals (JSON, or Prometheus text when the client asks for text/plain)",
        {
            "200": {
                "description": "Totals, per provider, since start (or as restored from history).",
                "headers": COMMON_HEADERS,
                "content": {
                    "application/json": {"schema": ref("Metrics")},
                    "text/plain": {"schema": {"type": "string"}},
                },
            },
            **errors(404, 405),
        },
        description=METRICS_DISABLED,
    ),
    "/metrics/prometheus": get(
        "metricsPrometheus",
        "Gateway",
        "Metrics in the Prometheus text exposition format",
        {**static("text/plain", "Prometheus text format 0.0.4."), **errors(404, 405)},
        description=METRICS_DISABLED,
    ),
    "/metrics/models": get(
        "metricsModels",
        "Gateway",
        "Usage per model",
        {"200": ok_json("One entry per (provider, model).", ref("MetricsModels")), **errors(404, 405)},
        description=METRICS_DISABLED,
    ),
    "/metrics/trends": get(
        "metricsTrends",
        "Gateway",
        "Usage over time, in buckets",
        {"200": ok_json("The buckets, oldest first.", ref("MetricsTrends")), **errors(400, 404, 405)},
        description=METRICS_DISABLED,
        parameters=[
            {
                "in": "query",
                "name": "hours",
                "description": "How far back, in hours (1 to the log retention).",
                "schema": {"type": "integer", "minimum": 1, "default": 24},
            },
            {
                "in": "query",
                "name": "bucket",
                "description": "Bucket width; by default the smallest that gives at most 300 "
                "buckets. Minute buckets reach back 48 hours.",
                "schema": {"type": "string", "enum": ["1m", "5m", "1h", "1d"]},
            },
            {
                "in": "query",
                "name": "provider",
                "description": "Only this provider (as `/metrics/models` names it).",
                "schema": {"type": "string"},
            },
            {
                "in": "query",
                "name": "model",
                "description": "Only this model.",
                "schema": {"type": "string"},
            },
        ],
    ),
    "/dashboard": get(
        "dashboard",
        "Gateway",
        "The metrics dashboard (HTML)",
        {**static("text/html", "A self-contained page."), **errors(405)},
    ),
    "/openapi.json": get(
        "openapi",
        "API docs",
        "This description",
        {**static("application/json", "OpenAPI 3.1."), **errors(405)},
    ),
    "/docs": get(
        "swaggerUi",
        "API docs",
        "Swagger UI for this description",
        {**static("text/html", "The Swagger UI page."), **errors(405)},
    ),
    "/docs/swagger-ui-bundle.js": get(
        "swaggerUiScript",
        "API docs",
        "Swagger UI's script (embedded)",
        {**static("text/javascript", "swagger-ui-dist's bundle."), **errors(405)},
    ),
    "/docs/swagger-ui.css": get(
        "swaggerUiStyle",
        "API docs",
        "Swagger UI's style sheet (embedded)",
        {**static("text/css", "swagger-ui-dist's style sheet."), **errors(405)},
    ),
    "/redoc": get(
        "redoc",
        "API docs",
        "ReDoc for this description",
        {**static("text/html", "The ReDoc page."), **errors(405)},
    ),
    "/redoc/redoc.standalone.js": get(
        "redocScript",
        "API docs",
        "ReDoc's script (embedded)",
        {**static("text/javascript", "redoc's standalone bundle."), **errors(405)},
    ),
}



def anthropic_schemas():
    """Anthropic's Messages shapes, written from Anthropic's public API reference."""
    string = {"type": "string"}
    integer = {"type": "integer"}
    block = {
        "type": "object",
        "required": ["type"],
        "description": "A content block: `text`, `image`, `document`, `tool_use`, "
        "`tool_result` (with `is_error`), `thinking`, ...",
        "properties": {"type": string},
        "additionalProperties": True,
    }
    usage = {
        "type": "object",
        "required": ["input_tokens", "output_tokens"],
        "properties": {
            "input_tokens": integer,
            "output_tokens": integer,
            "cache_read_input_tokens": {"type": ["integer", "null"]},
            "cache_creation_input_tokens": {"type": ["integer", "null"]},
        },
    }
    return {
        "AnthropicMessageRequest": {
            "type": "object",
            "required": ["model", "messages", "max_tokens"],
            "properties": {
                "model": string,
                "max_tokens": {"type": "integer", "minimum": 1},
                "messages": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["role", "content"],
                        "properties": {
                            "role": {"type": "string", "enum": ["user", "assistant"]},
                            "content": {"oneOf": [string, {"type": "array", "items": block}]},
                        },
                    },
                },
                "system": {"oneOf": [string, {"type": "array", "items": block}]},
                "stop_sequences": {"type": "array", "items": string},
                "stream": {"type": "boolean"},
                "temperature": {"type": "number"},
                "top_p": {"type": "number"},
                "top_k": integer,
                "metadata": {"type": "object", "properties": {"user_id": string}},
                "tools": {"type": "array", "items": {"type": "object"}},
                "tool_choice": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "enum": ["auto", "any", "tool", "none"]},
                        "name": string,
                        "disable_parallel_tool_use": {"type": "boolean"},
                    },
                },
                "thinking": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "enum": ["enabled", "disabled"]},
                        "budget_tokens": integer,
                    },
                },
            },
        },
        "AnthropicMessage": {
            "type": "object",
            "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
            "properties": {
                "id": string,
                "type": {"type": "string", "enum": ["message"]},
                "role": {"type": "string", "enum": ["assistant"]},
                "model": string,
                "content": {"type": "array", "items": block},
                "stop_reason": {
                    "type": ["string", "null"],
                    "enum": ["end_turn", "max_tokens", "stop_sequence", "tool_use",
                             "pause_turn", "refusal", None],
                },
                "stop_sequence": {"type": ["string", "null"]},
                "usage": usage,
            },
        },
        "AnthropicStreamEvent": {
            "type": "object",
            "required": ["type"],
            "description": "One `data:` of a named SSE event (`event:` repeats the type).",
            "properties": {
                "type": {
                    "type": "string",
                    "enum": ["message_start", "content_block_start", "content_block_delta",
                             "content_block_stop", "message_delta", "message_stop", "ping",
                             "error"],
                },
            },
            "additionalProperties": True,
        },
        "AnthropicError": {
            "type": "object",
            "required": ["type", "error"],
            "properties": {
                "type": {"type": "string", "enum": ["error"]},
                "error": {
                    "type": "object",
                    "required": ["type", "message"],
                    "properties": {
                        "type": {
                            "type": "string",
                            "enum": ["invalid_request_error", "authentication_error",
                                     "permission_error", "not_found_error",
                                     "request_too_large", "rate_limit_error", "api_error",
                                     "overloaded_error"],
                        },
                        "message": string,
                    },
                },
            },
        },
    }


def gateway_schemas():
    number = {"type": "number"}
    integer = {"type": "integer"}
    queue = {
        "type": "object",
        "properties": {"depth": integer, "max_depth": integer},
    }
    usage = {
        "type": "object",
        "description": "Counters for one scope (all, a provider, a model).",
        "properties": {
            "requests": integer,
            "successes": integer,
            "errors": integer,
            "client_closed": integer,
            "timeouts": integer,
            "success_rate": {"type": ["number", "null"]},
            "errors_by_status": {"type": "object", "additionalProperties": integer},
            "errors_by_kind": {"type": "object", "additionalProperties": integer},
            "tokens": {"type": "object", "additionalProperties": integer},
            "output_tokens_per_second": {"type": ["number", "null"]},
            "cost_usd": number,
            "unpriced_requests": integer,
            "latency_seconds": {"type": "object"},
        },
    }
    return {
        **anthropic_schemas(),
        "Health": {
            "type": "object",
            "required": ["status", "version"],
            "properties": {
                "status": {"type": "string", "enum": ["ok"]},
                "version": {"type": "string"},
                "uptime_seconds": number,
                "recorder_queue": queue,
            },
        },
        "Usage": usage,
        "Metrics": {
            "type": "object",
            "properties": {
                "version": {"type": "string"},
                "uptime_seconds": number,
                "in_flight": integer,
                "recorder_queue": queue,
                "server": {
                    "type": ["object", "null"],
                    "description": "The HTTP server's connections and workers: how close it "
                    "is to the 503 at MAX_CONNECTIONS and the 503 with every one of WORKERS busy.",
                    "properties": {
                        "connections": {
                            "type": "object",
                            "properties": {
                                "open": integer,
                                "parked": integer,
                                "queued": integer,
                                "relayed": integer,
                                "max": integer,
                            },
                        },
                        "workers": {
                            "type": "object",
                            "properties": {"busy": integer, "started": integer, "max": integer},
                        },
                    },
                },
                "prices_date": {"type": "string"},
                "totals": ref("Usage"),
                "providers": {"type": "object", "additionalProperties": ref("Usage")},
                "models": integer,
            },
        },
        "MetricsModels": {
            "type": "object",
            "properties": {
                "object": {"type": "string", "enum": ["list"]},
                "data": {
                    "type": "array",
                    "items": {
                        "allOf": [
                            ref("Usage"),
                            {
                                "type": "object",
                                "properties": {
                                    "model": {"type": "string"},
                                    "provider": {"type": "string"},
                                },
                            },
                        ]
                    },
                },
            },
        },
        "MetricsTrends": {
            "type": "object",
            "properties": {
                "hours": integer,
                "bucket_seconds": integer,
                "model": {"type": ["string", "null"]},
                "buckets": {"type": "array", "items": {"type": "object"}},
            },
        },
    }


# The gateway's own JSON, laid over what this script builds: the key-management, spend and
# interaction-explorer routes, and the statuses and security schemes gateway keys add to every
# route. Edit it like the description itself; objects merge key by key, anything else replaces.
OVERLAY = "scripts/openapi-gateway.json"


def laid_over(base, overlay):
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = laid_over(base[key], value) if key in base else value
        return merged
    return overlay


def main():
    components = {
        "schemas": {**openai_schemas(sys.argv[1]), **gateway_schemas()},
        "headers": {
            "RequestId": {
                "description": "The request's id: the client's `x-request-id` when it sent a "
                "sane one, else a new UUID. Also in the interaction log.",
                "schema": {"type": "string"},
            },
            "GatewayOverheadMs": {
                "description": "Time spent in the gateway itself, in milliseconds, not counting "
                "the wait for the provider.",
                "schema": {"type": "string", "example": "0.412"},
            },
            "GatewayCostUsd": {
                "description": "The call's cost in USD from the gateway's price table, when the "
                "model is priced and the provider reported usage (absent otherwise; on a stream, "
                "the usage is only known at the end, so it is not sent as a header).",
                "schema": {"type": "string", "example": "0.00012500"},
            },
        },
        "responses": {
            str(status): {
                "description": text,
                "headers": COMMON_HEADERS,
                "content": {"application/json": {"schema": ref("ErrorResponse")}},
            }
            for status, text in ERRORS.items()
        },
    }
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "LLMCallGateway",
            "version": version(),
            "license": {"name": "MIT", "identifier": "MIT"},
            "description": "An OpenAI-compatible LLM API gateway: point an OpenAI SDK's "
            "`base_url` at `http://<gateway>/v1`. Every path answers both with and without the "
            "`/v1` prefix (`/v1/chat/completions` and `/chat/completions`, `/health` and "
            "`/v1/health`); the OpenAI routes are listed with it, the gateway's own without. "
            "Errors always have the OpenAI error shape. The request and response schemas of "
            "the OpenAI routes are OpenAI's own; fields the gateway does not know ride along to "
            "the provider unchanged.",
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "OpenAI API", "description": "The OpenAI-compatible endpoints."},
            {"name": "Anthropic API", "description": "Anthropic's Messages API, to any model "
             "(`GET /v1/models` answers in Anthropic's shape when `anthropic-version` is sent)."},
            {"name": "Gateway", "description": "Health, metrics and the dashboard."},
            {"name": "API docs", "description": "This description, Swagger UI and ReDoc, "
             "served from assets embedded in the binary (no network needed)."},
        ],
        "paths": PATHS,
        "components": components,
    }
    with open(OVERLAY) as f:
        doc = laid_over(doc, json.load(f))
    json.dump(doc, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
