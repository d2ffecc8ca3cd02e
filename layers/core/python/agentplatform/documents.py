"""The document registry: one row per tenant document (path), its status, stage and progress through the
ingestion pipeline, and the tenants whose drop folders are accepted. Backed by the `documents` table (one
partition per tenant, so a tenant's listing is one query and never touches another tenant's rows).

A pipeline run owns a document by its `claim` (the run's execution name). The newest run to claim a document
wins: every later write of an older run is conditional on its claim and is refused, so out-of-order runs for
one path cannot overwrite the newest one's result.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote

from pydantic import BaseModel, Field

from agentplatform.ports import KeyValueTable

SIDECAR_SUFFIX = ".meta.json"  # `<file>.meta.json` beside a file carries its title, tags and ACL groups


class DocumentStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    INDEXED = "indexed"
    FAILED = "failed"
    DELETED = "deleted"


class Stage(StrEnum):
    QUEUED = "queued"
    EXTRACT = "extract"
    CHUNK = "chunk"
    EMBED = "embed"
    INDEX = "index"
    FINALIZE = "finalize"
    DELETE = "delete"
    DONE = "done"


# How far along a document is when it enters each stage (embedding moves it from 40 to 85 batch by batch).
PROGRESS = {
    Stage.QUEUED: 0,
    Stage.EXTRACT: 5,
    Stage.CHUNK: 30,
    Stage.EMBED: 40,
    Stage.INDEX: 85,
    Stage.FINALIZE: 95,
    Stage.DELETE: 50,
    Stage.DONE: 100,
}


class DocumentRecord(BaseModel):
    tenant: str
    doc_id: str
    path: str
    status: DocumentStatus
    stage: Stage
    progress: int = Field(ge=0, le=100)
    chunk_count: int = 0
    title: str = ""
    content_type: str = ""
    size: int | None = None
    pages: int | None = None
    tags: list[str] = []
    acl_groups: list[str] = []
    content_hash: str = ""
    metadata_hash: str = ""
    version: str | None = Field(default=None, description="The S3 object version the row describes.")
    revision: int = Field(default=0, description="How many times the document's content has been indexed.")
    error: str | None = None
    reason: str | None = Field(default=None, description="Why it failed, as a code: corrupt, unsupported_format, ...")
    claim: str | None = None
    created_at: str
    updated_at: str
    indexed_at: str | None = None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def document_id(tenant: str, path: str) -> str:
    """A stable, URL-safe id for a tenant's path (the same file dropped again is the same document)."""
    return hashlib.sha256(f"{tenant}\x1f{path}".encode()).hexdigest()[:32]


def locate(key: str) -> tuple[str, str]:
    """(tenant, path) of a drop-bucket key `<tenant>/<path>`; a sidecar names the file it describes."""
    tenant, _, path = key.partition("/")
    return tenant, path.removesuffix(SIDECAR_SUFFIX)


class DocumentRegistry:
    def __init__(self, table: KeyValueTable) -> None:
        self._table = table

    @staticmethod
    def _key(tenant: str, doc_id: str) -> dict[str, str]:
        return {"pk": f"tenant#{tenant}", "sk": f"doc#{doc_id}"}

    def get(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        item = self._table.get(self._key(tenant, doc_id))
        return DocumentRecord.model_validate(item) if item else None

    def list(
        self, tenant: str, *, status: DocumentStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[DocumentRecord], str | None]:
        """A page of the tenant's documents in id order; `status` filters within the page's scan."""
        after = json.loads(base64.urlsafe_b64decode(cursor)) if cursor else None
        records: list[DocumentRecord] = []
        while True:
            items, after = self._table.query({"pk": f"tenant#{tenant}"}, limit=limit, after=after)
            records += [r for r in map(DocumentRecord.model_validate, items) if status is None or r.status == status]
            if len(records) >= limit or after is None:
                break
        next_cursor = base64.urlsafe_b64encode(json.dumps(after).encode()).decode() if after else None
        return records[:limit], next_cursor

    def enqueue(self, tenant: str, path: str, **values: Any) -> DocumentRecord:
        """A document the API has just written to the drop folder: queued until its pipeline run claims it."""
        return self._write(tenant, path, DocumentStatus.QUEUED, Stage.QUEUED, values)

    def claim(self, tenant: str, path: str, claim: str, stage: Stage, **values: Any) -> DocumentRecord:
        """Make `claim` the document's owner (the newest run wins) and mark it processing."""
        return self._write(tenant, path, DocumentStatus.PROCESSING, stage, {"claim": claim, **values})

    def _write(
        self, tenant: str, path: str, status: DocumentStatus, stage: Stage, values: dict[str, Any]
    ) -> DocumentRecord:
        doc_id = document_id(tenant, path)
        key = self._key(tenant, doc_id)
        current = self.get(tenant, doc_id)
        stamp = now()
        row = {
            "tenant": tenant,
            "doc_id": doc_id,
            "path": path,
            "status": status.value,
            "stage": stage.value,
            "progress": PROGRESS[stage],
            "error": None,
            "reason": None,
            "updated_at": stamp,
            **values,
        }
        if current is None:  # a whole new row in one put: a reader never sees half of it
            row["created_at"] = stamp
            self._table.put({**key, **row})
            return DocumentRecord.model_validate(row)
        self._table.update(key, row)
        return DocumentRecord.model_validate({**current.model_dump(), **row})

    def advance(self, tenant: str, doc_id: str, claim: str | None, **values: Any) -> bool:
        """Write `values` if `claim` still owns the document (None: whoever owns it); False if superseded."""
        values = {k: v.value if isinstance(v, StrEnum) else v for k, v in values.items()}
        if "stage" in values and "progress" not in values:
            values["progress"] = PROGRESS[Stage(values["stage"])]
        values["updated_at"] = now()
        expect = {"claim": claim} if claim is not None else None
        return self._table.update(self._key(tenant, doc_id), values, expect=expect)

    # -- tenants

    def known_tenant(self, tenant: str) -> bool:
        return self._table.get({"pk": "tenants", "sk": f"tenant#{tenant}"}) is not None

    def add_tenant(self, tenant: str) -> None:
        self._table.update({"pk": "tenants", "sk": f"tenant#{tenant}"}, {"tenant": tenant, "created_at": now()})


def metadata_value(text: str) -> str:
    """Text as an S3 user-metadata value. Those are ASCII only (S3 refuses anything else), so other characters,
    and the `,` that separates list items, travel percent-encoded (RFC 3986)."""
    return quote(text, safe=" !#$&'()*+-./:;=?@[]^_`{|}~")


def metadata_text(value: str) -> str:
    """The text of an S3 user-metadata value (see metadata_value); plain ASCII values read as themselves."""
    return unquote(value)
