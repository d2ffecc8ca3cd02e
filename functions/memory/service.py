"""Memory for one tenant's users: preferences, conversation summaries and entity facts, learned from completed
turns and recalled by the agent loop's load step.

Storage: the `memory` table, one partition per tenant + user (`MEM#<tenant>#<user>`), one item per memory keyed
by its id. Facts and summaries are also indexed for semantic recall in a search index of their own (never the
knowledge index, so no memory can surface in knowledge_search), each chunk tagged with its user: the adapter
scopes every search to the tenant, the user tag filter (inside the index, before top-k) to the user.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agentplatform import grounding
from agentplatform.errors import NotFound, PlatformError
from agentplatform.inference import ChatMessage, estimate_tokens
from agentplatform.llm import ChatAnswer, ChatCall, ResponseFormat
from agentplatform.memory import MAX_VALUE_CHARS, MemoryItem, MemoryKind, Recollection
from agentplatform.observability import telemetry
from agentplatform.ports import EmbeddingModel, Function, KeyValueTable, SearchIndex
from agentplatform.search import Chunk, SearchFilters, SearchMode, SearchRequest

SUMMARY_TOKENS = 800  # a conversation's not-yet-summarized turns past this are summarized
KEEP_RECENT_TURNS = 2  # turns left out of the summary: the loop sends them as they were
RECALL_HITS = 4  # facts and other conversations' summaries recalled by similarity
RECALL_MIN_SCORE = 0.75  # vector score ((1 + cosine) / 2) a recalled memory needs unless it names the entity
MAX_FACT_CHARS = 500
PAGE = 200
_SUMMARY_PROMPT = (
    "Summarize the conversation below for the assistant's own memory: the user's goals, the facts found and the "
    "open questions, in at most five short sentences. Write only the summary."
)
_CLASSIFY_PROMPT = (
    "Extract the preferences the user states about themselves from the message. Keys: language (the language "
    "answers should be in), office, location, name (what to call the user), answer_length. Use only words of the "
    "message as values. Answer with an empty list when the message states none."
)

# Preferences a user states, by patterns that match a statement about themselves (not a question about it).
_LANGUAGES = (
    "English|German|French|Spanish|Italian|Portuguese|Dutch|Polish|Swedish|Danish|Norwegian|Finnish|Czech|Turkish|"
    "Greek|Russian|Ukrainian|Arabic|Hebrew|Hindi|Japanese|Chinese|Korean"
)
_I_AM = r"\b(?i:I['\u2019]m|I am)\s+"  # straight or typographic apostrophe
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "language",
        re.compile(
            r"\b(?:answer|reply|respond|write|talk|speak)(?:\s+to\s+me)?\s+(?:only\s+)?in\s+(" + _LANGUAGES + r")\b"
            # "I'd rather read replies in Spanish.": a wish that ends on the language
            r"|\bI(?:'d|\s+would)?\s+(?:like|prefer|rather|want)\b[^.?!]{0,40}?\bin\s+("
            + _LANGUAGES
            + r")(?=\s*(?:[.,;!]|$))",
            re.IGNORECASE,
        ),
    ),
    (
        "office",
        re.compile(
            r"(?:" + _I_AM + r"(?i:in|at|with|from|based in|based at|working in|working at|working from|working out of)"
            r"|\bI\s+(?i:work|sit)\s+(?i:in|at|from|out of))\s+(?i:the|our)\s+"
            r"([A-Za-z][\w&.\-]*(?:\s+[A-Za-z][\w&.\-]*){0,2}?)\s+(?i:office)\b"
        ),
    ),
    ("location", re.compile(_I_AM + r"(?i:based|located)\s+in\s+([A-Z][\w\-]*(?:\s+[A-Z][\w\-]*){0,2})")),
    ("name", re.compile(r"\b(?i:call me|my name is)\s+([A-Z][\w'\-]{0,30})\b")),
    (
        "answer_length",
        re.compile(
            r"\b(?:keep (?:it|answers|your answers) (short|brief)|I prefer (short|brief|detailed|long) answers)\b",
            re.IGNORECASE,
        ),
    ),
)
# Preferences that steer which passages a search finds (the rest reach the model's prompt only).
_HINTS = {"office": "{} office", "location": "{}"}
MODEL_KEYS = ("language", "office", "location", "name", "answer_length")
# First-person statements: where the classifier is worth a call when no pattern matched.
_ABOUT_ME = re.compile(r"\b(?:I|I'm|I am|my|me)\b", re.IGNORECASE)

# Identifiers of business entities a turn may mention: ORD-1042, TCK-7, "order 10423", "ticket #889".
_ENTITY_CODE = re.compile(r"\b[A-Z]{2,6}-\d{1,10}\b")
_ENTITY_WORD = re.compile(
    r"\b(order|ticket|case|invoice|customer|account|shipment)\s+(?:no\.?\s*|number\s+|#\s*)?(\d{3,12})\b", re.IGNORECASE
)
_MARKER = re.compile(r"\s*\[\d+\]")


@dataclass(frozen=True)
class Turn:
    """A completed turn, as turn.completed carries it."""

    tenant: str
    user: str
    conversation_id: str
    turn: int
    question: str
    answer: str
    answered: bool  # a generated or extractive answer (not an abstention, a failure or an operator's reply)


class MemoryService:
    def __init__(
        self,
        table: KeyValueTable,
        index: SearchIndex,
        embeddings: EmbeddingModel,
        *,
        gateway: Function | None = None,
        classify: bool = False,
        summary_tokens: int = SUMMARY_TOKENS,
        now: Any = None,
    ) -> None:
        self._table = table
        self._index = index
        self._embeddings = embeddings
        self._gateway = gateway
        self._classify = classify and gateway is not None
        self._summary_tokens = summary_tokens
        self._now = now or (lambda: datetime.now(UTC))

    # Learning (turn.completed) ---------------------------------------------------------------------------------

    def learn(self, turn: Turn) -> dict[str, int]:
        """Remember what one completed turn taught; safe to run twice for one turn (ids come from the turn)."""
        learned = {"preferences": 0, "facts": 0, "summarized": 0}
        for key, value, source in self.extract_preferences(turn.tenant, turn.question):
            self._put_preference(turn.tenant, turn.user, key, value, source, turn.conversation_id, turn.turn)
            learned["preferences"] += 1
        facts = extract_facts(turn)
        for entity, text in facts:
            self._put_fact(turn, entity, text)
        learned["facts"] = len(facts)
        learned["summarized"] = self._add_to_summary(turn)
        return learned

    def extract_preferences(self, tenant: str, text: str) -> list[tuple[str, str, str]]:
        """(key, value, source) for each preference the text states: patterns first; the gateway's `classify`
        task only where it is enabled and no pattern matched a first-person statement."""
        found = [(key, value, "extracted") for key, value in pattern_preferences(text)]
        if found or not self._classify or not _ABOUT_ME.search(text):
            return found
        return [(key, value, "model") for key, value in self._classified(tenant, text)]

    def _classified(self, tenant: str, text: str) -> list[tuple[str, str]]:
        schema = {
            "type": "object",
            "properties": {
                "preferences": {
                    "type": "array",
                    "maxItems": 3,
                    "items": {
                        "type": "object",
                        "properties": {
                            "key": {"type": "string", "enum": list(MODEL_KEYS)},
                            "value": {"type": "string", "maxLength": 40},
                        },
                        "required": ["key", "value"],
                    },
                }
            },
            "required": ["preferences"],
        }
        call = ChatCall(
            tenant=tenant,
            task="classify",
            messages=[ChatMessage(role="system", content=_CLASSIFY_PROMPT), ChatMessage(role="user", content=text)],
            response_format=ResponseFormat(type="json_schema", json_schema={"name": "preferences", "schema": schema}),
            max_tokens=96,
        )
        try:
            parsed = json.loads(self._chat(call).message.content or "{}")
        except (PlatformError, ValueError) as exc:
            telemetry("memory").logger.warning("preference classification failed", extra={"error": type(exc).__name__})
            return []
        out: list[tuple[str, str]] = []
        for entry in parsed.get("preferences", []) if isinstance(parsed, dict) else []:
            key, value = str(entry.get("key", "")), str(entry.get("value", "")).strip()
            # A value the message does not contain is the model's invention, not the user's statement.
            if key in MODEL_KEYS and value and value.lower() in text.lower():
                out.append((key, value[:MAX_VALUE_CHARS]))
        return out

    def _add_to_summary(self, turn: Turn) -> int:
        """Add the turn to its conversation's not-yet-summarized turns; past the threshold, fold all but the last
        KEEP_RECENT_TURNS into the summary. Returns how many turns were summarized."""
        key = self._key(turn.tenant, turn.user, MemoryKind.SUMMARY, turn.conversation_id)
        for _ in range(3):  # optimistic concurrency on `version`: two deliveries of close turns both land
            item = self._table.get(key) or {}
            version = int(item.get("version") or 0)
            pending: list[dict[str, Any]] = list(item.get("pending") or [])
            through = int(item.get("through") or 0)
            if turn.turn <= through or any(int(p["turn"]) == turn.turn for p in pending):
                return 0  # delivered again
            text = f"User: {turn.question}\nAssistant: {turn.answer}"
            pending = sorted([*pending, {"turn": turn.turn, "text": text}], key=lambda p: int(p["turn"]))
            summary, folded = str(item.get("value") or ""), 0
            tokens = sum(estimate_tokens(str(p["text"])) for p in pending)
            if tokens >= self._summary_tokens and len(pending) > KEEP_RECENT_TURNS:
                older, pending = pending[:-KEEP_RECENT_TURNS], pending[-KEEP_RECENT_TURNS:]
                written = self._summarize(turn.tenant, summary, older)
                if written:
                    summary, through, folded = written, int(older[-1]["turn"]), len(older)
                else:
                    pending = [*older, *pending]  # the gateway failed: keep the turns, try after the next turn
            row = self._row(turn.tenant, turn.user, MemoryKind.SUMMARY, turn.conversation_id, summary, "summarized")
            values = {
                **{k: v for k, v in row.items() if k not in key},
                "conversation_id": turn.conversation_id,
                "turn": through,
                "pending": pending,
                "through": through,
                "version": version + 1,
            }
            if self._table.update(key, values, expect={"version": item.get("version")}):
                if folded:
                    self._index_memory(turn.tenant, turn.user, values, summary)
                return folded
        return 0

    def _summarize(self, tenant: str, summary: str, turns: Sequence[dict[str, Any]]) -> str:
        if self._gateway is None:
            return ""  # no gateway in this deployment: the loop keeps sending its recent turns only
        transcript = "\n\n".join(f"Turn {p['turn']}:\n{p['text']}" for p in turns)
        if summary:
            transcript = f"Summary so far: {summary}\n\n{transcript}"
        call = ChatCall(
            tenant=tenant,
            task="summarize",
            messages=[
                ChatMessage(role="system", content=_SUMMARY_PROMPT),
                ChatMessage(role="user", content=transcript[:12_000]),
            ],
            max_tokens=160,
        )
        try:
            return (self._chat(call).message.content or "").strip()[:2_000]
        except PlatformError as exc:
            telemetry("memory").logger.warning("summary failed", extra={"error": type(exc).__name__})
            return ""

    def _chat(self, call: ChatCall) -> ChatAnswer:
        assert self._gateway is not None
        return ChatAnswer.model_validate(self._gateway.invoke(call.model_dump(mode="json", exclude_none=True)))

    def _put_fact(self, turn: Turn, entity: str, text: str) -> None:
        where = f"{entity}|{turn.conversation_id}|{turn.turn}"
        row = {
            **self._row(turn.tenant, turn.user, MemoryKind.FACT, where, text, "extracted"),
            "key": entity,
            "conversation_id": turn.conversation_id,
            "turn": turn.turn,
        }
        self._table.put(row)
        self._index_memory(turn.tenant, turn.user, row, f"{entity}: {text}")

    def _index_memory(self, tenant: str, user: str, row: dict[str, Any], text: str) -> None:
        vector = self._embeddings.embed([text])[0]
        self._index.upsert(
            [
                Chunk(
                    chunk_id=row["id"],
                    tenant=tenant,
                    doc_id=row["id"],
                    doc_version="1",
                    text=text,
                    vector=vector,
                    title=str(row["key"]),
                    path=f"memory/{row['kind']}/{row['id']}",
                    tags=(user_tag(user), f"kind:{row['kind']}"),
                )
            ]
        )

    # Explicit preferences, listing and deletion (the API) ------------------------------------------------------

    def put_preference(self, tenant: str, user: str, key: str, value: str) -> MemoryItem:
        return self._put_preference(tenant, user, key, value.strip(), "explicit", None, None)

    def _put_preference(
        self,
        tenant: str,
        user: str,
        key: str,
        value: str,
        source: str,
        conversation_id: str | None,
        turn: int | None,
    ) -> MemoryItem:
        row = self._row(tenant, user, MemoryKind.PREFERENCE, key, value[:MAX_VALUE_CHARS], source)
        if conversation_id is not None:
            row.update(conversation_id=conversation_id, turn=turn)
        self._table.put(row)
        return _item(row)

    def list(self, tenant: str, user: str, kind: MemoryKind | None = None) -> list[MemoryItem]:
        rows = [r for r in self._rows(tenant, user) if r.get("value") and (kind is None or r["kind"] == kind)]
        return sorted((_item(r) for r in rows), key=lambda i: (i.kind, i.key, i.updated_at))

    def delete(self, tenant: str, user: str, memory_id: str) -> int:
        key = {"pk": _pk(tenant, user), "sk": memory_id}
        if self._table.get(key) is None:
            raise NotFound("no such memory", memory_id=memory_id)
        self._index.delete_document(tenant, memory_id)  # the index first: a crash between leaves no hidden copy
        self._table.delete(key)
        return 1

    def clear(self, tenant: str, user: str) -> int:
        rows = self._rows(tenant, user)
        for row in rows:
            self._index.delete_document(tenant, row["id"])
            self._table.delete({"pk": row["pk"], "sk": row["sk"]})
        return len(rows)

    # Recall (the agent loop's load step) -----------------------------------------------------------------------

    def recall(self, tenant: str, user: str, conversation_id: str, question: str) -> Recollection:
        rows = self._rows(tenant, user)
        preferences = sorted((r for r in rows if r["kind"] == MemoryKind.PREFERENCE), key=lambda r: r["key"])
        notes = [f"Preference: {r['key']} = {r['value']}" for r in preferences]
        hints = [_HINTS[r["key"]].format(r["value"]).lower() for r in preferences if r["key"] in _HINTS]
        summary_id = memory_id(tenant, user, MemoryKind.SUMMARY, conversation_id)
        summary = next((r for r in rows if r["id"] == summary_id), None)
        through = int(summary.get("through") or 0) if summary else 0
        if summary and summary.get("value"):
            notes.append(f"Summary of this conversation through turn {through}: {summary['value']}")
        indexed = {r["id"] for r in rows if r.get("value") and r["kind"] != MemoryKind.PREFERENCE} - {summary_id}
        if question.strip() and indexed:
            notes += self._similar(tenant, user, question, indexed)
        return Recollection(notes=notes, search_hints=hints, summarized_through=through)

    def _similar(self, tenant: str, user: str, question: str, known: set[str]) -> list[str]:
        """Facts and other conversations' summaries like the question; only those whose row still exists (an index
        entry outliving its row, e.g. a local table reset, is never recalled)."""
        vector = self._embeddings.embed([question])[0]
        hits = self._index.search(
            SearchRequest(
                tenant=tenant,
                text=question,
                vector=vector,
                mode=SearchMode.HYBRID,
                top_k=RECALL_HITS + 1,
                filters=SearchFilters(tags=(user_tag(user),)),
            )
        )
        named = {e.lower() for e in entities(question)}
        notes = []
        for hit in hits:
            chunk = hit.chunk
            if chunk.chunk_id not in known:
                continue
            if chunk.title.lower() not in named and (hit.vector or 0.0) < RECALL_MIN_SCORE:
                continue
            notes.append(f"Known from an earlier turn: {chunk.text}")
        return notes[:RECALL_HITS]

    # Rows ------------------------------------------------------------------------------------------------------

    def _rows(self, tenant: str, user: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        after = None
        while True:
            page, after = self._table.query({"pk": _pk(tenant, user)}, limit=PAGE, after=after)
            rows += page
            if after is None:
                return rows

    def _key(self, tenant: str, user: str, kind: MemoryKind, key: str) -> dict[str, str]:
        return {"pk": _pk(tenant, user), "sk": memory_id(tenant, user, kind, key)}

    def _row(self, tenant: str, user: str, kind: MemoryKind, key: str, value: str, source: str) -> dict[str, Any]:
        mid = memory_id(tenant, user, kind, key)
        return {
            "pk": _pk(tenant, user),
            "sk": mid,
            "id": mid,
            "kind": kind.value,
            "key": key,
            "value": value,
            "source": source,
            "updated_at": self._now().isoformat(timespec="seconds"),
        }


def pattern_preferences(text: str) -> list[tuple[str, str]]:
    found: dict[str, str] = {}
    for key, pattern in _PATTERNS:
        match = pattern.search(text)
        if match:
            value = next(g for g in match.groups() if g)
            found[key] = value.title() if key == "language" else value.lower() if key == "answer_length" else value
    return list(found.items())


def entities(text: str) -> list[str]:
    """The entity identifiers a text names, normalized ("ORD-1042", "order 10423"), in order of appearance."""
    found = [(m.start(), m.group(0)) for m in _ENTITY_CODE.finditer(text)]
    found += [(m.start(), f"{m.group(1).lower()} {m.group(2)}") for m in _ENTITY_WORD.finditer(text)]
    return list(dict.fromkeys(e for _, e in sorted(found)))


def extract_facts(turn: Turn) -> list[tuple[str, str]]:
    """(entity, what the turn said about it): the user's own sentences naming it, and the answer's where the
    turn was answered from the documents."""
    sources = [turn.question] + ([turn.answer] if turn.answered else [])
    out = []
    for entity in entities(" ".join(sources)):
        said = [
            _MARKER.sub("", s).strip()
            for text in sources
            for s in grounding.split_sentences(text)  # a decimal (10710.0) or a version does not end one
            if entity.lower() in " ".join(s.lower().split())
        ]
        if said:
            out.append((entity, " ".join(dict.fromkeys(said))[:MAX_FACT_CHARS]))
    return out


def memory_id(tenant: str, user: str, kind: MemoryKind, key: str) -> str:
    digest = hashlib.sha256(f"{tenant}\x1f{user}\x1f{kind.value}\x1f{key}".encode()).hexdigest()[:24]
    return f"{kind.value[0]}_{digest}"


def user_tag(user: str) -> str:
    return "user:" + hashlib.sha256(user.encode()).hexdigest()[:32]


def _pk(tenant: str, user: str) -> str:
    return f"MEM#{tenant}#{user}"


def _item(row: dict[str, Any]) -> MemoryItem:
    return MemoryItem.model_validate({k: row[k] for k in MemoryItem.model_fields if row.get(k) is not None})
