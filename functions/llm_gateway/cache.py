"""The gateway's answer cache in the `llm_cache` table: exact and semantic, tenant-scoped by construction.

- Exact: {pk: "x#<tenant>", sk: sha256(normalized request, tenant, target)}. A lookup reads the keys of the
  call's candidate targets at once and takes the first hit in route order.
- Semantic: {pk: "s#<tenant>#<task>#<context hash>", sk: "<inverted time>#<id>"}: the embedding of the last user
  message, compared (cosine) with the partition's most recent entries. The context hash covers everything but
  that message (system prompt, history, passages, tools, limits), so only a rephrased question in the same
  context can match. Every key starts with the tenant: a lookup never reads another tenant's entries.
- Documents: {pk: "d#<tenant>#<doc_id>", sk: "<entry pk>|<entry sk>"} for every entry whose passages cite the
  document, so a Document Changed event drops exactly those entries.

Entries carry `expires_at` (the table's TTL) and are also checked on read: DynamoDB deletes expired items late.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentplatform.errors import PlatformError
from agentplatform.llm import ChatCall
from agentplatform.ports import EmbeddingModel, KeyValueTable
from functions.llm_gateway.policy import Cache as CacheSettings

log = logging.getLogger("llm_gateway.cache")

_INVERT_MS = 10**14  # newest first in sort-key order: sk = _INVERT_MS - created ms


# Words that carry no ask of their own: whether two questions differ only in these does not matter.
_FILLER_WORDS = (
    "a an the is are was were be do does did i me my we our you your to of for in on at by from into with and or "
    "there this that it its what how who whom when where which why can could should would may might will much many "
    "long"
)
_FILLER = frozenset(_FILLER_WORDS.split())


def _terms(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9$%]+", text.lower()) if w not in _FILLER}


def one_word_swapped(question: str, cached: str) -> bool:
    """Whether the two questions are the same but for one content word each (enable/disable, annual/monthly,
    over/under $500). Sentence embeddings score such pairs as near-identical (0.88-0.995 with MiniLM on
    eval/paraphrases) although they ask different things, so a semantic hit between them is refused."""
    a, b = _terms(question), _terms(cached)
    return len(a - b) == 1 and len(b - a) == 1


@dataclass(frozen=True)
class CachedAnswer:
    answer: dict[str, Any]  # the ChatAnswer without `gateway`
    target: str
    provider: str
    kind: str  # "exact" or "semantic"
    similarity: float = 1.0


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _normalized(call: ChatCall, *, without_last_user: bool = False) -> dict[str, Any]:
    messages = [m.model_dump(mode="json", exclude_none=True) for m in call.messages]
    if without_last_user and messages and messages[-1].get("role") == "user":
        messages[-1] = {"role": "user"}
    for m in messages:
        if isinstance(m.get("content"), str):
            m["content"] = " ".join(m["content"].split())  # whitespace does not change a question
    return {
        "messages": messages,
        "tools": [t.model_dump(mode="json") for t in call.tools or []],
        "tool_choice": call.tool_choice if isinstance(call.tool_choice, str | None) else call.tool_choice.model_dump(),
        "max_tokens": call.max_tokens,
        "temperature": call.temperature,
        "stop": call.stop,
        "response_format": call.response_format.model_dump(mode="json") if call.response_format else None,
        "passages": [(p.citation.doc_id, p.citation.doc_version, p.text) for p in call.passages],
        "task": call.task,
    }


def last_user_text(call: ChatCall) -> str | None:
    last = call.messages[-1]
    return last.content if last.role == "user" and last.content else None


def bypass_reason(call: ChatCall, settings: CacheSettings) -> str | None:
    if call.cache == "bypass":
        return "asked"
    if call.needs_tools and not settings.cache_tools:
        return "tools"
    if call.temperature > 0 and not settings.cache_temperature:
        return "temperature"
    if settings.ttl_s == 0:
        return "off"
    return None


class AnswerCache:
    def __init__(
        self,
        table: KeyValueTable,
        embeddings: EmbeddingModel | Callable[[], EmbeddingModel] | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._embeddings = embeddings  # a factory: the embedding client is built only when semantic lookups run
        self._clock = clock

    def _embedder(self) -> EmbeddingModel | None:
        if callable(self._embeddings) and not hasattr(self._embeddings, "embed"):
            self._embeddings = self._embeddings()
        return self._embeddings  # type: ignore[return-value]

    @staticmethod
    def exact_key(call: ChatCall, target: str) -> dict[str, str]:
        return {"pk": f"x#{call.tenant}", "sk": _digest([call.tenant, target, _normalized(call)])}

    @staticmethod
    def semantic_partition(call: ChatCall, targets: Sequence[str]) -> str:
        context = _digest([call.tenant, list(targets), _normalized(call, without_last_user=True)])
        return f"s#{call.tenant}#{call.task}#{context[:32]}"

    def embed_question(self, call: ChatCall, settings: CacheSettings) -> np.ndarray | None:
        text = last_user_text(call)
        if text is None or not (settings.semantic and settings.semantic_max_entries):
            return None
        try:
            embedder = self._embedder()
            if embedder is None:
                return None
            return np.asarray(embedder.embed([text])[0], dtype=np.float32)
        except PlatformError as exc:  # the cache is an optimisation: without embeddings, exact only
            log.warning("semantic cache skipped", extra={"error": exc.code})
            return None

    def lookup(
        self, call: ChatCall, targets: Sequence[str], settings: CacheSettings, question: np.ndarray | None
    ) -> CachedAnswer | None:
        now = self._clock()
        rows = self._table.get_many([self.exact_key(call, t) for t in targets]) if targets else []
        for row in rows:
            if row and float(row.get("expires_at", 0)) > now:
                return self._answer(row, "exact")
        if question is None:
            return None
        page, _ = self._table.query({"pk": self.semantic_partition(call, targets)}, limit=settings.semantic_max_entries)
        asked = last_user_text(call) or ""
        scored = []
        for row in page:
            if float(row.get("expires_at", 0)) <= now or "vector" not in row:
                continue
            score = float(np.frombuffer(bytes(row["vector"]), dtype=np.float32) @ question)
            if score >= settings.semantic_threshold:
                scored.append((score, row))
        # The closest entry that is not the same question with one word swapped (a different ask).
        for score, row in sorted(scored, key=lambda pair: -pair[0]):
            if not one_word_swapped(asked, str(row.get("question", ""))):
                return self._answer(row, "semantic", score)
        return None

    def store(
        self,
        call: ChatCall,
        targets: Sequence[str],
        target: str,
        provider: str,
        answer: dict[str, Any],
        settings: CacheSettings,
        question: np.ndarray | None,
    ) -> None:
        now = self._clock()
        expires_at = int(now + settings.ttl_s)
        body = {"answer": json.dumps(answer), "target": target, "provider": provider, "expires_at": expires_at}
        exact = self.exact_key(call, target)
        entries = [{**exact, **body}]
        if question is not None:
            sk = f"{_INVERT_MS - round(now * 1000):014d}#{uuid.uuid4().hex[:8]}"
            entries.append(
                {
                    "pk": self.semantic_partition(call, targets),
                    "sk": sk,
                    **body,
                    "vector": question.tobytes(),
                    "question": last_user_text(call) or "",  # for the one-word-swap guard; the tenant's own data
                }
            )
        docs = sorted({p.citation.doc_id for p in call.passages})
        index = [
            {"pk": f"d#{call.tenant}#{doc}", "sk": f"{e['pk']}|{e['sk']}", "expires_at": expires_at}
            for doc in docs
            for e in entries
        ]
        self._table.put_many([*entries, *index])

    def invalidate_document(self, tenant: str, doc_id: str) -> int:
        """Drop the tenant's entries whose passages cite the document; return how many."""
        dropped = 0
        after = None
        while True:
            page, after = self._table.query({"pk": f"d#{tenant}#{doc_id}"}, limit=200, after=after)
            for row in page:
                entry_pk, _, entry_sk = str(row["sk"]).partition("|")
                if entry_pk == f"x#{tenant}" or entry_pk.startswith(f"s#{tenant}#"):  # only this tenant's entries
                    self._table.delete({"pk": entry_pk, "sk": entry_sk})
                    dropped += 1
                self._table.delete({"pk": row["pk"], "sk": row["sk"]})
            if not after:
                return dropped

    @staticmethod
    def _answer(row: dict[str, Any], kind: str, similarity: float = 1.0) -> CachedAnswer:
        return CachedAnswer(json.loads(row["answer"]), str(row["target"]), str(row["provider"]), kind, similarity)
