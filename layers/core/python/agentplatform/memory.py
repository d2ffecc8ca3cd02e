"""The memory function's contract: what the agent loop's load step and the api send `memory`, and what it answers.

Three kinds of memory, each scoped to one tenant and one user (both from the caller's credentials, never from a
body): preferences (key -> value), conversation summaries (one per conversation, covering its older turns) and
entity facts (what a turn said about an order, a ticket, a customer id, with the turn it came from).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentplatform.bodies import NOT_BLANK

_Id = Annotated[str, Field(min_length=1, max_length=256)]
PREFERENCE_KEY = r"^[a-z][a-z0-9_]{0,39}$"
MEMORY_ID = r"^[psf]_[0-9a-f]{24}$"
MAX_VALUE_CHARS = 200
MAX_QUESTION_CHARS = 4_000


class MemoryKind(StrEnum):
    PREFERENCE = "preference"
    SUMMARY = "summary"
    FACT = "fact"


class MemoryItem(BaseModel):
    """One remembered thing, as the API shows it."""

    id: str = Field(description="The memory's id (DELETE /v1/memory/{id}).")
    kind: MemoryKind
    key: str = Field(description="A preference's key, the conversation of a summary, or the entity of a fact.")
    value: str = Field(description="The preference's value, the summary, or the fact.")
    source: Literal["explicit", "extracted", "model", "summarized"]
    conversation_id: str | None = None
    turn: int | None = Field(default=None, description="The turn it was learned from.")
    updated_at: str


class Recollection(BaseModel):
    """What the agent loop's load step gets back: notes for the model, search hints for the retrieval-first query
    (lowercase terms: they steer which passages rank first, they are never terms an answer must contain), and
    the last turn the conversation's summary covers (the loop sends only the turns after it)."""

    notes: list[str] = Field(default_factory=list)
    search_hints: list[str] = Field(default_factory=list)
    summarized_through: int = 0


class _Scoped(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: _Id
    user: _Id


class RecallRequest(_Scoped):
    action: Literal["recall"] = "recall"
    conversation_id: _Id
    question: Annotated[str, Field(max_length=MAX_QUESTION_CHARS)]


class ListRequest(_Scoped):
    action: Literal["list"] = "list"
    kind: MemoryKind | None = None


class PutPreferenceRequest(_Scoped):
    action: Literal["put_preference"] = "put_preference"
    key: Annotated[str, Field(pattern=PREFERENCE_KEY)]
    value: Annotated[str, Field(min_length=1, max_length=MAX_VALUE_CHARS, pattern=NOT_BLANK)]


class DeleteRequest(_Scoped):
    action: Literal["delete"] = "delete"
    memory_id: Annotated[str, Field(pattern=MEMORY_ID)]


class ClearRequest(_Scoped):
    action: Literal["clear"] = "clear"


MemoryRequest = Annotated[
    RecallRequest | ListRequest | PutPreferenceRequest | DeleteRequest | ClearRequest,
    Field(discriminator="action"),
]


class MemoryList(BaseModel):
    items: list[MemoryItem]


class Deleted(BaseModel):
    deleted: int = Field(description="How many memories were removed (from the table and the index).")
