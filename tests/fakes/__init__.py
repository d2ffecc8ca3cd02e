"""In-memory fakes of the ports, for unit tests: same behaviour and errors as the AWS adapters.

Set `available = False` on any of them to make it behave like an unreachable dependency.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from agentplatform.errors import DependencyUnavailable, NotFound, ValidationFailed
from agentplatform.observability import correlation_id, with_correlation
from agentplatform.ports import StoredObject, Update
from agentplatform.search import (
    MAX_TOKEN_CHARS,
    PUBLIC_ACL,
    STOPWORDS,
    Chunk,
    SearchHit,
    SearchMode,
    SearchRequest,
    chunk_identifiers,
    fuse,
    require_tenant,
    vector_score,
)

_ids = itertools.count(1)


class _Fake:
    available = True
    resource = "fake"

    def check(self) -> None:
        if not self.available:
            raise DependencyUnavailable(f"{self.resource} unreachable", resource=self.resource)


class MemoryObjectStore(_Fake):
    resource = "memory object store"

    def __init__(self) -> None:
        self.objects: dict[str, StoredObject] = {}

    def put(self, key: str, body: bytes, metadata: Mapping[str, str] | None = None) -> StoredObject:
        self.check()
        stored = StoredObject(key, body, dict(metadata or {}), version=str(next(_ids)), size=len(body))
        self.objects[key] = stored
        return stored

    def get(self, key: str) -> StoredObject:
        self.check()
        if key not in self.objects:
            raise NotFound(f"{self.resource}/{key}: not found", resource=self.resource)
        return self.objects[key]

    def head(self, key: str) -> StoredObject:
        found = self.get(key)
        return StoredObject(key, b"", found.metadata, found.version, found.size)

    def delete(self, key: str) -> None:
        self.check()
        self.objects.pop(key, None)

    def list_folder(self, folder: str, *, limit: int) -> list[str] | None:
        self.check()
        keys = sorted(k for k in self.objects if k.startswith(folder) and "/" not in k[len(folder) :])
        return keys if len(keys) <= limit else None

    def list_page(self, prefix: str, *, limit: int, after: str | None = None) -> tuple[list[StoredObject], str | None]:
        self.check()
        keys = sorted(k for k in self.objects if k.startswith(prefix) and (after is None or k > after))
        page = [self.head(k) for k in keys[:limit]]
        return page, (page[-1].key if len(keys) > limit else None)


class MemoryQueue(_Fake):
    resource = "memory queue"

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, body: Mapping[str, Any]) -> str:
        self.check()
        message_id = str(next(_ids))
        self.messages.append(
            {"id": message_id, "body": json.loads(json.dumps(body)), "correlation_id": correlation_id()}
        )
        return message_id


class MemoryEventBus(_Fake):
    resource = "memory event bus"

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def publish(self, source: str, detail_type: str, detail: Mapping[str, Any]) -> str:
        self.check()
        event_id = str(next(_ids))
        self.events.append(
            {"id": event_id, "source": source, "detail-type": detail_type, "detail": with_correlation(detail)}
        )
        return event_id


class MemoryWorkflow(_Fake):
    resource = "memory workflow"

    def __init__(self) -> None:
        self.executions: dict[str, dict[str, Any]] = {}

    def start(self, payload: Mapping[str, Any], *, name: str | None = None) -> str:
        self.check()
        execution_id = name or str(next(_ids))
        self.executions.setdefault(execution_id, with_correlation(payload))
        return execution_id


_ADD_LOCK = threading.Lock()


class MemoryTable(_Fake):
    resource = "memory table"

    def __init__(self, key_names: tuple[str, ...] = ("pk", "sk")) -> None:
        self.key_names = key_names
        self.items: dict[tuple[Any, ...], dict[str, Any]] = {}

    def _key(self, key: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(key[name] for name in self.key_names)

    def get(self, key: Mapping[str, str]) -> dict[str, Any] | None:
        self.check()
        item = self.items.get(self._key(key))
        return dict(item) if item else None

    def update(
        self, key: Mapping[str, str], values: Mapping[str, Any], *, expect: Mapping[str, Any] | None = None
    ) -> bool:
        self.check()
        current = self.items.get(self._key(key))
        if expect and any((current or {}).get(k) != v for k, v in expect.items()):
            return False
        self.items[self._key(key)] = {**(current or dict(key)), **values}
        return True

    def get_many(self, keys: Sequence[Mapping[str, str]]) -> list[dict[str, Any] | None]:
        self._distinct(keys)
        return [self.get(key) for key in keys]

    def put_many(self, items: Sequence[Mapping[str, Any]]) -> None:
        self._distinct(items)
        for item in items:
            self.put(item)

    def update_many(self, updates: Sequence[Update]) -> list[bool]:
        self._distinct([u.key for u in updates])
        return [self.update(u.key, u.values, expect=u.expect) for u in updates]

    def _distinct(self, keys: Sequence[Mapping[str, Any]]) -> None:
        """DynamoDB refuses a batch naming one item twice (ValidationException): so does the fake."""
        if len({self._key(k) for k in keys}) < len(keys):
            raise ValidationFailed(f"{self.resource}: a batch names one item twice")

    def increment(
        self, key: Mapping[str, str], field: str, amount: int, values: Mapping[str, Any] | None = None
    ) -> int:
        self.check()
        item = self.items.setdefault(self._key(key), dict(key))
        item[field] = int(item.get(field, 0)) + amount
        item.update(values or {})
        return int(item[field])

    def add_within(
        self,
        key: Mapping[str, str],
        deltas: Mapping[str, int],
        ceilings: Mapping[str, int] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        self.check()
        with _ADD_LOCK:  # the check and the add are one step, as DynamoDB's conditional update is
            current = self.items.get(self._key(key)) or {}
            after = {name: int(current.get(name, 0)) + amount for name, amount in deltas.items()}
            if any(after.get(name, int(current.get(name, 0))) > c for name, c in (ceilings or {}).items()):
                return False
            self.items[self._key(key)] = {**(current or dict(key)), **after, **(values or {})}
            return True

    def query(
        self, partition: Mapping[str, str], *, limit: int = 100, after: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        self.check()
        (name, value), sort = next(iter(partition.items())), self.key_names[-1]
        rows = sorted((i for i in self.items.values() if i.get(name) == value), key=lambda i: i.get(sort, ""))
        if after:
            rows = [i for i in rows if i.get(sort, "") > after[sort]]
        page = [dict(i) for i in rows[:limit]]
        more = len(rows) > limit
        return page, ({k: page[-1][k] for k in self.key_names} if more and page else None)

    def put(self, item: Mapping[str, Any]) -> None:
        self.check()
        self.items[self._key(item)] = dict(item)

    def delete(self, key: Mapping[str, str]) -> None:
        self.check()
        self.items.pop(self._key(key), None)


class ScriptedModelEndpoint(_Fake):
    """A ModelEndpoint that answers from a script: each item is a payload to return or an exception to raise;
    a callable item computes the answer from the request. Records every request."""

    def __init__(self, name: str, script: list[Any]) -> None:
        self.name = name
        self.resource = f"endpoint {name}"
        self._script = list(script)
        self.requests: list[dict[str, Any]] = []

    def invoke(self, payload: Mapping[str, Any]) -> Any:
        self.check()
        request = json.loads(json.dumps(payload))
        self.requests.append(request)
        if not self._script:
            raise AssertionError(f"{self.resource}: script exhausted after {len(self.requests) - 1} calls")
        step = self._script.pop(0) if len(self._script) > 1 or not callable(self._script[0]) else self._script[0]
        if isinstance(step, Exception):
            raise step
        return step(request) if callable(step) else step


class MemorySearchIndex(_Fake):
    """SearchIndex in plain Python: BM25 (tantivy's and Lucene's formula, over index-wide statistics, as both
    engines compute it), exact cosine, search.fuse. Small data only; the reference the other adapters match."""

    resource = "search index"
    K1, B = 1.2, 0.75

    def __init__(self) -> None:
        import Stemmer  # PyStemmer: the Snowball English stemmer, as tantivy's and OpenSearch's `snowball`

        self._stem = Stemmer.Stemmer("english").stemWord
        self._chunks: dict[tuple[str, str], Chunk] = {}

    def analyze(self, text: str) -> list[str]:
        tokens = (t.lower() for t in _WORD.findall(text) if len(t.encode()) < MAX_TOKEN_CHARS)
        return [self._stem(t) for t in tokens if t not in _STOPWORD_SET]

    def ensure(self) -> None:
        self.check()

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        self.check()
        for chunk in chunks:
            self._chunks[(require_tenant(chunk.tenant), chunk.chunk_id)] = chunk

    def replace_document(self, tenant: str, doc_id: str, chunks: Sequence[Chunk]) -> None:
        self.replace_documents({(tenant, doc_id): chunks})

    def replace_documents(self, documents: Mapping[tuple[str, str], Sequence[Chunk]]) -> None:
        for (tenant, doc_id), chunks in documents.items():
            if any(c.tenant != tenant or c.doc_id != doc_id for c in chunks):
                raise ValidationFailed("replace_documents takes each document's own chunks")
        for (tenant, doc_id), chunks in documents.items():
            self.delete_document(tenant, doc_id)
            self.upsert(chunks)

    def delete_document(self, tenant: str, doc_id: str) -> int:
        return self._delete(lambda c: c.tenant == tenant and c.doc_id == doc_id)

    def delete_version(self, tenant: str, doc_id: str, doc_version: str) -> int:
        return self._delete(lambda c: c.tenant == tenant and c.doc_id == doc_id and c.doc_version == doc_version)

    def get(self, tenant: str, chunk_id: str) -> Chunk | None:
        self.check()
        return self._chunks.get((require_tenant(tenant), chunk_id))

    def count(self, tenant: str, doc_id: str | None = None) -> int:
        self.check()
        require_tenant(tenant)
        return sum(1 for c in self._chunks.values() if c.tenant == tenant and doc_id in (None, c.doc_id))

    def search(self, request: SearchRequest) -> list[SearchHit]:
        self.check()
        allowed = [c for c in self._chunks.values() if _passes(c, request)]
        bm25 = self._bm25(request, allowed)[: request.depth] if request.mode != SearchMode.VECTOR else []
        vector = self._nearest(request.vector, allowed)[: request.depth] if request.mode != SearchMode.BM25 else []
        if request.mode == SearchMode.BM25:
            ranked = bm25
        elif request.mode == SearchMode.VECTOR:
            ranked = [(key, vector_score(cosine)) for key, cosine in vector]
        else:
            ranked = fuse(bm25, [(key, vector_score(cosine)) for key, cosine in vector], request.fusion)
        raw_bm25, raw_vector = dict(bm25), {key: vector_score(cosine) for key, cosine in vector}
        return [
            SearchHit(
                self._chunks[(request.tenant, key)].without_vector(), score, raw_bm25.get(key), raw_vector.get(key)
            )
            for key, score in ranked[: request.top_k]
        ]

    def _delete(self, doomed: Any) -> int:
        self.check()
        keys = [key for key, chunk in self._chunks.items() if doomed(chunk)]
        for key in keys:
            del self._chunks[key]
        return len(keys)

    def _field(self, chunk: Chunk, field: str) -> list[str]:
        if field == "identifiers":  # terms already lowercased and whole: the engines' whitespace analyzer
            return chunk_identifiers(chunk).split()
        return self.analyze(getattr(chunk, field))

    def _bm25(self, request: SearchRequest, allowed: list[Chunk]) -> list[tuple[str, float]]:
        everything = list(self._chunks.values())  # statistics are index-wide, as in tantivy and OpenSearch
        scores: dict[str, float] = {}
        for field, text, boost in request.boosts.fields(request.text):
            terms = text.split() if field == "identifiers" else self.analyze(text)
            docs = [self._field(c, field) for c in everything]
            lengths = {id(c): len(d) for c, d in zip(everything, docs, strict=True)}
            average = sum(lengths.values()) / max(len(docs), 1)
            lengths = {key: _stored_length(length) for key, length in lengths.items()}
            frequency = {t: sum(1 for d in docs if t in d) for t in set(terms)}
            for chunk in allowed:
                tokens = self._field(chunk, field)
                norm = self.K1 * (1 - self.B + self.B * lengths[id(chunk)] / max(average, 1e-9))
                for term in terms:  # a repeated query term counts each time, as a repeated should-clause does
                    tf = tokens.count(term)
                    if tf:
                        n = frequency[term]
                        idf = math.log(1 + (len(docs) - n + 0.5) / (n + 0.5))
                        score = boost * idf * (self.K1 + 1) * tf / (tf + norm)
                        scores[chunk.chunk_id] = scores.get(chunk.chunk_id, 0.0) + score
        return sorted(scores.items(), key=lambda item: (-item[1], item[0]))

    @staticmethod
    def _nearest(query: Sequence[float] | None, allowed: list[Chunk]) -> list[tuple[str, float]]:
        def cosine(a: Sequence[float], b: Sequence[float]) -> float:
            dot = sum(x * y for x, y in zip(a, b, strict=True))
            return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)) or 1.0)

        scored = [(c.chunk_id, cosine(query or (), c.vector)) for c in allowed]
        return sorted(scored, key=lambda item: (-item[1], item[0]))


def _stored_length(length: int) -> int:
    """A field length as both engines store it: one byte, exact below 24, then 4 significant bits (Lucene's
    SmallFloat.intToByte4 and back; tantivy's fieldnorm table), so BM25 ranks ties and near-ties alike."""
    if length < 24:
        return length
    rest = length - 24
    bits = rest.bit_length()
    if bits < 4:
        return length
    shift = bits - 4
    return 24 + ((rest >> shift) << shift)


_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits: tantivy's simple tokenizer
_STOPWORD_SET = frozenset(STOPWORDS)


def _passes(chunk: Chunk, request: SearchRequest) -> bool:
    filters = request.filters
    return (
        chunk.tenant == require_tenant(request.tenant)
        and bool(set(chunk.acl_terms()) & {PUBLIC_ACL, *filters.acl_groups})
        and (not filters.doc_ids or chunk.doc_id in filters.doc_ids)
        and (not filters.tags or bool(set(chunk.tags) & set(filters.tags)))
        and (not filters.path_prefix or filters.path_prefix in chunk.path_prefixes())
    )


class MemoryEmbeddings(_Fake):
    """EmbeddingModel by the hashing trick: each stemmed word adds a fixed pseudo-random direction, so texts
    sharing words are near (no semantics beyond that); normalized, like the real model's vectors."""

    resource = "embedding model"

    def __init__(self, dimension: int = 384) -> None:
        self.dimension = dimension
        self._words = MemorySearchIndex()
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.check()
        self.calls.append(list(texts))
        out = []
        for text in texts:
            vector = [0.0] * self.dimension
            for word in self._words.analyze(text) or [text]:
                seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
                rng = random.Random(seed)
                for i in range(self.dimension):
                    vector[i] += rng.gauss(0, 1)
            norm = math.sqrt(sum(v * v for v in vector)) or 1.0
            out.append([v / norm for v in vector])
        return out


class MemoryFunction(_Fake):
    """A Function that runs a handler in-process with a JSON round trip, as Lambda Invoke would."""

    def __init__(self, name: str, handler: Any) -> None:
        self.name = name
        self.resource = f"function {name}"
        self._handler = handler
        self.payloads: list[dict[str, Any]] = []

    def invoke(self, payload: Mapping[str, Any]) -> Any:
        self.check()
        request = json.loads(json.dumps(with_correlation(payload)))
        self.payloads.append(request)
        return json.loads(json.dumps(self._handler(request)))


class ScriptedProvider(_Fake):
    """An LlmProvider that answers from a script: each item is a ChatResponse (or its dict) to return, an
    exception to raise, or a callable of (call, model, timeout_s); when the script runs out it echoes the last
    user message. Records every call (the call, model, timeout) for assertions."""

    def __init__(self, name: str = "scripted", script: list[Any] | None = None, dimension: int = 8) -> None:
        self.name = name
        self.resource = f"provider {name}"
        self.script = list(script or [])
        self.dimension = dimension
        self.calls: list[tuple[Any, str, float]] = []
        self._lock = threading.Lock()

    def chat(self, call: Any, *, model: str, timeout_s: float) -> Any:
        from agentplatform.inference import ChatResponse

        self.check()
        with self._lock:
            self.calls.append((call, model, timeout_s))
            item = self.script.pop(0) if self.script else None
        if isinstance(item, BaseException):
            raise item
        if callable(item):
            item = item(call, model, timeout_s)
        if item is None:
            text = next((m.content for m in reversed(call.messages) if m.role == "user"), "") or ""
            item = {
                "id": f"scripted-{len(self.calls)}",
                "created": 0,
                "model": model,
                "choices": [{"message": {"content": f"echo: {text}"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        return item if isinstance(item, ChatResponse) else ChatResponse.model_validate(item)

    def embed(self, texts: Sequence[str], *, model: str, timeout_s: float) -> Any:
        from agentplatform.inference import Usage

        self.check()
        with self._lock:
            self.calls.append((list(texts), model, timeout_s))
            item = self.script.pop(0) if self.script else None
        if isinstance(item, BaseException):
            raise item
        vectors = [[float(len(t) % 7), *([0.0] * (self.dimension - 1))] for t in texts]
        tokens = sum(max(1, len(t) // 4) for t in texts)
        return vectors, Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens)
