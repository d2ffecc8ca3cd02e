"""Conversations, their turns, the tools each turn ran, and escalations to a human: the `conversations` table.

Layout (one table, pk/sk):
- `USER#<tenant>#<user>` / `CONV#<id>`: the user's conversations, so listing is one query and only the owner's;
- `CONV#<tenant>#<id>` / `#META`: the conversation's header (owner, title, how many turns);
- `CONV#<tenant>#<id>` / `TURN#<n>`: one item per turn (status, question, answer, citations, execution, timings),
  so a long conversation never meets DynamoDB's 400 KB item limit;
- `RUNS#<tenant>#<id>#<n>` / `<step>#<call id>`: one item per tool call of a turn. The key is the call's
  idempotency key within the turn's one execution: a retried or resumed step finds its result and does not run
  the tool again;
- `ESC#<tenant>` / `<id>`: the tenant's escalations, with the paused run's task token (never shown to callers);
- `TOOL#<name>` / `BREAKER`: a tool's circuit breaker, shared by every container.

Every read takes the tenant (and, for conversations, the user) from the caller: another tenant's or user's id
reads as missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from agentplatform.errors import Conflict, NotFound
from agentplatform.ports import KeyValueTable

MAX_MESSAGE_CHARS = 16_000

# What a turn ends with when the run answering it is gone (the local runtime stopped mid-turn).
INTERRUPTED_FAILURE = "RuntimeStopped"
INTERRUPTED_ANSWER = (
    "I could not answer this because the local runtime stopped while this turn was running. Your message is saved; "
    "please ask again."
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_id(prefix: str) -> str:
    """Sortable by creation time (milliseconds, hex), unguessable (64 random bits)."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


class TurnStatus(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"  # paused on an escalation
    ANSWERED = "answered"
    FAILED = "failed"


class AnswerKind(StrEnum):
    GENERATED = "generated"  # the model's answer, grounded in the cited passages
    EXTRACTIVE = "extractive"  # quoted sentences of the passages (the generated one was not supported)
    OPERATOR = "operator"  # a human's answer through an escalation
    REFUSAL = "refusal"  # an operator rejected the request
    TIMEOUT = "timeout"  # nobody resolved the escalation in time
    SAFE = "safe"  # a failure's safe answer: names what failed
    ABSTAINED = "abstained"  # the documents do not answer it: the agent says so rather than guess


class EscalationStatus(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    ANSWERED = "answered"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"  # the run it paused no longer exists (the local runtime stopped): nothing to resume


class ToolRun(BaseModel):
    call_id: str
    name: str
    step: int
    arguments: dict[str, Any] = {}
    status: str = Field(description="`ok`, `error`, `needs_approval`, or `started` (a side effect under way).")
    result: dict[str, Any] | None = None
    error: str | None = None
    duration_ms: float = 0.0
    idempotency_key: str


class TurnCitation(BaseModel):
    ref: int = Field(description="The `[n]` marker in the answer.")
    doc_id: str
    doc_version: str = ""
    path: str
    title: str = ""
    section: str = ""
    page: int | None = None


class Turn(BaseModel):
    conversation_id: str
    turn: int
    status: TurnStatus
    question: str
    answer: str | None = None
    answer_kind: AnswerKind | None = None
    citations: list[TurnCitation] = []
    tool_runs: list[ToolRun] = []
    steps: int = Field(default=0, description="Model steps the loop took.")
    cut_off: bool = Field(default=False, description="The loop reached its step or time limit.")
    grounded: bool | None = None
    answered_by: str | None = Field(default=None, description="The gateway target that wrote the answer.")
    escalation_id: str | None = None
    execution_arn: str | None = None
    failure: str | None = Field(default=None, description="Why the turn failed, as an error name.")
    notes: list[str] = Field(default=[], description="What the loop fell back on (a model down, a regrounding).")
    model_ms: float = Field(default=0.0, description="Time spent in model providers.")
    total_ms: float | None = Field(default=None, description="From the message to the final answer.")
    created_at: str
    updated_at: str


class Conversation(BaseModel):
    id: str
    title: str
    turn_count: int
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, item: dict[str, Any]) -> Conversation:
        return cls(
            id=item["id"],
            title=item.get("title", ""),
            turn_count=int(item.get("turns") or 0),
            created_at=item["created_at"],
            updated_at=item["updated_at"],
        )


class Escalation(BaseModel):
    id: str
    conversation_id: str
    turn: int
    reason: str
    status: EscalationStatus
    requested_by: str = Field(description="The user whose turn is waiting.")
    question: str
    pending_tools: list[str] = Field(default=[], description="Tools waiting for approval, if any.")
    resolution: str | None = None
    resolved_by: str | None = None
    created_at: str
    resolved_at: str | None = None


def _conv_pk(tenant: str, conversation_id: str) -> str:
    return f"CONV#{tenant}#{conversation_id}"


def _turn_sk(turn: int) -> str:
    return f"TURN#{turn:06d}"


def _runs_pk(tenant: str, conversation_id: str, turn: int) -> str:
    return f"RUNS#{tenant}#{conversation_id}#{turn:06d}"


def run_key(step: int, call_id: str) -> str:
    return f"{step:03d}#{call_id}"


_PRIVATE = {"pk", "sk", "tenant", "user", "token", "expires_at", "approved", "groups"}


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in _PRIVATE}


# Structured attributes travel as JSON text: DynamoDB has no floats (tool results carry scores) and a JSON
# document reads back as it was written, whatever the adapter.
_JSON_FIELDS = {"citations", "notes", "arguments", "result", "pending_tools"}


def _pack(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in values.items():
        if k in _JSON_FIELDS:
            out[k] = json.dumps(v)
        elif isinstance(v, float):
            out[k] = Decimal(str(v))
        else:
            out[k] = v
    return out


def _unpack(item: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if item is None:
        return None
    out: dict[str, Any] = {}
    for k, v in item.items():
        if k in _JSON_FIELDS and isinstance(v, str):
            out[k] = json.loads(v)
        elif isinstance(v, Decimal):
            out[k] = int(v) if v == v.to_integral_value() else float(v)
        else:
            out[k] = v
    return out


class _Table:
    """The KeyValueTable with values packed on the way in and unpacked on the way out."""

    def __init__(self, table: KeyValueTable) -> None:
        self.raw = table

    def get(self, key: Mapping[str, str]) -> dict[str, Any] | None:
        return _unpack(self.raw.get(key))

    def get_many(self, keys: list[dict[str, str]]) -> list[dict[str, Any] | None]:
        return [_unpack(i) for i in self.raw.get_many(keys)] if keys else []

    def put(self, item: Mapping[str, Any]) -> None:
        self.raw.put(_pack(item))

    def update(
        self, key: Mapping[str, str], values: Mapping[str, Any], *, expect: Mapping[str, Any] | None = None
    ) -> bool:
        return self.raw.update(key, _pack(values), expect=expect)

    def increment(
        self, key: Mapping[str, str], field: str, amount: int, values: Mapping[str, Any] | None = None
    ) -> int:
        return self.raw.increment(key, field, amount, _pack(values or {}))

    def query(
        self, partition: Mapping[str, str], *, limit: int = 100, after: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        rows, last = self.raw.query(partition, limit=limit, after=after)
        return [r for r in (_unpack(i) for i in rows) if r is not None], last


class ConversationStore:
    def __init__(self, table: KeyValueTable) -> None:
        self._table = _Table(table)

    @property
    def table(self) -> KeyValueTable:
        return self._table.raw

    # Conversations --------------------------------------------------------------------------------------------

    def create(self, tenant: str, user: str, title: str = "") -> Conversation:
        conversation_id, at = new_id("c"), now()
        header = {"id": conversation_id, "title": title, "turns": 0, "created_at": at, "updated_at": at}
        self._table.put({"pk": _conv_pk(tenant, conversation_id), "sk": "#META", "user": user, **header})
        self._table.put({"pk": f"USER#{tenant}#{user}", "sk": f"CONV#{conversation_id}", **header})
        return Conversation.of(header)

    def list(self, tenant: str, user: str, *, limit: int = 100) -> list[Conversation]:
        rows, _ = self._table.query({"pk": f"USER#{tenant}#{user}"}, limit=limit)
        headers = self._table.get_many([{"pk": _conv_pk(tenant, r["id"]), "sk": "#META"} for r in rows])
        return [Conversation.of(h) for h in reversed(headers) if h]  # newest first

    def get(self, tenant: str, user: str, conversation_id: str) -> Conversation:
        return Conversation.of(self._header(tenant, user, conversation_id))

    def _header(self, tenant: str, user: str, conversation_id: str) -> dict[str, Any]:
        header = self._table.get({"pk": _conv_pk(tenant, conversation_id), "sk": "#META"})
        if header is None or header.get("user") != user:  # another user's id reads as missing: no existence leak
            raise NotFound(f"no conversation {conversation_id}")
        return header

    # Turns ----------------------------------------------------------------------------------------------------

    def add_turn(self, tenant: str, user: str, conversation_id: str, question: str) -> Turn:
        """The user's message as a new turn, stored before anything runs: it is never lost."""
        header = self._header(tenant, user, conversation_id)
        at = now()
        n = self._table.increment(
            {"pk": _conv_pk(tenant, conversation_id), "sk": "#META"}, "turns", 1, {"updated_at": at}
        )
        if not header.get("title"):
            title = question.strip().splitlines()[0][:80]
            self._table.update({"pk": _conv_pk(tenant, conversation_id), "sk": "#META"}, {"title": title})
            self._table.update({"pk": f"USER#{tenant}#{user}", "sk": f"CONV#{conversation_id}"}, {"title": title})
        turn = Turn(
            conversation_id=conversation_id,
            turn=n,
            status=TurnStatus.RUNNING,
            question=question,
            created_at=at,
            updated_at=at,
        )
        item = {"pk": _conv_pk(tenant, conversation_id), "sk": _turn_sk(n), "user": user, "created_ms": _ms()}
        self._table.put({**item, **turn.model_dump(mode="json", exclude={"tool_runs"})})
        return turn

    def claim_idempotency_key(self, tenant: str, user: str, conversation_id: str, key: str) -> int | None:
        """None when this key is new (now claimed for the caller's next turn); else the turn it made."""
        self._header(tenant, user, conversation_id)
        row = {"pk": _conv_pk(tenant, conversation_id), "sk": f"IDEM#{hashlib.sha256(key.encode()).hexdigest()}"}
        if self._table.update(row, {"turn": 0, "expires_at": int(time.time()) + 86_400}, expect={"turn": None}):
            return None
        for _ in range(50):  # the first request with this key is storing its turn (a few ms)
            turn = int((self._table.get(row) or {}).get("turn") or 0)
            if turn:
                return turn
            time.sleep(0.05)
        raise Conflict("a request with this idempotency key is still being accepted; retry in a moment")

    def remember_idempotency_key(self, tenant: str, conversation_id: str, key: str, turn: int) -> None:
        row = {"pk": _conv_pk(tenant, conversation_id), "sk": f"IDEM#{hashlib.sha256(key.encode()).hexdigest()}"}
        self._table.update(row, {"turn": turn})

    def turn_item(self, tenant: str, conversation_id: str, turn: int) -> dict[str, Any]:
        item = self._table.get({"pk": _conv_pk(tenant, conversation_id), "sk": _turn_sk(turn)})
        if item is None:
            raise NotFound(f"no turn {turn} in conversation {conversation_id}")
        return item

    def turn(self, tenant: str, user: str, conversation_id: str, turn: int, *, with_runs: bool = True) -> Turn:
        self._header(tenant, user, conversation_id)
        return self._turn(self.turn_item(tenant, conversation_id, turn), tenant, with_runs=with_runs)

    def _turn(self, item: dict[str, Any], tenant: str, *, with_runs: bool) -> Turn:
        turn = Turn(**_public(item))
        turn.model_ms = float(item.get("model_ms_total") or 0)
        if with_runs:
            turn.tool_runs = self.runs(tenant, turn.conversation_id, turn.turn)
        return turn

    def turns(self, tenant: str, user: str, conversation_id: str, *, limit: int = 50) -> list[Turn]:
        self._header(tenant, user, conversation_id)
        return self.recent_turns(tenant, conversation_id, limit=limit, with_runs=True)

    def recent_turns(
        self, tenant: str, conversation_id: str, *, limit: int = 50, before: int | None = None, with_runs: bool = False
    ) -> list[Turn]:
        rows: list[dict[str, Any]] = []
        after: dict[str, Any] | None = None
        while True:  # a conversation's turns sort by number; read them in pages
            page, after = self._table.query({"pk": _conv_pk(tenant, conversation_id)}, limit=200, after=after)
            rows.extend(r for r in page if str(r["sk"]).startswith("TURN#"))
            if after is None:
                break
        if before is not None:
            rows = [r for r in rows if int(r["turn"]) < before]
        return [self._turn(r, tenant, with_runs=with_runs) for r in rows[-limit:]]

    def update_turn(
        self,
        tenant: str,
        conversation_id: str,
        turn: int,
        values: dict[str, Any],
        *,
        expect: dict[str, Any] | None = None,
    ) -> bool:
        key = {"pk": _conv_pk(tenant, conversation_id), "sk": _turn_sk(turn)}
        return self._table.update(key, {**values, "updated_at": now()}, expect=expect)

    def add_model_ms(self, tenant: str, conversation_id: str, turn: int, ms: float) -> None:
        # Whole milliseconds, added atomically: model steps of one turn never overwrite each other's time.
        key = {"pk": _conv_pk(tenant, conversation_id), "sk": _turn_sk(turn)}
        self._table.increment(key, "model_ms_total", round(ms))

    # Tool runs ------------------------------------------------------------------------------------------------

    def run(self, tenant: str, conversation_id: str, turn: int, step: int, call_id: str) -> ToolRun | None:
        item = self._table.get({"pk": _runs_pk(tenant, conversation_id, turn), "sk": run_key(step, call_id)})
        return ToolRun(**_public(item)) if item else None

    def save_run(self, tenant: str, conversation_id: str, turn: int, run: ToolRun) -> None:
        key = {"pk": _runs_pk(tenant, conversation_id, turn), "sk": run_key(run.step, run.call_id)}
        self._table.put({**key, **run.model_dump(mode="json")})

    def claim_run(self, tenant: str, conversation_id: str, turn: int, run: ToolRun, *, was: str | None) -> bool:
        """Write the run only if its row is still as it was (absent, or waiting for approval): one attempt of a side
        effect claims it before it runs."""
        key = {"pk": _runs_pk(tenant, conversation_id, turn), "sk": run_key(run.step, run.call_id)}
        return self._table.update(key, run.model_dump(mode="json"), expect={"status": was})

    def runs(self, tenant: str, conversation_id: str, turn: int) -> list[ToolRun]:
        rows, _ = self._table.query({"pk": _runs_pk(tenant, conversation_id, turn)}, limit=500)
        return [ToolRun(**_public(r)) for r in rows]

    # Escalations ----------------------------------------------------------------------------------------------

    def open_escalation(
        self,
        tenant: str,
        *,
        escalation_id: str,
        conversation_id: str,
        turn: int,
        user: str,
        question: str,
        reason: str,
        token: str,
        pending_tools: list[str],
    ) -> Escalation:
        """Idempotent per id: a retried Escalate step keeps the first row, with the newest task token."""
        key = {"pk": f"ESC#{tenant}", "sk": escalation_id}
        existing = self._table.get(key)
        if existing is not None:
            self._table.update(key, {"token": token})
            return Escalation(**_public(existing))
        escalation = Escalation(
            id=escalation_id,
            conversation_id=conversation_id,
            turn=turn,
            reason=reason,
            status=EscalationStatus.OPEN,
            requested_by=user,
            question=question,
            pending_tools=pending_tools,
            created_at=now(),
        )
        self._table.put({**key, "token": token, **escalation.model_dump(mode="json")})
        return escalation

    def escalation_item(self, tenant: str, escalation_id: str) -> dict[str, Any]:
        item = self._table.get({"pk": f"ESC#{tenant}", "sk": escalation_id})
        if item is None:
            raise NotFound(f"no escalation {escalation_id}")
        return item

    def escalation(self, tenant: str, escalation_id: str) -> Escalation:
        return Escalation(**_public(self.escalation_item(tenant, escalation_id)))

    def escalations(self, tenant: str, *, status: EscalationStatus | None = EscalationStatus.OPEN) -> list[Escalation]:
        out: list[Escalation] = []
        after: dict[str, Any] | None = None
        while True:
            page, after = self._table.query({"pk": f"ESC#{tenant}"}, limit=200, after=after)
            out.extend(Escalation(**_public(r)) for r in page if status is None or r.get("status") == status)
            if after is None:
                return out

    def close_escalation(
        self, tenant: str, escalation_id: str, status: EscalationStatus, *, by: str, resolution: str | None
    ) -> Escalation:
        """open -> status, once: a second resolution (or one after the timeout) is a Conflict."""
        item = self.escalation_item(tenant, escalation_id)
        values = {"status": status.value, "resolved_by": by, "resolution": resolution, "resolved_at": now()}
        key = {"pk": item["pk"], "sk": item["sk"]}
        if not self._table.update(key, values, expect={"status": EscalationStatus.OPEN.value}):
            current = self.escalation_item(tenant, escalation_id)
            raise Conflict(
                f"escalation {escalation_id} is {current.get('status')} already", status=current.get("status")
            )
        return Escalation(**_public({**item, **values}))

    # Turns whose run is gone --------------------------------------------------------------------------------

    def fail_interrupted_turns(
        self,
        items: Iterable[Mapping[str, Any]],
        *,
        alive: Callable[[str], bool],
        failure: str = INTERRUPTED_FAILURE,
        answer: str = INTERRUPTED_ANSWER,
    ) -> list[tuple[str, str, int]]:
        """Among the table's `items`, every turn still running or waiting whose execution `alive` does not know any
        more ends failed with `failure` and a safe `answer` (the question stays), and its open escalation is closed
        as interrupted: nothing is left to finish or resume it. Answered and failed turns stay as they are. Returns
        (tenant, conversation, turn) of each turn failed."""
        unfinished = {TurnStatus.RUNNING.value, TurnStatus.WAITING.value}
        failed: list[tuple[str, str, int]] = []
        for raw in items:
            item = _unpack(raw) or {}
            pk, sk = str(item.get("pk", "")), str(item.get("sk", ""))
            if not (pk.startswith("CONV#") and sk.startswith("TURN#")) or item.get("status") not in unfinished:
                continue
            arn = item.get("execution_arn")
            if arn and alive(str(arn)):
                continue
            tenant, conversation_id = pk.removeprefix("CONV#").rsplit("#", 1)
            values = {
                "status": TurnStatus.FAILED.value,
                "failure": failure,
                "answer": answer,
                "answer_kind": AnswerKind.SAFE.value,
            }
            n = int(item["turn"])
            # Conditional on the status read: a turn that finished meanwhile keeps its answer.
            if not self.update_turn(tenant, conversation_id, n, values, expect={"status": item["status"]}):
                continue
            failed.append((tenant, conversation_id, n))
            if item.get("escalation_id"):
                # Already resolved (nothing was left to resume), or never stored: either way it is not open.
                escalation, closed = str(item["escalation_id"]), EscalationStatus.INTERRUPTED
                with contextlib.suppress(Conflict, NotFound):
                    self.close_escalation(tenant, escalation, closed, by="system", resolution=failure)
        return failed


def _ms() -> int:
    return int(time.time() * 1000)
