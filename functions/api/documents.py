"""`/v1/documents`: a tenant's documents in the registry, uploads into its drop folder, and deletes. Uploads and
deletes go through the drop bucket, so they take the same ingestion path as files dropped in the folder."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentplatform.bootstrap import container
from agentplatform.documents import SIDECAR_SUFFIX, DocumentRecord, DocumentStatus, document_id, metadata_value
from agentplatform.errors import FieldError, NotFound, ValidationFailed
from agentplatform.principal import Principal, caller

READ_SCOPE = "documents:read"
WRITE_SCOPE = "documents:write"
# Characters: four UTF-8 bytes each at most, so with the tenant's folder the S3 key stays within its 1,024 bytes.
MAX_PATH = 240
# Standard base64 with its padding, so that every string the schema allows decodes.
BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"

router = APIGatewayHttpRouter()

_DocId = Annotated[str, Path(min_length=32, max_length=32, pattern="^[0-9a-f]{32}$", description="A document id.")]


class Document(BaseModel):
    """A document as its tenant sees it (the registry row without pipeline internals)."""

    id: str
    path: str
    status: DocumentStatus
    stage: str
    progress: int = Field(description="Percent through the ingestion pipeline.")
    chunk_count: int
    title: str
    content_type: str
    size: int | None
    pages: int | None
    tags: list[str]
    acl_groups: list[str]
    revision: int = Field(description="How many versions of its content have been indexed.")
    error: str | None
    created_at: str
    updated_at: str
    indexed_at: str | None

    @classmethod
    def of(cls, record: DocumentRecord) -> Document:
        return cls(id=record.doc_id, **record.model_dump(exclude={"doc_id", "tenant"}))


class DocumentPage(BaseModel):
    documents: list[Document]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


class Upload(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"path": "manuals/engine.md", "content_base64": "IyBFbmdpbmUKT2lsIGNoZWNrcy4=", "tags": ["ops"]}
            ]
        },
    )

    path: Annotated[str, Field(min_length=1, max_length=MAX_PATH, description="Where in the tenant's folder.")]
    content_base64: Annotated[
        str, Field(min_length=1, pattern=BASE64, description="The file's bytes, base64-encoded (RFC 4648, padded).")
    ]
    title: Annotated[str | None, Field(max_length=500)] = None
    tags: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=50)] = []
    acl_groups: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=50)] = []

    @field_validator("path")
    @classmethod
    def _relative_file_path(cls, value: str) -> str:
        parts = value.split("/")
        if value.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in value:
            raise ValueError("a relative path of folder names and a file name, without '.', '..' or empty parts")
        if value.endswith(SIDECAR_SUFFIX) or any(p.startswith((".", "~$")) for p in parts):
            raise ValueError("hidden files and metadata sidecars are not documents")
        if any(ord(c) < 32 for c in value):
            raise ValueError("control characters are not allowed in a path")
        return value


def _caller(scope: str) -> Principal:
    return caller(router.current_event.raw_event, scope)


def _owned(tenant: str, doc_id: str) -> DocumentRecord:
    record = container().registry.get(tenant, doc_id)
    if record is None:  # another tenant's id looks the same as one that does not exist: no existence leak
        raise NotFound(f"no document {doc_id}")
    return record


@router.get("/v1/documents", summary="List the tenant's documents", tags=["documents"])
def list_documents(
    status: Annotated[DocumentStatus | None, Query(description="Only documents in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> DocumentPage:
    principal = _caller(READ_SCOPE)
    try:
        records, next_cursor = container().registry.list(principal.tenant, status=status, limit=limit, cursor=cursor)
    except (ValueError, binascii.Error) as exc:
        raise ValidationFailed(
            "invalid cursor", errors=[FieldError(loc=("query", "cursor"), message="not a cursor from this API")]
        ) from exc
    return DocumentPage(documents=[Document.of(r) for r in records], next_cursor=next_cursor)


@router.get("/v1/documents/<doc_id>", summary="A document's status, stage and progress", tags=["documents"])
def get_document(doc_id: _DocId) -> Document:
    principal = _caller(READ_SCOPE)
    return Document.of(_owned(principal.tenant, doc_id))


@router.post(
    "/v1/documents",
    summary="Upload a document into the tenant's drop folder",
    description="Queued for ingestion at once; poll `GET /v1/documents/{id}` for its progress.",
    tags=["documents"],
    responses={202: {"description": "Accepted: the document is queued"}},
)
def upload_document(body: Upload) -> Response[Document]:
    principal = _caller(WRITE_SCOPE)
    content = base64.b64decode(body.content_base64, validate=True)  # the schema's pattern admits only base64
    metadata = {
        "tags": ",".join(metadata_value(t) for t in body.tags),
        "acl-groups": ",".join(metadata_value(g) for g in body.acl_groups),
    }
    if body.title:
        metadata["title"] = metadata_value(body.title)
    c = container()
    stored = c.drop_store.put(f"{principal.tenant}/{body.path}", content, {k: v for k, v in metadata.items() if v})
    record = c.registry.enqueue(principal.tenant, body.path, size=len(content), version=stored.version)
    location = f"/v1/documents/{document_id(principal.tenant, body.path)}"
    return Response(
        status_code=202, content_type="application/json", body=Document.of(record), headers={"Location": location}
    )


@router.delete(
    "/v1/documents/<doc_id>",
    summary="Delete a document (its file and, by the ingestion path, its chunks)",
    tags=["documents"],
    responses={202: {"description": "Accepted: the document is being deleted"}},
)
def delete_document(doc_id: _DocId) -> Response[Document]:
    principal = _caller(WRITE_SCOPE)
    record = _owned(principal.tenant, doc_id)
    container().drop_store.delete(f"{principal.tenant}/{record.path}")
    return Response(status_code=202, content_type="application/json", body=Document.of(record))
