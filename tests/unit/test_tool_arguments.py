"""Tool-call arguments are generated under the schema: whatever the model prefers, the result validates."""

from __future__ import annotations

import json
import random
import re

import jsonschema
import pytest

from endpoints.generation.engine import Completion
from endpoints.generation.tools import ToolCallFailed, ToolSchemaInvalid, choose_tool, generate_arguments


class RandomModel:
    """Stands in for ChatEngine: random preferences, so only the constraints make the output valid."""

    def __init__(self, seed: int, free_form: list[str] | None = None) -> None:
        self.rng = random.Random(seed)
        self.free_form = list(free_form or [])
        self.pieces = ["a", "bc", "7", "-", ".", "3", '"', "\n", "}", " x", "42", "\\", "é"]
        self.forced: list[str] = []

    def prompt_ids(self, messages, prefix=""):
        return [len(json.dumps(messages)), len(prefix)]

    def session(self, prompt):
        return self  # the fake's session is the model itself

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return None

    def force(self, text):
        self.forced.append(text)

    def choose(self, options):
        return self.rng.randrange(len(options))

    def constrained(self, allowed, max_tokens):
        text = ""
        for _ in range(self.rng.randint(0, max_tokens)):
            candidates = [p for p in self.pieces if allowed(text + p)]
            if not candidates:
                break
            text += self.rng.choice(candidates)
        return text

    def complete(self, prompt, **kwargs):
        return Completion(self.free_form.pop(0) if self.free_form else "nonsense", 1, 1, "stop")


SCHEMAS = [
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 14}},
        "required": ["city", "days"],
    },
    {
        "type": "object",
        "properties": {
            "priority": {"enum": ["low", "high"]},
            "urgent": {"type": "boolean"},
            "score": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}},
        },
        "required": ["priority", "urgent", "score", "tags"],
    },
    {
        "type": "object",
        "properties": {
            "filter": {"type": "object", "properties": {"year": {"type": "integer"}}, "required": ["year"]},
            "note": {"type": "string"},
        },
        "required": ["filter"],
    },
    {"type": "object", "properties": {}},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=["string-int-bounds", "enum-bool-number-array", "nested", "empty"])
@pytest.mark.parametrize("seed", range(25))
def test_constrained_arguments_always_validate(schema, seed):
    tool = {"type": "function", "function": {"name": "t", "parameters": schema}}
    arguments = generate_arguments(RandomModel(seed), [{"role": "user", "content": "go"}], tool)
    jsonschema.validate(arguments, schema)
    assert set(schema.get("required", [])) <= set(arguments)


def test_unsupported_schema_falls_back_to_validated_free_form_with_bounded_retries():
    schema = {
        "type": "object",
        "properties": {"id": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "required": ["id"],
    }
    tool = {"type": "function", "function": {"name": "t", "parameters": schema}}
    model = RandomModel(0, free_form=["{oops", '{"id": 5}}'])
    assert generate_arguments(model, [{"role": "user", "content": "x"}], tool) == {"id": 5}
    with pytest.raises(ToolCallFailed, match=re.escape("after 3 attempts")):
        generate_arguments(RandomModel(0, free_form=["no", "nope", "never", '{"id": 1}']), [], tool)


def test_a_tool_result_is_answered_not_called_again_unless_required():
    tools = [{"type": "function", "function": {"name": "w"}}]
    messages = [{"role": "user", "content": "weather?"}, {"role": "tool", "content": "sunny"}]
    assert choose_tool(RandomModel(1), messages, tools, required=False) == "none"
    assert choose_tool(RandomModel(1), messages, tools, required=True) == "w"


def test_keywords_the_decoder_does_not_honour_go_to_validated_free_form():
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"}},
        "required": ["code"],
    }
    tool = {"type": "function", "function": {"name": "t", "parameters": schema}}
    model = RandomModel(0, free_form=['{"code": "paris"}', '{"code": "CDG"}'])
    assert generate_arguments(model, [{"role": "user", "content": "x"}], tool) == {"code": "CDG"}


def test_a_schema_that_is_not_json_schema_is_the_callers_error():
    tool = {"type": "function", "function": {"name": "t", "parameters": {"type": "object", "required": 5}}}
    with pytest.raises(ToolSchemaInvalid):
        generate_arguments(RandomModel(0), [], tool)
