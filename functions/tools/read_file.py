"""`read_file`: one UTF-8 text file of the tenant's, by its path under the tenant's folder."""

from __future__ import annotations

from typing import Any

from agentplatform.errors import NotFound
from functions.tools.files import (
    PATH_SCHEMA,
    READ_MAX_BYTES,
    PathRefused,
    content_type,
    files_bucket,
    is_link,
    tenant_key,
)
from functions.tools.registry import ToolContext, ToolFailed, ToolSpec


def run(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    bucket, path = files_bucket(ctx, "read_file"), arguments["path"]
    key = tenant_key(ctx, path)
    try:
        head = bucket.head(key)  # the size first: a big file is refused without being downloaded
        if is_link(head.metadata):
            raise PathRefused(f"{path} is a link; links are not followed")
        if (head.size or 0) > READ_MAX_BYTES:
            raise ToolFailed(f"{path} is {head.size} bytes; read_file reads files up to {READ_MAX_BYTES} bytes")
        stored = bucket.get(key)
    except NotFound as exc:
        raise ToolFailed(f"there is no file {path}; list_files shows the files there are") from exc
    if len(stored.body) > READ_MAX_BYTES:  # replaced between the head and the get
        raise ToolFailed(f"{path} is {len(stored.body)} bytes; read_file reads files up to {READ_MAX_BYTES} bytes")
    try:
        content = stored.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ToolFailed(f"{path} is not a UTF-8 text file; read_file reads text only") from exc
    kind = stored.metadata.get("content-type") or content_type(path)
    return {"path": path, "content": content, "size": len(stored.body), "content_type": kind}


SPEC = ToolSpec(
    name="read_file",
    description=f"Read a text file of the user's organization (UTF-8, up to {READ_MAX_BYTES // 1024} KiB).",
    parameters={
        "type": "object",
        "properties": {"path": PATH_SCHEMA},
        "required": ["path"],
        "additionalProperties": False,
    },
    result_schema={
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "content": {"type": "string"},
            "size": {"type": "integer"},
            "content_type": {"type": "string"},
        },
        "required": ["path", "content", "size", "content_type"],
    },
    run=run,
    timeout_s=10.0,
    needs=("files_bucket",),
)
