"""The ingestion stages. Each takes the run's state (what the state machine carries) and returns it with its own
result added; text, chunks and vectors travel through the artifacts bucket under the run's name.

A run reconciles one document with the newest object in the drop bucket, whatever event started it: the object
that is there now is ingested, a missing one is deleted. So duplicate events, out-of-order events and events of
a sidecar all converge on the newest state of the file. The registry's claim makes the newest run the owner.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from agentplatform.documents import (
    PROGRESS,
    SIDECAR_SUFFIX,
    DocumentRegistry,
    DocumentStatus,
    Stage,
    document_id,
    locate,
    metadata_text,
    now,
)
from agentplatform.errors import DocumentRejected, NotFound, Superseded
from agentplatform.inference import EMBEDDING_MAX_BATCH
from agentplatform.ports import EmbeddingModel, ObjectStore, SearchIndex
from agentplatform.search import Chunk

if TYPE_CHECKING:
    from agentplatform.limits import TokenMeter
    from functions.ingestion.chunking import ChunkSpec

# The extraction and chunking libraries (PDFium, lxml, python-docx, tokenizers: ~0.3 s to import) are imported
# by the stages that use them, not by every ingestion function that imports this module.

EMBED_BATCH = EMBEDDING_MAX_BATCH  # a batch per endpoint call; progress moves batch by batch
MAX_TAGS = 50
# What one stage hands the next travels in the state when its JSON is this small (most documents: no S3 round
# trips); bigger ones go through the artifacts bucket. Three such artifacts stay well inside a state's 256 KB.
ARTIFACTS = "artifacts"
INLINE_ARTIFACT_BYTES = 48_000
MAX_GROUPS = 50


@dataclass
class Stages:
    drop: ObjectStore
    artifacts: ObjectStore
    registry: DocumentRegistry
    index: SearchIndex | None = None
    embeddings: EmbeddingModel | None = None
    # Counts the embedding tokens against the tenant's quota (counted, never refused: a dropped file is indexed).
    meter: TokenMeter | None = None

    # -- prepare

    def prepare(self, state: dict[str, Any], run: str) -> dict[str, Any]:
        key = state["key"]
        tenant, path = locate(key)
        name = path.rsplit("/", 1)[-1]
        if not path or key.endswith("/") or name.startswith((".", "~$")):
            return {**state, "document": {"action": "skip", "reason": "not a document: a folder or a hidden file"}}
        document = {"tenant": tenant, "path": path, "doc_id": document_id(tenant, path), "key": f"{tenant}/{path}"}
        if not self.registry.known_tenant(tenant):
            self.registry.claim(tenant, path, run, Stage.QUEUED)
            raise DocumentRejected(f"unknown tenant {tenant!r}: the folder {tenant}/ is no tenant's", reason="tenant")
        try:
            head = self.drop.head(document["key"])
        except NotFound:
            if key.endswith(SIDECAR_SUFFIX) and key != document["key"]:
                return {**state, "document": {**document, "action": "skip", "reason": "a sidecar without its file"}}
            self.registry.claim(tenant, path, run, Stage.DELETE)
            return {**state, "document": {**document, "action": "delete"}}
        self.registry.claim(tenant, path, run, Stage.EXTRACT, version=head.version, size=head.size)
        return {**state, "document": {**document, "action": "ingest", "version": head.version}}

    # -- extract

    def extract(self, state: dict[str, Any], run: str) -> dict[str, Any]:
        document = state["document"]
        tenant, doc_id, key = document["tenant"], document["doc_id"], document["key"]
        stored = self.drop.get(key)
        metadata = self._metadata(key, stored.metadata)
        content_hash = hashlib.sha256(stored.body).hexdigest()
        metadata_hash = hashlib.sha256(json.dumps(metadata, sort_keys=True).encode()).hexdigest()
        current = self.registry.get(tenant, doc_id)
        if (
            current is not None
            and current.revision > 0
            and current.content_hash == content_hash
            and current.metadata_hash == metadata_hash
        ):
            return {**state, "extracted": {"unchanged": True}}
        from functions.ingestion.extract import extract

        extracted = extract(stored.body, key.rsplit("/", 1)[-1])
        title = metadata.get("title") or extracted.title or key.rsplit("/", 1)[-1]
        state = self._put(state, run, "text.json", {"extracted": asdict(extracted), "metadata": metadata})
        self._advance(
            tenant,
            doc_id,
            run,
            stage=Stage.CHUNK,
            title=title,
            content_type=extracted.content_type,
            pages=extracted.pages,
            tags=metadata.get("tags", []),
            acl_groups=metadata.get("acl_groups", []),
        )
        return {
            **state,
            "extracted": {
                "unchanged": False,
                "content_hash": content_hash,
                "metadata_hash": metadata_hash,
                "title": title,
                "version": stored.version,
                "revision": (current.revision if current else 0) + 1,
            },
        }

    def _metadata(self, key: str, object_metadata: dict[str, str]) -> dict[str, Any]:
        """Title, tags and ACL groups from S3 object metadata, overridden by a `<file>.meta.json` sidecar."""
        metadata: dict[str, Any] = {}
        if object_metadata.get("title"):
            metadata["title"] = metadata_text(object_metadata["title"])
        for field, header in (("tags", "tags"), ("acl_groups", "acl-groups")):
            if object_metadata.get(header):
                items = (metadata_text(v).strip() for v in object_metadata[header].split(","))
                metadata[field] = [v for v in items if v]
        try:
            sidecar = json.loads(self.drop.get(key + SIDECAR_SUFFIX).body)
        except NotFound:
            return metadata
        except ValueError as exc:
            raise DocumentRejected(f"{key}{SIDECAR_SUFFIX} is not JSON: {exc}", reason="metadata") from exc
        if not isinstance(sidecar, dict):
            raise DocumentRejected(f"{key}{SIDECAR_SUFFIX} must be a JSON object", reason="metadata")
        if "title" in sidecar:
            if not isinstance(sidecar["title"], str):
                raise DocumentRejected("the sidecar's title must be a string", reason="metadata")
            metadata["title"] = sidecar["title"][:500]
        for field, limit in (("tags", MAX_TAGS), ("acl_groups", MAX_GROUPS)):
            if field in sidecar:
                values = sidecar[field]
                if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
                    raise DocumentRejected(f"the sidecar's {field} must be a list of strings", reason="metadata")
                metadata[field] = sorted(set(values))[:limit]
        extra = {k: v for k, v in sidecar.items() if k not in ("title", "tags", "acl_groups")}
        metadata["extra"] = {k: str(v)[:1000] for k, v in sorted(extra.items())[:50]}
        return metadata

    # -- chunk

    def chunk(self, state: dict[str, Any], run: str) -> dict[str, Any]:
        document = state["document"]
        stored = self._get(state, run, "text.json")
        data = stored["extracted"]
        from functions.ingestion.chunking import chunk, word_piece_tokenizer
        from functions.ingestion.extract import Extracted, Section

        extracted = Extracted(**{**data, "sections": [Section(**s) for s in data["sections"]]})
        specs = chunk(extracted, word_piece_tokenizer())
        if not specs:
            raise DocumentRejected("the document has no text to index", reason="no_text")
        state = self._put(
            _without(state, "text.json"),
            run,
            "chunks.json",
            {"chunks": [asdict(s) for s in specs], "metadata": stored["metadata"]},
        )
        self._advance(document["tenant"], document["doc_id"], run, stage=Stage.EMBED)
        return {**state, "chunked": {"count": len(specs)}}

    # -- embed

    def embed(self, state: dict[str, Any], run: str) -> dict[str, Any]:
        assert self.embeddings is not None
        document, title = state["document"], state["extracted"]["title"]
        specs = _specs(self._get(state, run, "chunks.json")["chunks"])
        vectors: list[list[float]] = []
        span = PROGRESS[Stage.INDEX] - PROGRESS[Stage.EMBED]
        for start in range(0, len(specs), EMBED_BATCH):
            batch = specs[start : start + EMBED_BATCH]
            # The title and section heading ride along: a chunk's text alone often does not say what it is about.
            vectors += self.embeddings.embed([passage_text(title, spec) for spec in batch])
            if self.meter is not None:
                self.meter.spend(document["tenant"], sum(spec.tokens for spec in batch))
            done = start + len(batch)
            if done < len(specs):  # after the last batch, the stage's own advance below says it
                self._advance(
                    document["tenant"],
                    document["doc_id"],
                    run,
                    progress=PROGRESS[Stage.EMBED] + span * done // len(specs),
                )
        state = self._put(state, run, "vectors.json", {"vectors": vectors})
        self._advance(document["tenant"], document["doc_id"], run, stage=Stage.INDEX)
        return {**state, "embedded": {"count": len(vectors)}}

    # -- index

    def index_chunks(self, state: dict[str, Any], run: str) -> dict[str, Any]:
        assert self.index is not None
        document, extracted = state["document"], state["extracted"]
        tenant, doc_id = document["tenant"], document["doc_id"]
        stored = self._get(state, run, "chunks.json")
        specs = _specs(stored["chunks"])
        metadata = stored["metadata"]
        vectors = self._get(state, run, "vectors.json")["vectors"]
        version = extracted["content_hash"][:16]
        chunks = [
            Chunk(
                chunk_id=f"{doc_id}-{version}-{spec.ordinal}",
                tenant=tenant,
                doc_id=doc_id,
                doc_version=version,
                text=spec.text,
                vector=vector,
                title=extracted["title"],
                path=document["path"],
                section=spec.heading,
                page=spec.page,
                ordinal=spec.ordinal,
                start=spec.start,
                end=spec.end,
                content_hash=hashlib.sha256(spec.text.encode()).hexdigest()[:32],
                tags=tuple(metadata.get("tags", [])),
                acl_groups=tuple(metadata.get("acl_groups", [])),
                metadata=metadata.get("extra", {}),
            )
            for spec, vector in zip(specs, vectors, strict=True)
        ]
        self._owned(tenant, doc_id, run)  # the last check before the index changes
        self.index.replace_document(tenant, doc_id, chunks)
        self._advance(tenant, doc_id, run, stage=Stage.FINALIZE, chunk_count=len(chunks))
        return {**_without(state, "chunks.json", "vectors.json"), "indexed": {"count": len(chunks)}}

    # -- finalize / delete / fail

    def finalize(self, state: dict[str, Any], run: str) -> dict[str, Any]:
        document, extracted = state["document"], state["extracted"]
        tenant, doc_id = document["tenant"], document["doc_id"]
        values: dict[str, Any] = {"status": DocumentStatus.INDEXED, "stage": Stage.DONE}
        if not extracted.get("unchanged"):
            values |= {
                "content_hash": extracted["content_hash"],
                "metadata_hash": extracted["metadata_hash"],
                "version": extracted["version"],
                "revision": extracted["revision"],
                "indexed_at": now(),
            }
        self._advance(tenant, doc_id, run, **values)
        return {**state, "finalized": True}

    def delete(self, state: dict[str, Any], run: str) -> dict[str, Any]:
        assert self.index is not None
        document = state["document"]
        tenant, doc_id = document["tenant"], document["doc_id"]
        self._owned(tenant, doc_id, run)
        removed = self.index.delete_document(tenant, doc_id)
        self._advance(
            tenant,
            doc_id,
            run,
            status=DocumentStatus.DELETED,
            stage=Stage.DONE,
            chunk_count=0,
            revision=0,
            content_hash="",
            metadata_hash="",
        )
        return {**state, "deleted": {"chunks": removed}}

    def fail(self, state: dict[str, Any], run: str) -> dict[str, Any]:
        """Record why the run failed on the document (`failure` is what the ASL's Catch put in the state)."""
        tenant, path = locate(state["key"])
        doc_id = document_id(tenant, path)
        error, detail, reason = _failure(state.get("failure") or {})
        current = self.registry.get(tenant, doc_id)
        if current is None:  # failed before any run claimed it: the row records the failure
            self.registry.claim(tenant, path, run, Stage.QUEUED)
            current = self.registry.get(tenant, doc_id)
        assert current is not None
        written = self.registry.advance(
            tenant,
            doc_id,
            run,  # a run that does not own the row (a newer one does) leaves it alone
            status=DocumentStatus.FAILED,
            stage=current.stage,
            progress=current.progress,
            error=f"{error}: {detail}" if detail else error,
            reason=reason,
        )
        return {**state, "recorded": written}

    # -- helpers

    def _advance(self, tenant: str, doc_id: str, run: str, **values: Any) -> None:
        if not self.registry.advance(tenant, doc_id, run, **values):
            raise Superseded(f"a newer run owns document {doc_id}")

    def _owned(self, tenant: str, doc_id: str, run: str) -> None:
        current = self.registry.get(tenant, doc_id)
        if current is None or current.claim != run:
            raise Superseded(f"a newer run owns document {doc_id}")

    def _put(self, state: dict[str, Any], run: str, name: str, value: Any) -> dict[str, Any]:
        """Hand an artifact to the next stages: in the state itself when it is small (no S3 round trips), in the
        artifacts bucket otherwise (a Step Functions state holds at most 256 KB)."""
        body = json.dumps(value)
        if len(body) <= INLINE_ARTIFACT_BYTES:
            return {**state, ARTIFACTS: {**state.get(ARTIFACTS, {}), name: value}}
        self.artifacts.put(f"runs/{run}/{name}", body.encode())
        return _without(state, name)

    def _get(self, state: dict[str, Any], run: str, name: str) -> Any:
        inline = state.get(ARTIFACTS, {})
        if name in inline:
            return inline[name]
        return json.loads(self.artifacts.get(f"runs/{run}/{name}").body)


def _without(state: dict[str, Any], *names: str) -> dict[str, Any]:
    """The state without these inline artifacts (the stages after this one do not read them)."""
    inline = {k: v for k, v in state.get(ARTIFACTS, {}).items() if k not in names}
    return {**{k: v for k, v in state.items() if k != ARTIFACTS}, **({ARTIFACTS: inline} if inline else {})}


def _specs(chunks: list[dict[str, Any]]) -> list[ChunkSpec]:
    from functions.ingestion.chunking import ChunkSpec

    return [ChunkSpec(**c) for c in chunks]


def passage_text(title: str, spec: ChunkSpec) -> str:
    """What is embedded for a chunk: its document title and section heading, then its text."""
    context = " - ".join(part for part in (title, spec.heading) if part)
    return f"{context}\n{spec.text}" if context else spec.text


def _failure(failure: dict[str, Any]) -> tuple[str, str, str]:
    """(error name, message, reason code) from a Catch's {"Error", "Cause"}; a Lambda's Cause is its error JSON."""
    error = str(failure.get("Error", "Unknown"))
    cause = failure.get("Cause") or ""
    detail, reason = str(cause), "error"
    try:
        parsed = json.loads(cause)
        detail = str(parsed.get("errorMessage", cause))
    except (ValueError, AttributeError):
        pass
    if error == "DocumentRejected":
        reason = "rejected"
    return error, detail[:2000], reason
