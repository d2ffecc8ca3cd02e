"""`escalate_to_human`: the agent hands the turn to an operator; the loop pauses until one resolves it."""

from __future__ import annotations

from typing import Any

from functions.tools.registry import ToolContext, ToolSpec


def run(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    # Nothing happens here: the loop's AppendResults step sees this result and pauses on a task token.
    return {"escalation": "requested", "reason": arguments["reason"]}


SPEC = ToolSpec(
    name="escalate_to_human",
    description="Hand the conversation to a human operator: when the user asks for a person, or the request needs "
    "a human decision. The operator approves, rejects, or answers.",
    parameters={
        "type": "object",
        "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}},
        "required": ["reason"],
        "additionalProperties": False,
    },
    result_schema={
        "type": "object",
        "properties": {"escalation": {"const": "requested"}, "reason": {"type": "string"}},
        "required": ["escalation", "reason"],
    },
    run=run,
    timeout_s=5.0,
)
