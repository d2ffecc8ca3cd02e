"""The search contract: the public `POST /v1/search` body and answer, and what the api sends the retrieval
function (the body plus the caller's tenant and groups, which come from the authorizer, never the body)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from agentplatform.bodies import NOT_BLANK, WHOLE_NUMBER
from agentplatform.search import MAX_TOP_K, SearchMode

MAX_QUERY_CHARS = 2_000
MAX_CONTEXT_TOKENS = 8_000

_Id = Annotated[str, Field(min_length=1, max_length=256)]


class SearchFiltersBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    doc_ids: Annotated[list[_Id], Field(max_length=100, description="Only these documents.")] = []
    tags: Annotated[list[_Id], Field(max_length=20, description="Chunks carrying any of these tags.")] = []
    path_prefix: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=1024,
            pattern=r"/$",  # a folder: the schema says so, and pydantic checks it
            description="A folder of the drop path, ending in `/`: `reports/2024/`.",
        ),
    ] = None


class SearchBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"query": "how does the boundary layer behave at high speed?", "top_k": 5, "mode": "hybrid"}]
        },
    )

    query: Annotated[
        str,
        Field(
            min_length=1, max_length=MAX_QUERY_CHARS, pattern=NOT_BLANK, description="What to search for (not blank)."
        ),
    ]
    top_k: Annotated[
        int, Field(strict=True, ge=1, le=MAX_TOP_K, description="How many hits to return."), WHOLE_NUMBER
    ] = 10
    mode: Annotated[SearchMode, Field(description="`hybrid` (default); `bm25` or `vector` to debug.")] = (
        SearchMode.HYBRID
    )
    filters: SearchFiltersBody = SearchFiltersBody()
    context_tokens: Annotated[
        int,
        Field(strict=True, ge=0, le=MAX_CONTEXT_TOKENS, description="Token budget of the assembled context; 0: none."),
        WHOLE_NUMBER,
    ] = 1_500


class RetrievalRequest(SearchBody):
    """What the retrieval function receives: the caller's tenant and groups travel beside the body."""

    tenant: _Id
    acl_groups: Annotated[list[_Id], Field(max_length=100)] = []


class Citation(BaseModel):
    doc_id: str
    doc_version: str
    path: str
    title: str
    section: str = ""
    page: int | None = None


class Hit(BaseModel):
    chunk_id: str
    score: float
    bm25: float | None = Field(default=None, description="The BM25 score, where the chunk was a BM25 candidate.")
    vector: float | None = Field(
        default=None, description="The vector score, (1 + cosine) / 2, where it was a vector candidate."
    )
    text: str
    citation: Citation


class ContextPiece(BaseModel):
    ref: int = Field(description="The piece's number in the context text: `[ref]`.")
    text: str
    tokens: int
    chunk_ids: list[str]
    citation: Citation


class AssembledContext(BaseModel):
    text: str = Field(description="The pieces, most relevant first, each headed by its `[ref]` and source.")
    tokens: int
    budget: int
    pieces: list[ContextPiece]


class SearchResult(BaseModel):
    query: str
    mode: SearchMode
    hits: list[Hit]
    context: AssembledContext
