"""What the SQL tools share: the database from the context, and a statement run with its failures told to the model."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from agentplatform.errors import QueryFailed, QueryTimedOut
from agentplatform.ports import SqlDatabase, SqlRows
from agentplatform.sql import render, transpile
from functions.tools.registry import ToolContext, ToolFailed

STATEMENT_TIMEOUT_S = 5.0


def database(ctx: ToolContext, tool: str) -> SqlDatabase:
    db = ctx.resources.get("sql_database")
    if db is None:
        raise ToolFailed(f"{tool} is not available in this deployment (no SQL database)")
    return db


def run(db: SqlDatabase, statement: Any, params: Mapping[str, Any], *, max_rows: int) -> SqlRows:
    """Run a statement (PostgreSQL text, or a sqlglot expression) on `db`'s dialect; `params` always hold the
    caller's tenant, which every statement filters on."""
    sql = transpile(statement, db.dialect) if isinstance(statement, str) else render(statement, db.dialect)
    try:
        return db.query(sql, params, timeout_s=STATEMENT_TIMEOUT_S, max_rows=max_rows)
    except QueryTimedOut as exc:
        raise ToolFailed(
            f"the query ran past {STATEMENT_TIMEOUT_S:g} s and was cancelled; ask for less (filter, aggregate)"
        ) from exc
    except QueryFailed as exc:
        raise ToolFailed(f"{exc.detail}; fix the query and try again") from exc


def records(rows: SqlRows) -> list[dict[str, Any]]:
    return [dict(zip(rows.columns, row, strict=True)) for row in rows.rows]


def record_passage(system: str, kind: str, record_id: str, title: str, text: str) -> dict[str, Any]:
    """A business record as a cited passage (like knowledge_search's): the agent's answer quotes and cites it, and
    the grounding check finds its numbers in it. Records are live, so their version is the day they were read."""
    return {
        "text": text,
        "citation": {
            "doc_id": f"{system}:{record_id}",
            "doc_version": date.today().isoformat(),
            "path": f"{system}/{kind}/{record_id}",
            "title": title,
            "section": "",
            "page": None,
        },
    }


PASSAGES_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"text": {"type": "string"}, "citation": {"type": "object", "required": ["doc_id", "path"]}},
        "required": ["text", "citation"],
    },
}
