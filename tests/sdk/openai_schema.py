"""Validates JSON against the OpenAI schemas the gateway serves in its /openapi.json (copied
from OpenAI's own description by scripts/gen-openapi.py).

As a module: `validate(schema, value)`. As a script: reads lines `<schema>\t<json>` from stdin,
validates each, and exits non-zero naming every failure (used by the Rust integration tests).

`CreateCompletionChunk` is `CreateCompletionResponse` as a stream chunk: OpenAI's own streams
(and every SDK) carry `finish_reason: null` until a choice's last chunk, which the schema,
written for the whole answer, does not allow; that one field is read as nullable there, the
way the description's `nullable: true` fields are.
"""

import json
import pathlib
import sys

import jsonschema

DOC = json.loads(
    (pathlib.Path(__file__).parents[2] / "src" / "handlers" / "openapi.json").read_text()
)
COMPONENTS = DOC["components"]


def errors(schema, value):
    """The best-matching error of `value` against `#/components/schemas/<schema>`, or None."""
    if schema == "CreateCompletionChunk":
        schema = "CreateCompletionResponse"
        value = json.loads(json.dumps(value))
        for choice in value.get("choices", []):
            if choice.get("finish_reason") is None:
                choice["finish_reason"] = "stop"
    root = {"$ref": f"#/components/schemas/{schema}", "components": COMPONENTS}
    return jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(root).iter_errors(value)
    )


def validate(schema, value):
    error = errors(schema, value)
    if error is not None:
        raise AssertionError(f"{schema}: {error.message} at {list(error.absolute_path)}: {value}")


def main():
    failures = 0
    checked = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        schema, text = line.rstrip("\n").split("\t", 1)
        checked += 1
        error = errors(schema, json.loads(text))
        if error is not None:
            failures += 1
            print(f"{schema}: {error.message} at {list(error.absolute_path)}: {text[:300]}")
    print(f"checked {checked}, failed {failures}")
    sys.exit(1 if failures or not checked else 0)


if __name__ == "__main__":
    main()
