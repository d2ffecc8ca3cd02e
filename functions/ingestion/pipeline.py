"""The ingestion stages. A run processes a batch of object changes (one or many documents); each stage takes the
run's state (what the state machine carries) and returns it with its own result added. Text, chunks and vectors
travel in the state when small, through the artifacts bucket under the run's name otherwise.

Every document in a run is reconciled with the newest object in the drop bucket, whatever event named it: the
object that is there now is ingested, a missing one is deleted. So duplicate events, out-of-order events and
events of a sidecar all converge on the newest state of the file. Each document is owned through its own claim
(the idempotency key of its object change); the newest claim wins, and a run drops a document it no longer owns.

A document that cannot be ingested (corrupt, unsupported, no text, unknown tenant) fails alone, with its reason
on its registry row, and leaves the run; failures of the run's dependencies (S3, the table, the model endpoint,
the index) raise, so the state machine retries the stage and, once retries are spent, fails every document
the run still holds (`fail`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from agentplatform.documents import (
    PROGRESS,
    SIDECAR_SUFFIX,
    Advance,
    Claim,
    DocumentRegistry,
    DocumentStatus,
    Stage,
    document_id,
    locate,
    metadata_text,
    now,
)
from agentplatform.errors import ConfigurationError, DocumentRejected, NotFound, PlatformError
from agentplatform.inference import EMBEDDING_MAX_BATCH
from agentplatform.ports import EmbeddingModel, EventBus, ObjectStore, SearchIndex
from agentplatform.search import Chunk

if TYPE_CHECKING:
    from agentplatform.limits import TokenMeter
    from functions.ingestion.chunking import ChunkSpec

log = logging.getLogger("ingestion")

# The extraction and chunking libraries (PDFium, lxml, python-docx, tokenizers: ~0.3 s to import) are imported
# by the stages that use them, not by every ingestion function that imports this module.

EMBED_BATCH = EMBEDDING_MAX_BATCH  # texts per endpoint call; a long document's progress moves call by call
MAX_TAGS = 50
# What one stage hands the next travels in the state when its JSON is this small (most runs: no S3 round trips);
# bigger ones go through the artifacts bucket. Two such artifacts and the run's documents stay well inside a
# state's 256 KB.
ARTIFACTS = "artifacts"
INLINE_ARTIFACT_BYTES = 48_000
MAX_GROUPS = 50
READERS = 8  # documents read from the drop bucket at once by the extract stage

Sidecars = dict[str, set[str]]  # folder -> the sidecar keys a listing found in it


def _granted(store: ObjectStore | None, setting: str) -> ObjectStore:
    if store is None:
        raise ConfigurationError(f"setting {setting} is not set", setting=setting)
    return store


@dataclass
class Stages:
    # A stage gets the buckets it is granted only (a deployed stage has only its grants' settings; `fail` has none).
    drop: ObjectStore | None
    artifacts: ObjectStore | None
    registry: DocumentRegistry
    index: SearchIndex | None = None
    embeddings: EmbeddingModel | None = None
    # Counts the embedding tokens against the tenant's quota (counted, never refused: a dropped file is indexed).
    meter: TokenMeter | None = None
    # Where Document Changed goes (the LLM gateway drops cached answers citing a changed document).
    events: EventBus | None = None

    # -- extract: which documents the changes are about, claimed, read and turned into text

    def extract(self, state: dict[str, Any], run: str) -> dict[str, Any]:
        """Claim the changes' documents, then read them: the newest claimant reads the newest object. A document
        of an unknown tenant fails at its claim; a missing object is a delete; a sidecar names its file."""
        outcomes: Counter[str] = Counter()
        known: dict[str, bool] = {}
        rejected: list[Claim] = []  # documents of unknown tenants: claimed as failed
        claims: list[Claim] = []
        documents: list[dict[str, Any]] = []
        for change in _one_per_document(state["changes"]):
            key, claim = change["key"], change["claim"]
            tenant, path = locate(key)
            name = path.rsplit("/", 1)[-1]
            if not path or key.endswith("/") or name.startswith((".", "~$")):
                outcomes["skipped"] += 1  # a folder or a hidden file: not a document
                continue
            document = {"tenant": tenant, "path": path, "doc_id": document_id(tenant, path), "claim": claim}
            document["key"] = f"{tenant}/{path}"
            if tenant not in known:
                known[tenant] = self.registry.known_tenant(tenant)
            if not known[tenant]:
                failed = {"status": DocumentStatus.FAILED, "reason": "tenant"}
                failed["error"] = f"DocumentRejected: unknown tenant {tenant!r}: the folder {tenant}/ is no tenant's"
                rejected.append(Claim(tenant, path, claim, Stage.QUEUED, failed))
                outcomes["failed"] += 1
                continue
            if key != document["key"] and not self._exists(document["key"]):
                outcomes["skipped"] += 1  # a sidecar without its file
                continue
            claims.append(Claim(tenant, path, claim, Stage.EXTRACT))
            documents.append(document)
        before = self.registry.claim_many(rejected + claims)[len(rejected) :]

        failures: list[Failure] = []
        kept, deletes = [], []
        texts: dict[str, Any] = {}
        # Reading is waiting on S3 (the object, its sidecar): a few documents at a time.
        sidecars = self._sidecars(documents)
        with ThreadPoolExecutor(max_workers=READERS) as pool:
            outcomes_of = list(pool.map(lambda d, c: self._read_one(d, c, sidecars), documents, before))
        for document, outcome in zip(documents, outcomes_of, strict=True):
            if outcome == "deleted":
                deletes.append(document)
            elif isinstance(outcome, Failure):
                failures.append(outcome)
            else:
                kept.append(document)
                if not document["unchanged"]:
                    texts[document["doc_id"]] = document.pop("text")
        self._record_failures(failures)
        outcomes["failed"] += len(failures)
        state = self._put(state, run, "text.json", texts)
        changed = sum(1 for d in kept if not d["unchanged"])
        state = {
            **state,
            "documents": kept,
            "deletes": deletes,
            "work": {"changed": changed, "unchanged": len(kept) - changed, "deletes": len(deletes)},
            "outcomes": dict(outcomes),
        }
        return self._moved_on(state, Stage.CHUNK, [d for d in kept if not d["unchanged"]], [])

    def _read_one(self, document: dict[str, Any], current: Any, sidecars: Sidecars) -> Failure | str | None:
        """One claimed document read and extracted: None, "deleted" (no object), or its Failure."""
        try:
            stored = _granted(self.drop, "DROP_BUCKET_NAME").get(document["key"])
        except NotFound:
            return "deleted"
        return _alone(document, lambda: self._extract_one(document, stored, current, sidecars))

    def _sidecars(self, documents: list[dict[str, Any]]) -> Sidecars:
        """Which documents have a sidecar, by one listing of each folder holding several of the run's documents
        (instead of a probe per document); a folder with many other files is left to per-document probes."""
        folders = Counter(d["key"].rpartition("/")[0] + "/" for d in documents)
        found: dict[str, set[str]] = {}
        for folder, count in folders.items():
            # Worth it while the folder is not much bigger than the run's share of it (a listing's cost grows
            # with the keys it returns): each document and its sidecar, at most.
            keys = _granted(self.drop, "DROP_BUCKET_NAME").list_folder(folder, limit=2 * count) if count > 1 else None
            if keys is not None:
                found[folder] = {k for k in keys if k.endswith(SIDECAR_SUFFIX)}
        return found

    def _exists(self, key: str) -> bool:
        try:
            _granted(self.drop, "DROP_BUCKET_NAME").head(key)
        except NotFound:
            return False
        return True

    def _extract_one(self, document: dict[str, Any], stored: Any, current: Any, sidecars: Sidecars) -> None:
        key = document["key"]
        listed = sidecars.get(key.rpartition("/")[0] + "/")
        metadata = self._metadata(key, stored.metadata, None if listed is None else key + SIDECAR_SUFFIX in listed)
        content_hash = hashlib.sha256(stored.body).hexdigest()
        metadata_hash = hashlib.sha256(json.dumps(metadata, sort_keys=True).encode()).hexdigest()
        if (
            current is not None
            and current.revision > 0
            and current.content_hash == content_hash
            and current.metadata_hash == metadata_hash
        ):
            document["unchanged"] = True
            return
        from functions.ingestion.extract import extract

        extracted = extract(stored.body, key.rsplit("/", 1)[-1])
        title = metadata.get("title") or extracted.title or key.rsplit("/", 1)[-1]
        document.update(
            unchanged=False,
            content_hash=content_hash,
            metadata_hash=metadata_hash,
            title=title,
            version=stored.version,
            revision=(current.revision if current else 0) + 1,
            text={"extracted": asdict(extracted), "metadata": metadata},
            row={  # what the registry shows of the document, written with its next advance
                "title": title,
                "content_type": extracted.content_type,
                "pages": extracted.pages,
                "size": len(stored.body),
                "tags": metadata.get("tags", []),
                "acl_groups": metadata.get("acl_groups", []),
            },
        )

    def _metadata(self, key: str, object_metadata: dict[str, str], has_sidecar: bool | None) -> dict[str, Any]:
        """Title, tags and ACL groups from S3 object metadata, overridden by a `<file>.meta.json` sidecar
        (`has_sidecar`: whether a listing showed one; None: not listed, look)."""
        metadata: dict[str, Any] = {}
        if object_metadata.get("title"):
            metadata["title"] = metadata_text(object_metadata["title"])
        for field, header in (("tags", "tags"), ("acl_groups", "acl-groups")):
            if object_metadata.get(header):
                items = (metadata_text(v).strip() for v in object_metadata[header].split(","))
                metadata[field] = [v for v in items if v]
        if has_sidecar is False:
            return metadata
        try:
            sidecar = json.loads(_granted(self.drop, "DROP_BUCKET_NAME").get(key + SIDECAR_SUFFIX).body)
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
        from functions.ingestion.chunking import chunk, word_piece_tokenizer
        from functions.ingestion.extract import Extracted, Section

        texts = self._get(state, run, "text.json")
        tokenizer = word_piece_tokenizer()
        chunked: dict[str, Any] = {}
        failures: list[Failure] = []

        def chunk_one(document: dict[str, Any]) -> None:
            data = texts[document["doc_id"]]
            fields = data["extracted"]
            extracted = Extracted(**{**fields, "sections": [Section(**s) for s in fields["sections"]]})
            specs = chunk(extracted, tokenizer)
            if not specs:
                raise DocumentRejected("the document has no text to index", reason="no_text")
            chunked[document["doc_id"]] = {"chunks": [asdict(s) for s in specs], "metadata": data["metadata"]}
            document["chunks"] = len(specs)

        for document in _changed(state):
            failure = _alone(document, lambda d=document: chunk_one(d))
            if failure is not None:
                failures.append(failure)
        self._record_failures(failures)
        state = self._put(_without(state, "text.json"), run, "chunks.json", chunked)
        return self._moved_on(state, Stage.EMBED, [d for d in _changed(state) if d["doc_id"] in chunked], failures)

    # -- embed

    def embed(self, state: dict[str, Any], run: str) -> dict[str, Any]:
        """Every chunk of the run's documents, in endpoint calls of EMBED_BATCH texts whatever document they
        come from (small documents share a call); a document spanning several calls shows its progress."""
        assert self.embeddings is not None
        chunked = self._get(state, run, "chunks.json")
        documents = _changed(state)
        owners: list[int] = []  # the document of each passage, by position in `documents`
        passages: list[str] = []
        tokens: Counter[str] = Counter()
        for position, document in enumerate(documents):
            for spec in _specs(chunked[document["doc_id"]]["chunks"]):
                passages.append(passage_text(document["title"], spec))
                owners.append(position)
                tokens[document["tenant"]] += spec.tokens
        vectors: list[list[float]] = []
        span = PROGRESS[Stage.INDEX] - PROGRESS[Stage.EMBED]
        totals = Counter(owners)
        for start in range(0, len(passages), EMBED_BATCH):
            vectors += self.embeddings.embed(passages[start : start + EMBED_BATCH])
            done = Counter(owners[: len(vectors)])
            partial = [p for p in set(owners[start : len(vectors)]) if done[p] < totals[p]]
            self._advance_many(  # only a document still mid-way says how far it is; the others move on below
                [
                    Advance(
                        documents[p]["tenant"],
                        documents[p]["doc_id"],
                        documents[p]["claim"],
                        {"progress": PROGRESS[Stage.EMBED] + span * done[p] // totals[p]},
                    )
                    for p in partial
                ]
            )
        if self.meter is not None:
            for tenant, count in tokens.items():
                self.meter.spend(tenant, count)
        by_document: dict[str, list[list[float]]] = {}
        for owner, vector in zip(owners, vectors, strict=True):
            by_document.setdefault(documents[owner]["doc_id"], []).append(vector)
        state = self._put(state, run, "vectors.json", by_document)
        return self._moved_on(state, Stage.INDEX, documents, [])

    # -- index

    def index_chunks(self, state: dict[str, Any], run: str) -> dict[str, Any]:
        """Every document's chunks in one index call (one commit, or one bulk request): each document's old
        chunks give way to its new ones at once."""
        assert self.index is not None
        chunked = self._get(state, run, "chunks.json")
        vectors = self._get(state, run, "vectors.json")
        documents = self._still_owned(_changed(state))  # the last check before the index changes
        replacements: dict[tuple[str, str], list[Chunk]] = {}
        for document in documents:
            tenant, doc_id = document["tenant"], document["doc_id"]
            metadata = chunked[doc_id]["metadata"]
            version = document["content_hash"][:16]
            replacements[(tenant, doc_id)] = [
                Chunk(
                    chunk_id=f"{doc_id}-{version}-{spec.ordinal}",
                    tenant=tenant,
                    doc_id=doc_id,
                    doc_version=version,
                    text=spec.text,
                    vector=vector,
                    title=document["title"],
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
                for spec, vector in zip(_specs(chunked[doc_id]["chunks"]), vectors[doc_id], strict=True)
            ]
        if replacements:
            self.index.replace_documents(replacements)
        for document in documents:
            document["chunk_count"] = len(replacements[(document["tenant"], document["doc_id"])])
        indexed = {d["doc_id"] for d in documents}
        state = _keep(
            _without(state, "chunks.json", "vectors.json"),
            {d["doc_id"] for d in state["documents"] if d["unchanged"] or d["doc_id"] in indexed},
        )
        return self._moved_on(state, Stage.FINALIZE, [d for d in state["documents"] if not d["unchanged"]], [])

    # -- finalize / delete / fail

    def finalize(self, state: dict[str, Any], run: str) -> dict[str, Any]:
        advances = []
        for document in state["documents"]:
            values: dict[str, Any] = {"status": DocumentStatus.INDEXED, "stage": Stage.DONE}
            if not document["unchanged"]:
                values |= document.get("row", {}) | {
                    "chunk_count": document["chunk_count"],
                    "content_hash": document["content_hash"],
                    "metadata_hash": document["metadata_hash"],
                    "version": document["version"],
                    "revision": document["revision"],
                    "indexed_at": now(),
                }
            advances.append(Advance(document["tenant"], document["doc_id"], document["claim"], values))
        indexed = self._advance_many(advances)
        self._changed([d for d in state["documents"] if not d["unchanged"] and d["doc_id"] in indexed], "indexed")
        return {**_keep(state, indexed), "finalized": len(indexed)}

    def delete(self, state: dict[str, Any], run: str) -> dict[str, Any]:
        assert self.index is not None
        deletes = self._still_owned(state["deletes"])
        for document in deletes:
            document["chunks_removed"] = self.index.delete_document(document["tenant"], document["doc_id"])
        deleted = self._advance_many(
            [
                Advance(
                    d["tenant"],
                    d["doc_id"],
                    d["claim"],
                    {
                        "status": DocumentStatus.DELETED,
                        "stage": Stage.DONE,
                        "chunk_count": 0,
                        "revision": 0,
                        "content_hash": "",
                        "metadata_hash": "",
                    },
                )
                for d in deletes
            ]
        )
        self._changed([d for d in deletes if d["doc_id"] in deleted], "deleted")
        return {**state, "deletes": [d for d in deletes if d["doc_id"] in deleted]}

    def _changed(self, documents: list[dict[str, Any]], change: str) -> None:
        """Publish Document Changed per document. After the registry moved on, so a lost event is logged, not
        retried: the stage must not redo its work for it, and cached answers expire by TTL anyway."""
        if self.events is None:
            return
        for d in documents:
            try:
                detail = {"tenant": d["tenant"], "doc_id": d["doc_id"], "change": change}
                self.events.publish("agentplatform.ingestion", "Document Changed", detail)
            except PlatformError as exc:
                log.warning("document changed event lost", extra={"tenant": d["tenant"], "error": exc.code})

    def fail(self, state: dict[str, Any], run: str) -> dict[str, Any]:
        """The run failed (`failure` is what the ASL's Catch put in the state): every document it still holds
        fails with that reason; documents a newer run owns are left to it."""
        error, detail, reason = _failure(state.get("failure") or {})
        held = [*state.get("documents", []), *state.get("deletes", [])]
        if "documents" not in state:  # it failed before the documents were claimed: name them from the changes
            held = []
            for change in state["changes"]:
                tenant, path = locate(change["key"])
                if path:
                    held.append({"tenant": tenant, "path": path, "doc_id": document_id(tenant, path), **change})
        held = list({d["doc_id"]: d for d in held}.values())
        rows = self.registry.get_many([(d["tenant"], d["doc_id"]) for d in held]) if held else []
        # A document no run has claimed yet gets a row, so that its failure is recorded somewhere.
        unclaimed = [d for d, row in zip(held, rows, strict=True) if row is None]
        if unclaimed:
            self.registry.claim_many([Claim(d["tenant"], d["path"], d["claim"], Stage.QUEUED) for d in unclaimed])
        message = f"{error}: {detail}" if detail else error
        failed = {"status": DocumentStatus.FAILED, "error": message, "reason": reason}
        written = self._advance_many([Advance(d["tenant"], d["doc_id"], d["claim"], failed) for d in held])
        return {**state, "recorded": len(written)}

    # -- helpers

    def _moved_on(
        self, state: dict[str, Any], stage: Stage, documents: list[dict[str, Any]], failures: list[Failure]
    ) -> dict[str, Any]:
        """The state after a stage, failed documents left out. A run of one document, or a long document (more
        than one embedding call), writes each stage on its row, and leaves out a document a newer claim owns;
        a shared run of short documents, whose stages take a fraction of a second each, writes only its outcome
        (finalize's write is conditional on the claim, and index checks ownership before the index changes)."""
        failed = {f.document["doc_id"] for f in failures}
        reporting = [d for d in documents if d["doc_id"] not in failed and _reports(state, d)]
        advances = [
            Advance(d["tenant"], d["doc_id"], d["claim"], {"stage": stage, **d.pop("row", {})}) for d in reporting
        ]
        superseded = {d["doc_id"] for d in reporting} - self._advance_many(advances)
        return _keep(state, {d["doc_id"] for d in state["documents"]} - failed - superseded)

    def _advance_many(self, advances: list[Advance]) -> set[str]:
        """Write the advances; return the ids of the documents still owned (written)."""
        written = self.registry.advance_many(advances) if advances else []
        return {a.doc_id for a, ok in zip(advances, written, strict=True) if ok}

    def _still_owned(self, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = self.registry.get_many([(d["tenant"], d["doc_id"]) for d in documents]) if documents else []
        return [d for d, row in zip(documents, rows, strict=True) if row is not None and row.claim == d["claim"]]

    def _record_failures(self, failures: list[Failure]) -> None:
        """Each failed document's error and reason on its row (a document a newer run owns is left to it)."""
        self._advance_many(
            [
                Advance(
                    f.document["tenant"],
                    f.document["doc_id"],
                    f.document["claim"],
                    {"status": DocumentStatus.FAILED, "error": f.message, "reason": f.reason},
                )
                for f in failures
            ]
        )

    def _put(self, state: dict[str, Any], run: str, name: str, value: Any) -> dict[str, Any]:
        """Hand an artifact to the next stages: in the state itself when it is small (no S3 round trips), in the
        artifacts bucket otherwise (a Step Functions state holds at most 256 KB)."""
        body = json.dumps(value)
        if len(body) <= INLINE_ARTIFACT_BYTES:
            return {**state, ARTIFACTS: {**state.get(ARTIFACTS, {}), name: value}}
        _granted(self.artifacts, "ARTIFACTS_BUCKET_NAME").put(f"runs/{run}/{name}", body.encode())
        return _without(state, name)

    def _get(self, state: dict[str, Any], run: str, name: str) -> Any:
        inline = state.get(ARTIFACTS, {})
        if name in inline:
            return inline[name]
        return json.loads(_granted(self.artifacts, "ARTIFACTS_BUCKET_NAME").get(f"runs/{run}/{name}").body)


@dataclass
class Failure:
    """Why one document of a run cannot be ingested."""

    document: dict[str, Any]
    error: Exception
    reason: str = ""

    @property
    def message(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"[:2000]

    def __post_init__(self) -> None:
        # A rejection's own reason code (corrupt, unsupported_format, no_text, ...); "error" for anything else.
        if not self.reason:
            context = self.error.context if isinstance(self.error, PlatformError) else {}
            self.reason = str(context.get("reason") or "error")


def _alone(document: dict[str, Any], work: Callable[[], None]) -> Failure | None:
    """Run one document's share of a stage; its own failure (a corrupt file, a bug its content triggers) fails
    that document only. A dependency's failure (retryable) is the run's: it raises, for the state machine's Retry."""
    try:
        work()
    except Exception as exc:
        if isinstance(exc, PlatformError) and exc.retryable:
            raise
        return Failure(document, exc)
    return None


def _one_per_document(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A file and its sidecar are one document: of a run's changes to one document, the last one stands for all
    (the document is read as it is now either way)."""
    latest = {locate(c["key"]): c for c in changes}
    return list(latest.values())


def _reports(state: dict[str, Any], document: dict[str, Any]) -> bool:
    """Whether a document's row shows each stage (see `Stages._moved_on`)."""
    return len(state["documents"]) == 1 or document.get("chunks", 0) > EMBED_BATCH


def _changed(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in state["documents"] if not d["unchanged"]]


def _keep(state: dict[str, Any], doc_ids: set[str]) -> dict[str, Any]:
    """The state with only these documents left in the run."""
    documents = [d for d in state["documents"] if d["doc_id"] in doc_ids]
    dropped = len(state["documents"]) - len(documents)
    outcomes = dict(state.get("outcomes", {}))
    if dropped:
        outcomes["left"] = outcomes.get("left", 0) + dropped
    return {**state, "documents": documents, "outcomes": outcomes}


def _without(state: dict[str, Any], *names: str) -> dict[str, Any]:
    """The state without these inline artifacts (the stages after this one do not read them)."""
    inline = {k: v for k, v in state.get(ARTIFACTS, {}).items() if k not in names}
    return {**{k: v for k, v in state.items() if k != ARTIFACTS}, **({ARTIFACTS: inline} if inline else {})}


def _specs(chunks: list[dict[str, Any]]) -> Iterator[ChunkSpec]:
    from functions.ingestion.chunking import ChunkSpec

    return (ChunkSpec(**c) for c in chunks)


def passage_text(title: str, spec: ChunkSpec) -> str:
    """What is embedded for a chunk: its document title and the headings it sits under (the section path; the
    innermost heading where the format has no levels), then its text. A heading that repeats the title or the
    heading above it is said once."""
    parts: list[str] = []
    for part in (title, *(spec.heading_path or (spec.heading,))):
        if part and (not parts or part.casefold() != parts[-1].casefold()):
            parts.append(part)
    return f"{' - '.join(parts)}\n{spec.text}" if parts else spec.text


def _failure(failure: dict[str, Any]) -> tuple[str, str, str]:
    """(error name, message, reason code) from a Catch's {"Error", "Cause"}; a Lambda's Cause is its error JSON."""
    error = str(failure.get("Error", "Unknown"))
    cause = failure.get("Cause") or ""
    detail = str(cause)
    try:
        parsed = json.loads(cause)
        detail = str(parsed.get("errorMessage", cause))
    except (ValueError, AttributeError):
        pass
    return error, detail[:2000], "error"
