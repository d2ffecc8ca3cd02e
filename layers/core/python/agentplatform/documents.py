"""The document registry: one row per tenant document (path), its status, stage and progress through the
ingestion pipeline, and the tenants whose drop folders are accepted. Backed by the `documents` table (one
partition per tenant, so a tenant's listing is one query and never touches another tenant's rows).

A pipeline run owns a document by its `claim`: the idempotency key of the object change it is processing (one run
may process many documents, each under its own claim). The newest claim on a document wins: every later write of
an older run is conditional on its claim and is refused, so out-of-order runs for one path cannot overwrite the
newest one's result.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote

from pydantic import BaseModel, Field

from agentplatform.ports import KeyValueTable, Update

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


@dataclass(frozen=True)
class Claim:
    """A run taking ownership of a document (see `DocumentRegistry.claim`)."""

    tenant: str
    path: str
    claim: str
    stage: Stage
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Advance:
    """A run writing progress on a document it owns (see `DocumentRegistry.advance`)."""

    tenant: str
    doc_id: str
    claim: str | None
    values: Mapping[str, Any]


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

    def get_many(self, documents: Sequence[tuple[str, str]]) -> list[DocumentRecord | None]:
        """The rows of these (tenant, doc_id) pairs, in order; None where there is none."""
        items = self._table.get_many([self._key(tenant, doc_id) for tenant, doc_id in documents])
        return [DocumentRecord.model_validate(item) if item else None for item in items]

    def enqueue(self, tenant: str, path: str, **values: Any) -> DocumentRecord:
        """A document the API has just written to the drop folder: queued until its pipeline run claims it."""
        return self._write(tenant, path, DocumentStatus.QUEUED, Stage.QUEUED, values)

    def claim(self, tenant: str, path: str, claim: str, stage: Stage, **values: Any) -> DocumentRecord:
        """Make `claim` the document's owner (the newest run wins) and mark it processing."""
        return self._write(tenant, path, DocumentStatus.PROCESSING, stage, {"claim": claim, **values})

    def claim_many(self, claims: Sequence[Claim]) -> list[DocumentRecord | None]:
        """`claim` for many (distinct) documents in two calls; returns each one's row as it was before (None for a
        new document), which tells a run what is indexed now."""
        before = self.get_many([(c.tenant, document_id(c.tenant, c.path)) for c in claims])
        created, updates = [], []
        for c, current in zip(claims, before, strict=True):
            row = self._row(c.tenant, c.path, DocumentStatus.PROCESSING, c.stage, {"claim": c.claim, **c.values})
            key = self._key(c.tenant, row["doc_id"])
            if current is None:  # a new row whole, in a batch write: a reader never sees half of it
                created.append({**key, **row, "created_at": row["updated_at"]})
            else:  # an existing row keeps what it says of the indexed version until the run replaces it
                updates.append(Update(key, row))
        self._table.put_many(created)
        self._table.update_many(updates)
        return before

    def _write(
        self, tenant: str, path: str, status: DocumentStatus, stage: Stage, values: dict[str, Any]
    ) -> DocumentRecord:
        row = self._row(tenant, path, status, stage, values)
        key = self._key(tenant, row["doc_id"])
        current = self.get(tenant, row["doc_id"])
        if current is None:  # a whole new row in one put: a reader never sees half of it
            row["created_at"] = row["updated_at"]
            self._table.put({**key, **row})
            return DocumentRecord.model_validate(row)
        self._table.update(key, row)
        return DocumentRecord.model_validate({**current.model_dump(), **row})

    @staticmethod
    def _row(tenant: str, path: str, status: DocumentStatus, stage: Stage, values: dict[str, Any]) -> dict[str, Any]:
        return {
            "tenant": tenant,
            "doc_id": document_id(tenant, path),
            "path": path,
            "status": status.value,
            "stage": stage.value,
            "progress": PROGRESS[stage],
            "error": None,
            "reason": None,
            "updated_at": now(),
            **values,
        }

    def advance(self, tenant: str, doc_id: str, claim: str | None, **values: Any) -> bool:
        """Write `values` if `claim` still owns the document (None: whoever owns it); False if superseded."""
        return self.advance_many([Advance(tenant, doc_id, claim, values)])[0]

    def advance_many(self, advances: Sequence[Advance]) -> list[bool]:
        """`advance` for many (distinct) documents, in as few calls as the table allows; each written only while
        its own claim owns it."""
        stamp = now()
        updates = []
        for a in advances:
            values = {k: v.value if isinstance(v, StrEnum) else v for k, v in a.values.items()}
            if "stage" in values and "progress" not in values:
                values["progress"] = PROGRESS[Stage(values["stage"])]
            values["updated_at"] = stamp
            expect = {"claim": a.claim} if a.claim is not None else None
            updates.append(Update(self._key(a.tenant, a.doc_id), values, expect))
        return self._table.update_many(updates)

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
