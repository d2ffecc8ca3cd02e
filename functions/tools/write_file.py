"""`write_file`: create or replace one text file of the tenant's, under the tenant's folder."""

from __future__ import annotations

from typing import Any

from functions.tools.files import PATH_SCHEMA, WRITE_MAX_BYTES, content_type, files_bucket, tenant_key
from functions.tools.registry import ToolContext, ToolFailed, ToolSpec


def run(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    bucket, path = files_bucket(ctx, "write_file"), arguments["path"]
    key = tenant_key(ctx, path)
    body = arguments["content"].encode("utf-8")
    if len(body) > WRITE_MAX_BYTES:  # the schema bounds characters; a character may take up to 4 bytes
        raise ToolFailed(f"the content is {len(body)} bytes; write_file writes up to {WRITE_MAX_BYTES} bytes")
    kind = content_type(path)
    stored = bucket.put(key, body, {"content-type": kind, "written-by": ctx.user})
    return {"path": path, "size": len(body), "content_type": kind, "version": stored.version}


SPEC = ToolSpec(
    name="write_file",
    description="Write (create or replace) a UTF-8 text file of the user's organization.",
    parameters={
        "type": "object",
        "properties": {"path": PATH_SCHEMA, "content": {"type": "string", "maxLength": WRITE_MAX_BYTES}},
        "required": ["path", "content"],
        "additionalProperties": False,
    },
    result_schema={
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "size": {"type": "integer"},
            "content_type": {"type": "string"},
            "version": {"type": ["string", "null"]},
        },
        "required": ["path", "size", "content_type"],
    },
    run=run,
    timeout_s=10.0,
    needs=("files_bucket",),
)
