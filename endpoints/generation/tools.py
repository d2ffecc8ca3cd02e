"""Tool calls from a small model that cannot be trusted to write JSON: the choice of tool is made by scoring the
options, and the arguments are generated one field at a time under the tool's JSON schema, so every call
validates by construction. Schemas beyond that subset fall back to free generation, validated, with a bounded
number of retries."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from endpoints.generation.engine import ChatEngine, Session
from endpoints.generation.router import SimilarityRouter

NO_TOOL = "none"
_INTEGER = re.compile(r"^-?\d{0,12}$")
_NUMBER = re.compile(r"^-?\d{0,12}(\.\d{0,6})?$")
MAX_STRING_TOKENS = 48
FREE_FORM_ATTEMPTS = 3


class ToolCallFailed(ValueError):
    """No schema-valid arguments after the bounded retries."""


class ToolSchemaInvalid(ValueError):
    """A tool's `parameters` is not a valid JSON schema: the caller's to fix."""


def tools_system_prompt(tools: list[dict[str, Any]]) -> str:
    lines = ["You can call these tools. Call one when it helps answer the user; otherwise answer directly."]
    for tool in tools:
        fn = tool["function"]
        lines.append(
            f"- {fn['name']}: {fn.get('description') or ''} Parameters: {json.dumps(fn.get('parameters', {}))}"
        )
    return "\n".join(lines)


def choose_tool(
    engine: ChatEngine,
    messages: list[dict[str, str]],
    tools: list[dict[str, Any]],
    required: bool,
    router: SimilarityRouter | None = None,
) -> str:
    """The tool for the last user turn, or NO_TOOL: by the router when there is one, else by the chat model's
    own scoring of the options."""
    if not required and messages and messages[-1]["role"] == "tool":
        return NO_TOOL  # a tool result just arrived: answer with it rather than calling again
    last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    if router is not None:
        return router.route(last_user, tools, required=required) or NO_TOOL
    names = [t["function"]["name"] for t in tools]
    listing = "\n".join(f"- {t['function']['name']}: {t['function'].get('description') or ''}" for t in tools)
    if not required:
        listing += f"\n- {NO_TOOL}: no tool is needed; reply to the user directly."
    prompt = engine.prompt_ids(
        [
            {"role": "system", "content": f"Pick the best option for the user's message.\nOptions:\n{listing}"},
            {"role": "user", "content": last_user},
        ],
        prefix="Best option:",
    )
    options = names if required else [*names, NO_TOOL]
    with engine.session(prompt) as session:
        return options[session.choose([f" {o}" for o in options])]


def generate_arguments(engine: ChatEngine, messages: list[dict[str, str]], tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool["function"]
    schema = fn.get("parameters") or {"type": "object", "properties": {}}
    prefix = f'<tool_call>\n{{"name": "{fn["name"]}", "arguments": '
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ToolSchemaInvalid(f"tool {fn['name']}: parameters are not a valid JSON schema: {exc.message}") from exc
    if _supported(schema):
        with engine.session(engine.prompt_ids(messages, prefix)) as session:
            arguments = json.loads(_value(session, schema))
    else:
        arguments = _free_form(engine, messages, prefix, schema)
    try:
        jsonschema.validate(arguments, schema)  # holds by construction; the check keeps the promise honest
    except jsonschema.ValidationError as exc:
        raise ToolCallFailed(f"tool {fn['name']}: arguments do not validate: {exc.message}") from exc
    return arguments


# Keywords the constrained decoder honours; a schema using any other goes to the validated free-form path.
_HANDLED = {
    "type",
    "enum",
    "properties",
    "required",
    "items",
    "minimum",
    "maximum",
    "maxLength",
    "minLength",
    "description",
    "title",
    "default",
    "additionalProperties",
    "examples",
}


def _supported(schema: dict[str, Any]) -> bool:
    if set(schema) - _HANDLED:
        return False
    kind = schema.get("type")
    if "enum" in schema:
        return True
    if kind == "object" and not set(schema.get("required", [])) <= set(schema.get("properties") or {}):
        return False
    if kind == "object":
        return all(_supported(s) for s in (schema.get("properties") or {}).values())
    if kind == "array":
        return isinstance(schema.get("items"), dict) and _supported(schema["items"])
    return kind in ("string", "integer", "number", "boolean")


def _value(session: Session, schema: dict[str, Any]) -> str:
    """JSON text of one value satisfying `schema`, decoded at the end of the session's sequence."""
    if "enum" in schema:
        options = [json.dumps(v) for v in schema["enum"]]
        return options[session.choose(options)]
    kind = schema.get("type")
    if kind == "boolean":
        return ["true", "false"][session.choose(["true", "false"])]
    if kind in ("integer", "number"):
        pattern = _INTEGER if kind == "integer" else _NUMBER
        value = _parse_number(session.constrained(pattern.fullmatch, max_tokens=8), integer=kind == "integer")
        if "minimum" in schema:
            value = max(value, schema["minimum"])
        if "maximum" in schema:
            value = min(value, schema["maximum"])
        return json.dumps(value)
    if kind == "string":
        limit = schema.get("maxLength", 200)
        session.force('"')
        text = session.constrained(
            lambda t: '"' not in t and "\n" not in t and "\\" not in t and len(t) <= limit,
            max_tokens=MAX_STRING_TOKENS,
        )
        session.force('"')
        text = text.strip()
        minimum = schema.get("minLength", 0)
        return json.dumps(text if len(text) >= minimum else text.ljust(minimum, "_"))
    if kind == "array":
        session.force("[")
        item = _value(session, schema["items"])
        session.force("]")
        return f"[{item}]"
    # object: required properties, in schema order
    properties = schema.get("properties") or {}
    required = [name for name in properties if name in set(schema.get("required", []))]
    parts = []
    session.force("{")
    for i, name in enumerate(required):
        session.force(("" if i == 0 else ", ") + f"{json.dumps(name)}: ")
        parts.append(f"{json.dumps(name)}: {_value(session, properties[name])}")
    session.force("}")
    return "{" + ", ".join(parts) + "}"


def _parse_number(text: str, *, integer: bool) -> float:
    """The number a constrained prefix spells ("-", "12.", "" included): 0 when it spells none yet."""
    try:
        return int(text) if integer else float(text.rstrip("."))
    except ValueError:
        return 0


def _free_form(
    engine: ChatEngine, messages: list[dict[str, str]], prefix: str, schema: dict[str, Any]
) -> dict[str, Any]:
    problems = []
    for attempt in range(FREE_FORM_ATTEMPTS):
        completion = engine.complete(
            engine.prompt_ids(messages, prefix),
            max_tokens=128,
            temperature=0.0 if attempt == 0 else 0.7,
            stop=["</tool_call>", "\n\n"],
            seed=attempt,
        )
        # The model may also close the outer {"name": ..., "arguments": ...} object: try without that brace.
        for text in (completion.text, completion.text.removesuffix("}").rstrip()):
            try:
                arguments = json.loads(text)
                jsonschema.validate(arguments, schema)
                return arguments
            except (ValueError, jsonschema.ValidationError) as exc:
                problem = str(exc).splitlines()[0]
        problems.append(problem)
    raise ToolCallFailed(f"no schema-valid arguments after {FREE_FORM_ATTEMPTS} attempts: {'; '.join(problems)}")
