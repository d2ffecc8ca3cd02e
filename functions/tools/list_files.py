"""`list_files`: the tenant's files (all, or under a prefix), a page at a time; never another tenant's."""

from __future__ import annotations

from typing import Any

from functions.tools.files import LIST_MAX, PATH_SCHEMA, check_path, files_bucket, tenant_root
from functions.tools.registry import ToolContext, ToolFailed, ToolSpec


def run(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    bucket, root = files_bucket(ctx, "list_files"), tenant_root(ctx)
    prefix = root + check_path(arguments["prefix"], folder=True) if arguments.get("prefix") else root
    after = root + check_path(arguments["cursor"]) if arguments.get("cursor") else None
    if after is not None and not after.startswith(prefix):
        raise ToolFailed("the cursor is not from a listing of this prefix; list again without it")
    found, last = bucket.list_page(prefix, limit=int(arguments.get("limit", 50)), after=after)
    return {
        "files": [{"path": o.key.removeprefix(root), "size": o.size or 0} for o in found],
        "next_cursor": last.removeprefix(root) if last else None,
    }


SPEC = ToolSpec(
    name="list_files",
    description="List the organization's files (all, or those under a folder), a page at a time.",
    parameters={
        "type": "object",
        "properties": {
            "prefix": {**PATH_SCHEMA, "description": 'Only files under this folder or name start, e.g. "reports/".'},
            "limit": {"type": "integer", "minimum": 1, "maximum": LIST_MAX, "description": "Files per page (50)."},
            "cursor": {**PATH_SCHEMA, "description": "The previous page's next_cursor, for the next page."},
        },
        "additionalProperties": False,
    },
    result_schema={
        "type": "object",
        "properties": {
            "files": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "size": {"type": "integer"}},
                    "required": ["path", "size"],
                },
            },
            "next_cursor": {"type": ["string", "null"]},
        },
        "required": ["files", "next_cursor"],
    },
    run=run,
    timeout_s=10.0,
    needs=("files_bucket",),
)
